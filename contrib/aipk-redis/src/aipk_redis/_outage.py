"""What a store does while Redis cannot be reached: note the outage once, count it, and tell
callers when to try Redis again (so an outage costs one failed connection per interval, not one
per request)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["OutageTracker"]

log = logging.getLogger("aipk.redis")


class OutageTracker:
    """Redis reachability as seen by one store.

    ``outages`` counts outages (each logged once, at WARNING), ``fallbacks`` the operations
    served from local state meanwhile. While down, Redis is tried again every
    ``retry_interval`` seconds; the first success ends the outage (logged at INFO).
    """

    __slots__ = ("_clock", "_lock", "_retry_at", "down", "fallbacks", "label", "outages",
                 "retry_interval")

    def __init__(self, label: str, retry_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.retry_interval = retry_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self.down = False
        self.outages = 0
        self.fallbacks = 0

    def skip(self) -> bool:
        """True while Redis is known down and it is not yet time to try again."""
        return self.down and self._clock() < self._retry_at

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self.fallbacks += 1
            self._retry_at = self._clock() + self.retry_interval
            if self.down:
                return
            self.down = True
            self.outages += 1
        log.warning("Redis at %s is unreachable (%s); continuing with this process's own "
                    "state until it is back (retrying every %gs)", self.label,
                    type(error).__name__, self.retry_interval)

    def fallback(self) -> None:
        with self._lock:
            self.fallbacks += 1

    def succeeded(self) -> None:
        if not self.down:
            return
        with self._lock:
            was_down, self.down = self.down, False
        if was_down:
            log.info("Redis at %s is reachable again; shared state resumed", self.label)
