"""Write-behind for state whose updates only merge (the rate-limit state from headers), and for
every state update made on an event loop's thread: the update is applied to this process's
copy at once and queued; one background thread writes the queue to Redis, each key's queued
updates applied in order in one compare-and-set, so a response never waits for Redis and a
burst of updates to one key costs one write. The same thread re-reads the values an event loop
found stale (`WriteBehind.refresh()`), so an event loop never waits for Redis either."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._store import RedisStore

__all__ = ["WriteBehind"]

_Update = tuple[Callable[[Any], Any], float | None]


class WriteBehind:
    """The queue and the writer thread of one `RedisStore`."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._pending: dict[str, list[_Update]] = {}
        self._stale: set[str] = set()
        self._known: dict[str, tuple[bytes, Any]] = {}  # what the writer last saw in Redis
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._writing = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    def update(self, rkey: str, fn: Callable[[Any], Any], ttl: float | None) -> Any:
        store = self._store
        cached = store._cache.get(rkey)
        new = fn(None if cached is None else cached[1])
        with self._lock:
            store._remember(rkey, b"", new)  # b"": a local result, never a CAS expectation
            self._pending.setdefault(rkey, []).append((fn, ttl))
            self._start()
        return new

    def refresh(self, rkey: str) -> None:
        """Have the thread read ``rkey`` from Redis into this process's copy."""
        with self._lock:
            if rkey not in self._stale:
                self._stale.add(rkey)
                self._start()

    def _start(self) -> None:
        # Lock held.
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="aipk-redis-writer",
                                            daemon=True)
            self._thread.start()
        self._wake.notify()

    def holds(self, rkey: str) -> bool:
        """True while ``rkey`` has updates not yet written (this process's copy is newer)."""
        return rkey in self._pending

    def flush(self, timeout: float) -> bool:
        with self._lock:
            return self._idle.wait_for(
                lambda: not self._pending and not self._stale and not self._writing, timeout)

    def stop(self) -> None:
        self.flush(5.0)
        with self._lock:
            self._stopped = True
            self._wake.notify()

    def _run(self) -> None:
        from ._store import REDIS_ERRORS

        store = self._store
        while True:
            with self._lock:
                self._wake.wait_for(
                    lambda: bool(self._pending) or bool(self._stale) or self._stopped)
                if self._stopped and not self._pending:
                    self._thread = None
                    return
                batch, self._pending = self._pending, {}
                stale, self._stale = self._stale, set()
                self._writing = True
            for rkey in stale - batch.keys():
                try:
                    raw, value = store.reread(rkey)
                except REDIS_ERRORS as exc:
                    store.outage.failed(exc)
                    continue
                with self._lock:
                    if rkey not in self._pending:  # else the local copy is newer
                        store._remember(rkey, raw, value)
            for rkey, updates in batch.items():
                def combined(old: Any, updates: list[_Update] = updates) -> Any:
                    for fn, _ in updates:
                        old = fn(old)
                    return old

                try:
                    written, raw = store.apply(rkey, combined, updates[-1][1],
                                               self._known.get(rkey, (b"", None)))
                    if len(self._known) > 10_000:
                        self._known.clear()
                    self._known[rkey] = (raw, written)
                except REDIS_ERRORS as exc:  # lost with the outage (documented)
                    store.outage.failed(exc)
                    continue
                except Exception:  # noqa: BLE001 - a bad value must not kill the writer
                    continue
                with self._lock:
                    if rkey in self._pending:  # newer local updates: keep the local copy
                        queued = self._pending[rkey]
                        value = written
                        for fn, _ in queued:
                            value = fn(value)
                        store._remember(rkey, b"", value)
            with self._lock:
                self._writing = False
                if not self._pending and not self._stale:
                    self._idle.notify_all()
