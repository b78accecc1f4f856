"""Response headers reach the plugins and the errors the same way over every transport,
whatever case the server writes their names in (HTTP/1.1 names are case-insensitive).

A small real HTTP server on 127.0.0.1 answers in mixed case, as proxies and some providers do.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import aipk
from aipk.errors import RateLimitError

from .passed_in import PassedIn

REPLY = {
    "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
#: (status, headers in the case the server writes them, body)
Answer = tuple[int, list[tuple[str, str]], dict[str, Any]]
OK: Answer = (200, [("X-Request-Id", "req_mixed"), ("X-RateLimit-Limit-Requests", "100"),
                    ("X-RateLimit-Remaining-Requests", "99"),
                    ("X-RateLimit-Reset-Requests", "6m0s")], REPLY)
LIMITED: Answer = (429, [("Retry-After", "700"), ("X-Request-Id", "req_busy"),
                         ("X-Custom", "a"), ("x-custom", "b")],
                   {"error": {"message": "slow down", "type": "rate_limit_exceeded"}})


class _Server(ThreadingHTTPServer):
    answers: list[Answer]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        status, headers, body = self.server.answers.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.answers = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def _check(reply: aipk.ChatResponse, error: RateLimitError) -> None:
    assert reply.text == "hi" and reply.request_id == "req_mixed"
    assert reply.rate_limit is not None and reply.rate_limit.requests is not None
    assert (reply.rate_limit.requests.limit, reply.rate_limit.requests.remaining) == (100, 99)
    assert error.retry_after == 700 and error.request_id == "req_busy"
    assert error.headers["retry-after"] == "700"
    assert error.headers["x-custom"] == "a, b"  # a repeated name, joined as RFC 9110 allows
    assert all(name == name.lower() for name in error.headers)


def test_sync_client_reads_mixed_case_headers(server: _Server) -> None:
    server.answers = [OK, LIMITED]
    with aipk.Client("openai", base_url=_url(server), api_key="sk-test") as client:
        reply = client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
        with pytest.raises(RateLimitError) as caught:
            client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
    _check(reply, caught.value)


TRANSPORTS = ("httpx", "aiohttp")


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_async_client_reads_mixed_case_headers(server: _Server, transport: str) -> None:
    made = PassedIn(transport)

    async def scenario() -> tuple[aipk.ChatResponse, RateLimitError]:
        async with aipk.AsyncClient("openai", base_url=_url(server), api_key="sk-test",
                                    transport=made()) as client:
            reply = await client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
            with pytest.raises(RateLimitError) as caught:
                await client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
        await made.close()
        return reply, caught.value

    server.answers = [OK, LIMITED]
    _check(*asyncio.run(scenario()))
