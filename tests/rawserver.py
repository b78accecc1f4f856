"""A tiny fault-injecting HTTP/1.1 server for tests: raw bytes on a loopback socket.

Independent of the testkit emulator on purpose (its own framing, its own quirks): each request
takes the next *script* from a queue, a list of steps written to the socket as they are:

* ``bytes``: written and flushed;
* a ``float``: a pause of that many seconds;
* `CLOSE`: close the connection (a close-delimited body ends here);
* `RESET`: abort it with a TCP RST;
* `HOLD`: keep the connection open and silent until the client goes away.

A script that ends without closing leaves the connection open for the client's next request
(keep-alive). With the queue empty the last script is repeated. ``requests`` records each
request as ``(method, target, headers, body)``.

Helpers build the usual answers: `reply` (a whole response, Content-Length or chunked),
`head` (a response head only) and `chunk` (one chunked-encoding chunk).
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

CLOSE = object()
RESET = object()
HOLD = object()

Step = Any
Script = Sequence[Step]

_REASONS = {200: "OK", 307: "Temporary Redirect", 308: "Permanent Redirect",
            400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable",
            529: "Overloaded"}


def head(status: int = 200, headers: Sequence[tuple[str, str]] = (), *,
         version: str = "HTTP/1.1") -> bytes:
    """A response head: status line, ``headers`` as given (nothing added), blank line."""
    lines = [f"{version} {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (``b""`` gives the last chunk)."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def reply(status: int = 200, body: bytes | str | Any = b"", *,
          headers: Sequence[tuple[str, str]] = (), content_type: str = "application/json",
          chunked: bool = False) -> list[Step]:
    """A whole response: ``body`` (bytes, text, or anything else as JSON) with a
    Content-Length, or in one chunk with ``chunked=True``."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    raw = body.encode("utf-8") if isinstance(body, str) else body
    hdrs = [("Content-Type", content_type), *headers]
    if chunked:
        hdrs.append(("Transfer-Encoding", "chunked"))
        return [head(status, hdrs), chunk(raw) if raw else b"", chunk(b"")]
    hdrs.append(("Content-Length", str(len(raw))))
    return [head(status, hdrs) + raw]


def sse_stream(body: bytes, pieces: Sequence[int] = ()) -> list[Step]:
    """A 200 ``text/event-stream`` answer whose body is sent in chunks cut at ``pieces``
    (offsets), each its own chunked-encoding chunk."""
    cuts = [0, *pieces, len(body)]
    parts = [body[a:b] for a, b in itertools.pairwise(cuts) if b > a]
    return [head(200, [("Content-Type", "text/event-stream"),
                       ("Transfer-Encoding", "chunked")]),
            *[chunk(p) for p in parts], chunk(b"")]


def sse_events(*events: Any, crlf: bool = False) -> bytes:
    """An event-stream body of ``data:`` events: each a string as it is, anything else as
    JSON; events end in a blank line (``crlf=True``: CRLF line ends)."""
    end = "\r\n\r\n" if crlf else "\n\n"
    return "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}{end}"
                   for e in events).encode()


def openai_text_chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    """An OpenAI chat-completion chunk carrying ``text`` (and ``finish``, when given)."""
    return {"id": "c-1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


class RawServer:
    """The server, on its own event loop thread; use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self._scripts: list[Script] = []
        self._last: Script = reply(200, b"{}")
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: connections accepted so far
        self.connections = 0
        self.port = 0

    # -- control -------------------------------------------------------------------------

    def __enter__(self) -> RawServer:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queue(self, *scripts: Script) -> RawServer:
        """Answer the next requests with ``scripts``, in order (the last one repeats)."""
        self._scripts.extend(scripts)
        return self

    # -- serving -------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _next(self) -> Script:
        if self._scripts:
            self._last = self._scripts.pop(0)
        return self._last

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = raw.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                body = b""
                if "content-length" in headers:
                    body = await reader.readexactly(int(headers["content-length"]))
                self.requests.append((method, target, headers, body))
                if not await self._play(self._next(), reader, writer):
                    return
        except asyncio.CancelledError:
            return  # the server stops (a cancelled task would be reported by asyncio)
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)

    async def _play(self, script: Script, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> bool:
        """Run one script; False when the connection is gone afterwards."""
        for step in script:
            if isinstance(step, (bytes, bytearray)):
                writer.write(step)
                try:
                    await writer.drain()
                except ConnectionError:
                    return False
            elif isinstance(step, (int, float)):
                await asyncio.sleep(step)
            elif step is CLOSE:
                writer.close()
                return False
            elif step is RESET:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return False
            elif step is HOLD:
                try:
                    while await reader.read(1024):
                        pass
                except ConnectionError:
                    pass
                writer.transport.abort()
                return False
        return True


@contextmanager
def raw_server(*scripts: Script) -> Iterator[RawServer]:
    with RawServer() as server:
        server.queue(*scripts)
        yield server
