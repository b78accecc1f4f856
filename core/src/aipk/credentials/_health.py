"""Per-credential health and backoff: the state machine, its policy and where state lives.

The rules (go-sdk-features §4.3, with its recovery gap closed, and made safe for requests that
are in flight while news about their key arrives):

* a *counted* failure (see [`classify_failure()`][aipk.credentials._health.classify_failure]) puts
  the credential in backoff for ``min(base * multiplier**(failures-1), cap)`` seconds, times ``U(1 -
  jitter, 1)``: 1 s, 2 s, 4 s … 60 s by default; a 429's ``retry-after`` replaces that schedule for
  that failure;
* **waits only extend**: every wait is an absolute deadline, and a credential's deadline is the
  latest of all it was given; later news with a shorter wait never shortens it;
* ``failures`` counts *consecutive* failures: a failure of a request sent before the previous
  failure was known belongs to the same incident and extends the deadline without counting
  again;
* at ``failure_threshold`` (3) consecutive failures the credential is *unhealthy*; once its
  backoff ends it is offered to exactly one caller as a probe (others skip it until that
  caller reports, or ``probe_timeout`` passes);
* a success clears only what was known when its request was **sent**: a success of a request
  sent before the latest failure arrived changes nothing (that news still stands); otherwise
  it resets everything: healthy, no failures, no backoff;
* a credential the provider rejected as invalid (an API 401 a refresh could not fix, a 403) is
  **parked**: out of selection for ``park_interval`` (1 hour), then probed once, unless its
  credential changes first ([`CredentialPool.replace()`][aipk.credentials.CredentialPool.replace])
  or it is unparked.

Every transition is a pure function of the previous
[`HealthState`][aipk.credentials._health.HealthState], so the pool can keep states in an
`aipk.state.StateStore` (in memory by default, or one shared between processes) and apply
them with its atomic ``update``.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable
from typing import Any

import attrs

from aipk._records import record
from aipk.errors import (
    AuthenticationError,
    AuthErrorCode,
    ContentFilteredError,
    ProviderError,
    RateLimitError,
    ResponseError,
    StatusError,
    StreamError,
    TransportError,
)

from ._errors import CredentialError, KeysExhaustedError

__all__ = [
    "BackoffPolicy",
    "Failure",
    "HealthInfo",
    "HealthState",
    "HealthSummary",
    "classify_failure",
]


def _positive(instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@record(kw_only=True)
class BackoffPolicy:
    """How long a failing credential rests, and when it counts as unhealthy.

    ``park_interval`` is how long a credential the provider rejected as invalid (401 after any
    refresh, 403) stays out of selection before one probe request tries it again.

    Attributes:
        base: Seconds of backoff after the first counted failure.
        cap: Longest backoff in seconds.
        multiplier: Growth of the backoff with each further consecutive failure.
        jitter: Up to this fraction is taken off each backoff, at random.
        failure_threshold: Consecutive failures after which the credential is unhealthy.
        probe_timeout: Seconds an unhealthy credential's probe may take before another caller may
            probe.
        park_interval: Seconds a credential rejected as invalid stays parked before one probe.
    """

    base: float = attrs.field(default=1.0, validator=_positive)
    cap: float = attrs.field(default=60.0, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=attrs.validators.ge(1.0))
    jitter: float = attrs.field(default=0.1, validator=[attrs.validators.ge(0.0),
                                                         attrs.validators.lt(1.0)])
    failure_threshold: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    probe_timeout: float = attrs.field(default=30.0, validator=_positive)
    park_interval: float = attrs.field(default=3600.0, validator=_positive)

    def schedule(self, failures: int) -> float:
        """The backoff after ``failures`` consecutive failures, before jitter (0 for none)."""
        if failures <= 0:
            return 0.0
        try:
            raw = self.base * self.multiplier ** (failures - 1)
        except OverflowError:
            return self.cap
        return min(raw, self.cap)

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """`schedule()` times ``U(1 - jitter, 1)``: never longer than the schedule."""
        return self.schedule(failures) * (1.0 - self.jitter * rand())


@record(kw_only=True)
class HealthState:
    """One credential's health at a moment. Times are ``clock()`` values (epoch seconds).

    ``backoff_until`` is the latest deadline any failure set; ``last_failure`` when the latest
    counted failure arrived (successes of requests sent before it are stale);
    ``parked_reason`` the label of the failure that parked it (None: not parked).

    Attributes:
        failures: Consecutive counted failures.
        healthy: False after ``failure_threshold`` consecutive failures.
        backoff_until: No use before this time.
        probe_until: An unhealthy credential's probe is out until this time.
        last_failure: When it last failed.
        last_success: When it last succeeded.
        last_error: A short description of its last failure.
        parked_reason: The label of the failure that parked it (None: not parked).
    """

    failures: int = 0
    healthy: bool = True
    backoff_until: float = 0.0
    probe_until: float = 0.0
    last_failure: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    parked_reason: str | None = None

    def available(self, now: float) -> bool:
        """Out of backoff, and (if unhealthy) nobody is probing it right now."""
        if now < self.backoff_until:
            return False
        return self.healthy or now >= self.probe_until

    def wait(self, now: float) -> float:
        """Seconds until `available()` can become true (0 if it is)."""
        until = self.backoff_until if self.healthy else max(self.backoff_until, self.probe_until)
        return max(0.0, until - now)

    def failed(self, now: float, policy: BackoffPolicy, *, label: str,
               retry_after: float | None = None,
               rand: Callable[[], float] = random.random, sent_at: float | None = None,
               park: bool = False) -> HealthState:
        """The state after a counted failure that arrived at ``now``.

        ``retry_after`` replaces the backoff schedule; ``park`` parks the credential for
        ``policy.park_interval``. The new deadline never shortens the current one. When the
        failed request was sent (``sent_at``) before the previous failure arrived, it is the
        same incident: the deadline may extend, the consecutive count does not grow.
        """
        last = self.last_failure
        fresh = sent_at is None or last is None or sent_at > last
        failures = self.failures + 1 if fresh else max(self.failures, 1)
        if park:
            wait = policy.park_interval
        elif retry_after is not None:
            wait = max(0.0, retry_after)
        else:
            wait = policy.delay(failures, rand)
        return attrs.evolve(self, failures=failures,
                            healthy=failures < policy.failure_threshold and not park
                            and self.parked_reason is None,
                            backoff_until=max(self.backoff_until, now + wait), probe_until=0.0,
                            last_failure=now if last is None else max(last, now),
                            last_error=label,
                            parked_reason=label if park else self.parked_reason)

    def succeeded(self, now: float, sent_at: float | None = None) -> HealthState:
        """The state after a success: healthy, no failures, no backoff; unless its request was
        sent (``sent_at``) before the latest failure arrived, which then still stands."""
        last = self.last_failure
        if sent_at is not None and last is not None and sent_at <= last:
            return attrs.evolve(self, last_success=now)
        return HealthState(last_success=now, last_failure=last, last_error=self.last_error)

    def unparked(self) -> HealthState:
        """The state once the credential changed (or was unparked): a fresh start."""
        return HealthState(last_success=self.last_success, last_failure=self.last_failure,
                           last_error=self.last_error)

    def probing(self, now: float, policy: BackoffPolicy) -> HealthState:
        """The state once one caller has taken this unhealthy credential as a probe."""
        return attrs.evolve(self, probe_until=now + policy.probe_timeout)

    def status(self, now: float) -> str:
        """``"parked"``, ``"unhealthy"``, ``"backoff"`` or ``"healthy"``."""
        if self.parked_reason is not None:
            return "parked"
        if not self.healthy:
            return "unhealthy"
        return "backoff" if now < self.backoff_until else "healthy"

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for a shared state store that serialises (JSON, Redis)."""
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HealthState:
        return cls(**{f.name: data[f.name] for f in attrs.fields(cls) if f.name in data})


@record(kw_only=True)
class Failure:
    """A failure that counts against a credential: a short label (no secrets), the
    provider's ``retry_after`` if it gave one, whether it was a 401 (worth a refresh), and
    whether the provider rejected the credential itself (401/403: park it).

    Attributes:
        label: A short description of the failure (no secrets).
        retry_after: Seconds the provider asked to wait, if it said.
        unauthorized: True for a 401: a refresh may recover it.
        invalid: True when the provider rejected the credential itself (park it).
    """

    label: str
    retry_after: float | None = None
    unauthorized: bool = False
    invalid: bool = False


_COUNTED_AUTH_CODES = frozenset({
    AuthErrorCode.INVALID_CREDENTIALS,
    AuthErrorCode.TOKEN_EXPIRED,
    AuthErrorCode.REFRESH_FAILED,
    AuthErrorCode.SCOPE_INSUFFICIENT,
    AuthErrorCode.NETWORK_ERROR,
    AuthErrorCode.PROVIDER_UNAVAILABLE,
})


def _status_failure(status: int, retry_after: float | None = None) -> Failure | None:
    if status in (401, 403):
        return Failure(label=f"HTTP {status}", unauthorized=status == 401, invalid=True)
    if status == 429:
        return Failure(label="HTTP 429", retry_after=retry_after)
    if status == 408 or status >= 500:
        return Failure(label=f"HTTP {status}")
    return None


def classify_failure(error: BaseException | int) -> Failure | None:
    """Whether ``error`` (an exception, or an HTTP status) counts against the credential.

    Counted: 401/403, 429, 408, 5xx (529 included), timeouts and connection errors, failed
    refreshes (a [`CredentialError`][aipk.credentials._health.CredentialError] counts by its
    ``auth_code``, not the token endpoint's status), retryable in-band stream errors (overloaded),
    retryable [`ResponseError`][aipk.errors.ResponseError] (a body cut short or not JSON). Not
    counted: 400/404/409/422 and other client errors, a prompt a safety filter blocked (even
    with a 403), validation and configuration errors,
    client-side rate limits, cancellation, and anything else.
    """
    if isinstance(error, int):
        return _status_failure(error)
    if not isinstance(error, Exception) or isinstance(error, KeysExhaustedError):
        return None  # cancellation, KeyboardInterrupt, SystemExit; or nothing was sent
    if isinstance(error, AuthenticationError):
        if error.status and not isinstance(error, CredentialError):  # an API response
            return _status_failure(error.status)
        if error.auth_code in _COUNTED_AUTH_CODES:
            return Failure(label=error.auth_code.value)
        return None
    if isinstance(error, RateLimitError):
        return _status_failure(429, error.retry_after) if error.status == 429 else None
    if isinstance(error, ContentFilteredError):
        return None  # the prompt was flagged (OpenRouter's moderation answers 403): not the key
    if isinstance(error, StatusError):
        return _status_failure(error.status)
    if isinstance(error, TransportError):
        return Failure(label=type(error).__name__)
    if isinstance(error, StreamError):
        return Failure(label=f"stream error {error.code or ''}".rstrip()) if error.retryable \
            else None
    if isinstance(error, ResponseError):
        return Failure(label="damaged response") if error.retryable else None
    if isinstance(error, ProviderError):
        return None  # a response the plugin cannot read and the like: not the key's fault
    if isinstance(error, (asyncio.TimeoutError, TimeoutError, ConnectionError)):
        return Failure(label=type(error).__name__)
    httpx = sys.modules.get("httpx")  # only if loaded: classifying must not import it
    if httpx is not None and isinstance(error, httpx.TransportError):
        return Failure(label=type(error).__name__)
    return None


@record(kw_only=True)
class HealthInfo:
    """What `CredentialPool.health()` reports about one credential (no secrets).

    ``backoff_remaining`` is in seconds; times are epoch seconds. ``status`` is
    ``"healthy"``, ``"backoff"``, ``"unhealthy"`` or ``"parked"`` (rejected by the provider as
    invalid; ``parked_reason`` says how). The OAuth fields are set only by
    [`OAuthManager`][aipk.credentials.OAuthManager].
    Attributes:
        id: The credential's id.
        healthy: False after ``failure_threshold`` consecutive failures.
        available: True when it may be used now (not in backoff, or free to probe).
        consecutive_failures: Counted failures since the last success.
        backoff_remaining: Seconds until its backoff ends.
        last_failure: When it last failed.
        last_success: When it last succeeded.
        last_error: A short description of its last failure.
        status: "healthy", "backoff", "unhealthy" or "parked".
        parked_reason: How it was rejected, when parked.
        expires_at: When its access token expires (OAuth).
        refreshes: Successful token refreshes (OAuth).
        last_refresh_error: Why the last refresh failed (OAuth).
    """

    id: str
    healthy: bool
    available: bool
    consecutive_failures: int
    backoff_remaining: float
    last_failure: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    status: str = "healthy"
    parked_reason: str | None = None
    expires_at: float | None = None
    refreshes: int = 0
    last_refresh_error: str | None = None


@record(kw_only=True)
class HealthSummary:
    """Counts over a pool (``parked``: rejected as invalid, see `HealthInfo`), and the
    success rate of all requests reported to it (1.0 if none).

    Attributes:
        provider: The pool's provider id.
        total: Credentials in the pool.
        healthy: How many are healthy.
        available: How many may be used now.
        in_backoff: How many are backing off.
        success_rate: Successful requests over all requests reported.
        parked: How many are parked (rejected by the provider as invalid).
    """

    provider: str
    total: int
    healthy: int
    available: int
    in_backoff: int
    success_rate: float
    parked: int = 0
