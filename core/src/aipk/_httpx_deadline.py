"""`HttpxTransport` for a request with ``timeout.total``: the time its call has left
(``Timeout(total=...)``, see [`Timeout`][aipk.Timeout]).

Each wait up to the response head (connect, pool, write, read) is capped at the time left,
and every read and write of the connection until the head has arrived ends by the deadline (a
head trickled a byte at a time fails at it, as a body does); after the head every read of the
connection waits at most until the deadline, and a body still
arriving then (a trickle, never silent for long) fails at the next chunk: a body read whole
by the deadline, a stream until the client calls ``lift_deadline()`` on its first event, after
which reads wait the full read timeout again. Only such requests use this module.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._http import HttpRequest, Timeout
from .transports import (
    TransportFailure,
    _check_encoding,
    _exchange,
    _failure,
    _http_error,
    _httpx_timeout,
    _HttpxResponse,
    _left,
    _reads_bounded,
)

if TYPE_CHECKING:
    import httpx

    from .transports import HttpxTransport

__all__ = ["send_by"]


def send_by(transport: HttpxTransport, request: HttpRequest, body: bytes | None,
            timeout: Timeout, total: float) -> HttpxResponseBy:
    """``transport.send(request, body)`` for an exchange that must end within ``total``
    seconds."""
    client = transport._client
    deadline = time.monotonic() + total
    capped = {phase: total if seconds is None else min(seconds, total)
              for phase, seconds in _httpx_timeout(timeout).as_dict().items()}
    _head_deadline.deadline = deadline if _bound_head_io() else None
    try:
        sent = _exchange(client, request, body, transport._urls[request.url],
                         {"timeout": capped}, deadline=deadline)
    finally:
        _head_deadline.deadline = None
    return HttpxResponseBy(sent, deadline, timeout.read)


#: The deadline of the exchange this thread is sending, until its response head arrives.
_head_deadline = threading.local()
_head_bounded: list[bool] = []


def _bound_head_io() -> bool:
    """Make httpcore's sync network stream end each read and write by this thread's
    `_head_deadline`, while it has one (installed once; False when httpcore has no such
    stream). httpcore waits for a head with one read timeout per read, so a head trickled a
    byte at a time would otherwise hold the call for as long as the server likes; the
    connection is not known before the head arrives, so the bound is on the stream's class."""
    if _head_bounded:
        return _head_bounded[0]
    try:
        from httpcore._backends.sync import SyncStream
    except ImportError:  # pragma: no cover - another httpcore layout: waits stay per read
        _head_bounded.append(False)
        return False
    read, write = SyncStream.read, SyncStream.write

    def bounded_read(self: SyncStream, max_bytes: int, timeout: float | None = None) -> bytes:
        deadline = getattr(_head_deadline, "deadline", None)
        if deadline is not None:
            timeout = _left(deadline, timeout)
        return read(self, max_bytes, timeout)

    def bounded_write(self: SyncStream, buffer: bytes, timeout: float | None = None) -> None:
        deadline = getattr(_head_deadline, "deadline", None)
        if deadline is not None:
            timeout = _left(deadline, timeout)
        write(self, buffer, timeout)

    SyncStream.read = bounded_read  # type: ignore[method-assign]
    SyncStream.write = bounded_write  # type: ignore[method-assign]
    _head_bounded.append(True)
    return True


class HttpxResponseBy(_HttpxResponse):
    """A response whose answer must arrive by ``deadline`` (``time.monotonic()``): a body
    read whole by then, a stream until `lift_deadline()`. Every read of the connection
    waits at most until the deadline while there is one."""

    __slots__ = ("_read_timeout", "_unbound", "deadline")

    def __init__(self, response: httpx.Response, deadline: float,
                 read_timeout: float) -> None:
        super().__init__(response)
        self.deadline: float | None = deadline
        self._read_timeout = read_timeout
        #: leaves the stream's bounded reads (entered by `iter_bytes()`)
        self._unbound = contextlib.ExitStack()

    def _bound(self, timeout: float | None) -> float | None:
        """A read's wait: the full read timeout, ending by the deadline while there is one
        (httpcore's own ``timeout`` is the capped one the request was sent with)."""
        deadline = self.deadline
        if deadline is None:
            return self._read_timeout
        return _left(deadline, self._read_timeout)

    def _owned_reads(self) -> contextlib.AbstractContextManager[bool]:
        owner = threading.get_ident()
        return _reads_bounded(self._response, lambda: threading.get_ident() == owner,
                              self._bound)

    def lift_deadline(self) -> None:
        """The answer has arrived (a stream's first event): later reads wait the full read
        timeout."""
        self.deadline = None

    def read(self) -> bytes:
        deadline = self.deadline
        assert deadline is not None
        parts = []
        try:
            _check_encoding(self.headers)
            with self._owned_reads():
                for chunk in self._response.iter_bytes():
                    parts.append(chunk)
                    if time.monotonic() >= deadline:  # a trickle: never silent for long
                        raise TransportFailure("the body was still arriving", timeout=True,
                                               before_first_byte=False, deadline=True)
        except _http_error() as exc:
            raise _failure(exc, before_first_byte=False, deadline=deadline) from None
        finally:
            self._response.close()
        return b"".join(parts)

    def iter_bytes(self) -> Iterator[bytes]:
        import httpx

        _check_encoding(self.headers)
        self._chunks = chunks = self._response.iter_bytes()
        deadline = self.deadline
        bounds = self._unbound
        bounds.enter_context(self._owned_reads())
        try:
            yield from chunks
        except httpx.HTTPError as exc:
            passed = deadline if self.deadline is not None else None
            raise _failure(exc, before_first_byte=False, deadline=passed) from None
        finally:
            bounds.close()

    def drain_end(self) -> None:
        self._unbound.close()  # the grace's bounded reads now, not the stream's
        super().drain_end()

    def close(self) -> None:
        self._unbound.close()
        super().close()
