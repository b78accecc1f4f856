"""The asynchronous router and its routed stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from aipk._http import Timeout
from aipk._messages import ChatRequest
from aipk._responses import ChatResponse, StreamEvent, TextDelta
from aipk._retry import RetryPolicy
from aipk.errors import ConfigurationError, ProviderError

from ._base import _RoutedStreamBase, _RouterBase
from ._core import _TargetState
from ._run import _Run
from ._target import Target

if TYPE_CHECKING:
    from aipk._async_client import AsyncChatStream, AsyncClient


class AsyncRouter(_RouterBase):
    """The async twin of [`Router`][aipk.router.Router] (same settings): ``await router.chat(...)``,
    ``async for event in router.stream(...)``. Targets need [`AsyncClient`][aipk.AsyncClient]
    clients, or none (created on first use). Waits for ``max_wait`` use ``sleep``, an async
    callable (default `asyncio.sleep()`): they never block the event loop and cancelling
    the call cancels the wait."""

    _asynchronous = True
    _sleep: Callable[[float], Awaitable[object]]

    def _init_sleep(self, sleep: Callable[[float], Any] | None) -> None:
        self._sleep = sleep if sleep is not None else asyncio.sleep

    def _check_clients(self) -> None:
        from aipk._client import Client

        for s in self._core.states:
            if isinstance(s.client, Client):
                raise ConfigurationError(
                    f"target {s.name!r} has a synchronous Client; use aipk.router.Router, or give "
                    f"it an aipk.AsyncClient")

    async def __aenter__(self) -> AsyncRouter:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the clients the router created (not the ones you passed in)."""
        for client in self._core.release_owned():
            await cast("AsyncClient", client).close()

    async def _client(self, state: _TargetState) -> AsyncClient:
        def make(target: Target) -> AsyncClient:
            from aipk._async_client import AsyncClient

            return AsyncClient(target.provider, api_key=target.api_key,
                               base_url=target.base_url, **self._core.client_kwargs())

        client, surplus = self._core.install_client(state, make)
        if surplus is not None:
            await cast("AsyncClient", surplus).close()
        return cast("AsyncClient", client)

    async def chat(self, request: ChatRequest | None = None, /, *,
                   retry: RetryPolicy | None = None, max_wait: float | None = None,
                   headers: Mapping[str, str] | None = None,
                   timeout: Timeout | float | None = None,
                   extra_body: Mapping[str, Any] | None = None,
                   check_context: bool | None = None, output_retries: int = 0,
                   **fields: Any) -> ChatResponse:
        """Send the request to the first target that answers (see `Router.chat()`)."""
        core = self._core
        call = core.call(request, fields, retry=retry, max_wait=max_wait, headers=headers,
                         timeout=timeout, extra_body=extra_body, check_context=check_context,
                         output_retries=output_retries)
        with _Run(core, call) as run:
            while (attempt := run.step()) is not None:
                if isinstance(attempt, float):
                    await self._sleep(attempt)
                    continue
                state, sent = attempt
                try:
                    client = await self._client(state)
                    run.started = core.clock()
                    response = await client.chat(sent, retry=call.retry, **run.options())
                except ProviderError as exc:
                    if run.failed(exc):
                        continue
                    raise
                return run.succeeded(response)
        raise run.exhausted()

    def stream(self, request: ChatRequest | None = None, /, *, retry: RetryPolicy | None = None,
               max_wait: float | None = None, headers: Mapping[str, str] | None = None,
               timeout: Timeout | float | None = None,
               extra_body: Mapping[str, Any] | None = None, check_context: bool | None = None,
               **fields: Any) -> AsyncRoutedStream:
        """Stream from the first target that starts answering (see `Router.stream()`)."""
        return AsyncRoutedStream(self, self._core.call(
            request, fields, retry=retry, max_wait=max_wait, headers=headers, timeout=timeout,
            extra_body=extra_body, check_context=check_context))


class AsyncRoutedStream(_RoutedStreamBase[AsyncRouter]):
    """The async twin of `RoutedStream`: ``async for`` over it, then
    ``await stream.get_response()``."""

    _iterator: AsyncIterator[StreamEvent] | None = None

    async def __aenter__(self) -> AsyncRoutedStream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    async def _events(self) -> AsyncIterator[StreamEvent]:
        router = self._router
        with _Run(router._core, self._call) as run:
            while (attempt := run.step()) is not None:
                if isinstance(attempt, float):
                    await router._sleep(attempt)
                    continue
                state, sent = attempt
                stream: AsyncChatStream | None = None
                try:
                    client = await router._client(state)
                    run.started = run.core.clock()
                    stream = client.stream(sent, retry=self._call.retry, **run.options())
                    events = stream.__aiter__()
                    first = await events.__anext__()
                except StopAsyncIteration:
                    assert stream is not None
                    self._response = run.succeeded(await stream.get_response())
                    return
                except ProviderError as exc:
                    if stream is not None:
                        await stream.close()
                    if run.failed(exc):
                        continue
                    raise
                try:
                    yield first
                    async for event in events:
                        yield event
                except ProviderError as exc:
                    run.failed(exc, committed=True)
                    raise
                finally:
                    await stream.close()
                self._response = run.succeeded(await stream.get_response())
                return
        raise run.exhausted()

    async def text(self) -> AsyncIterator[str]:
        """Only the answer's text fragments."""
        async for event in self:
            if type(event) is TextDelta:
                yield event.text

    async def get_response(self) -> ChatResponse:
        """The aggregated response; reads the rest of the stream first if needed."""
        if self._response is None:
            async for _ in self:
                pass
        return self._finished()

    async def close(self) -> None:
        """Stop reading and release the connection."""
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]
