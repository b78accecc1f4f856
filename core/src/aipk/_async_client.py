"""The asynchronous client: the same calls as [`Client`][aipk.Client], awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._base import NO_OPTIONS, ClientBase, HealthStatus, resolve_timeout
from ._http import HttpRequest, Timeout
from ._messages import ChatRequest, Message, Tool
from ._providers import Credential, ModelInfo, Secret
from ._responses import ChatResponse, StreamEvent, TextDelta
from ._retry import RetryPolicy
from ._sending import (
    Acquire,
    Admit,
    Deadline,
    Parse,
    Prime,
    Primed,
    ReadBody,
    Recover,
    Sent,
    Sleep,
    SourceFailed,
    Transmit,
    call_deadline,
    send_steps,
    stream_broke,
    stream_ended,
)
from ._structured import check_output_retries, retry_request
from ._tokens import TokenCount
from .credentials._errors import KeysExhaustedError
from .errors import AuthenticationError, ClientClosedError, ProviderError, StructuredOutputError
from .limits import ClientLimits
from .observability import Metrics
from .registry import Registry
from .state import StateStore
from .transports import (
    AsyncHttpxTransport,
    AsyncResponse,
    AsyncTransport,
    TransportFailure,
    adrain_end,
    bind_timeout,
)

if TYPE_CHECKING:
    import httpx

    from ._session import StreamSession
    from .credentials._pool import CredentialSource
    from .observability._call import Call

__all__ = ["AsyncChatStream", "AsyncClient"]


class AsyncClient(ClientBase):
    """An asynchronous client for one provider.

    >>> async with aipk.AsyncClient("openai") as client:            # doctest: +SKIP
    ...     print((await client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("Hi")])).text)

    ``timeout`` is a [`Timeout`][aipk.Timeout] (connect and read set separately) or seconds; it
    applies to every request whatever the transport (see
    [`aipk.transports.bind_timeout()`][aipk.transports.bind_timeout]). ``http_client`` lets you pass
    your own ``httpx.AsyncClient``; ``transport`` any
    [`AsyncTransport`][aipk.transports.AsyncTransport], e.g.
    [`AiohttpTransport`][aipk.transports.AiohttpTransport]. ``api_key``, ``credential`` and
    ``credentials`` work as for [`Client`][aipk.Client] (OAuth refreshes run without blocking the
    event loop). ``store`` shares rate-limit state with other clients (a
    `StateStore`). Other keyword arguments are provider options (for example
    ``organization=`` for OpenAI).
    """

    def __init__(
        self,
        provider: str = "openai",
        *,
        api_key: str | Secret | Sequence[str | Secret] | None = None,
        credential: Credential | None = None,
        credentials: CredentialSource | None = None,
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
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        check_context: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(provider, api_key=api_key, base_url=base_url, headers=headers,
                         retry=retry, max_retries=max_retries, registry=registry, clock=clock,
                         options=options, limits=limits, credential=credential,
                         credentials=credentials, store=store, metrics=metrics)
        spec = self._engine.provider.spec
        self.timeout = resolve_timeout(timeout, spec.connect_timeout, spec.read_timeout)
        self._transport: AsyncTransport
        if transport is None:
            self._transport = AsyncHttpxTransport(http_client, timeout=self.timeout)
        else:  # the client's timeout applies whatever the transport (see bind_timeout)
            self._transport, self.timeout = bind_timeout(transport, self.timeout,
                                                         explicit=timeout is not None)
        #: a transport passed in belongs to the caller (it may be shared): never closed here
        self._owns_transport = transport is None
        self._sleep = sleep
        self.check_context = check_context

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close connections this client opened (not an ``http_client`` or
        ``transport`` you passed in: those stay open for the other clients sharing them)."""
        self._closed = True
        if self._owns_transport:
            await self._transport.close()

    # -- calls ---------------------------------------------------------------------------

    async def chat(self, request: ChatRequest | None = None, /, *, retry: RetryPolicy | None = None,
             headers: Mapping[str, str] | None = None, timeout: Timeout | float | None = None,
             extra_body: Mapping[str, Any] | None = None, check_context: bool | None = None,
             output_retries: int = 0, **fields: Any) -> ChatResponse:
        """Send a chat request and return the whole answer.

        Pass a [`ChatRequest`][aipk.ChatRequest], or its fields as keywords (``model=``,
        ``messages=``, ``temperature=``, ``tools=`` …). ``retry`` overrides the client's policy for
        this call; ``headers`` adds HTTP headers (over the client's ``headers=``; a credential
        header is an error), ``timeout`` (seconds or a [`Timeout`][aipk.Timeout]) replaces the
        client's for this call, and ``extra_body`` is merged into the provider's JSON body last.
        ``check_context=True`` (or the client's ``check_context``) raises ContextWindowExceededError
        before sending when the estimated prompt plus ``max_tokens`` exceeds the model's context
        window. ``output_retries=N`` asks again, up to N more times, when the answer to a
        ``response_format=`` request breaks its schema, telling the model what was wrong
        (see docs/structured-output.md).
        """
        req = self._request(request, fields)
        # `_checked()` and `_call_options()`, inline: the usual call, two calls less
        if check_context or (check_context is None and self.check_context):
            self._engine.check_context(req)
        options = (self._call_options(headers, timeout, extra_body)
                   if headers or extra_body or timeout is not None else NO_OPTIONS)
        if output_retries:
            return await self._chat_fixing_output(req, output_retries, retry, options)
        return await self._chat_once(req, retry, options)

    async def _chat_once(self, req: ChatRequest, retry: RetryPolicy | None,
                         options: Mapping[str, Any],
                         deadline: Deadline | None = None) -> ChatResponse:
        """One chat call (``deadline``: the ``Timeout.total`` it shares with others)."""
        engine = self._engine
        call = engine.start_call(req, False)
        try:
            # (``**options`` only when there are some: unpacking even an empty mapping costs)
            prepared = (engine.prepare(req, False, **options) if options
                        else engine.prepare(req, False))
            sent = await self._send(prepared, req.model, retry, chat=req, call=call,
                                    deadline=deadline)
            answer: ChatResponse = sent.value
        except BaseException as exc:
            call.failed(exc)
            raise
        # (the answer's tokens were counted for the key with its success: see send_steps)
        call.finished(sent.credential.id, answer.usage, answer, answer.cost)
        return answer

    async def _chat_fixing_output(self, request: ChatRequest, tries_left: int,
                                  retry: RetryPolicy | None,
                                  options: Mapping[str, Any]) -> ChatResponse:
        """``chat()`` asking again after answers that break the ``response_format``, every
        ask within the one ``Timeout.total`` (when set)."""
        tries_left = check_output_retries(tries_left)
        deadline = call_deadline(options, self.timeout)
        while True:
            try:
                return await self._chat_once(request, retry, options, deadline)
            except StructuredOutputError as exc:
                again = retry_request(request, exc) if tries_left else None
                if again is None:
                    raise
                request, tries_left = again, tries_left - 1

    def stream(self, request: ChatRequest | None = None, /, *, retry: RetryPolicy | None = None,
               headers: Mapping[str, str] | None = None, timeout: Timeout | float | None = None,
               extra_body: Mapping[str, Any] | None = None, check_context: bool | None = None,
               **fields: Any) -> AsyncChatStream:
        """Stream a chat answer: ``async for`` over the returned `AsyncChatStream`.

        Takes the same per-call ``retry``, ``headers``, ``timeout``, ``extra_body`` and
        ``check_context`` as
        `chat()`; ``timeout``'s read part bounds the wait for each chunk."""
        req = self._checked(self._request(request, fields), check_context)
        return AsyncChatStream(self, req, retry, self._call_options(headers, timeout, extra_body))

    async def count_tokens(self, *, model: str | None = None,
                     messages: Iterable[Message | Mapping[str, Any]],
                     tools: Iterable[Tool] = ()) -> TokenCount:
        """Count the input tokens of ``messages`` (and ``tools``) for ``model``: with the
        provider's count endpoint where its plugin has one (Anthropic, Gemini), else a local
        estimate (about four characters a token; ``estimated=True`` on the result)."""
        request = self._count_request(model, messages, tools)
        call = self._engine.prepare_count(request)
        if call is None:
            return self._estimate(request)
        engine = self._engine
        count: TokenCount = (await self._send(
            call.request, request.model, None,
            parse=lambda body, headers, _: engine.token_count(call, request, body, headers),
        )).value
        return count

    async def models(self, *, static: bool = False, timeout: Timeout | float | None = None,
                     retry: RetryPolicy | None = None) -> list[ModelInfo]:
        """The provider's models: listed live, or the plugin's static list with ``static=True``
        (also used when the provider has no listing endpoint). ``timeout`` and ``retry``
        replace the client's for this listing."""
        built = None if static else self._models_request(timeout)
        if built is None:
            return list(self._engine.provider.spec.models)
        engine = self._engine
        sent = await self._send(built, "", retry,
                                parse=lambda body, headers, _: engine.models(body, headers))
        models: list[ModelInfo] = sent.value
        return models

    async def health(self, *, timeout: Timeout | float | None = None,
                     retry: RetryPolicy | None = None) -> HealthStatus:
        """Check that the provider answers and accepts the credential (lists models, with
        ``timeout`` and ``retry`` instead of the client's when given)."""
        start = time.monotonic()
        try:
            await self.models(timeout=timeout, retry=retry)
        except ProviderError as exc:
            return HealthStatus(provider=self.provider_name, healthy=False,
                                latency=time.monotonic() - start, error=str(exc))
        return HealthStatus(provider=self.provider_name, healthy=True,
                            latency=time.monotonic() - start)

    # -- sending -------------------------------------------------------------------------

    async def _send(self, prepared: HttpRequest, model: str, retry: RetryPolicy | None, *,
                    parse: Parse | None = None, chat: ChatRequest | None = None,
                    stream: ChatRequest | None = None,
              call: Call | None = None, deadline: Deadline | None = None,
              within: bool = False) -> Sent[AsyncResponse]:
        """Drive `send_steps()` (see `aipk.Client._send()`; ``deadline``: a ``Timeout.total``
        already running, shared with the call's other asks, else the request's own total, if
        any, starts now). With a total the whole drive runs under one asyncio timeout
        (`_send_within()`, which drives it ``within`` that timeout)."""
        if self._closed:
            raise ClientClosedError(type(self).__name__)
        if not within:
            if deadline is None:
                total = (prepared.timeout or self.timeout).total
                if total is not None:
                    deadline = Deadline(total)
            if deadline is not None:
                return await self._send_within(deadline, prepared, model, retry, parse=parse,
                                               chat=chat, stream=stream, call=call)
            steps = send_steps(self, prepared, model, retry, parse=parse, chat=chat, stream=stream,
                               call=call)
        else:
            steps = send_steps(self, prepared, model, retry, parse=parse, chat=chat, stream=stream,
                               call=call, deadline=deadline)
        source = self._credentials
        transport = self._transport
        value: Any = None
        while True:
            try:
                step = steps.send(value)
            except StopIteration as done:
                sent: Sent[AsyncResponse] = done.value
                return sent
            if type(step) is Transmit:  # final classes: the common steps first, by type
                try:
                    value = await transport.send(step.http, step.body)
                except TransportFailure as failure:
                    value = failure
                else:
                    if step.whole:  # the body too, in the same step (see Transmit)
                        try:
                            step.raw = await value.read()
                        except TransportFailure as failure:
                            step.raw = failure
                        except BaseException:  # cancelled: the head's limits count (see Transmit)
                            self._engine.observe(value.status, value.headers, model,
                                                 step.credential.id)
                            self._last_credential_id = step.credential.id
                            raise
            elif type(step) is ReadBody:
                try:
                    value = await step.response.read()
                except TransportFailure as failure:
                    value = failure
            elif isinstance(step, Sleep):
                await self._sleep(step.seconds)
                value = None
            elif isinstance(step, Prime):
                value = await _prime(step)
            elif isinstance(step, Acquire):
                try:
                    value = await source.aacquire(exclude=step.exclude)
                except KeysExhaustedError as exhausted:
                    value = exhausted
                except Exception as exc:  # noqa: BLE001 - the send loop decides what is raised
                    value = SourceFailed(exc)
            elif isinstance(step, Admit):
                value = await self._engine.aadmission_delay(
                    step.model, step.body, step.policy, step.credential_id)
            else:
                assert isinstance(step, Recover)  # the last kind of step
                try:
                    value = await source.arecover(step.credential, step.error)
                except AuthenticationError as failed:
                    value = failed
                except ProviderError:  # the call's total passed while refreshing
                    raise
                except Exception as exc:  # noqa: BLE001 - the send loop decides what is raised
                    value = SourceFailed(exc)

    async def _send_within(self, deadline: Deadline, prepared: HttpRequest, model: str,
                           retry: RetryPolicy | None, *, parse: Parse | None,
                           chat: ChatRequest | None,
                           stream: ChatRequest | None, call: Call | None) -> (
            Sent[AsyncResponse]):
        """`_send()` bounded by ``deadline`` (a ``Timeout(total=...)``): cancelled when it
        passes (the response being read is closed) and a RequestTimeout raised."""
        total = deadline.total
        left = max(deadline.at - time.monotonic(), 0.0)
        sending = self._send(prepared, model, retry, parse=parse, chat=chat, stream=stream,
                             call=call, deadline=deadline, within=True)
        timeout_cm = getattr(asyncio, "timeout", None)
        if timeout_cm is None:  # Python 3.10
            try:
                return await asyncio.wait_for(sending, left)
            except asyncio.TimeoutError:
                raise self._total_timeout_error("before the answer arrived", total) from None
        scope = timeout_cm(left)
        try:
            async with scope:
                return await sending
        except TimeoutError:
            if not scope.expired():
                raise
            raise self._total_timeout_error("before the answer arrived", total) from None


async def _prime(step: Prime) -> Primed | TransportFailure | ProviderError:
    """Read a stream until its first events (or its end); close it if that fails. ``rest``
    is aiohttp's chunk reader, or the body's async iterator, and is set only with the
    first events (None with the events of a body that ended: ``session.finish()`` ran). The
    read holding the first events is decoded only up to them (``session.first``); the
    driver decodes the rest of it (``session.backlog``) after delivering them."""
    response, session = step.response, step.session
    try:
        chunk_reader = getattr(response, "chunk_reader", None)
        if chunk_reader is not None:  # aiohttp: read chunks directly, one layer less
            reader = chunk_reader()
            read, errors, failure = reader
            while True:
                try:
                    chunk = await read()
                except errors as exc:
                    raise failure(exc) from None
                if not chunk:
                    break
                events = session.first(chunk)
                if events:
                    return Primed(session, events, reader)
                if session.done:  # a terminator and no event: read no further
                    break
        else:
            chunks = response.iter_bytes().__aiter__()
            async for chunk in chunks:
                events = session.first(chunk)
                if events:
                    return Primed(session, events, chunks)
                if session.done:
                    break
        events = session.finish()
    except (TransportFailure, ProviderError) as failed:
        await response.close()
        return failed
    except BaseException:  # cancelled (Timeout.total, or the caller): free the connection
        await response.close()
        raise
    await response.close()
    return Primed(session, events, None)


class AsyncChatStream:
    """A streaming answer. ``async for`` over it for `StreamEvent` objects; then
    ``await stream.get_response()`` gives the aggregated [`ChatResponse`][aipk.ChatResponse].

    Use it as an async context manager (or iterate it to the end) so the connection is
    released. Nothing is sent until you iterate or enter it.
    """

    def __init__(self, client: AsyncClient, request: ChatRequest,
                 retry: RetryPolicy | None, options: Mapping[str, Any] | None = None) -> None:
        self._client = client
        self._options: Mapping[str, Any] = options or {}
        self.request = request
        self._retry = retry
        self._session: StreamSession | None = None
        self._primed: Primed | None = None
        self._http: AsyncResponse | None = None
        self._credential: Credential | None = None
        self._call: Call | None = None
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
            call = self._call = client._engine.start_call(self.request, True)
            try:
                sent = await client._send(client._engine.prepare(self.request, stream=True,
                                                                 **self._options),
                                          self.request.model, self._retry, stream=self.request,
                                          call=call)
                self._http = sent.response
                self._credential = sent.credential
                self._primed = sent.value
                self._session = sent.value.session
                call.partial = self._session.accumulator  # a cut stream's usage still counts
            except BaseException as exc:
                call.failed(exc)
                raise
        return self._session

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    async def _events(self) -> AsyncIterator[StreamEvent]:
        session = await self._open()
        http, primed, call = self._http, self._primed, self._call
        assert http is not None and primed is not None and call is not None
        credential = self._credential
        assert credential is not None
        try:
            first = primed.events  # read before the first was delivered: retried if cut
            if first:
                call.got_first_token()  # observers hear of it once the caller has the event
                yield first[0]
                call.announce_first_token()
                for event in first[1:]:
                    yield event
            rest = primed.rest  # where to read on; set only once the first events came
            if rest is not None:
                for event in session.backlog():  # the rest of the read that held the first
                    yield event
                # After the terminator nothing more is read: a server may keep the body open.
                ended = session.done  # the terminator came with the first events
                if ended:
                    pass
                elif isinstance(rest, tuple):  # aiohttp: read chunks directly, one layer less
                    feed = session.feed
                    read, errors, failure = rest
                    while True:
                        try:
                            chunk = await read()
                        except errors as exc:
                            raise failure(exc) from None
                        if not chunk:
                            break
                        for event in feed(chunk):
                            yield event
                        if session.done:
                            break
                else:
                    feed = session.feed
                    async for chunk in rest:
                        for event in feed(chunk):
                            yield event
                        if session.done:
                            break
                for event in session.finish():
                    yield event
                if session.done:  # the body's end, briefly, so the connection is reused
                    await adrain_end(http)
            self._finished = True
            stream_ended(self._client, credential, primed)  # its usage, to the key's counters
            call.finished(credential.id, session.accumulator.usage, session.response,
                          session.cost())
        except TransportFailure as failure:
            error = self._client._transport_error(failure)
            stream_broke(self._client, credential, primed, error)  # the key hears of it too
            call.failed(error)
            raise error from None
        except GeneratorExit:  # the caller stopped (close, break): no failure of the key's
            call.cancelled()
            raise
        except BaseException as exc:
            stream_broke(self._client, credential, primed, exc)
            call.failed(exc)
            raise
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
        if self._call is not None:
            self._call.cancelled()  # nothing if the stream already ended
