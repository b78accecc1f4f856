"""The synchronous client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

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
from .credentials._single import SingleCredential
from .errors import AuthenticationError, ClientClosedError, ProviderError, StructuredOutputError
from .limits import ClientLimits
from .observability import Metrics
from .registry import Registry
from .state import StateStore
from .transports import (
    HttpxTransport,
    Response,
    Transport,
    TransportFailure,
    bind_timeout,
    drain_end,
)

if TYPE_CHECKING:
    import httpx

    from ._session import StreamSession
    from .credentials._pool import CredentialSource
    from .observability._call import Call

__all__ = ["ChatStream", "Client", "HealthStatus"]

_T = TypeVar("_T")


class Client(ClientBase):
    """A synchronous client for one provider.

    >>> with aipk.Client("openai") as client:                       # doctest: +SKIP
    ...     print(client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("Hi")]).text)

    ``timeout`` is a [`Timeout`][aipk.Timeout] (connect and read set separately) or seconds; it
    applies to every request whatever the transport (see
    [`aipk.transports.bind_timeout()`][aipk.transports.bind_timeout]). ``http_client`` lets you pass
    your own ``httpx.Client``; ``transport`` any [`Transport`][aipk.transports.Transport].
    ``api_key`` takes one key or a list of keys (a [`KeyPool`][aipk.credentials.KeyPool] with
    failover; so does a comma list in the provider's environment variable); ``credential`` a ready
    [`Credential`][aipk.Credential]; ``credentials`` any
    [`CredentialSource`][aipk.credentials.CredentialSource], e.g. an
    [`OAuthManager`][aipk.credentials.OAuthManager] (refreshed before requests, and once on a 401).
    ``store`` shares rate-limit state with other clients (a `StateStore`). Other
    keyword arguments are provider options (for example ``organization=`` for OpenAI).
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
        http_client: httpx.Client | None = None,
        transport: Transport | None = None,
        registry: Registry | None = None,
        limits: ClientLimits | None = None,
        store: StateStore | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        check_context: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(provider, api_key=api_key, base_url=base_url, headers=headers,
                         retry=retry, max_retries=max_retries, registry=registry, clock=clock,
                         options=options, limits=limits, credential=credential,
                         credentials=credentials, store=store, metrics=metrics)
        spec = self._engine.provider.spec
        self.timeout = resolve_timeout(timeout, spec.connect_timeout, spec.read_timeout)
        self._transport: Transport
        if transport is None:
            self._transport = HttpxTransport(http_client, timeout=self.timeout)
        else:  # the client's timeout applies whatever the transport (see bind_timeout)
            self._transport, self.timeout = bind_timeout(transport, self.timeout,
                                                         explicit=timeout is not None)
        #: a transport passed in belongs to the caller (it may be shared): never closed here
        self._owns_transport = transport is None
        self._sleep = sleep
        self.check_context = check_context

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close connections this client opened (not an ``http_client`` or
        ``transport`` you passed in: those stay open for the other clients sharing them)."""
        self._closed = True
        if self._owns_transport:
            self._transport.close()

    # -- calls ---------------------------------------------------------------------------

    def chat(self, request: ChatRequest | None = None, /, *, retry: RetryPolicy | None = None,
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
            return self._chat_fixing_output(req, output_retries, retry, options)
        return self._chat_once(req, retry, options)

    def _chat_once(self, req: ChatRequest, retry: RetryPolicy | None,
                   options: Mapping[str, Any], deadline: Deadline | None = None) -> ChatResponse:
        """One chat call (``deadline``: the ``Timeout.total`` it shares with others)."""
        engine = self._engine
        call = engine.start_call(req, False)
        try:
            # (``**options`` only when there are some: unpacking even an empty mapping costs)
            prepared = (engine.prepare(req, False, **options) if options
                        else engine.prepare(req, False))
            sent = self._send(prepared, req.model, retry, chat=req, call=call,
                              deadline=deadline)
            answer: ChatResponse = sent.value
        except BaseException as exc:
            call.failed(exc)
            raise
        # (the answer's tokens were counted for the key with its success: see send_steps)
        call.finished(sent.credential.id, answer.usage, answer, answer.cost)
        return answer

    def _chat_fixing_output(self, request: ChatRequest, tries_left: int,
                            retry: RetryPolicy | None, options: Mapping[str, Any]) -> ChatResponse:
        """``chat()`` asking again after answers that break the ``response_format``, every
        ask within the one ``Timeout.total`` (when set)."""
        tries_left = check_output_retries(tries_left)
        deadline = call_deadline(options, self.timeout)
        while True:
            try:
                return self._chat_once(request, retry, options, deadline)
            except StructuredOutputError as exc:
                again = retry_request(request, exc) if tries_left else None
                if again is None:
                    raise
                request, tries_left = again, tries_left - 1

    def stream(self, request: ChatRequest | None = None, /, *, retry: RetryPolicy | None = None,
               headers: Mapping[str, str] | None = None, timeout: Timeout | float | None = None,
               extra_body: Mapping[str, Any] | None = None, check_context: bool | None = None,
               **fields: Any) -> ChatStream:
        """Stream a chat answer: iterate the returned `ChatStream` for events.

        Takes the same per-call ``retry``, ``headers``, ``timeout``, ``extra_body`` and
        ``check_context`` as
        `chat()`; ``timeout``'s read part bounds the wait for each chunk."""
        req = self._checked(self._request(request, fields), check_context)
        return ChatStream(self, req, retry, self._call_options(headers, timeout, extra_body))

    def count_tokens(self, *, model: str | None = None,
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
        count: TokenCount = self._send(
            call.request, request.model, None,
            parse=lambda body, headers, _: engine.token_count(call, request, body, headers),
        ).value
        return count

    def models(self, *, static: bool = False, timeout: Timeout | float | None = None,
               retry: RetryPolicy | None = None) -> list[ModelInfo]:
        """The provider's models: listed live, or the plugin's static list with ``static=True``
        (also used when the provider has no listing endpoint). ``timeout`` and ``retry``
        replace the client's for this listing."""
        built = None if static else self._models_request(timeout)
        if built is None:
            return list(self._engine.provider.spec.models)
        engine = self._engine
        models: list[ModelInfo] = self._send(
            built, "", retry, parse=lambda body, headers, _: engine.models(body, headers)).value
        return models

    def health(self, *, timeout: Timeout | float | None = None,
               retry: RetryPolicy | None = None) -> HealthStatus:
        """Check that the provider answers and accepts the credential (lists models, with
        ``timeout`` and ``retry`` instead of the client's when given)."""
        start = time.monotonic()
        try:
            self.models(timeout=timeout, retry=retry)
        except ProviderError as exc:
            return HealthStatus(provider=self.provider_name, healthy=False,
                                latency=time.monotonic() - start, error=str(exc))
        return HealthStatus(provider=self.provider_name, healthy=True,
                            latency=time.monotonic() - start)

    # -- sending -------------------------------------------------------------------------

    def _send(self, prepared: HttpRequest, model: str, retry: RetryPolicy | None, *,
              parse: Parse | None = None, chat: ChatRequest | None = None,
              stream: ChatRequest | None = None, call: Call | None = None,
              deadline: Deadline | None = None) -> Sent[Response]:
        """Drive `send_steps()`: acquire, sign, send, read, recover, fail
        over, retry (``deadline``: a ``Timeout.total`` already running, shared with the
        call's other asks; else the request's own total, if any, starts now)."""
        if self._closed:
            raise ClientClosedError(type(self).__name__)
        timeout = prepared.timeout or self.timeout
        transport = self._transport
        sleep = self._sleep
        prime: Callable[[Prime], Any] = _prime
        if deadline is None and timeout.total is not None:
            deadline = Deadline(timeout.total)
        if deadline is None:
            steps = send_steps(self, prepared, model, retry, parse=parse, chat=chat, stream=stream,
                               call=call)
        else:  # Timeout.total: bound every step by the call's deadline
            steps = send_steps(self, prepared, model, retry, parse=parse, chat=chat, stream=stream,
                               call=call, deadline=deadline)
            transport, sleep, prime = _within(self, transport, timeout, deadline)
        source = self._credentials
        value: Any = None
        while True:
            try:
                step = steps.send(value)
            except StopIteration as done:
                sent: Sent[Response] = done.value
                return sent
            if type(step) is Transmit:  # final classes: the common steps first, by type
                try:
                    value = transport.send(step.http, step.body)
                except TransportFailure as failure:
                    value = failure
                else:
                    if step.whole:  # the body too, in the same step (see Transmit)
                        try:
                            step.raw = value.read()
                        except TransportFailure as failure:
                            step.raw = failure
                        except BaseException:  # interrupted: the head's limits count (see Transmit)
                            self._engine.observe(value.status, value.headers, model,
                                                 step.credential.id)
                            self._last_credential_id = step.credential.id
                            raise
            elif type(step) is ReadBody:
                try:
                    value = step.response.read()
                except TransportFailure as failure:
                    value = failure
            elif isinstance(step, Sleep):
                sleep(step.seconds)
                value = None
            elif isinstance(step, Prime):
                value = prime(step)
            elif isinstance(step, Acquire):
                try:
                    if deadline is None or not _refresh_due(source, step):
                        value = source.acquire(exclude=step.exclude)
                    else:  # the refresh may take only the time the call has left
                        value = _acquire_by(self, step, deadline)
                except KeysExhaustedError as exhausted:
                    value = exhausted
                except Exception as exc:  # noqa: BLE001 - the send loop decides what is raised
                    value = SourceFailed(exc)
            elif isinstance(step, Admit):
                value = self._engine.admission_delay(step.model, step.body, step.policy,
                                                     step.credential_id)
            else:
                assert isinstance(step, Recover)  # the last kind of step
                try:
                    if deadline is None:
                        value = source.recover(step.credential, step.error)
                    else:  # the refresh may take only the time the call has left
                        value = _recover_by(self, step, deadline)
                except AuthenticationError as failed:
                    value = failed
                except ProviderError:  # the call's total passed while refreshing
                    raise
                except Exception as exc:  # noqa: BLE001 - the send loop decides what is raised
                    value = SourceFailed(exc)


class _WithinTransport:
    """Sends each request with the time its call has left as ``timeout.total`` (the
    transport bounds the exchange by it); none left is a deadline failure at once."""

    __slots__ = ("_deadline", "_timeout", "_transport")

    def __init__(self, transport: Transport, timeout: Timeout, deadline: Deadline) -> None:
        self._transport = transport
        self._timeout = timeout
        self._deadline = deadline.at

    def send(self, request: HttpRequest, body: bytes | None) -> Response:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TransportFailure("no time left to send", timeout=True, deadline=True)
        bounded = attrs.evolve(request.timeout or self._timeout, total=left)
        return self._transport.send(attrs.evolve(request, timeout=bounded), body)

    def close(self) -> None:
        self._transport.close()


def _within(client: Client, transport: Transport, timeout: Timeout, deadline: Deadline) -> (
        tuple[Transport, Callable[[float], None], Callable[[Prime], Any]]):
    """The transport, sleep and stream priming of a call with ``Timeout.total``: each
    bounded by ``deadline``."""
    sleep = client._sleep
    at = deadline.at

    def sleep_within(seconds: float) -> None:
        left = at - time.monotonic()
        if seconds < left:
            sleep(seconds)
            return
        sleep(max(left, 0.0))
        raise client._total_timeout_error(f"before a wait of {seconds:.1f}s for a key or a "
                                          f"rate limit", deadline.total)

    def prime_within(step: Prime) -> Primed | TransportFailure | ProviderError:
        return _prime(step, at)

    return _WithinTransport(transport, timeout, deadline), sleep_within, prime_within


def _recover_by(client: Client, step: Recover, deadline: Deadline) -> Credential | None:
    """``source.recover()`` (a credential refresh after a 401) within the time the call has
    left (see `_by_deadline`). An AuthenticationError it raises is raised here."""
    source = client._credentials
    if type(source) is SingleCredential:  # one key: nothing to refresh
        return None
    return _by_deadline(client, lambda: source.recover(step.credential, step.error), deadline,
                        "while refreshing the credential after a 401", step.error)


def _refresh_due(source: CredentialSource, step: Acquire) -> bool:
    """Whether ``source.acquire()`` may first wait for a token refresh: a source that may (an
    `OAuthManager`) says so with ``_refresh_due(exclude)``; for the others it never does."""
    due: Callable[[Collection[str]], bool] | None = getattr(source, "_refresh_due", None)
    return due is not None and due(step.exclude)


def _acquire_by(client: Client, step: Acquire, deadline: Deadline) -> Credential:
    """``source.acquire()`` when it may first refresh a token about to expire, within the
    time the call has left (see `_by_deadline`). What it raises is raised here."""
    source = client._credentials
    return _by_deadline(client, lambda: source.acquire(exclude=step.exclude), deadline,
                        "while refreshing the credential before the request", None)


def _by_deadline(client: Client, work: Callable[[], _T], deadline: Deadline, what: str,
                 cause: BaseException | None) -> _T:
    """``work()`` (a credential refresh, however long its token endpoint takes) within the
    time the call has left: it runs on a worker thread, and when the deadline passes first
    the call raises RequestTimeout (ran out ``what``, from ``cause``) while the work goes on
    to its end (its new token serves later calls). What ``work`` raises is raised here."""
    import concurrent.futures

    left = deadline.at - time.monotonic()
    if left <= 0:
        raise client._total_timeout_error(what, deadline.total) from cause
    outcome: concurrent.futures.Future[_T] = concurrent.futures.Future()

    def run() -> None:
        try:
            outcome.set_result(work())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting call
            outcome.set_exception(exc)

    threading.Thread(target=run, name="aipk-credential-refresh", daemon=True).start()
    try:
        return outcome.result(left)
    except concurrent.futures.TimeoutError:
        raise client._total_timeout_error(what, deadline.total) from cause


def _prime(step: Prime, deadline: float | None = None) -> (
        Primed | TransportFailure | ProviderError):
    """Read a stream until its first events (or its end); close it if that fails. The rest
    of the body (``Primed.rest``) is set only with the first events (None with the events of
    a body that ended: ``session.finish()`` ran)."""
    response, session = step.response, step.session
    chunks = iter(response.iter_bytes())
    try:
        for chunk in chunks:
            events = session.first(chunk)  # decoded up to the first events (see AsyncClient)
            if events:
                if deadline is not None:  # Timeout.total ends here: the rest is unbounded
                    lift = getattr(response, "lift_deadline", None)
                    if lift is not None:
                        lift()
                return Primed(session, events, chunks)
            if session.done:  # a terminator and no event: read no further
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TransportFailure("the stream's first event had not arrived",
                                       timeout=True, before_first_byte=False, deadline=True)
        events = session.finish()
    except (TransportFailure, ProviderError) as failure:
        response.close()
        return failure
    response.close()
    return Primed(session, events, None)


class ChatStream:
    """A streaming answer. Iterate it for `StreamEvent` objects; afterwards
    `response` holds the aggregated [`ChatResponse`][aipk.ChatResponse].

    Use it as a context manager (or iterate it to the end) so the connection is released.
    Nothing is sent until you iterate or enter it.
    """

    def __init__(self, client: Client, request: ChatRequest, retry: RetryPolicy | None,
                 options: Mapping[str, Any] | None = None) -> None:
        self._client = client
        self._options: Mapping[str, Any] = options or {}
        self.request = request
        self._retry = retry
        self._session: StreamSession | None = None
        self._primed: Primed | None = None
        self._http: Response | None = None
        self._credential: Credential | None = None
        self._call: Call | None = None
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
            call = self._call = client._engine.start_call(self.request, True)
            try:
                sent = client._send(client._engine.prepare(self.request, stream=True,
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

    def __iter__(self) -> Iterator[StreamEvent]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    def _events(self) -> Iterator[StreamEvent]:
        session = self._open()
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
                yield from first[1:]
            rest = primed.rest  # where to read on; set only once the first events came
            if rest is not None:
                yield from session.backlog()  # the rest of the read that held the first
                ended = session.done  # the terminator came with the first events
                if not ended:
                    feed = session.feed
                    for chunk in rest:
                        yield from feed(chunk)
                        if session.done:  # stop reading: a server may keep the body open
                            break
                yield from session.finish()
                if session.done:  # the body's end, briefly, so the connection is reused
                    drain_end(http)
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
        if self._call is not None:
            self._call.cancelled()  # nothing if the stream already ended
