"""A small key-value store for the per-key state aipk keeps between requests.

Rate-limit trackers, router cooldowns and circuit breakers keep their state behind
`StateStore`, so one shared store (Redis, a database) can replace the in-memory
default and several processes then see the same state. The interface is four calls on
``(namespace, key)`` pairs:

* ``get``: the value, or None when absent or expired;
* ``set``: store a value, optionally expiring ``ttl`` seconds from now;
* ``update``: atomic read-modify-write: ``fn(old)`` runs while the key is locked and its
  result is stored (None deletes the key; returning ``old`` itself leaves the entry, and its
  expiry, untouched);
* ``delete``.

``fn`` must be quick and pure (no I/O, no waiting): it runs inside the store's critical
section, and a shared store may run it more than once (it retries when another process changed
the value meanwhile), so anything it reports outside must be set afresh on every run. Values
should be immutable records; a shared store also needs them serialisable.

A store may also implement `BucketStore` (``reserve`` / ``refund``): token buckets
booked atomically inside the store, so client-side limits (`aipk.limits`) given to every
client that shares the store hold across all of them (across processes, for a shared store
such as ``aipk_redis.RedisStore``). `MemoryStore` implements it for one process.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["AsyncBucketStore", "Bucket", "BucketStore", "MemoryStore", "StateStore",
           "take_from_bucket"]

T = TypeVar("T")

_Key = tuple[str, str]


@runtime_checkable
class StateStore(Protocol):
    """Per-key state shared by trackers, cooldowns and breakers. See the module docs."""

    def get(self, namespace: str, key: str) -> Any:
        """The stored value, or None when absent or expired."""
        ...

    def set(self, namespace: str, key: str, value: Any, *, ttl: float | None = None) -> None:
        """Store ``value``; with ``ttl`` it expires that many seconds from now."""
        ...

    def update(self, namespace: str, key: str, fn: Callable[[T | None], T | None], *,
               ttl: float | None = None) -> T | None:
        """Atomically store ``fn(current or None)`` and return it (see the module docs)."""
        ...

    def delete(self, namespace: str, key: str) -> None:
        """Remove the key (no error when absent)."""
        ...


#: One token bucket to book in `BucketStore.reserve()`: ``(name, capacity, period seconds,
#: amount)``. The bucket holds ``capacity`` units refilled evenly over ``period`` and starts full.
Bucket = tuple[str, float, float, float]


@runtime_checkable
class BucketStore(Protocol):
    """Token buckets kept inside a store, booked atomically (see the module docs).

    The buckets of one ``(namespace, key)`` are booked together: each takes its amount (its
    level may go negative, which queues later callers behind this one) and the answer is the
    longest wait any of them needs. A bucket's capacity and period are given on every call, so
    new limits apply at once to the level already stored.
    """

    def reserve(self, namespace: str, key: str, buckets: Sequence[Bucket]) -> float:
        """Book every bucket's amount; return the seconds to wait before using them (0 = now)."""
        ...

    def refund(self, namespace: str, key: str, buckets: Sequence[Bucket]) -> None:
        """Give back amounts booked by a `reserve()` whose call did not go ahead."""
        ...


@runtime_checkable
class AsyncBucketStore(Protocol):
    """A `BucketStore` that can also book without blocking an event loop (a network
    store): [`AsyncClient`][aipk.AsyncClient] awaits these instead of calling ``reserve``."""

    async def areserve(self, namespace: str, key: str, buckets: Sequence[Bucket]) -> float:
        """`BucketStore.reserve()`, awaitable."""
        ...

    async def arefund(self, namespace: str, key: str, buckets: Sequence[Bucket]) -> None:
        """`BucketStore.refund()`, awaitable."""
        ...


def take_from_bucket(level: float | None, stamp: float, now: float, capacity: float,
                     period: float, amount: float) -> tuple[float, float, float]:
    """One bucket's booking: ``(new level, new stamp, seconds to wait)``. ``level`` None is a
    bucket never used (full); a negative ``amount`` refunds (never above ``capacity``)."""
    rate = capacity / period
    if level is None:
        level, stamp = capacity, now
    elif now > stamp:
        level = min(capacity, level + (now - stamp) * rate)
        stamp = now
    if amount < 0:
        return min(capacity, level - amount), stamp, 0.0
    level -= amount
    return level, stamp, (0.0 if level >= 0 else -level / rate)


class MemoryStore:
    """The default `StateStore`: a dict in this process, thread-safe.

    One lock guards the dict; it is held only for the dict operations and ``update``'s ``fn``,
    never across I/O. Expired entries are invisible at once and purged as writes happen (a
    heap of expiry times, compacted so it stays proportional to the live entries). Beyond
    ``max_entries`` the least recently written entries are dropped. ``clock`` gives the
    seconds TTLs are measured in (inject a fake one in tests).
    """

    __slots__ = ("_clock", "_data", "_heap", "_lock", "max_entries")

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self.max_entries = max_entries
        self._data: dict[_Key, tuple[Any, float | None]] = {}
        self._heap: list[tuple[float, _Key]] = []
        self._lock = threading.Lock()

    def get(self, namespace: str, key: str) -> Any:
        k = (namespace, key)
        entry = self._data.get(k)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= self._clock():
            with self._lock:
                if self._data.get(k) is entry:
                    del self._data[k]
            return None
        return value

    def set(self, namespace: str, key: str, value: Any, *, ttl: float | None = None) -> None:
        now = self._clock()
        with self._lock:
            self._write((namespace, key), value, ttl, now)

    def update(self, namespace: str, key: str, fn: Callable[[T | None], T | None], *,
               ttl: float | None = None) -> T | None:
        k = (namespace, key)
        now = self._clock()
        with self._lock:
            entry = self._data.get(k)
            old: T | None = None
            if entry is not None and (entry[1] is None or entry[1] > now):
                old = entry[0]
            new = fn(old)
            if new is None:
                self._data.pop(k, None)
            elif new is not old:
                self._write(k, new, ttl, now)
            return new

    def delete(self, namespace: str, key: str) -> None:
        with self._lock:
            self._data.pop((namespace, key), None)

    # -- token buckets (BucketStore) -------------------------------------------------------

    def reserve(self, namespace: str, key: str, buckets: Sequence[Bucket]) -> float:
        return self._book(namespace, key, buckets, 1.0)

    def refund(self, namespace: str, key: str, buckets: Sequence[Bucket]) -> None:
        self._book(namespace, key, buckets, -1.0)

    def _book(self, namespace: str, key: str, buckets: Sequence[Bucket], sign: float) -> float:
        """Each bucket is an entry ``(namespace, key + "/" + name)`` holding ``(level, stamp)``
        and expiring one period after its last booking (by then it is full again)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for name, capacity, period, amount in buckets:
                k = (namespace, f"{key}/{name}")
                entry = self._data.get(k)
                level, stamp = (None, now) if entry is None or (
                    entry[1] is not None and entry[1] <= now) else entry[0]
                level, stamp, need = take_from_bucket(level, stamp, now, capacity, period,
                                                      sign * amount)
                wait = max(wait, need)
                full_in = (capacity - level) * period / capacity  # then it holds nothing new
                self._write(k, (level, stamp), max(full_in, 1e-3), now)
        return wait

    # -- housekeeping --------------------------------------------------------------------

    def __len__(self) -> int:
        """Live entries (expired ones are purged first)."""
        with self._lock:
            self._purge(self._clock())
            return len(self._data)

    def purge(self) -> None:
        """Drop every expired entry now (writes also do this as they go)."""
        with self._lock:
            self._purge(self._clock())

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._heap.clear()

    def _write(self, k: _Key, value: Any, ttl: float | None, now: float) -> None:
        # Lock held. Re-insert so dict order is least recently written first.
        data = self._data
        data.pop(k, None)
        expires = None if ttl is None else now + ttl
        data[k] = (value, expires)
        if expires is not None:
            heapq.heappush(self._heap, (expires, k))
        self._purge(now)
        while len(data) > self.max_entries:
            del data[next(iter(data))]

    def _purge(self, now: float) -> None:
        # Lock held.
        heap, data = self._heap, self._data
        while heap and heap[0][0] <= now:
            _, k = heapq.heappop(heap)
            entry = data.get(k)
            if entry is not None and entry[1] is not None and entry[1] <= now:
                del data[k]
        if len(heap) > 2 * len(data) + 64:  # stale expiries of rewritten keys: rebuild
            self._heap = [(e, k) for k, (_, e) in data.items() if e is not None]
            heapq.heapify(self._heap)

    def __repr__(self) -> str:
        return f"<MemoryStore entries={len(self._data)} max_entries={self.max_entries}>"
