"""An async transport over aiohttp: several times faster than httpx under concurrency.

Install with ``pip install 'aipk-core[aiohttp]'`` and pass ``transport=AiohttpTransport()`` to
[`AsyncClient`][aipk.AsyncClient]. The ``aiohttp.ClientSession`` is created lazily inside the
running event loop, or you can pass your own.

A [`Timeout`][aipk.Timeout] maps to ``aiohttp.ClientTimeout(total=None, sock_connect=connect,
connect=connect + pool, sock_read=read)``: ``sock_read`` bounds each wait for bytes (the head,
and every gap in the body), never the whole response (on one timer per connection in the
sessions it creates: `aipk._aiohttp_reads`). ``Timeout.total`` is kept by the async
client itself (one asyncio timeout over the call), not by aiohttp's ``total``, which would also
cut a stream after its first event.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from ._http import HttpRequest, Timeout
from .errors import ConfigurationError
from .transports import END_GRACE, TransportFailure, http_client_closed, unsendable

if TYPE_CHECKING:
    import aiohttp
    import yarl

__all__ = ["AiohttpTransport"]


def _import_aiohttp() -> object:
    try:
        import aiohttp
    except ImportError:
        raise ConfigurationError(
            "AiohttpTransport needs aiohttp: pip install 'aipk-core[aiohttp]'"
        ) from None
    return aiohttp


def _errors() -> tuple[type[BaseException], ...]:
    """What aiohttp raises for a failed exchange; called only once something was raised (an
    ``import`` statement on every request would cost more than the rest of `read()`)."""
    import aiohttp

    return (aiohttp.ClientError, asyncio.TimeoutError)


def _failure(exc: BaseException, *, before_first_byte: bool) -> TransportFailure:
    timeout = isinstance(exc, asyncio.TimeoutError)
    kind = type(exc).__name__
    text = str(exc)
    # a body that does not match its Content-Encoding (ClientPayloadError), or one in an
    # encoding aiohttp cannot decode here (ClientResponseError, "please install Brotli")
    undecodable = not timeout and "decode content-encoding" in text.lower()
    if undecodable:
        text = " ".join(text.split())  # aiohttp's message spans lines
    return TransportFailure(f"{kind}: {text}" if text else kind, timeout=timeout,
                            before_first_byte=before_first_byte, undecodable=undecodable)


def _read_failure(exc: BaseException) -> TransportFailure:
    return _failure(exc, before_first_byte=False)


#: What aiohttp decodes (one encoding, any case); it hands on any other body as it came.
_DECODED = frozenset({"identity", "gzip", "deflate", "br", "zstd"})


def _check_encoding(headers: Mapping[str, str]) -> None:
    """Raise an undecodable TransportFailure when the body's ``Content-Encoding`` is one
    aiohttp does not decode (an unknown name, or a list such as ``gzip, br``), instead of
    handing on its bytes as if they were the body."""
    encoding = headers.get("content-encoding")
    if encoding is not None and encoding.lower() not in _DECODED:
        raise TransportFailure(
            f"aiohttp cannot decode content-encoding {encoding!r} (it decodes one of "
            f"{', '.join(sorted(_DECODED))})", before_first_byte=False, undecodable=True)


#: ``(read, errors, failure)``: a plain tuple (a NamedTuple class costs a first call a
#: compile per field to build)
ChunkReader = tuple[Callable[[], Awaitable[bytes]], tuple[type[BaseException], ...],
                    Callable[[BaseException], TransportFailure]]


_new_response = object.__new__


class _AiohttpResponse:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        # aiohttp's own case-insensitive headers, already parsed: lookups cost what a dict's
        # do, and building a lower-cased copy would cost more than the rest of the wrapper
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        try:
            _check_encoding(self.headers)
            return await self._response.read()
        except _errors() as exc:
            raise _failure(exc, before_first_byte=False) from None
        finally:
            self._response.release()

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        import aiohttp

        _check_encoding(self.headers)
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _failure(exc, before_first_byte=False) from None

    def chunk_reader(self) -> ChunkReader:
        """What `iter_bytes()` iterates, unwrapped for the client's stream loop (one async
        layer per chunk instead of three): ``read()`` returns the next chunk, ``b""`` at the
        end; an exception in ``errors`` becomes ``failure(exc)``."""
        import aiohttp

        _check_encoding(self.headers)
        return (self._response.content.readany, (aiohttp.ClientError, asyncio.TimeoutError),
                _read_failure)

    async def drain_end(self) -> None:
        """Read the body's end within `END_GRACE` (see `aipk.transports.drain_end()`): at once
        when it arrived with the terminator, as it usually does."""
        import aiohttp

        content = self._response.content
        if content.at_eof():
            return

        async def rest() -> None:
            while await content.readany():
                pass

        # not ended in time, or broken after the answer: release() then closes the connection
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            await asyncio.wait_for(rest(), END_GRACE)

    async def close(self) -> None:
        self._response.release()


def _client_timeout(timeout: Timeout) -> aiohttp.ClientTimeout:
    import aiohttp

    return aiohttp.ClientTimeout(total=None, connect=timeout.connect + timeout.pool,
                                 sock_connect=timeout.connect, sock_read=timeout.read)


class _Urls(dict[str, "yarl.URL"]):
    """Parsed ``yarl.URL`` objects by URL string, as aiohttp would parse them on every
    request: a client sends to the same few URLs. Bounded."""

    __slots__ = ()
    LIMIT = 256

    def __missing__(self, url: str) -> yarl.URL:
        import yarl

        if len(self) >= self.LIMIT:
            self.clear()
        parsed = self[url] = yarl.URL(url)
        return parsed


class _Pool:
    """The session a transport and its `with_timeout()` copies share, the URLs they
    parsed, and how a request is made on the session (`request_of()`)."""

    __slots__ = ("request", "session", "urls")

    def __init__(self, session: aiohttp.ClientSession | None) -> None:
        self.urls = _Urls()
        self.use(session)

    def use(self, session: aiohttp.ClientSession | None) -> None:
        self.session = session
        self.request: Callable[..., Awaitable[aiohttp.ClientResponse]] | None = (
            None if session is None else request_of(session))


def request_of(session: aiohttp.ClientSession) -> Callable[
        ..., Awaitable[aiohttp.ClientResponse]]:
    """``session.request``, or the coroutine it wraps (``session._request``: no context
    manager object and no second pass of the keywords per request) when ``session``'s
    ``request`` is aiohttp's own, not a subclass's."""
    import aiohttp

    inner = getattr(session, "_request", None)
    if type(session).request is aiohttp.ClientSession.request and callable(inner):
        return inner  # type: ignore[no-any-return]
    return session.request


class AiohttpTransport:
    """Async transport over an ``aiohttp.ClientSession`` (yours, or one it creates and owns).

    ``timeout`` (when set) applies to each request, also over your own session; unset, a
    session of yours keeps its own timeouts.
    """

    def __init__(self, session: aiohttp.ClientSession | None = None, *,
                 timeout: Timeout | None = None, max_connections: int = 100) -> None:
        _import_aiohttp()
        self._pool = _Pool(session)
        self._owns = session is None
        self._max_connections = max_connections
        #: The timeout applied to each request (None: the session's own).
        self.timeout = timeout
        #: ``timeout`` as aiohttp's ``timeout=`` argument of each request (None: not passed)
        self._request_timeout: aiohttp.ClientTimeout | None = (
            None if timeout is None else _client_timeout(timeout))

    def with_timeout(self, timeout: Timeout) -> AiohttpTransport:
        """A copy sharing this transport's session (its connection pool) that applies
        ``timeout`` to each request."""
        bound = copy.copy(self)
        bound.timeout = timeout
        bound._request_timeout = _client_timeout(timeout)
        return bound

    def _new_session(self) -> aiohttp.ClientSession:
        import aiohttp

        from ._aiohttp_reads import read_timer_connector

        return aiohttp.ClientSession(
            timeout=_client_timeout(self.timeout or Timeout()),
            connector=read_timer_connector(self._max_connections),
            auto_decompress=True,
        )

    async def send(self, request: HttpRequest, body: bytes | None) -> _AiohttpResponse:
        pool = self._pool
        send = pool.request
        if send is None:
            pool.use(self._new_session())
            send = pool.request
            assert send is not None
        try:
            timeout = self._request_timeout
            if request.timeout is not None:  # this call's own timeout= wins
                timeout = _client_timeout(request.timeout)
            # aiohttp copies the headers into its own multidict: no copy of ours first. Two
            # calls rather than ``**{"timeout": ...}``: unpacking a mapping into the keywords
            # costs more than the rest of this method.
            if timeout is None:  # the session's own timeouts
                response = await send(request.method, pool.urls[request.url],
                                      headers=request.headers, data=body, allow_redirects=False)
            else:
                response = await send(request.method, pool.urls[request.url],
                                      headers=request.headers, data=body, allow_redirects=False,
                                      timeout=timeout)
        except _errors() as exc:
            raise _failure(exc, before_first_byte=True) from None
        except (UnicodeError, ValueError) as exc:  # a header aiohttp refuses to send
            raise (unsendable(request) or _failure(exc, before_first_byte=True)) from None
        except RuntimeError:
            if pool.session is None or pool.session.closed:
                raise http_client_closed("aiohttp.ClientSession") from None
            raise
        # `_AiohttpResponse(response)` without its ``__init__`` call (once per request)
        wrapped = _new_response(_AiohttpResponse)
        wrapped._response = response
        wrapped.status = response.status
        wrapped.headers = response.headers
        return wrapped

    async def close(self) -> None:
        pool = self._pool
        if self._owns and pool.session is not None:
            await pool.session.close()
            pool.use(None)
