"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from ._base import ClientBase
from ._core import StreamSession
from ._http import HttpRequest, Timeout
from ._messages import ChatRequest
from ._providers import Credential, ModelInfo, Secret
from ._ratelimit import RateLimitState
from ._responses import ChatResponse, StreamEvent, TextDelta
from ._retry import RetryPolicy
from .errors import ProviderError
from .limits import ClientLimits
from .registry import Registry
from .state import StateStore
from .transports import HttpxTransport, Response, Transport, TransportFailure

if TYPE_CHECKING:
    import httpx

__all__ = ["ChatStream", "Client", "HealthStatus"]


@attrs.frozen(kw_only=True)
class HealthStatus:
    """The outcome of a health check: reachable and authorised, and how long it took."""

    provider: str
    healthy: bool
    latency: float
    error: str | None = None


def resolve_timeout(timeout: Timeout | float | None, connect: float | None,
                    read: float | None) -> Timeout:
    if isinstance(timeout, Timeout):
        return timeout
    if isinstance(timeout, (int, float)):
        return Timeout(connect=min(float(timeout), 10.0), read=float(timeout))
    base = Timeout()
    return attrs.evolve(base, connect=connect or base.connect, read=read or base.read)


class Client(ClientBase):
    """A synchronous client for one provider.

    >>> with aipk.Client("openai") as client:                       # doctest: +SKIP
    ...     print(client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("Hi")]).text)

    ``timeout`` is a :class:`~aipk.Timeout` (connect and read set separately) or seconds.
    ``http_client`` lets you pass your own ``httpx.Client``; ``transport`` any
    :class:`~aipk.transports.Transport`. ``credential`` passes a ready
    :class:`~aipk.Credential` (for example an OAuth access token: ``kind="oauth"``).
    ``store`` shares rate-limit state with other clients (a :class:`~aipk.state.StateStore`).
    Other keyword arguments are provider options (for example ``organization=`` for OpenAI).
    """

    def __init__(
        self,
        provider: str = "openai",
        *,
        api_key: str | Secret | None = None,
        credential: Credential | None = None,
        base_url: str | None = None,
        timeout: Timeout | float | None = None,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        max_retries: int | None = None,
        http_client: httpx.Client | None = None,
        transport: Transport | None = None,
        registry: Registry | None = None,
        limits: ClientLimits | None = None,
        store: StateStore | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        **options: Any,
    ) -> None:
        super().__init__(provider, api_key=api_key, base_url=base_url, headers=headers,
                         retry=retry, max_retries=max_retries, registry=registry, clock=clock,
                         options=options, limits=limits, credential=credential,
                         store=store)
        spec = self._engine.provider.spec
        self.timeout = resolve_timeout(timeout, spec.connect_timeout, spec.read_timeout)
        self._transport: Transport = (
            transport if transport is not None
            else HttpxTransport(http_client, timeout=self.timeout)
        )
        self._sleep = sleep

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close connections this client opened (not an ``http_client`` you passed in)."""
        self._transport.close()

    # -- calls ---------------------------------------------------------------------------

    def chat(self, request: ChatRequest | None = None, /, *, retry: RetryPolicy | None = None,
             **fields: Any) -> ChatResponse:
        """Send a chat request and return the whole answer.

        Pass a :class:`~aipk.ChatRequest`, or its fields as keywords (``model=``, ``messages=``,
        ``temperature=``, ``tools=`` …). ``retry`` overrides the client's policy for this call.
        """
        req = self._request(request, fields)
        http, body = self._engine.build(req, stream=False)
        response, rate_limit = self._send(http, body, req.model, retry)
        try:
            data = response.read()
        except TransportFailure as failure:
            raise self._transport_error(failure) from None
        return self._engine.chat_response(req, data, response.headers, rate_limit)

    def stream(self, request: ChatRequest | None = None, /, *, retry: RetryPolicy | None = None,
               **fields: Any) -> ChatStream:
        """Stream a chat answer: iterate the returned :class:`ChatStream` for events."""
        return ChatStream(self, self._request(request, fields), retry)

    def models(self, *, static: bool = False) -> list[ModelInfo]:
        """The provider's models: listed live, or the plugin's static list with ``static=True``
        (also used when the provider has no listing endpoint)."""
        built = None if static else self._engine.models_request()
        if built is None:
            return list(self._engine.provider.spec.models)
        response, _ = self._send(built[0], built[1], "", None)
        try:
            data = response.read()
        except TransportFailure as failure:
            raise self._transport_error(failure) from None
        return self._engine.models(data, response.headers)

    def health(self) -> HealthStatus:
        """Check that the provider answers and accepts the credential (lists models)."""
        start = time.monotonic()
        try:
            self.models()
        except ProviderError as exc:
            return HealthStatus(provider=self.provider_name, healthy=False,
                                latency=time.monotonic() - start, error=str(exc))
        return HealthStatus(provider=self.provider_name, healthy=True,
                            latency=time.monotonic() - start)

    # -- sending -------------------------------------------------------------------------

    def _send(self, http: HttpRequest, body: bytes | None, model: str,
              retry: RetryPolicy | None) -> tuple[Response, RateLimitState | None]:
        engine = self._engine
        start = time.monotonic()
        wait = engine.admission_delay(model, body, retry)
        if wait > 0:
            self._sleep(wait)
        attempt = 0
        while True:
            try:
                response = self._transport.send(http, body)
            except TransportFailure as failure:
                error: ProviderError = self._transport_error(failure)
            else:
                rate_limit = engine.observe(response.status, response.headers, model)
                if response.status < 400:
                    engine.metrics.record(ok=True, latency=time.monotonic() - start,
                                          retried=attempt > 0)
                    return response, rate_limit
                try:
                    raw = response.read()
                except TransportFailure:
                    raw = b""
                error = engine.error(response.status, response.headers, raw, model)
            delay = engine.retry_delay(attempt, error, retry)
            if delay is None:
                engine.metrics.record(ok=False, latency=time.monotonic() - start,
                                      retried=attempt > 0)
                raise error
            attempt += 1
            self._sleep(delay)


class ChatStream:
    """A streaming answer. Iterate it for :data:`~aipk.StreamEvent` objects; afterwards
    :attr:`response` holds the aggregated :class:`~aipk.ChatResponse`.

    Use it as a context manager (or iterate it to the end) so the connection is released.
    Nothing is sent until you iterate or enter it.
    """

    def __init__(self, client: Client, request: ChatRequest, retry: RetryPolicy | None) -> None:
        self._client = client
        self.request = request
        self._retry = retry
        self._session: StreamSession | None = None
        self._http: Response | None = None
        self._iterator: Iterator[StreamEvent] | None = None
        self._finished = False

    def __enter__(self) -> ChatStream:
        self._open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _open(self) -> StreamSession:
        if self._session is None:
            client = self._client
            http, body = client._engine.build(self.request, stream=True)
            self._http, rate_limit = client._send(http, body, self.request.model, self._retry)
            self._session = client._engine.open_stream(self.request, self._http.headers,
                                                       rate_limit)
        return self._session

    def __iter__(self) -> Iterator[StreamEvent]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    def _events(self) -> Iterator[StreamEvent]:
        session = self._open()
        http = self._http
        assert http is not None
        try:
            feed = session.feed
            for chunk in http.iter_bytes():
                if session.done:
                    continue  # drain to the end so the connection can be reused
                yield from feed(chunk)
            yield from session.finish()
            self._finished = True
        except TransportFailure as failure:
            raise self._client._transport_error(failure) from None
        finally:
            http.close()

    def text(self) -> Iterator[str]:
        """Iterate only the answer's text fragments."""
        for event in self:
            if type(event) is TextDelta:
                yield event.text

    @property
    def response(self) -> ChatResponse:
        """The aggregated response; reads the rest of the stream first if needed."""
        return self.get_response()

    def get_response(self) -> ChatResponse:
        """The aggregated response; reads the rest of the stream first if needed."""
        if not self._finished:
            for _ in self:
                pass
        assert self._session is not None
        return self._session.response()

    def close(self) -> None:
        """Stop reading and release the connection."""
        if self._iterator is not None:
            self._iterator.close()  # type: ignore[attr-defined]
        elif self._http is not None:
            self._http.close()
