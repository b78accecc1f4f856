"""A small, fast HTTP/1.1 server connection on a raw `asyncio.Protocol`.

Parses request lines, headers and ``Content-Length`` bodies by hand, keeps connections alive
(HTTP/1.1 default; ``Connection: close`` honoured), answers ``Expect: 100-continue`` and handles
one request at a time per connection (a pipelined request waits until the previous response,
possibly delayed, is complete). Writing a response is a single ``transport.write`` of
precomputed bytes; framing helpers for heads and chunks live here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from http import HTTPStatus
from typing import Protocol

from ._types import RecordedRequest

MAX_HEAD = 64 * 1024
_SPLIT_WRITE = 64 * 1024  # above this, head and payload are written separately (no big copy)

REASONS: dict[int, str] = {s.value: s.phrase for s in HTTPStatus}
REASONS[529] = "Site Overloaded"


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason>\\r\\n``."""
    return f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n".encode("ascii")


def header_lines(headers: list[tuple[str, str]]) -> bytes:
    """Header lines, each ending in CRLF (no blank line)."""
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode("latin-1")


def frame_chunk(data: bytes) -> bytes:
    """``data`` as one ``Transfer-Encoding: chunked`` chunk."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
_LINGER_RST = struct.pack("ii", 1, 0)


class Handler(Protocol):
    """What a connection hands complete requests to."""

    def handle(self, conn: Connection, request: RecordedRequest) -> None: ...

    def bad_request(self, conn: Connection, status: int, message: str) -> None: ...


class Connection(asyncio.Protocol):
    """One client connection: parse requests, pass them on, write the responses."""

    def __init__(self, app: Handler, connections: set[Connection]) -> None:
        self.app = app
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.closed = False
        self.keep_alive = True
        self._processing = False
        self._pending: tuple[str, str, str, dict[str, str], int, int] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()

    # -- parsing ----------------------------------------------------------------------------

    def _process(self) -> None:
        if self._processing:  # re-entered from a synchronous response: the loop below goes on
            return
        self._processing = True
        try:
            while not self.busy and not self.closed and self.buf:
                request = self._parse()
                if request is None:
                    return
                self.busy = True
                self.app.handle(self, request)
        finally:
            self._processing = False

    def _parse(self) -> RecordedRequest | None:
        buf = self.buf
        if self._pending is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self._reject(431, "Request header fields too large")
                return None
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self._reject(400, "Malformed request line")
                return None
            method, target, version = parts
            headers: dict[str, str] = {}
            clean = True
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    clean = False
                    break
                headers[name.lower()] = value.strip()
            if not clean or len(headers) != len(lines) - 1:  # a malformed line, a repeated name
                slow = self._slow_headers(lines[1:])
                if slow is None:
                    return None
                headers = slow
            if "transfer-encoding" in headers:
                self._reject(411, "Chunked request bodies are not supported; send Content-Length")
                return None
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                length = -1
            if length < 0:
                self._reject(400, "Invalid Content-Length")
                return None
            conn = headers.get("connection", "").lower()
            if version == "HTTP/1.0":
                self.keep_alive = "keep-alive" in conn
            else:
                self.keep_alive = "close" not in conn
            self._pending = (method, target, version, headers, end + 4, length)
            if length and headers.get("expect", "").lower() == "100-continue" and self.transport:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        method, target, _version, headers, start, length = self._pending
        if len(buf) < start + length:
            return None
        body = bytes(buf[start:start + length])
        del buf[:start + length]
        self._pending = None
        path, _, query = target.partition("?")
        return RecordedRequest(method, path, query, headers, body)

    def _slow_headers(self, lines: list[str]) -> dict[str, str] | None:
        """Header lines one by one: repeated names are joined, a malformed line rejected."""
        headers: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                self._reject(400, "Malformed header line")
                return None
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return headers

    def _reject(self, status: int, message: str) -> None:
        self.busy = True
        self.keep_alive = False
        self.buf.clear()
        self.app.bad_request(self, status, message)

    # -- writing ----------------------------------------------------------------------------

    def respond(self, head: bytes, payload: bytes, *, abort: bool = False,
                delay: float = 0.0, pause_at: int = 0, pause: float = 0.0,
                trickle: float = 0.0) -> None:
        """Write a response (after ``delay`` seconds), then continue, close or abort; with
        ``pause``, go silent for that long after the first ``pause_at`` bytes of ``payload``;
        with ``trickle``, write the bytes after ``pause_at`` one every ``trickle`` seconds."""
        if trickle > 0:
            self._timer = asyncio.get_running_loop().call_later(
                delay, self._trickle, head + payload[:pause_at], payload[pause_at:], 0, trickle,
                abort)
            return
        if delay > 0:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(delay, self._write, head, payload, abort, pause_at,
                                          pause)
        else:
            self._write(head, payload, abort, pause_at, pause)

    def _write(self, head: bytes, payload: bytes, abort: bool, pause_at: int = 0,
               pause: float = 0.0) -> None:
        self._timer = None
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            return
        if pause > 0:  # a stall: the head and the first part now, the rest after the silence
            transport.write(head + payload[:pause_at])
            self._timer = asyncio.get_running_loop().call_later(
                pause, self._write, b"", payload[pause_at:], abort)
            return
        if len(payload) > _SPLIT_WRITE:
            transport.write(head)
            transport.write(payload)
        else:
            transport.write(head + payload)
        if abort:
            self._abort_when_flushed()
        elif not self.keep_alive:
            transport.close()
        else:
            self.busy = False
            if self.buf:
                self._process()

    def _trickle(self, first: bytes, payload: bytes, at: int, interval: float,
                 abort: bool) -> None:
        """Write ``first`` and ``payload[at]``, then the next byte ``interval`` seconds later,
        to the end of ``payload``; then finish the response as `_write` does."""
        self._timer = None
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            return
        if at < len(payload):
            transport.write(first + payload[at:at + 1])
            self._timer = asyncio.get_running_loop().call_later(
                interval, self._trickle, b"", payload, at + 1, interval, abort)
            return
        self._write(first, b"", abort)

    def _abort_when_flushed(self) -> None:
        transport = self.transport
        if self.closed or transport is None:
            return
        if transport.get_write_buffer_size():
            retry: Callable[[], None] = self._abort_when_flushed
            self._timer = asyncio.get_running_loop().call_later(0.001, retry)
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:  # linger 0: close() sends RST, as a crashed peer or proxy would
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        transport.abort()
