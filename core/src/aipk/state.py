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

A store may also implement `BucketStore` (``reserve``): client-side limits kept as
sliding windows booked atomically inside the store, so limits (`aipk.limits`) given to
every client that shares the store hold across all of them (across processes, for a shared
store such as ``aipk_redis.RedisStore``). `MemoryStore` implements it for one process.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["WINDOW_GROUPS", "AsyncBucketStore", "Bucket", "BucketStore", "MemoryStore",
           "StateStore", "window_book", "window_slot"]

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


#: One limit to book in `BucketStore.reserve()`: ``(name, capacity, period seconds,
#: amount)``: at most ``capacity`` units (requests or tokens) in any window of ``period``.
Bucket = tuple[str, float, float, float]

#: A sliding window is kept as groups of bookings at least ``period / WINDOW_GROUPS`` apart,
#: so its state stays small however many requests it counts (see `window_slot()`).
WINDOW_GROUPS = 32


@runtime_checkable
class BucketStore(Protocol):
    """Client-side limits kept inside a store as sliding windows, booked atomically.

    The limits of one ``(namespace, key)`` are booked together, at one moment: the earliest
    at which every limit has room for its amount (queued behind the bookings already made, so
    callers go in arrival order). The answer is the wait until then. When it would be longer
    than ``max_wait`` nothing is booked and the answer is that (longer) wait, so a caller that
    gives up leaves no trace. A limit's capacity and period are given on every call, so new
    limits apply at once to the bookings already stored.
    """

    def reserve(self, namespace: str, key: str, buckets: Sequence[Bucket],
                max_wait: float = math.inf) -> float:
        """Book every limit's amount; return the seconds to wait before using them (0 = now;
        above ``max_wait``: refused, nothing booked)."""
        ...


@runtime_checkable
class AsyncBucketStore(Protocol):
    """A `BucketStore` that can also book without blocking an event loop (a network
    store): [`AsyncClient`][aipk.AsyncClient] awaits these instead of calling ``reserve``."""

    async def areserve(self, namespace: str, key: str, buckets: Sequence[Bucket],
                       max_wait: float = math.inf) -> float:
        """`BucketStore.reserve()`, awaitable."""
        ...


def window_slot(log: list[float], now: float, capacity: float, period: float,
                amount: float) -> float:
    """The earliest moment, not before ``now`` nor before the last booking, at which one
    sliding window has room for ``amount`` (at most ``capacity``) more units.

    ``log`` is the window's state, ``[tail start, end 1, amount 1, end 2, amount 2, ...]``:
    groups of bookings in time order, each counted as if all of it happened at its ``end``
    (its latest booking) and the last one begun at ``tail start``. A group counts until
    ``end + period``, so the units counted at any moment are at least those booked in the
    ``period`` before it: no window of length ``period`` ever holds more than ``capacity``.
    Groups past the window are dropped from ``log`` (nothing else changes). Any unit works
    for times, as long as it is the same throughout; ``aipk_redis``'s script is this function
    line by line, in milliseconds.
    """
    i = 1
    n = len(log)
    while i < n and log[i] + period <= now:
        i += 2
    if i > 1:
        del log[1:i]
        n = len(log)
    slot = now
    if n > 1 and log[n - 2] > slot:
        slot = log[n - 2]
    total = 0.0
    for j in range(2, n, 2):
        total += log[j]
    j = 1
    while j < n:
        end = log[j]
        if end + period <= slot:
            total -= log[j + 1]
        elif total + amount > capacity:
            slot = end + period
            total -= log[j + 1]
        else:
            break
        j += 2
    return slot


def window_book(log: list[float], slot: float, period: float, amount: float) -> None:
    """Record ``amount`` units at ``slot`` (from `window_slot()`, or later) in ``log``:
    into the last group while it began less than ``period / WINDOW_GROUPS`` earlier, else in
    a new group."""
    n = len(log)
    if n > 1 and slot - log[0] < period / WINDOW_GROUPS:
        log[n - 2] = slot
        log[n - 1] += amount
    elif n > 1:
        log[0] = slot
        log += (slot, amount)
    else:
        log[:] = (slot, slot, amount)


class MemoryStore:
    """The default `StateStore`: a dict in this process, thread-safe.

    One lock guards the dict; it is held only for the dict operations and ``update``'s ``fn``,
    never across I/O. Expired entries are invisible at once and purged as writes happen (a
    heap of expiry times, compacted so it stays proportional to the live entries). Beyond
    ``max_entries`` the least recently written entries are dropped. ``clock`` gives the
    seconds TTLs are measured in (inject a fake one in tests).
    """

    __slots__ = ("_clock", "_data", "_heap", "_lock", "_sweep_at", "_windows", "max_entries")

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self.max_entries = max_entries
        self._data: dict[_Key, tuple[Any, float | None]] = {}
        self._heap: list[tuple[float, _Key]] = []
        self._lock = threading.Lock()
        #: client-side limit windows by (namespace, key, limit name): [counts until, log]
        self._windows: dict[tuple[str, str, str], list[Any]] = {}
        self._sweep_at = 1024

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
        with self._lock:
            self._write((namespace, key), value, ttl)

    def update(self, namespace: str, key: str, fn: Callable[[T | None], T | None], *,
               ttl: float | None = None) -> T | None:
        k = (namespace, key)
        lock = self._lock
        lock.acquire()  # not `with lock`, which costs twice as much (once per response)
        try:
            entry = self._data.get(k)
            old: T | None = None
            if entry is not None:
                expires = entry[1]
                # the clock is read only for an entry that expires (rate-limit states do not)
                if expires is None or expires > self._clock():
                    old = entry[0]
            new = fn(old)
            if new is None:
                self._data.pop(k, None)
            elif new is old:
                pass
            elif ttl is None and entry is not None and not self._heap and (
                    len(self._data) <= self.max_entries):
                # `_write()`'s usual case, inline (a rate-limit state replaced on every
                # response): nothing to expire or purge, and a key already counted
                del self._data[k]
                self._data[k] = (new, None)
            else:
                self._write(k, new, ttl)
            return new
        finally:
            lock.release()

    def delete(self, namespace: str, key: str) -> None:
        with self._lock:
            self._data.pop((namespace, key), None)

    # -- client-side limits (BucketStore) --------------------------------------------------

    def reserve(self, namespace: str, key: str, buckets: Sequence[Bucket],
                max_wait: float = math.inf) -> float:
        """Each limit ``name`` of ``(namespace, key)`` is a window log (`window_slot()`)
        kept beside the values, until nothing in it counts any more."""
        now = self._clock()
        with self._lock:
            windows = self._windows
            entries: list[list[Any]] = []
            slot = now
            for name, capacity, period, amount in buckets:
                k = (namespace, key, name)
                entry = windows.get(k)
                if entry is None:
                    entry = windows[k] = [now, []]  # [counts until, log]
                entries.append(entry)
                at = window_slot(entry[1], now, capacity, period, min(amount, capacity))
                if at > slot:
                    slot = at
            if slot - now > max_wait:
                return slot - now
            for i, (_, capacity, period, amount) in enumerate(buckets):
                entry = entries[i]
                window_book(entry[1], slot, period, min(amount, capacity))
                entry[0] = slot + period
            if len(windows) > self._sweep_at:
                self._sweep(now)
        return slot - now

    def _sweep(self, now: float) -> None:
        # Lock held. Drop the windows nothing counts in any more, then the oldest beyond
        # max_entries.
        windows = self._windows
        for k in [k for k, entry in windows.items() if entry[0] <= now]:
            del windows[k]
        while len(windows) > self.max_entries:
            del windows[next(iter(windows))]
        self._sweep_at = max(1024, 2 * len(windows))

    # -- housekeeping --------------------------------------------------------------------

    def __len__(self) -> int:
        """Live entries, limit windows included (expired ones are purged first)."""
        with self._lock:
            now = self._clock()
            self._purge(now)
            self._sweep(now)
            return len(self._data) + len(self._windows)

    def purge(self) -> None:
        """Drop every expired entry now (writes also do this as they go)."""
        with self._lock:
            self._purge(self._clock())

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._heap.clear()
            self._windows.clear()

    def _write(self, k: _Key, value: Any, ttl: float | None) -> None:
        # Lock held. Re-insert so dict order is least recently written first. The clock is
        # read only when something expires (rate-limit states, written on every response,
        # never do).
        data = self._data
        data.pop(k, None)
        if ttl is None:
            data[k] = (value, None)
            if self._heap:  # else nothing to purge (nor a heap to compact)
                self._purge(self._clock())
        else:
            now = self._clock()
            data[k] = (value, now + ttl)
            heapq.heappush(self._heap, (now + ttl, k))
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
        return (f"<MemoryStore entries={len(self._data)} windows={len(self._windows)} "
                f"max_entries={self.max_entries}>")
