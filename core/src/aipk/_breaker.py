"""A circuit breaker per key (a router target), with its state in a `StateStore`.

* **closed**: requests pass; each counted failure adds one, a success resets the count. At
  ``failure_threshold`` consecutive failures the breaker opens.
* **open**: requests are refused for ``open_duration`` seconds.
* **half-open**: after that, exactly one request (the probe) passes; everyone else is refused
  until it reports. Success closes the breaker, failure opens it again. A probe that never
  reports (its caller was cancelled without `CircuitBreaker.release()`) frees the slot after
  ``probe_timeout`` seconds.

Every transition is a pure function of the previous `BreakerState`, applied with the
store's atomic ``update``, so threads, tasks and (with a shared store) processes agree on who
the probe is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import attrs

from .state import MemoryStore, StateStore

__all__ = ["BreakerPolicy", "BreakerState", "CircuitBreaker", "CooldownPolicy"]

BreakerMode = Literal["closed", "open", "half_open"]


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True, slots=True)
class BreakerPolicy:
    """When a breaker opens and for how long (seconds).

    Attributes:
        failure_threshold: Consecutive failures that open the breaker.
        open_duration: Seconds the breaker stays open before letting one probe through.
        probe_timeout: Seconds a probe may take before another is let through.
    """

    failure_threshold: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    open_duration: float = attrs.field(default=30.0, validator=_positive)
    probe_timeout: float = attrs.field(default=60.0, validator=_positive)


@attrs.frozen(kw_only=True, slots=True)
class BreakerState:
    """One key's breaker: ``failures`` counts consecutive failures while closed;
    ``opened_at`` is when it last opened; ``probe_at`` when the half-open probe was let through
    (None: the slot is free).

    Attributes:
        mode: ``closed``, ``open`` or ``half_open``.
        failures: Consecutive failures while closed.
        opened_at: When it last opened.
        probe_at: When the half-open probe was let through (None: none is out).
    """

    mode: BreakerMode = "closed"
    failures: int = 0
    opened_at: float = 0.0
    probe_at: float | None = None


_CLOSED = BreakerState()


class CircuitBreaker:
    """Closed → open after ``failure_threshold`` failures → half-open with a single probe →
    closed on success. ``clock`` must agree across everyone sharing ``store``."""

    NAMESPACE = "aipk.breaker"

    __slots__ = ("_clock", "_store", "policy")

    def __init__(self, policy: BreakerPolicy | None = None, *, store: StateStore | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._store: StateStore = store if store is not None else MemoryStore(clock=clock)

    def state(self, key: str) -> BreakerState:
        """The current state (closed when nothing is stored)."""
        value = self._store.get(self.NAMESPACE, key)
        return value if isinstance(value, BreakerState) else _CLOSED

    def mode(self, key: str) -> BreakerMode:
        """``"closed"``, ``"open"`` or ``"half_open"``, as a caller would find it now (an open
        breaker whose time is up reads as half-open)."""
        st = self.state(key)
        if st.mode == "open" and self._clock() >= st.opened_at + self.policy.open_duration:
            return "half_open"
        return st.mode

    def allow(self, key: str) -> bool:
        """May a request go now? In half-open, True for exactly one caller: the probe."""
        st = self.state(key)
        if st.mode == "closed":
            return True  # the common case reads without locking
        now = self._clock()
        granted = False
        policy = self.policy

        def take(old: BreakerState | None) -> BreakerState | None:
            nonlocal granted
            granted = False  # a shared store may run this again after a conflict
            cur = old or _CLOSED
            if cur.mode == "closed":
                granted = True
                return old
            if cur.mode == "open":
                if now < cur.opened_at + policy.open_duration:
                    return old
                granted = True
                return BreakerState(mode="half_open", opened_at=cur.opened_at, probe_at=now)
            if cur.probe_at is None or now >= cur.probe_at + policy.probe_timeout:
                granted = True
                return attrs.evolve(cur, probe_at=now)
            return old

        self._store.update(self.NAMESPACE, key, take)
        return granted

    def record_success(self, key: str) -> None:
        """The target worked: close the breaker and forget past failures."""
        if self._store.get(self.NAMESPACE, key) is None:
            return
        self._store.update(self.NAMESPACE, key, _close)

    def record_failure(self, key: str) -> None:
        """A counted failure: open at the threshold, or again after a failed probe."""
        now = self._clock()
        threshold = self.policy.failure_threshold

        def fail(old: BreakerState | None) -> BreakerState | None:
            cur = old or _CLOSED
            if cur.mode == "closed":
                failures = cur.failures + 1
                if failures >= threshold:
                    return BreakerState(mode="open", opened_at=now)
                return BreakerState(failures=failures)
            if cur.mode == "half_open":
                return BreakerState(mode="open", opened_at=now)
            return old  # already open: a straggler's failure changes nothing

        self._store.update(self.NAMESPACE, key, fail)

    def release(self, key: str) -> None:
        """The caller gave up without a verdict (cancelled, or an outcome that says nothing
        about the target): free the half-open probe slot for the next caller."""

        def free(old: BreakerState | None) -> BreakerState | None:
            if old is None or old.mode != "half_open" or old.probe_at is None:
                return old
            return attrs.evolve(old, probe_at=None)

        if self._store.get(self.NAMESPACE, key) is not None:
            self._store.update(self.NAMESPACE, key, free)

    def available_at(self, key: str) -> float | None:
        """When a request may next pass (now or earlier: it may pass now)."""
        st = self.state(key)
        if st.mode == "closed":
            return None
        if st.mode == "open":
            return st.opened_at + self.policy.open_duration
        if st.probe_at is None:
            return None
        return st.probe_at + self.policy.probe_timeout

    def reset(self, key: str) -> None:
        """Forget everything about ``key`` (closed)."""
        self._store.delete(self.NAMESPACE, key)


def _close(old: BreakerState | None) -> BreakerState | None:
    return None  # closed with no failures is the absent state: nothing to keep


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be zero or more, got {value!r}")


@attrs.frozen(kw_only=True, slots=True)
class CooldownPolicy:
    """How long (seconds) a target is skipped after each kind of failure.

    A rate limit's own ``retry_after`` replaces ``rate_limit``; every cooldown is capped at
    ``max_cooldown``. Zero turns a kind off.

    Attributes:
        rate_limit: Seconds after a rate limit (its own ``retry_after`` wins).
        server_error: Seconds after a 5xx.
        network: Seconds after a timeout or connection failure.
        credential: Seconds after an authentication failure.
        max_cooldown: Upper bound on any cooldown.
    """

    rate_limit: float = attrs.field(default=5.0, validator=_non_negative)
    server_error: float = attrs.field(default=2.0, validator=_non_negative)
    network: float = attrs.field(default=2.0, validator=_non_negative)
    credential: float = attrs.field(default=300.0, validator=_non_negative)
    max_cooldown: float = attrs.field(default=3600.0, validator=_non_negative)
