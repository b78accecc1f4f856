"""Fixtures for the emulator tests: one server per module, reset per test, and a tiny
standard-library HTTP client (the testkit declares no dependencies, so tests need none)."""

from __future__ import annotations

import http.client as httpclient
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from aipk_testkit.emulator import Emulator

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "Hello there"}]


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[str]:
        """The ``data:`` payloads of an SSE body, in order."""
        out = []
        for block in self.body.decode().split("\n\n"):
            for line in block.splitlines():
                if line.startswith("data: "):
                    out.append(line[6:])
        return out

    def chunks(self) -> list[dict[str, Any]]:
        """The JSON chunks of an SSE body (everything but ``[DONE]``)."""
        return [json.loads(e) for e in self.events() if e != "[DONE]"]


class Http:
    """Requests to one emulator over ``http.client`` (one fresh connection per call)."""

    def __init__(self, emu: Emulator) -> None:
        self.port = emu.port

    def connection(self, timeout: float = 5.0) -> httpclient.HTTPConnection:
        return httpclient.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None,
                conn: httpclient.HTTPConnection | None = None) -> Response:
        own = conn is None
        c = conn or self.connection()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return Response(r.status, r.reason, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            if own:
                c.close()

    def chat(self, stream: bool = False, include_usage: bool = False,
             headers: dict[str, str] | None = None, **extra: Any) -> Response:
        body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": USER, **extra}
        if stream:
            body["stream"] = True
            if include_usage:
                body["stream_options"] = {"include_usage": True}
        return self.request("POST", CHAT, json.dumps(body).encode(),
                            {"content-type": "application/json", **(headers or {})})

    @staticmethod
    def chat_bytes(stream: bool = True, close: bool = True, user: str = "Hello there") -> bytes:
        """A raw chat request (``Connection: close`` unless ``close=False``)."""
        body = json.dumps({"model": "gpt-4o-mini", "stream": stream,
                           "messages": [{"role": "user", "content": user}]}).encode()
        return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\n"
                + (b"Connection: close\r\n" if close else b"")
                + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send raw bytes, read until the server closes (send ``Connection: close``)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out


@pytest.fixture(scope="module")
def server() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def emu(server: Emulator) -> Emulator:
    server.reset()
    return server


@pytest.fixture
def http(emu: Emulator) -> Http:
    return Http(emu)
