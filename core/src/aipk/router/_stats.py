"""The router's totals (per-target statistics live in the metrics model:
`aipk.observability.TargetMetrics`)."""

from __future__ import annotations

import threading


class _Counters:
    __slots__ = ("_lock", "cancelled", "errors", "requests", "successes", "waited", "waits")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = self.successes = self.errors = self.cancelled = self.waits = 0
        self.waited = 0.0

    def add(self, field: str) -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + 1)

    def wait(self, seconds: float) -> None:
        with self._lock:
            self.waits += 1
            self.waited += seconds
