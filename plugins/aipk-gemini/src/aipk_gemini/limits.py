"""Gemini's default client-side request rate, and a deprecated stand-alone limiter.

Gemini sends no rate-limit headers: its quotas (requests per minute per project and model) are
only discovered by hitting them. The plugin publishes the free tier's rate as the provider
spec's default, ``GEMINI.options["requests_per_minute"]`` (`DEFAULT_REQUESTS_PER_MINUTE`),
and every client enforces it through the core's `aipk.limits` (a sliding window: at most
N requests in any 60 seconds); ``client.set_limits(ClientLimits(requests_per_minute=360))``
moves to a paid tier.

`TokenBucket` and `limiter_for()` are deprecated: they duplicate the core's limiter.
They follow the same sliding-window rule (built on `aipk.state.window_slot()`); to pace
calls of your own, use ``aipk.limits.Limiter(ClientLimits(requests_per_minute=N))`` and its
``reserve(max_wait=0)`` (0.0: go now; otherwise the seconds to wait, nothing booked).
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from aipk.state import window_book, window_slot

__all__ = ["DEFAULT_REQUESTS_PER_MINUTE", "TokenBucket", "limiter_for"]

#: The free tier's request rate, as the Go SDK assumed (``rate.Every(time.Minute/15)``).
DEFAULT_REQUESTS_PER_MINUTE = 15

_DEPRECATED = (
    "aipk_gemini.TokenBucket and limiter_for are deprecated: every client already enforces "
    "Gemini's requests_per_minute option (change the tier with client.set_limits("
    "aipk.limits.ClientLimits(requests_per_minute=N))); to pace your own calls use "
    "aipk.limits.Limiter(aipk.limits.ClientLimits(requests_per_minute=N)).reserve(max_wait=0)")


def _positive(name: str, value: float) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a positive, finite number, not {value!r}")
    return number


class TokenBucket:
    """Deprecated (see the module docs): a thread-safe, non-blocking sliding-window limiter.

    At most ``burst`` requests (default ``requests_per_minute``) in any window of
    ``burst * 60 / requests_per_minute`` seconds, so "15 per minute" is at most 15 in any 60
    seconds, as the core's client-side limits count. ``clock`` returns seconds (monotonic) and
    is injectable."""

    __slots__ = ("_burst", "_clock", "_lock", "_log", "_period", "_rate")

    def __init__(self, requests_per_minute: float = DEFAULT_REQUESTS_PER_MINUTE, *,
                 burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        warnings.warn(_DEPRECATED, DeprecationWarning, stacklevel=2)
        self._setup(requests_per_minute, burst, clock)

    def _setup(self, requests_per_minute: float, burst: float | None,
               clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._log: list[float] = []  # the window's bookings (see aipk.state.window_slot)
        self._rate = self._burst = self._period = 0.0
        self._configure(requests_per_minute, burst)

    def _configure(self, requests_per_minute: float, burst: float | None) -> None:
        rate = _positive("requests_per_minute", requests_per_minute)
        capacity = _positive("burst", burst if burst is not None else requests_per_minute)
        self._rate, self._burst, self._period = rate, capacity, 60.0 * capacity / rate

    def _check(self, cost: float) -> float:
        cost = _positive("cost", cost)
        if cost > self._burst:
            raise ValueError(f"cost {cost} exceeds the bucket's burst {self._burst}; it could "
                             f"never be granted")
        return cost

    def _wait(self, now: float, cost: float) -> float:
        return window_slot(self._log, now, self._burst, self._period, cost) - now

    @property
    def requests_per_minute(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    def available(self) -> float:
        """Requests the window has room for now."""
        with self._lock:
            now = self._clock()
            self._wait(now, 0.0)  # drops what no longer counts
            counted = sum(amount for end, amount in zip(self._log[1::2], self._log[2::2],
                                                        strict=True)
                          if end + self._period > now)
            return max(0.0, self._burst - counted)

    def wait_time(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` requests fit (0.0 when they do now); takes nothing."""
        with self._lock:
            return self._wait(self._clock(), self._check(cost))

    def try_acquire(self, cost: float = 1.0) -> float:
        """Take ``cost`` requests if they fit now and return 0.0; else take nothing and return
        the seconds to wait before trying again. Never blocks."""
        with self._lock:
            cost = self._check(cost)
            now = self._clock()
            wait = self._wait(now, cost)
            if wait <= 0:
                window_book(self._log, now, self._period, cost)
                return 0.0
            return wait

    def set_rate(self, requests_per_minute: float, *, burst: float | None = None) -> None:
        """Switch tier at run time (e.g. 360 after upgrading); requests already taken still
        count in the new window (``burst`` defaults to the new per-minute rate)."""
        with self._lock:
            self._configure(requests_per_minute, burst)

    def __repr__(self) -> str:
        return (f"TokenBucket(requests_per_minute={self.requests_per_minute:g}, "
                f"burst={self._burst:g})")


def limiter_for(options: Mapping[str, Any], *,
                clock: Callable[[], float] = time.monotonic) -> TokenBucket:
    """Deprecated (see the module docs): a `TokenBucket` from provider options
    (``provider.options``): ``requests_per_minute`` (default 15) and optional ``burst``; string
    values (from the environment) are accepted."""
    rpm = options.get("requests_per_minute", DEFAULT_REQUESTS_PER_MINUTE)
    burst = options.get("burst")
    warnings.warn(_DEPRECATED, DeprecationWarning, stacklevel=2)
    bucket = TokenBucket.__new__(TokenBucket)  # one warning, naming the caller's line
    bucket._setup(float(rpm), None if burst is None else float(burst), clock)
    return bucket
