"""The send loop both clients share, written once as a generator of I/O steps (sans-IO).

:func:`send_steps` decides everything about one call: which credential signs it, how long to
wait before sending, and after each failure whether to refresh the credential (a 401, once),
move to the next credential (a failure that counted against the key), wait and retry (the
retry policy), or give up. It yields what it needs done and receives the outcome:

=====================  ==========================================  =========================
step                   the client does                              and sends back
=====================  ==========================================  =========================
:class:`Acquire`       ``source.acquire(exclude=...)``              the credential, or the
                                                                    KeysExhaustedError
:class:`Sleep`         sleeps (sync) or awaits a sleep (async)      None
:class:`Transmit`      ``transport.send(http, body)``               the response, or the
                                                                    TransportFailure
:class:`ReadBody`      reads an error response's body               the bytes (b"" on failure)
:class:`Recover`       ``source.recover(credential, error)``        a fresh credential, None,
                                                                    or the AuthenticationError
=====================  ==========================================  =========================

:class:`~aipk.Client` and :class:`~aipk.AsyncClient` each drive it in a dozen lines.
``Acquire`` and ``Recover`` are the same steps :func:`aipk.credentials.call_with_failover`
uses for its own, simpler loop.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._http import HttpRequest
from ._providers import Credential
from ._ratelimit import RateLimitState
from ._retry import RetryPolicy
from .credentials._errors import KeysExhaustedError
from .credentials._pool import Acquire, Recover, SingleCredential
from .errors import AuthenticationError, ProviderError
from .transports import TransportFailure

if TYPE_CHECKING:
    from ._base import ClientBase
    from .observability._call import Call

__all__ = ["Acquire", "ReadBody", "Recover", "Sent", "Sleep", "Transmit", "send_steps"]

R = TypeVar("R")

#: How many times one call waits for a credential pool to have a key available again.
_POOL_WAITS = 3


class Sleep:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Transmit:
    __slots__ = ("body", "http")

    def __init__(self, http: HttpRequest, body: bytes | None) -> None:
        self.http = http
        self.body = body


class ReadBody:
    __slots__ = ("response",)

    def __init__(self, response: Any) -> None:
        self.response = response


Step = Acquire | Sleep | Transmit | ReadBody | Recover


class Sent(Generic[R]):
    """A response with a status below 400, the rate-limit state it reported, and the
    credential that signed it."""

    __slots__ = ("credential", "rate_limit", "response")

    def __init__(self, response: R, rate_limit: RateLimitState | None,
                 credential: Credential) -> None:
        self.response = response
        self.rate_limit = rate_limit
        self.credential = credential


Steps = Generator[Step, Any, Sent[Any]]


def _choose(client: ClientBase, model: str, tokens: int, cap: float) -> Generator[
        Step, Any, Credential]:
    """The credential for the next attempt: the pool's next available one, preferring one the
    provider has not told to wait (pre-emptive failover); waits for the pool when every key is
    in backoff for no longer than ``cap``."""
    engine = client._engine
    source = client._credentials
    waited = 0
    while True:
        got = yield Acquire(())
        if isinstance(got, KeysExhaustedError):
            if got.retry_after is None or got.retry_after > cap or waited >= _POOL_WAITS:
                raise got
            waited += 1
            yield Sleep(got.retry_after)
            continue
        break
    best: Credential = got
    best_wait = engine.tracked_wait(model, tokens, best.id)
    if best_wait <= 0:
        return best
    skipped = [best.id]
    for _ in range(len(source) - 1):
        other = yield Acquire(tuple(skipped))
        if isinstance(other, KeysExhaustedError):
            break
        wait = engine.tracked_wait(model, tokens, other.id)
        if wait <= 0:
            return other  # type: ignore[no-any-return]
        if wait < best_wait:
            best, best_wait = other, wait
        skipped.append(other.id)
    return best


def _unauthorized(error: ProviderError) -> bool:
    return isinstance(error, AuthenticationError) and error.status == 401


def send_steps(client: ClientBase, prepared: HttpRequest, model: str,
               policy: RetryPolicy | None, call: Call | None = None) -> Steps:
    """Sign, admit and send ``prepared`` until it succeeds or must fail (see the module);
    ``call`` (a chat call's recorder) hears of each attempt, retry and failover."""
    engine = client._engine
    source = client._credentials
    cap = (policy or engine.retry).max_retry_after
    single = type(source) is SingleCredential
    if single:
        credential: Credential = source.credential  # type: ignore[attr-defined]
    else:
        credential = yield from _choose(client, model, 0, cap)
    http, body = engine.sign(prepared, credential)
    wait = engine.admission_delay(model, body, policy, credential.id)
    if wait > 0:
        yield Sleep(wait)
    attempt = 0
    tried: list[str] = []
    recovered = False
    while True:
        sent_at = time.monotonic()
        if call is not None:
            call.attempt(credential.id)
        response = yield Transmit(http, body)
        if isinstance(response, TransportFailure):
            error: ProviderError = client._transport_error(response)
        else:
            rate_limit = engine.observe(response.status, response.headers, model, credential.id)
            if response.status < 400:
                now = time.monotonic()
                source.report_success(credential, latency=now - sent_at)
                client._last_credential_id = credential.id
                return Sent(response, rate_limit, credential)
            raw = yield ReadBody(response)
            error = engine.error(response.status, response.headers, raw, model, credential.id)
        latency = time.monotonic() - sent_at
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
        counted = source.report_failure(credential, error, latency=latency)
        if counted and not single:
            tried.append(credential.id)
            other = yield Acquire(tuple(tried))
            if isinstance(other, Credential):
                if call is not None:
                    call.failed_over(error, other.id)
                credential, recovered = other, False
                http, body = engine.sign(prepared, credential)
                continue
        delay = engine.retry_delay(attempt, error, policy)
        if delay is None:
            raise error
        if call is not None:
            call.retried(delay, error)
        attempt += 1
        yield Sleep(delay)
        if not single:
            tried.clear()
            try:
                credential = yield from _choose(client, model, 0, cap)
            except KeysExhaustedError as exhausted:
                raise exhausted from error
            recovered = False
            http, body = engine.sign(prepared, credential)
