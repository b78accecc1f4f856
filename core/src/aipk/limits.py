"""Client-side rate limits, for providers that send no rate-limit headers (Gemini, Qwen) or when
you want to stay under your own budget.

`ClientLimits` says how many requests per minute, tokens per minute and requests per day
a client may use. Plugins declare defaults in ``ProviderSpec.options`` (``requests_per_minute``,
``tokens_per_minute``, ``requests_per_day``); ``Client(limits=...)`` overrides them, and
``client.set_limits(...)`` changes them at run time (a new tier).

Each limit is a sliding window: "N per minute" means at most N in any 60 seconds, however
they are spread (a burst of N, then nothing until the first of them is a minute old).
``reserve`` never blocks: it books the request at the earliest moment every limit has room
and says how long the caller must wait, so concurrent callers queue in arrival order and the
async client waits with ``asyncio.sleep`` (cancellable; nothing blocks the event loop). A wait
longer than the caller accepts books nothing. See `aipk.state.window_slot()`.

With a ``store=`` that implements `BucketStore` (``Client(store=...)``), the
windows live in the store instead, one set per provider and credential (namespace
``"aipk.limits"``, key ``"<provider>/<credential id>"``): every client sharing the store (every
process, for a shared store such as ``aipk_redis.RedisStore``) then draws on the same budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from ._records import record
from .state import AsyncBucketStore, Bucket, BucketStore, MemoryStore

__all__ = ["ClientLimits", "Limiter"]


@record(kw_only=True)
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
    """The sliding windows for one `ClientLimits`; thread-safe, never blocks.

    Without ``store`` the windows are kept in a `MemoryStore` of this
    object's own (``clock`` gives its time). With a `BucketStore` they live
    in the store under ``scope`` (the provider name) and the ``key`` each call names (the
    credential id), shared with every limiter that uses the same store (see the module docs).
    """

    NAMESPACE = "aipk.limits"

    def __init__(self, limits: ClientLimits, clock: Callable[[], float] = time.monotonic, *,
                 store: BucketStore | None = None, scope: str = "") -> None:
        self.limits = limits
        self.store: BucketStore = MemoryStore(clock=clock) if store is None else store
        self.scope = scope
        #: True when the store also books asynchronously (the async client then awaits it)
        self.asynchronous = isinstance(store, AsyncBucketStore)
        self._keys: dict[str, str] = {}
        self._specs = self._build(limits)
        self._fixed = self._fixed_buckets(self._specs)
        #: True when any limit is in force (read per request, so a plain attribute)
        self.active = bool(self._specs)

    @staticmethod
    def _build(limits: ClientLimits) -> list[tuple[str, float, float, bool]]:
        specs: list[tuple[str, float, float, bool]] = []
        if limits.requests_per_minute:
            specs.append(("rpm", limits.requests_per_minute, 60.0, False))
        if limits.requests_per_day:
            specs.append(("rpd", limits.requests_per_day, 86400.0, False))
        if limits.tokens_per_minute:
            specs.append(("tpm", limits.tokens_per_minute, 60.0, True))
        return specs

    def _buckets(self, tokens: int) -> list[Bucket]:
        fixed = self._fixed
        if fixed is not None:
            return fixed
        out: list[Bucket] = []
        for name, capacity, period, counts_tokens in self._specs:
            amount = min(float(tokens), capacity) if counts_tokens else 1.0
            if amount:
                out.append((name, capacity, period, amount))
        return out

    @staticmethod
    def _fixed_buckets(specs: list[tuple[str, float, float, bool]]) -> list[Bucket] | None:
        """The limits to book when they do not depend on the request's tokens, else None."""
        if any(counts_tokens for *_, counts_tokens in specs):
            return None
        return [(name, capacity, period, 1.0) for name, capacity, period, _ in specs]

    def _key(self, key: str) -> str:
        scoped = self._keys.get(key)
        if scoped is None:
            if len(self._keys) > 10_000:
                self._keys.clear()
            scoped = self._keys[key] = f"{self.scope}/{key}"
        return scoped

    def update(self, limits: ClientLimits) -> None:
        """Switch to new limits (a different tier); what was booked still counts."""
        self.limits = limits
        self._specs = self._build(limits)
        self._fixed = self._fixed_buckets(self._specs)
        self.active = bool(self._specs)

    def reserve(self, tokens: int = 0, key: str = "", max_wait: float = math.inf) -> float:
        """Book one request of about ``tokens`` tokens; return the seconds to wait. A wait
        above ``max_wait`` books nothing (the caller gives up). ``key`` (the credential id)
        picks the shared windows when there is a store."""
        return self.store.reserve(self.NAMESPACE, self._key(key), self._buckets(tokens),
                                  max_wait)

    async def areserve(self, tokens: int = 0, key: str = "",
                       max_wait: float = math.inf) -> float:
        """`reserve()`, awaiting a store that books asynchronously."""
        store: Any = self.store
        if self.asynchronous:  # (an isinstance check on a Protocol costs ~100 µs)
            wait: float = await store.areserve(self.NAMESPACE, self._key(key),
                                               self._buckets(tokens), max_wait)
            return wait
        return self.reserve(tokens, key, max_wait)
