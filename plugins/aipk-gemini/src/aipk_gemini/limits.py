"""A client-side request limiter for Gemini, which sends no rate-limit headers.

Gemini's quotas (requests per minute per project and model) are only discovered by hitting
them. `TokenBucket` lets a caller stay under a known tier instead: 15 requests a minute
by default (the free tier), changed at run time with `TokenBucket.set_rate()` (e.g. 360 or
1000 for paid tiers). It never sleeps: `TokenBucket.try_acquire()` takes a token or says
how long to wait, and the caller decides how to wait (``time.sleep``, ``asyncio.sleep``, fail).

The clients themselves enforce the same default through the core's `aipk.limits`
(``client.set_limits(...)``); this bucket is for callers managing their own pacing.
The defaults are published on the provider spec: ``GEMINI.options
["requests_per_minute"]``, so `limiter_for()` builds a bucket from a resolved provider.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["DEFAULT_REQUESTS_PER_MINUTE", "TokenBucket", "limiter_for"]

#: The free tier's request rate, as the Go SDK assumed (``rate.Every(time.Minute/15)``).
DEFAULT_REQUESTS_PER_MINUTE = 15


def _positive(name: str, value: float) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a positive, finite number, not {value!r}")
    return number


class TokenBucket:
    """A thread-safe token bucket: ``burst`` tokens, refilled at ``requests_per_minute / 60``
    tokens a second; it starts full. ``clock`` returns seconds (monotonic) and is injectable."""

    __slots__ = ("_burst", "_clock", "_lock", "_rate", "_tokens", "_updated")

    def __init__(self, requests_per_minute: float = DEFAULT_REQUESTS_PER_MINUTE, *,
                 burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rate = _positive("requests_per_minute", requests_per_minute) / 60.0
        self._burst = _positive("burst", burst if burst is not None else requests_per_minute)
        self._tokens = self._burst
        self._updated = clock()

    def _refill(self) -> float:
        now = self._clock()
        elapsed = now - self._updated
        if elapsed > 0:  # a clock that goes backwards adds nothing
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._updated = now
        return now

    def _check(self, cost: float) -> float:
        cost = _positive("cost", cost)
        if cost > self._burst:
            raise ValueError(f"cost {cost} exceeds the bucket's burst {self._burst}; it could "
                             f"never be granted")
        return cost

    @property
    def requests_per_minute(self) -> float:
        return self._rate * 60.0

    @property
    def burst(self) -> float:
        return self._burst

    def available(self) -> float:
        """Tokens available now."""
        with self._lock:
            self._refill()
            return self._tokens

    def wait_time(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are available (0.0 when they are now); takes nothing."""
        with self._lock:
            cost = self._check(cost)
            self._refill()
            missing = cost - self._tokens
            return 0.0 if missing <= 0 else missing / self._rate

    def try_acquire(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens if available and return 0.0; else take nothing and return the
        seconds to wait before trying again. Never blocks."""
        with self._lock:
            cost = self._check(cost)
            self._refill()
            missing = cost - self._tokens
            if missing <= 0:
                self._tokens -= cost
                return 0.0
            return missing / self._rate

    def set_rate(self, requests_per_minute: float, *, burst: float | None = None) -> None:
        """Switch tier at run time (e.g. 360 after upgrading); tokens already earned are kept,
        up to the new burst (which defaults to the new per-minute rate)."""
        rate = _positive("requests_per_minute", requests_per_minute) / 60.0
        capacity = _positive("burst", burst if burst is not None else requests_per_minute)
        with self._lock:
            self._refill()
            self._rate = rate
            self._burst = capacity
            self._tokens = min(self._tokens, capacity)

    def __repr__(self) -> str:
        return (f"TokenBucket(requests_per_minute={self.requests_per_minute:g}, "
                f"burst={self._burst:g})")


def limiter_for(options: Mapping[str, Any], *,
                clock: Callable[[], float] = time.monotonic) -> TokenBucket:
    """A bucket from provider options (``provider.options``): ``requests_per_minute``
    (default 15) and optional ``burst``; string values (from the environment) are accepted."""
    rpm = options.get("requests_per_minute", DEFAULT_REQUESTS_PER_MINUTE)
    burst = options.get("burst")
    return TokenBucket(float(rpm), burst=None if burst is None else float(burst), clock=clock)
