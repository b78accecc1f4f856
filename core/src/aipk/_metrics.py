"""Per-provider counters a client keeps: requests, outcomes, tokens, latency."""

from __future__ import annotations

import threading
from typing import Any

from ._responses import Usage

__all__ = ["ProviderMetrics"]


class ProviderMetrics:
    """Counters for one client's provider. Cheap to update; read with :meth:`snapshot`."""

    __slots__ = ("_lock", "errors", "failovers", "input_tokens", "latency_total",
                 "output_tokens", "requests", "retries", "successes")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.successes = 0
        self.errors = 0
        self.retries = 0
        self.failovers = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.latency_total = 0.0

    def record(self, *, ok: bool, latency: float, retried: bool = False) -> None:
        with self._lock:
            self.requests += 1
            if ok:
                self.successes += 1
            else:
                self.errors += 1
            if retried:
                self.retries += 1
            self.latency_total += latency

    def record_failover(self) -> None:
        """One more attempt moved to another credential of the pool within a call."""
        with self._lock:
            self.failovers += 1

    def record_usage(self, usage: Usage | None) -> None:
        if usage is None:
            return
        with self._lock:
            self.input_tokens += usage.input_tokens or 0
            self.output_tokens += usage.output_tokens or 0

    def snapshot(self) -> dict[str, Any]:
        """The counters as a plain dict (with the mean latency in seconds)."""
        with self._lock:
            done = self.successes + self.errors
            return {
                "requests": self.requests,
                "successes": self.successes,
                "errors": self.errors,
                "retries": self.retries,
                "failovers": self.failovers,
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "mean_latency": self.latency_total / done if done else 0.0,
            }
