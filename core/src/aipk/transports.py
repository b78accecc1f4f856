"""The transport seam: how bytes reach a provider.

A transport sends one [`HttpRequest`][aipk.HttpRequest] and returns a response whose head (status,
headers) is available at once and whose body is read whole or iterated in chunks. The client
does everything else. Built in:

* [`HttpxTransport`][aipk.transports.HttpxTransport] (sync) and
  [`AsyncHttpxTransport`][aipk.transports.AsyncHttpxTransport] (async), the defaults; pass your own
  ``httpx.Client`` / ``httpx.AsyncClient`` to share pools, proxies or TLS settings. Each default
  transport has its own connection pool; all of them verify TLS with one process-wide context
  ([`shared_tls_context()`][aipk.transports.shared_tls_context]), so building a client costs no
  CA-bundle load after the first.
* [`AiohttpTransport`][aipk.transports.AiohttpTransport] (async, ``pip install
  'aipk-core[aiohttp]'``), several times faster under concurrency.

Transports raise [`TransportFailure`][aipk.transports.TransportFailure]; the client turns it into
[`RequestTimeout`][aipk.errors.RequestTimeout] or [`NetworkError`][aipk.errors.NetworkError] with
the provider name, or, for a body that does not match its ``Content-Encoding`` (``undecodable``),
a [`ResponseError`][aipk.errors.ResponseError] that is not retried.

A call with ``Timeout(total=...)``: the async client bounds it itself (one asyncio timeout
over the whole call), whatever the transport. The sync client sends each attempt with the time
the call has left as ``request.timeout.total``: a sync transport should end the exchange by
then (`HttpxTransport` caps each wait up to the head at it, then bounds the body's reads by the
deadline; a stream's only until ``lift_deadline()``, which the client calls on its first event)
and raise ``TransportFailure(..., timeout=True, deadline=True)`` when it passes.

Timeouts: a client's ``timeout`` applies to every request it sends, whatever the transport. The
built-in transports take a ``timeout`` of their own (``None``: not set) and have
``with_timeout(timeout)``, a copy sharing their connection pool that applies ``timeout`` to
each request; the client uses it ([`bind_timeout()`][aipk.transports.bind_timeout]). A transport
without ``with_timeout`` keeps its own timeouts, and passing the client a ``timeout=`` with it is a
ConfigurationError. ``headers`` is a mapping in which a lower-case name finds its header: a plain
dict with lower-case names (see [`lower_headers()`][aipk.transports.lower_headers]), or a
case-insensitive mapping such as aiohttp's. Read headers with ``headers.get("lower-case-name")``; do
not rely on the case of iterated names.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from ._http import HttpRequest, Timeout
from ._secrets import header_problem
from .errors import ClientClosedError, ConfigurationError, InvalidRequestError, _lower_names

if TYPE_CHECKING:
    import httpx

    from ._aiohttp import AiohttpTransport

__all__ = [
    "END_GRACE",
    "AiohttpTransport",
    "AsyncHttpxTransport",
    "AsyncResponse",
    "AsyncTransport",
    "HttpxTransport",
    "Response",
    "Transport",
    "TransportFailure",
    "bind_timeout",
    "shared_tls_context",
]

T = TypeVar("T")


class TransportFailure(Exception):
    """The transport got no usable response. ``timeout`` tells a timeout from a network error;
    ``deadline``: the timeout was the request's ``timeout.total`` (the time its call had
    left); ``undecodable``: the body did not match its ``Content-Encoding`` (a fault of the
    server or a proxy, which trying again will not fix)."""

    def __init__(self, message: str, *, timeout: bool = False, before_first_byte: bool = True,
                 deadline: bool = False, undecodable: bool = False):
        super().__init__(message)
        self.timeout = timeout
        self.before_first_byte = before_first_byte
        self.deadline = deadline
        self.undecodable = undecodable


@runtime_checkable
class Response(Protocol):
    """A synchronous response: the head now, the body on demand."""

    status: int
    headers: Mapping[str, str]

    def read(self) -> bytes: ...
    def iter_bytes(self) -> Iterator[bytes]: ...
    def close(self) -> None: ...


@runtime_checkable
class Transport(Protocol):
    """Sends requests synchronously."""

    def send(self, request: HttpRequest, body: bytes | None) -> Response: ...
    def close(self) -> None: ...


@runtime_checkable
class AsyncResponse(Protocol):
    """An asynchronous response: the head now, the body on demand."""

    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...
    def iter_bytes(self) -> AsyncIterator[bytes]: ...
    async def close(self) -> None: ...


@runtime_checkable
class AsyncTransport(Protocol):
    """Sends requests asynchronously."""

    async def send(self, request: HttpRequest, body: bytes | None) -> AsyncResponse: ...
    async def close(self) -> None: ...


def lower_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Raw header pairs as a plain dict with lower-case names (repeated names joined by ", ").

    Built once per response, so every later lookup is a plain dict lookup.
    """
    return _lower_names((key.decode("latin-1"), value.decode("latin-1")) for key, value in raw)


_tls_lock = threading.Lock()
_tls: list[ssl.SSLContext] = []


def shared_tls_context() -> ssl.SSLContext:
    """The TLS context every default httpx transport verifies with: httpx's default (the
    ``certifi`` CA bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set), built once per
    process on first use. Loading the CA bundle costs tens of milliseconds, more than the
    rest of a client, so a process that builds a client per task or per invocation pays it
    once. An ``http_client=`` of your own keeps its own TLS settings."""
    if not _tls:
        with _tls_lock:
            if not _tls:
                import httpx

                _tls.append(httpx.create_ssl_context())
    return _tls[0]


def _httpx_timeout(timeout: Timeout) -> httpx.Timeout:
    import httpx

    return httpx.Timeout(connect=timeout.connect, read=timeout.read, write=timeout.write,
                         pool=timeout.pool)


def _timeout_extension(timeout: Timeout | None) -> dict[str, Any] | None:
    """The per-request ``extensions["timeout"]`` httpx reads (None: the httpx client's own)."""
    return None if timeout is None else _httpx_timeout(timeout).as_dict()


def bind_timeout(transport: T, timeout: Timeout, *, explicit: bool) -> tuple[T, Timeout]:
    """The transport a client sends with, applying the client's ``timeout``, and the timeout
    in force. ``explicit``: the caller passed ``timeout=`` (else it is the provider's default).

    A transport given its own timeout keeps it when the client has none; both set and
    different is a ConfigurationError, as is ``timeout=`` with a transport that cannot apply it.
    """
    name = type(transport).__name__
    bind = getattr(transport, "with_timeout", None)
    if bind is None:
        if explicit:
            raise ConfigurationError(
                f"{name} cannot apply the client's timeout=: set the timeout on the transport "
                f"itself and leave out timeout=, or give {name} a with_timeout(timeout) method "
                f"that returns a copy applying it to each request")
        return transport, timeout
    own: Timeout | None = getattr(transport, "timeout", None)
    if own is not None:
        if explicit and own != timeout:
            raise ConfigurationError(
                f"the timeout is set twice, differently: timeout={timeout!r} on the client and "
                f"{own!r} on its {name}; set it in one place (the client's timeout= applies to "
                f"whatever transport it uses)")
        return transport, own
    bound: T = bind(timeout)
    return bound, timeout


class _UrlCache(dict[str, "httpx.URL"]):
    """Parsed ``httpx.URL`` objects by URL string: parsing one costs more than building the
    rest of the request, and a client sends to the same few URLs. Bounded."""

    __slots__ = ()
    LIMIT = 256

    def __missing__(self, url: str) -> httpx.URL:
        import httpx

        if len(self) >= self.LIMIT:
            self.clear()
        parsed = self[url] = httpx.URL(url)
        return parsed


def unsendable(request: HttpRequest) -> InvalidRequestError | None:
    """The typed error for a request the HTTP library refused to send because of a header
    (a line break, a control or non-ASCII character): it names the header, never its value.
    None when the headers are fine (the failure was something else)."""
    problem = header_problem(request.headers)
    if problem is None:
        return None
    return InvalidRequestError(
        f"the request cannot be sent: {problem}; header values must be one line of printable "
        f"ASCII: check the API key, headers= and the provider options", field="headers")


def http_client_closed(kind: str) -> ClientClosedError:
    return ClientClosedError(
        kind, f"the {kind} this transport sends with was closed; create a new one (or a new "
              f"aipk client), or close it only after the aipk client is done")


def _http_error() -> type[httpx.HTTPError]:
    """httpx's base error; called only once something was raised (an ``import`` statement
    on every request costs about half a microsecond)."""
    import httpx

    return httpx.HTTPError


def _local_protocol_error(exc: Exception) -> bool:
    import httpx

    return isinstance(exc, httpx.LocalProtocolError)


#: ``Content-Encoding`` values seen, and whether httpx decodes them here (httpx passes an
#: encoding it cannot decode, ``br`` without Brotli say, through as it came).
_DECODABLE: dict[str, bool] = {}


def _check_encoding(headers: Mapping[str, str]) -> None:
    """Raise an undecodable TransportFailure when the body's ``Content-Encoding`` names an
    encoding httpx cannot decode here, as aiohttp does, instead of handing on its bytes."""
    encoding = headers.get("content-encoding")
    if encoding is None:
        return
    decodable = _DECODABLE.get(encoding)
    if decodable is None:
        decodable = _DECODABLE[encoding] = _httpx_decodes(encoding)
    if not decodable:
        raise TransportFailure(
            f"httpx cannot decode content-encoding {encoding!r} here (it decodes "
            f"{', '.join(sorted(_httpx_decoders()))}; br needs the brotli package, zstd the "
            f"zstandard package)", before_first_byte=False, undecodable=True)


def _httpx_decoders() -> frozenset[str]:
    try:
        from httpx._decoders import SUPPORTED_DECODERS
    except ImportError:  # pragma: no cover - another httpx layout: what every httpx decodes
        return frozenset({"identity", "gzip", "deflate"})
    return frozenset(SUPPORTED_DECODERS)


def _httpx_decodes(encoding: str) -> bool:
    known = _httpx_decoders()
    return all(part.strip().lower() in known for part in encoding.split(",") if part.strip())


def _failure(exc: Exception, *, before_first_byte: bool,
             deadline: float | None = None) -> TransportFailure:
    """The TransportFailure for httpx's ``exc``; a timeout at ``deadline`` (the request's
    ``timeout.total``) or later is a deadline failure."""
    import httpx

    timeout = isinstance(exc, httpx.TimeoutException)
    kind = type(exc).__name__
    passed = timeout and deadline is not None and time.monotonic() >= deadline - _DEADLINE_SLACK
    return TransportFailure(f"{kind}: {exc}" if str(exc) else kind, timeout=timeout,
                            before_first_byte=before_first_byte, deadline=passed,
                            undecodable=isinstance(exc, httpx.DecodingError))


#: How early a timeout may fire and still be the deadline's (timers are not exact).
_DEADLINE_SLACK = 0.005


#: How long a stream's body may take to end once the provider's terminator has arrived: within
#: it the body is read to its end, so the connection goes back to the pool; past it (a server
#: keeping the body open) the connection is closed. The answer is complete either way.
END_GRACE = 0.1


def drain_end(response: object) -> None:
    """After a stream's terminator: let ``response`` read its body's end within `END_GRACE`,
    if its transport can (``drain_end()``); otherwise closing it discards the connection."""
    drain = getattr(response, "drain_end", None)
    if drain is not None:
        drain()


async def adrain_end(response: object) -> None:
    """The async `drain_end()`."""
    drain = getattr(response, "drain_end", None)
    if drain is not None:
        await drain()


def _left(deadline: float, timeout: float | None) -> float:
    """The wait a read may take to end by ``deadline`` (at least 1 ms), at most ``timeout``."""
    left = max(deadline - time.monotonic(), 0.001)
    return left if timeout is None else min(timeout, left)


@contextlib.contextmanager
def _reads_bounded(response: httpx.Response, is_owner: Callable[[], bool],
                   bound: Callable[[float | None], float | None] | None = None) -> Iterator[bool]:
    """While inside, reads of ``response``'s connection by its owner (this thread, or this
    task) wait at most ``bound(timeout)`` (by default: until `END_GRACE` has passed):
    httpcore's network stream gets a bounded ``read(max_bytes, timeout)``, removed on
    leaving. Yields False, bounding nothing, when the connection has no network stream that
    takes one."""
    stream: Any = response.extensions.get("network_stream")
    read = getattr(stream, "read", None)
    if read is None:
        yield False
        return
    if bound is None:
        deadline = time.monotonic() + END_GRACE

        def bound(timeout: float | None) -> float | None:
            return _left(deadline, timeout)

    def bounded_timeout(timeout: float | None) -> float | None:
        return bound(timeout) if is_owner() else timeout

    async def abounded(max_bytes: int, timeout: float | None = None) -> bytes:
        return await read(max_bytes, bounded_timeout(timeout))  # type: ignore[no-any-return]

    def bounded(max_bytes: int, timeout: float | None = None) -> bytes:
        return read(max_bytes, bounded_timeout(timeout))  # type: ignore[no-any-return]

    patched = abounded if inspect.iscoroutinefunction(read) else bounded
    try:
        stream.read = patched
    except (AttributeError, TypeError):  # a network stream that takes no attribute
        yield False
        return
    try:
        yield True
    finally:
        if getattr(stream, "__dict__", {}).get("read") is patched:  # not another's
            del stream.read


class _HttpxResponse:
    __slots__ = ("_chunks", "_response", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._chunks: Iterator[bytes] | None = None
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = lower_headers(response.headers.raw)

    def read(self) -> bytes:
        try:
            _check_encoding(self.headers)
            return self._response.read()
        except _http_error() as exc:
            raise _failure(exc, before_first_byte=False) from None
        finally:
            self._response.close()

    def iter_bytes(self) -> Iterator[bytes]:
        import httpx

        _check_encoding(self.headers)
        self._chunks = chunks = self._response.iter_bytes()
        try:
            yield from chunks
        except httpx.HTTPError as exc:
            raise _failure(exc, before_first_byte=False) from None

    def drain_end(self) -> None:
        """Read the body's end within `END_GRACE` (see `drain_end()`)."""
        import httpx

        chunks = self._chunks
        if chunks is None:
            return
        owner = threading.get_ident()
        with _reads_bounded(self._response, lambda: threading.get_ident() == owner) as bounded:
            # not ended in time, or broken after the answer: close() discards the connection
            if bounded:
                with contextlib.suppress(httpx.HTTPError):
                    for _ in chunks:
                        pass

    def close(self) -> None:
        self._response.close()


def _exchange(client: httpx.Client, request: HttpRequest, body: bytes | None, url: httpx.URL,
             extensions: dict[str, Any] | None, *,
             deadline: float | None = None) -> httpx.Response:
    """Send ``request`` on ``client`` and return the response at its head (the body not yet
    read, redirects not followed); httpx's errors become aipk's: a header that cannot be sent
    is an InvalidRequestError, a closed client a ClientClosedError, anything else a
    TransportFailure (a deadline failure once ``deadline`` has passed)."""
    try:
        built = client.build_request(request.method, url, headers=request.headers,
                                     content=body, extensions=extensions)
        return client.send(built, stream=True, follow_redirects=False)
    except Exception as exc:
        error = _send_error(exc, request, client.is_closed, "httpx.Client", deadline=deadline)
        if error is None:
            raise
        raise error from None


def _send_error(exc: Exception, request: HttpRequest, closed: bool, kind: str, *,
                deadline: float | None = None) -> Exception | None:
    """aipk's error for ``exc``, raised sending ``request`` on an httpx client (``kind``,
    ``closed`` once closed), as both httpx transports map it: a header that cannot be sent
    is an InvalidRequestError, a closed client a ClientClosedError, anything else httpx or a
    header value raised a TransportFailure (a deadline failure once ``deadline`` has
    passed); None for anything else, to be raised as it is."""
    if isinstance(exc, _http_error()):
        refused = unsendable(request) if _local_protocol_error(exc) else None
        return refused or _failure(exc, before_first_byte=True, deadline=deadline)
    if isinstance(exc, (UnicodeError, ValueError)):  # a non-ASCII header value
        return unsendable(request) or _failure(exc, before_first_byte=True)
    if isinstance(exc, RuntimeError) and closed:
        return http_client_closed(kind)
    return None


class HttpxTransport:
    """The default sync transport, over an ``httpx.Client`` (yours, or one it creates and owns).

    ``timeout`` (when set) applies to each request, also over your own ``httpx.Client``;
    unset, a client of yours keeps its own timeouts.
    """

    def __init__(self, client: httpx.Client | None = None, *, timeout: Timeout | None = None,
                 max_connections: int = 100) -> None:
        import httpx

        self._owns = client is None
        self._urls = _UrlCache()
        self._client = client or httpx.Client(
            timeout=_httpx_timeout(timeout or Timeout()), verify=shared_tls_context(),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
        )
        #: The timeout applied to each request (None: the httpx client's own).
        self.timeout = timeout
        self._timeouts = _timeout_extension(timeout)

    def with_timeout(self, timeout: Timeout) -> HttpxTransport:
        """A copy sharing this transport's connection pool that applies ``timeout``."""
        bound = copy.copy(self)
        bound.timeout = timeout
        bound._timeouts = _timeout_extension(timeout)
        return bound

    def send(self, request: HttpRequest, body: bytes | None) -> _HttpxResponse:
        client = self._client
        timeouts = self._timeouts
        timeout = request.timeout
        if timeout is not None:  # this call's own timeout= wins
            if timeout.total is not None:  # a call's Timeout.total: see _httpx_deadline
                from ._httpx_deadline import send_by

                return send_by(self, request, body, timeout, timeout.total)
            timeouts = _timeout_extension(timeout)
        return _HttpxResponse(_exchange(client, request, body, self._urls[request.url],
                                        timeouts and {"timeout": timeouts}))

    def close(self) -> None:
        if self._owns:
            self._client.close()


def _abody(response: httpx.Response, headers: Mapping[str, str]) -> AsyncIterator[bytes]:
    """``response``'s body as it arrives: with no ``content-encoding``, its stream's own parts
    (what ``aiter_bytes()`` yields then, minus two generator layers per part: no decoder and
    no re-chunking to pass through); otherwise ``aiter_bytes()``, which decodes. Each read
    still waits at most the request's read timeout (httpcore bounds it)."""
    import httpx

    stream = response.stream
    if "content-encoding" in headers or not isinstance(stream, httpx.AsyncByteStream):
        return response.aiter_bytes()
    if response.is_stream_consumed:
        raise httpx.StreamConsumed()
    if response.is_closed:
        raise httpx.StreamClosed()
    response.is_stream_consumed = True
    return stream.__aiter__()


class _AsyncHttpxResponse:
    __slots__ = ("_chunks", "_response", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._chunks: AsyncIterator[bytes] | None = None
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = lower_headers(response.headers.raw)

    async def read(self) -> bytes:
        try:
            _check_encoding(self.headers)
            return await self._response.aread()
        except _http_error() as exc:
            raise _failure(exc, before_first_byte=False) from None
        finally:
            await self._response.aclose()

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        import httpx

        _check_encoding(self.headers)
        self._chunks = chunks = _abody(self._response, self.headers)
        try:
            async for chunk in chunks:
                yield chunk
        except httpx.HTTPError as exc:
            raise _failure(exc, before_first_byte=False) from None

    async def drain_end(self) -> None:
        """Read the body's end within `END_GRACE` (see `drain_end()`)."""
        import asyncio

        import httpx

        chunks = self._chunks
        if chunks is None:
            return
        try:
            owner = asyncio.current_task()
        except RuntimeError:  # not on asyncio (trio): closing discards the connection
            return
        if owner is None:
            return
        with _reads_bounded(self._response, lambda: asyncio.current_task() is owner) as bounded:
            # not ended in time, or broken after the answer: close discards the connection
            if bounded:
                with contextlib.suppress(httpx.HTTPError):
                    async for _ in chunks:
                        pass

    async def close(self) -> None:
        await self._response.aclose()


class AsyncHttpxTransport:
    """The default async transport, over an ``httpx.AsyncClient``; ``timeout`` as for
    [`HttpxTransport`][aipk.transports.HttpxTransport]."""

    def __init__(self, client: httpx.AsyncClient | None = None, *, timeout: Timeout | None = None,
                 max_connections: int = 100) -> None:
        import httpx

        self._owns = client is None
        self._urls = _UrlCache()
        self._client = client or httpx.AsyncClient(
            timeout=_httpx_timeout(timeout or Timeout()), verify=shared_tls_context(),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
        )
        #: The timeout applied to each request (None: the httpx client's own).
        self.timeout = timeout
        self._timeouts = _timeout_extension(timeout)

    def with_timeout(self, timeout: Timeout) -> AsyncHttpxTransport:
        """A copy sharing this transport's connection pool that applies ``timeout``."""
        bound = copy.copy(self)
        bound.timeout = timeout
        bound._timeouts = _timeout_extension(timeout)
        return bound

    async def send(self, request: HttpRequest, body: bytes | None) -> _AsyncHttpxResponse:
        client = self._client
        timeouts = self._timeouts
        if request.timeout is not None:  # this call's own timeout= wins
            timeouts = _timeout_extension(request.timeout)
        try:
            built = client.build_request(request.method, self._urls[request.url],
                                         headers=request.headers, content=body,
                                         extensions=timeouts and {"timeout": timeouts})
            sent = await client.send(built, stream=True, follow_redirects=False)
            return _AsyncHttpxResponse(sent)
        except Exception as exc:
            error = _send_error(exc, request, client.is_closed, "httpx.AsyncClient")
            if error is None:
                raise
            raise error from None

    async def close(self) -> None:
        if self._owns:
            await self._client.aclose()


def __getattr__(name: str) -> Any:
    if name == "AiohttpTransport":
        from ._aiohttp import AiohttpTransport

        return AiohttpTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
