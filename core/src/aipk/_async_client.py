"""The asynchronous client: the same calls as :class:`~aipk.Client`, awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._base import ClientBase
from ._client import HealthStatus, resolve_timeout
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
from .transports import AsyncHttpxTransport, AsyncResponse, AsyncTransport, TransportFailure

if TYPE_CHECKING:
    import httpx

__all__ = ["AsyncChatStream", "AsyncClient"]


class AsyncClient(ClientBase):
    """An asynchronous client for one provider.

    >>> async with aipk.AsyncClient("openai") as client:            # doctest: +SKIP
    ...     print((await client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("Hi")])).text)

    ``timeout`` is a :class:`~aipk.Timeout` (connect and read set separately) or seconds.
    ``http_client`` lets you pass your own ``httpx.AsyncClient``; ``transport`` any
    :class:`~aipk.transports.AsyncTransport`, e.g.
    :class:`~aipk.transports.AiohttpTransport`. ``credential`` passes a ready
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
        http_client: httpx.AsyncClient | None = None,
        transport: AsyncTransport | None = None,
        registry: Registry | None = None,
        limits: ClientLimits | None = None,
        store: StateStore | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        **options: Any,
    ) -> None:
        super().__init__(provider, api_key=api_key, base_url=base_url, headers=headers,
                         retry=retry, max_retries=max_retries, registry=registry, clock=clock,
                         options=options, limits=limits, credential=credential,
                         store=store)
        spec = self._engine.provider.spec
        self.timeout = resolve_timeout(timeout, spec.connect_timeout, spec.read_timeout)
        self._transport: AsyncTransport = (
            transport if transport is not None
            else AsyncHttpxTransport(http_client, timeout=self.timeout)
        )
        self._sleep = sleep

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close connections this client opened (not an ``http_client`` you passed in)."""
        await self._transport.close()

    # -- calls ---------------------------------------------------------------------------

    async def chat(self, request: ChatRequest | None = None, /, *, retry: RetryPolicy | None = None,
             **fields: Any) -> ChatResponse:
        """Send a chat request and return the whole answer.

        Pass a :class:`~aipk.ChatRequest`, or its fields as keywords (``model=``, ``messages=``,
        ``temperature=``, ``tools=`` …). ``retry`` overrides the client's policy for this call.
        """
        req = self._request(request, fields)
        http, body = self._engine.build(req, stream=False)
        response, rate_limit = await self._send(http, body, req.model, retry)
        try:
            data = await response.read()
        except TransportFailure as failure:
            raise self._transport_error(failure) from None
        return self._engine.chat_response(req, data, response.headers, rate_limit)

    def stream(self, request: ChatRequest | None = None, /, *, retry: RetryPolicy | None = None,
               **fields: Any) -> AsyncChatStream:
        """Stream a chat answer: ``async for`` over the returned :class:`AsyncChatStream`."""
        return AsyncChatStream(self, self._request(request, fields), retry)

    async def models(self, *, static: bool = False) -> list[ModelInfo]:
        """The provider's models: listed live, or the plugin's static list with ``static=True``
        (also used when the provider has no listing endpoint)."""
        built = None if static else self._engine.models_request()
        if built is None:
            return list(self._engine.provider.spec.models)
        response, _ = await self._send(built[0], built[1], "", None)
        try:
            data = await response.read()
        except TransportFailure as failure:
            raise self._transport_error(failure) from None
        return self._engine.models(data, response.headers)

    async def health(self) -> HealthStatus:
        """Check that the provider answers and accepts the credential (lists models)."""
        start = time.monotonic()
        try:
            await self.models()
        except ProviderError as exc:
            return HealthStatus(provider=self.provider_name, healthy=False,
                                latency=time.monotonic() - start, error=str(exc))
        return HealthStatus(provider=self.provider_name, healthy=True,
                            latency=time.monotonic() - start)

    # -- sending -------------------------------------------------------------------------

    async def _send(self, http: HttpRequest, body: bytes | None, model: str,
              retry: RetryPolicy | None) -> tuple[AsyncResponse, RateLimitState | None]:
        engine = self._engine
        start = time.monotonic()
        wait = engine.admission_delay(model, body, retry)
        if wait > 0:
            await self._sleep(wait)
        attempt = 0
        while True:
            try:
                response = await self._transport.send(http, body)
            except TransportFailure as failure:
                error: ProviderError = self._transport_error(failure)
            else:
                rate_limit = engine.observe(response.status, response.headers, model)
                if response.status < 400:
                    engine.metrics.record(ok=True, latency=time.monotonic() - start,
                                          retried=attempt > 0)
                    return response, rate_limit
                try:
                    raw = await response.read()
                except TransportFailure:
                    raw = b""
                error = engine.error(response.status, response.headers, raw, model)
            delay = engine.retry_delay(attempt, error, retry)
            if delay is None:
                engine.metrics.record(ok=False, latency=time.monotonic() - start,
                                      retried=attempt > 0)
                raise error
            attempt += 1
            await self._sleep(delay)


class AsyncChatStream:
    """A streaming answer. ``async for`` over it for :data:`~aipk.StreamEvent` objects; then
    ``await stream.get_response()`` gives the aggregated :class:`~aipk.ChatResponse`.

    Use it as an async context manager (or iterate it to the end) so the connection is
    released. Nothing is sent until you iterate or enter it.
    """

    def __init__(self, client: AsyncClient, request: ChatRequest,
                 retry: RetryPolicy | None) -> None:
        self._client = client
        self.request = request
        self._retry = retry
        self._session: StreamSession | None = None
        self._http: AsyncResponse | None = None
        self._iterator: AsyncIterator[StreamEvent] | None = None
        self._finished = False

    async def __aenter__(self) -> AsyncChatStream:
        await self._open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def _open(self) -> StreamSession:
        if self._session is None:
            client = self._client
            http, body = client._engine.build(self.request, stream=True)
            self._http, rate_limit = await client._send(http, body, self.request.model,
                                                        self._retry)
            self._session = client._engine.open_stream(self.request, self._http.headers,
                                                       rate_limit)
        return self._session

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    async def _events(self) -> AsyncIterator[StreamEvent]:
        session = await self._open()
        http = self._http
        assert http is not None
        try:
            feed = session.feed
            async for chunk in http.iter_bytes():
                if session.done:
                    continue  # drain to the end so the connection can be reused
                for event in feed(chunk):
                    yield event
            for event in session.finish():
                yield event
            self._finished = True
        except TransportFailure as failure:
            raise self._client._transport_error(failure) from None
        finally:
            await http.close()

    async def text(self) -> AsyncIterator[str]:
        """Iterate only the answer's text fragments."""
        async for event in self:
            if type(event) is TextDelta:
                yield event.text

    async def get_response(self) -> ChatResponse:
        """The aggregated response; reads the rest of the stream first if needed."""
        if not self._finished:
            async for _ in self:
                pass
        assert self._session is not None
        return self._session.response()

    async def close(self) -> None:
        """Stop reading and release the connection."""
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]
        elif self._http is not None:
            await self._http.close()
