"""The send loop both clients share, written once as a generator of I/O steps (sans-IO).

`send_steps()` decides everything about one call: which credential signs it, how long to
wait before sending, and after each failure whether to refresh the credential (a 401, once),
move to the next credential (a failure that counted against the key), wait and retry (the
retry policy), or give up. It yields what it needs done and receives the outcome:

=====================  ==========================================  =========================
step                   the client does                              and sends back
=====================  ==========================================  =========================
`Acquire`       ``source.acquire(exclude=...)``              the credential, the
                                                                    KeysExhaustedError, or
                                                                    `SourceFailed`
`Sleep`         sleeps (sync) or awaits a sleep (async)      None
`Transmit`      ``transport.send(http, body)``, and with     the response, or the
                       ``whole`` reads its whole body into ``raw``  TransportFailure
                       (the bytes, or the TransportFailure)
`ReadBody`      reads a response's whole body                the bytes, or the
                                                                    TransportFailure
`Prime`         reads a stream until its first events        a `Primed`, or the
                       (``session.feed`` per chunk, ``finish`` at   TransportFailure or
                       the end), closing the response on failure    ProviderError
`Recover`       ``source.recover(credential, error)``        a fresh credential, None,
                                                                    the AuthenticationError,
                                                                    or `SourceFailed`
`Admit`         ``engine.admission_delay(...)`` (awaited     the seconds to wait
                       in the async client), only for a store
                       that books limits asynchronously
=====================  ==========================================  =========================

An answer counts as received only once the caller could use it: a whole body that decodes
(``parse``), or a stream's first events. Until then a cut connection, a truncated or invalid
body, or a stream that ends without an event is a failure like one before the first byte:
counted against the key, failed over and retried. A stream that has produced events is never
restarted; a failure after them still reaches the credential source (`stream_broke()`, which
the clients call), so a key whose streams keep breaking is backed off like any other.
A source that raises while recording an outcome never replaces it (`aipk._reporting`): a
failed call raises its own error, noted, without failover or retry; an answer is returned.

[`Client`][aipk.Client] and [`AsyncClient`][aipk.AsyncClient] each drive it in a few dozen lines.
``Acquire`` and ``Recover`` are the same steps
[`aipk.credentials.call_with_failover()`][aipk.credentials.call_with_failover] uses for its own,
simpler loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._http import HttpRequest, Timeout
from ._messages import ChatRequest
from ._providers import Credential
from ._ratelimit import RateLimitState
from ._reporting import choosing_failed, reporting_failed
from ._responses import ChatResponse, StreamEvent
from ._retry import RetryPolicy
from .credentials._errors import KeysExhaustedError
from .credentials._single import Acquire, Recover, SingleCredential
from .errors import AuthenticationError, ProviderError, RateLimitError, ResponseError
from .transports import TransportFailure

if TYPE_CHECKING:
    from ._base import ClientBase
    from ._session import StreamSession
    from .observability._call import Call

__all__ = ["Acquire", "Admit", "Deadline", "Prime", "Primed", "ReadBody", "Recover", "Sent",
           "Sleep", "SourceFailed", "Transmit", "call_deadline", "send_steps", "stream_broke",
           "stream_ended"]

#: Turns a whole response body (with its headers and rate-limit state) into the answer.
Parse = Callable[[bytes, Mapping[str, str], "RateLimitState | None"], Any]

R = TypeVar("R")

#: Makes a step or result without its ``__init__`` (the send loop's hot path sets the slots).
_new = object.__new__

#: How many times one call waits for a credential pool to have a key available again (in
#: all no longer than the retry policy's ``max_retry_after``), or re-checks a key's wait.
_POOL_WAITS = 8


class Deadline:
    """A call's ``Timeout(total=...)``: the moment it passes (``at``, ``time.monotonic()``)
    and the ``total`` it was set from (which a RequestTimeout's message names)."""

    __slots__ = ("at", "total")

    def __init__(self, total: float) -> None:
        self.total = total
        self.at = time.monotonic() + total


def call_deadline(options: Mapping[str, Any], client_timeout: Timeout) -> Deadline | None:
    """The ``Timeout.total`` of a call with these call options (``timeout=``, else the
    client's), started now; None without one. What a call of several asks
    (``output_retries``) shares."""
    timeout: Timeout | None = options.get("timeout")
    total = (timeout or client_timeout).total
    return None if total is None else Deadline(total)


class SourceFailed:
    """What the client sends back for an `Acquire` whose source raised anything but
    KeysExhaustedError (a state store that is down, a bug in a source of your own): the send
    loop raises ``error`` when it was choosing the first credential, and after a failed
    attempt raises that attempt's own error with ``error`` noted on it
    (`aipk._reporting.choosing_failed`). For a `Recover` whose source raised anything but an
    AuthenticationError: the 401 stands, ``error`` noted on it, and the call goes on as after
    a refresh that gave nothing (to another key, if there is one)."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class Sleep:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Transmit:
    """Send ``http`` (signed by ``credential``) with ``body``; with ``whole``, also read the
    whole body into ``raw`` (whatever the status: a call that parses the whole body reads it
    in the same step, one round trip of the send loop less per attempt than a `ReadBody`).
    A read cut by something other than a TransportFailure (the task cancelled, by the call's
    ``Timeout.total`` or its caller; an interrupt) ends the call there: the client first
    records the head's rate-limit headers under ``credential`` (``engine.observe``) and makes
    it ``rate_limits()``' default (``client._last_credential_id``), as the send loop does
    with every head it receives, then re-raises."""

    __slots__ = ("body", "credential", "http", "raw", "whole")

    def __init__(self, http: HttpRequest, body: bytes | None, credential: Credential,
                 whole: bool = False) -> None:
        self.http = http
        self.body = body
        self.credential = credential
        self.whole = whole
        #: the body read (or the TransportFailure reading it), set by the client for ``whole``
        self.raw: bytes | TransportFailure = b""


class Admit:
    """Ask ``engine.admission_delay`` (``aadmission_delay`` in the async client) for the wait
    before sending; yielded only when the limiter's store books asynchronously."""

    __slots__ = ("body", "credential_id", "model", "policy")

    def __init__(self, model: str, body: bytes | None, policy: RetryPolicy | None,
                 credential_id: str) -> None:
        self.model = model
        self.body = body
        self.policy = policy
        self.credential_id = credential_id


class ReadBody:
    __slots__ = ("response",)

    def __init__(self, response: Any) -> None:
        self.response = response


class Prime:
    __slots__ = ("response", "session")

    def __init__(self, response: Any, session: StreamSession) -> None:
        self.response = response
        self.session = session


class Primed:
    """A stream read up to its first events: the ``session`` decoding it, those ``events``
    (already in the session's accumulator), ``rest``, where the client continues reading
    (None: the body ended and ``session.finish()`` already ran), and ``sent_at``, when its
    request was sent (``time.monotonic()``, set by the send loop)."""

    __slots__ = ("events", "rest", "sent_at", "session")

    def __init__(self, session: StreamSession, events: list[StreamEvent], rest: Any) -> None:
        self.session = session
        self.events = events
        self.rest = rest
        self.sent_at = 0.0


Step = Acquire | Sleep | Transmit | ReadBody | Prime | Recover | Admit


class Sent(Generic[R]):
    """A response with a status below 300, the rate-limit state it reported, the credential
    that signed it, and ``value``: the parsed answer, or the `Primed` stream."""

    __slots__ = ("credential", "rate_limit", "response", "value")

    def __init__(self, response: R, rate_limit: RateLimitState | None,
                 credential: Credential, value: Any = None) -> None:
        self.response = response
        self.rate_limit = rate_limit
        self.credential = credential
        self.value = value


Steps = Generator[Step, Any, Sent[Any]]


def _choose(client: ClientBase, model: str, tokens: int, cap: float,
            exclude: tuple[str, ...] = ()) -> Generator[Step, Any, Credential]:
    """The credential for the next attempt: the pool's next available one outside
    ``exclude``, preferring one the provider has not told to wait (pre-emptive failover);
    waits for the pool when every such key is in backoff for no longer than ``cap``."""
    engine = client._engine
    source = client._credentials
    waits = 0
    waited = 0.0
    while True:
        got = yield Acquire(exclude)
        if type(got) is SourceFailed:
            raise got.error
        if isinstance(got, KeysExhaustedError):
            wait = got.retry_after
            if wait is None or wait > cap or waited + wait > cap or waits >= _POOL_WAITS:
                raise got
            waits += 1
            waited += wait
            yield Sleep(wait)
            continue
        break
    best: Credential = got
    best_wait = engine.tracked_wait(model, tokens, best.id)
    if best_wait <= 0:
        return best
    skipped = [*exclude, best.id]
    for _ in range(len(source) - len(skipped)):
        other = yield Acquire(tuple(skipped))
        if type(other) is SourceFailed:
            raise other.error
        if isinstance(other, KeysExhaustedError):
            break
        wait = engine.tracked_wait(model, tokens, other.id)
        if wait <= 0:
            return other  # type: ignore[no-any-return]
        if wait < best_wait:
            best, best_wait = other, wait
        skipped.append(other.id)
    return best


def _admitted(client: ClientBase, model: str, cap: float, credential: Credential,
              exclude: tuple[str, ...]) -> Generator[Step, Any, Credential]:
    """``credential``, or another, once the provider has no wait on it: news arrives while
    a call waits (other requests' 429s), so after each wait the key is chosen again, and
    nothing is sent with a key inside a wait its provider gave."""
    engine = client._engine
    for waited in range(_POOL_WAITS + 1):
        wait = engine.tracked_wait(model, 0, credential.id)
        if wait <= 0:
            return credential
        credential = yield from _choose(client, model, 0, cap, exclude)  # given the news
        wait = engine.tracked_wait(model, 0, credential.id)
        if wait <= 0:
            return credential
        if wait > cap or waited == _POOL_WAITS:
            break
        yield Sleep(wait)
    raise RateLimitError(
        f"the provider's rate limits allow the next request with any key in {wait:.1f}s; "
        f"wait, or raise RetryPolicy(max_retry_after=...) (now {cap:g}s)",
        provider=engine.provider.name, retry_after=wait, status=0)


def _unauthorized(error: ProviderError) -> bool:
    return isinstance(error, AuthenticationError) and error.status == 401


def _no_events(client: ClientBase, session: StreamSession) -> ResponseError:
    return ResponseError(
        "the stream ended before its first event: the connection was cut or the provider "
        "sent nothing; retry the request",
        provider=client._engine.provider.name, request_id=session.request_id, retryable=True)


def send_steps(client: ClientBase, prepared: HttpRequest, model: str,
               policy: RetryPolicy | None, *, parse: Parse | None = None,
               chat: ChatRequest | None = None, stream: ChatRequest | None = None,
               call: Call | None = None, deadline: Deadline | None = None) -> Steps:
    """Sign, admit and send ``prepared`` until it succeeds or must fail (see the module).

    With ``parse`` the whole body is read and parsed inside the loop (``Sent.value`` is the
    answer); ``chat`` is the same for a chat request's answer, parsed by
    ``engine.chat_response(chat, ...)`` (no function built per call); with ``stream`` the
    body is read up to the stream's first events (``Sent.value`` is the `Primed` stream). A
    failure before either is retried like any other.
    ``call`` (the call's recorder) hears of each attempt, retry and failover.
    ``deadline`` (the call's ``Timeout.total``): a failure past it is
    raised at once (neither charged to the key nor failed over), and a retry whose wait would
    end past it is not made (the failure is raised); the driver bounds the I/O itself."""
    engine = client._engine
    source = client._credentials
    cap = (policy or engine.retry).max_retry_after
    single = type(source) is SingleCredential
    if single:
        credential: Credential = source.credential  # type: ignore[attr-defined]
    else:
        credential = yield from _choose(client, model, 0, cap)
    http, body = engine.sign(prepared, credential)
    limiter = engine.limiter
    if limiter.asynchronous and limiter.active:  # a network store: let the driver await it
        wait = yield Admit(model, body, policy, credential.id)
    else:
        wait = engine.admission_delay(model, body, policy, credential.id)
    if wait > 0:
        yield Sleep(wait)
        if not single:  # news may have come in meanwhile: re-check (and re-choose)
            chosen = yield from _admitted(client, model, cap, credential, ())
            if chosen is not credential:
                credential = chosen
                http, body = engine.sign(prepared, credential)
    whole = chat is not None or parse is not None  # read the body with the head
    attempt = 0
    tried: list[str] = []
    recovered = False
    while True:
        sent_at = time.monotonic()
        if call is not None:  # an attempt is about to be sent, signed by this credential
            call.attempts += 1
            call.credential_id = credential.id
        # (the step and the result below are built without a Python ``__init__`` call each:
        # once per attempt, that call costs more than the object)
        step: Any = _new(Transmit)
        step.http = http
        step.body = body
        step.credential = credential
        step.whole = whole
        response = yield step
        if isinstance(response, TransportFailure):
            error: ProviderError = _failed(client, response, deadline)
        else:
            headers = response.headers
            rate_limit = engine.observe(response.status, headers, model, credential.id)
            client._last_credential_id = credential.id  # rate_limits()' default: the latest head
            if response.status < 300:  # a redirect is an error: never followed
                got: Any  # the answer, or the ProviderError that stands for it
                if whole:  # the body, read with the head (see Transmit)
                    raw = step.raw
                    if isinstance(raw, TransportFailure):
                        got = _unread(client, raw, deadline)
                    else:
                        try:
                            if chat is not None:
                                got = engine.chat_response(chat, raw, headers, rate_limit)
                            else:
                                assert parse is not None
                                got = parse(raw, headers, rate_limit)
                        except ProviderError as exc:  # a truncated or invalid body: retryable
                            got = exc
                else:
                    got = yield from _receive(client, response, rate_limit, stream, deadline,
                                              sent_at)
                if not isinstance(got, ProviderError):
                    now = time.monotonic()
                    # an answer's tokens count for the key with its success (one call, not
                    # a success and then an add_tokens)
                    usage = got.usage if isinstance(got, ChatResponse) else None
                    try:
                        source.report_success(credential, latency=now - sent_at, tokens=0 if (
                            usage is None) else usage.total_tokens or 0)
                    except Exception as exc:  # noqa: BLE001 - logged: the answer is the call's outcome
                        reporting_failed(exc, source, "the success", credential.id)
                    sent: Sent[Any] = _new(Sent)
                    sent.response = response
                    sent.rate_limit = rate_limit
                    sent.credential = credential
                    sent.value = got
                    return sent
                error = got
            else:
                raw = step.raw if whole else (yield ReadBody(response))
                if isinstance(raw, TransportFailure):
                    raw = b""
                error = engine.error(response.status, headers, raw, model, credential.id)
        now = time.monotonic()
        if deadline is not None and now >= deadline.at:  # the call's total timeout has passed
            raise error
        latency = now - sent_at
        if not recovered and _unauthorized(error):
            recovered = True
            fresh = yield Recover(credential, error)
            if isinstance(fresh, Credential):
                credential = fresh
                http, body = engine.sign(prepared, credential)
                continue
            if isinstance(fresh, AuthenticationError):
                fresh.__cause__ = error
                error = fresh
            elif type(fresh) is SourceFailed:  # the refresh broke: the 401 stands, noted
                choosing_failed(fresh.error, source, error,
                                "refreshing the credential after a 401")
        unrecorded = None
        try:
            counted = source.report_failure(credential, error, latency=latency)
        except Exception as exc:  # noqa: BLE001 - attached to the call's error, logged
            unrecorded = exc
        if unrecorded is not None:  # no failover, no retry: the call's own error
            reporting_failed(unrecorded, source, "the failure", credential.id, error)
            raise error
        if counted and not single:
            tried.append(credential.id)
            if len(tried) < len(source):  # a key not yet tried: now, or after a short wait
                try:
                    other = yield from _choose(client, model, 0, cap, tuple(tried))
                    other = yield from _admitted(client, model, cap, other, tuple(tried))
                except (KeysExhaustedError, RateLimitError):
                    other = None
                except Exception as exc:  # noqa: BLE001 - noted on the call's own error
                    choosing_failed(exc, source, error)
                    raise error  # noqa: B904 - the call's own error; the source's as context
                if other is not None:
                    if call is not None:
                        call.failed_over(error, other.id)
                    credential, recovered = other, False
                    http, body = engine.sign(prepared, credential)
                    continue
        delay = engine.retry_delay(attempt, error, policy)
        if delay is None or (deadline is not None and time.monotonic() + delay >= deadline.at):
            raise error
        if call is not None:
            call.retried(delay, error)
        attempt += 1
        yield Sleep(delay)
        if not single:
            tried.clear()
            try:
                credential = yield from _choose(client, model, 0, cap)
                credential = yield from _admitted(client, model, cap, credential, ())
            except (KeysExhaustedError, RateLimitError) as exhausted:
                raise exhausted from error
            except Exception as exc:  # noqa: BLE001 - noted on the call's own error
                choosing_failed(exc, source, error)
                raise error  # noqa: B904 - the call's own error; the source's as context
            recovered = False
            http, body = engine.sign(prepared, credential)


def _receive(client: ClientBase, response: Any, rate_limit: RateLimitState | None,
             stream: ChatRequest | None, deadline: Deadline | None,
             sent_at: float) -> Generator[Step, Any, Any]:
    """What a success status delivers to a call that does not read the whole body with the
    head (`send_steps` parses that itself): the primed stream (sent at ``sent_at``), or (for
    neither) nothing; a ProviderError when the stream broke before the caller could use any
    of it."""
    if stream is not None:
        session = client._engine.open_stream(stream, response.headers, rate_limit)
        primed = yield Prime(response, session)
        if isinstance(primed, TransportFailure):
            return _unread(client, primed, deadline)
        if isinstance(primed, ProviderError):
            return primed
        if not primed.events:
            return _no_events(client, session)
        primed.sent_at = sent_at
        return primed
    return None


def stream_broke(client: ClientBase, credential: Credential, primed: Primed,
                 error: BaseException) -> None:
    """Tell the credential source of ``error``, which ended a stream after its first events
    (the stream already counted as a success of ``credential``): a cut connection, a body cut
    short, an in-band error event. Only a ProviderError is reported, and the source decides
    whether it counts against the key, as for any request; never the caller stopping (close,
    break, cancellation, an interrupt), which is no error of the key's."""
    if isinstance(error, ProviderError):
        source = client._credentials
        try:
            source.report_failure(credential, error, latency=time.monotonic() - primed.sent_at)
        except Exception as exc:  # noqa: BLE001 - noted on the stream's own error, logged
            reporting_failed(exc, source, "the failure", credential.id, error)


def stream_ended(client: ClientBase, credential: Credential, primed: Primed) -> None:
    """Add the usage a stream that ran to its end reported to ``credential``'s counters
    (``add_tokens``; a stream that broke or was stopped adds its usage so far through the
    call's telemetry instead, see `aipk.observability`). A source that raises here is
    logged: the stream's answer arrived."""
    usage = primed.session.accumulator.usage
    if usage is not None:
        source = client._credentials
        try:
            source.add_tokens(credential, usage.total_tokens or 0)
        except Exception as exc:  # noqa: BLE001 - logged: the answer is the call's outcome
            reporting_failed(exc, source, "the stream's tokens", credential.id)


def _failed(client: ClientBase, failure: TransportFailure,
            deadline: Deadline | None) -> ProviderError:
    """The error for ``failure``; a deadline failure's names the call's total."""
    return client._transport_error(failure, None if deadline is None else deadline.total)


def _unread(client: ClientBase, failure: TransportFailure,
            deadline: Deadline | None) -> ProviderError:
    """A body read that failed before the caller got anything: retryable like a failure
    before the first byte (unless the body cannot be decoded at all)."""
    error = _failed(client, failure, deadline)
    error.retryable = not failure.undecodable
    return error
