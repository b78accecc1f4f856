"""Client-side rate limits, for providers that send no rate-limit headers (Gemini, Qwen) or when
you want to stay under your own budget.

`ClientLimits` says how many requests per minute, tokens per minute and requests per day
a client may use. Plugins declare defaults in ``ProviderSpec.options`` (``requests_per_minute``,
``tokens_per_minute``, ``requests_per_day``); ``Client(limits=...)`` overrides them, and
``client.set_limits(...)`` changes them at run time (a new tier).

Each limit is a `TokenBucket`. ``reserve`` never blocks: it books the capacity and says
how long the caller must wait, so concurrent callers queue in arrival order and the async
client waits with ``asyncio.sleep`` (cancellable; nothing blocks the event loop).

With a ``store=`` that implements `BucketStore` (``Client(store=...)``), the
buckets live in the store instead, one set per provider and credential (namespace
``"aipk.limits"``, key ``"<provider>/<credential id>"``): every client sharing the store (every
process, for a shared store such as ``aipk_redis.RedisStore``) then draws on the same budget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .state import AsyncBucketStore, Bucket, BucketStore

__all__ = ["ClientLimits", "Limiter", "TokenBucket"]


class TokenBucket:
    """``capacity`` units refilled evenly over ``period`` seconds; starts full."""

    __slots__ = ("_clock", "_level", "_lock", "_stamp", "capacity", "period")

    def __init__(self, capacity: float, period: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity <= 0 or period <= 0:
            raise ValueError("a token bucket needs a positive capacity and period")
        self.capacity = float(capacity)
        self.period = float(period)
        self._clock = clock
        self._level = float(capacity)
        self._stamp = clock()
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        """Units refilled per second."""
        return self.capacity / self.period

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
            self._stamp = now

    def reserve(self, amount: float = 1.0) -> float:
        """Book ``amount`` units; return the seconds to wait before using them (0 = now)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._level -= amount
            return 0.0 if self._level >= 0 else -self._level / self.rate

    def refund(self, amount: float = 1.0) -> None:
        """Give back units booked by a call that did not go ahead."""
        with self._lock:
            self._level = min(self.capacity, self._level + amount)

    def available(self) -> float:
        """Units that could be used right now."""
        with self._lock:
            self._refill(self._clock())
            return max(self._level, 0.0)


@attrs.frozen(kw_only=True)
class ClientLimits:
    """Client-side limits; ``None`` means no limit of that kind.

    Attributes:
        requests_per_minute: Requests allowed per minute.
        tokens_per_minute: Tokens allowed per minute.
        requests_per_day: Requests allowed per day.
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    requests_per_day: float | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ClientLimits:
        """The limits named in provider options (as plugins declare their defaults)."""
        def number(key: str) -> float | None:
            value = options.get(key)
            return float(value) if isinstance(value, (int, float)) and value > 0 else None

        return cls(requests_per_minute=number("requests_per_minute"),
                   tokens_per_minute=number("tokens_per_minute"),
                   requests_per_day=number("requests_per_day"))

    @property
    def enabled(self) -> bool:
        return any(v is not None for v in (self.requests_per_minute, self.tokens_per_minute,
                                           self.requests_per_day))


class Limiter:
    """The buckets for one `ClientLimits`; thread-safe, never blocks.

    Without ``store`` the buckets are this object's own. With a
    `BucketStore` they live in the store under ``scope`` (the provider
    name) and the ``key`` each call names (the credential id), shared with every limiter that
    uses the same store (see the module docs).
    """

    NAMESPACE = "aipk.limits"

    def __init__(self, limits: ClientLimits, clock: Callable[[], float] = time.monotonic, *,
                 store: BucketStore | None = None, scope: str = "") -> None:
        self._clock = clock
        self.limits = limits
        self.store = store
        self.scope = scope
        #: True when the store also books asynchronously (the async client then awaits it)
        self.asynchronous = isinstance(store, AsyncBucketStore)
        self._buckets = self._build(limits)
        self._shared = self._specs(limits)
        #: True when any bucket is in force (read per request, so a plain attribute)
        self.active = bool(self._buckets)

    @staticmethod
    def _specs(limits: ClientLimits) -> list[tuple[str, float, float, bool]]:
        specs: list[tuple[str, float, float, bool]] = []
        if limits.requests_per_minute:
            specs.append(("rpm", limits.requests_per_minute, 60.0, False))
        if limits.requests_per_day:
            specs.append(("rpd", limits.requests_per_day, 86400.0, False))
        if limits.tokens_per_minute:
            specs.append(("tpm", limits.tokens_per_minute, 60.0, True))
        return specs

    def _store_buckets(self, tokens: int) -> list[Bucket]:
        out: list[Bucket] = []
        for name, capacity, period, counts_tokens in self._shared:
            amount = min(float(tokens), capacity) if counts_tokens else 1.0
            if amount:
                out.append((name, capacity, period, amount))
        return out

    def _build(self, limits: ClientLimits) -> list[tuple[TokenBucket, bool]]:
        buckets: list[tuple[TokenBucket, bool]] = []
        if limits.requests_per_minute:
            buckets.append((TokenBucket(limits.requests_per_minute, 60.0, self._clock), False))
        if limits.requests_per_day:
            buckets.append((TokenBucket(limits.requests_per_day, 86400.0, self._clock), False))
        if limits.tokens_per_minute:
            buckets.append((TokenBucket(limits.tokens_per_minute, 60.0, self._clock), True))
        return buckets

    def update(self, limits: ClientLimits) -> None:
        """Switch to new limits (a different tier); buckets start full."""
        self.limits = limits
        self._buckets = self._build(limits)
        self._shared = self._specs(limits)
        self.active = bool(self._buckets)

    def reserve(self, tokens: int = 0, key: str = "") -> float:
        """Book one request of about ``tokens`` tokens; return the seconds to wait.
        ``key`` (the credential id) picks the shared buckets when there is a store."""
        if self.store is not None:
            return self.store.reserve(self.NAMESPACE, f"{self.scope}/{key}",
                                      self._store_buckets(tokens))
        wait = 0.0
        for bucket, counts_tokens in self._buckets:
            amount = min(float(tokens), bucket.capacity) if counts_tokens else 1.0
            if amount:
                wait = max(wait, bucket.reserve(amount))
        return wait

    async def areserve(self, tokens: int = 0, key: str = "") -> float:
        """`reserve()`, awaiting a store that books asynchronously."""
        store: Any = self.store
        if self.asynchronous:  # (an isinstance check on a Protocol costs ~100 µs)
            wait: float = await store.areserve(self.NAMESPACE, f"{self.scope}/{key}",
                                               self._store_buckets(tokens))
            return wait
        return self.reserve(tokens, key)

    async def arefund(self, tokens: int = 0, key: str = "") -> None:
        """`refund()`, awaiting a store that books asynchronously."""
        store: Any = self.store
        if self.asynchronous:
            await store.arefund(self.NAMESPACE, f"{self.scope}/{key}",
                                self._store_buckets(tokens))
            return
        self.refund(tokens, key)

    def refund(self, tokens: int = 0, key: str = "") -> None:
        """Return what `reserve()` booked, for a request that will not be sent."""
        if self.store is not None:
            self.store.refund(self.NAMESPACE, f"{self.scope}/{key}",
                              self._store_buckets(tokens))
            return
        for bucket, counts_tokens in self._buckets:
            amount = min(float(tokens), bucket.capacity) if counts_tokens else 1.0
            if amount:
                bucket.refund(amount)
