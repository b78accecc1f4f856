"""The synchronous router and its routed stream."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
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
    from aipk._client import ChatStream, Client


class Router(_RouterBase):
    """Routes chat and stream calls over `Target` records with synchronous clients.

    ``strategy`` orders the targets per call; ``cooldown`` and ``breaker`` (None turns either
    off) decide when a target is skipped; ``fallback_on_context_window`` is False (raise),
    True (try only targets with a larger known context window) or ``{model: larger_model}``
    (retry the same target with the larger model). ``store`` holds cooldown and breaker state
    (a private `MemoryStore` by default), ``clock`` measures cooldowns and
    latency. ``retry`` is the policy for each call to a target (default `TARGET_RETRY`:
    no retries inside a target); None keeps each client's own. Clients the router creates get
    ``max_retries=0`` plus ``client_options``; close them with `close()` or ``with``.
    ``metrics`` is the model holding the targets' statistics, which those clients record
    their calls into (default ``client_options["metrics"]``, or a new one).

    ``max_wait`` (seconds, default 0: fail at once) lets a call whose targets are all cooling
    down, breaker-open or rate limited sleep until the earliest is available and try again,
    as long as its sleeps add up to no more than ``max_wait``; ``sleep`` (default
    `time.sleep()`) is how it sleeps. Both can be given per call.
    """

    _sleep: Callable[[float], object]

    def _init_sleep(self, sleep: Callable[[float], Any] | None) -> None:
        self._sleep = sleep if sleep is not None else time.sleep

    def _check_clients(self) -> None:
        from aipk._async_client import AsyncClient

        for s in self._core.states:
            if isinstance(s.client, AsyncClient):
                raise ConfigurationError(
                    f"target {s.name!r} has an AsyncClient; use aipk.router.AsyncRouter, or give "
                    f"it an aipk.Client")

    def __enter__(self) -> Router:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the clients the router created (not the ones you passed in)."""
        for client in self._core.release_owned():
            cast("Client", client).close()

    def _client(self, state: _TargetState) -> Client:
        def make(target: Target) -> Client:
            from aipk._client import Client

            return Client(target.provider, api_key=target.api_key, base_url=target.base_url,
                          **self._core.client_kwargs())

        client, surplus = self._core.install_client(state, make)
        if surplus is not None:
            cast("Client", surplus).close()
        return cast("Client", client)

    def chat(self, request: ChatRequest | None = None, /, *, retry: RetryPolicy | None = None,
             max_wait: float | None = None, headers: Mapping[str, str] | None = None,
             timeout: Timeout | float | None = None, extra_body: Mapping[str, Any] | None = None,
             check_context: bool | None = None, output_retries: int = 0,
             **fields: Any) -> ChatResponse:
        """Send the request to the first target that answers; the response's
        ``extra["router"]`` says who served it and who was tried (`route_of()`).
        ``max_wait`` overrides the router's for this call. ``headers``, ``timeout``,
        ``extra_body``, ``check_context`` and ``output_retries`` go to every target's client as to
        [`aipk.Client.chat()`][aipk.Client.chat] (``check_context`` fails over like the provider's
        own context-window error); an ``aipk.Timeout(total=...)`` bounds the whole routed call
        (each target gets the time left; RequestTimeout when it runs out)."""
        core = self._core
        call = core.call(request, fields, retry=retry, max_wait=max_wait, headers=headers,
                         timeout=timeout, extra_body=extra_body, check_context=check_context,
                         output_retries=output_retries)
        with _Run(core, call) as run:
            while (attempt := run.step()) is not None:
                if isinstance(attempt, float):
                    self._sleep(attempt)
                    continue
                state, sent = attempt
                try:
                    client = self._client(state)
                    run.started = core.clock()
                    response = client.chat(sent, retry=call.retry, **run.options())
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
               **fields: Any) -> RoutedStream:
        """Stream from the first target that starts answering. Failover (and waiting, with
        ``max_wait``) happens only before the first event; an error after it reaches you.
        Takes the same per-call options as `chat()`."""
        return RoutedStream(self, self._core.call(
            request, fields, retry=retry, max_wait=max_wait, headers=headers, timeout=timeout,
            extra_body=extra_body, check_context=check_context))


class RoutedStream(_RoutedStreamBase[Router]):
    """A routed streaming answer: iterate it for events; `response` then holds the
    aggregated response (with ``extra["router"]``) and `route` who served it."""

    _iterator: Iterator[StreamEvent] | None = None

    def __enter__(self) -> RoutedStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamEvent]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    def _events(self) -> Iterator[StreamEvent]:
        router = self._router
        with _Run(router._core, self._call) as run:
            while (attempt := run.step()) is not None:
                if isinstance(attempt, float):
                    router._sleep(attempt)
                    continue
                state, sent = attempt
                stream: ChatStream | None = None
                try:
                    client = router._client(state)
                    run.started = run.core.clock()
                    stream = client.stream(sent, retry=self._call.retry, **run.options())
                    events = iter(stream)
                    first = next(events)
                except StopIteration:
                    assert stream is not None
                    self._response = run.succeeded(stream.response)
                    return
                except ProviderError as exc:
                    if stream is not None:
                        stream.close()
                    if run.failed(exc):
                        continue
                    raise
                try:
                    yield first
                    yield from events
                except ProviderError as exc:
                    run.failed(exc, committed=True)
                    raise
                finally:
                    stream.close()
                self._response = run.succeeded(stream.response)
                return
        raise run.exhausted()

    def text(self) -> Iterator[str]:
        """Only the answer's text fragments."""
        for event in self:
            if type(event) is TextDelta:
                yield event.text

    @property
    def response(self) -> ChatResponse:
        """The aggregated response; reads the rest of the stream first if needed."""
        return self.get_response()

    def get_response(self) -> ChatResponse:
        if self._response is None:
            for _ in self:
                pass
        return self._finished()

    def close(self) -> None:
        """Stop reading and release the connection."""
        if self._iterator is not None:
            self._iterator.close()  # type: ignore[attr-defined]
