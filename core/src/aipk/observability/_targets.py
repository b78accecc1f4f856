"""Per-target statistics a router keeps in the metrics model: counters and a bounded window
of recent latencies, whose smoothed value (``ewma``) the ``lowest_latency`` strategy ranks by.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aipk._responses import Usage

__all__ = ["TargetMetrics"]


def _percentile(ordered: Sequence[float], p: float) -> float:
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(p * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class TargetMetrics:
    """Counters for one target, and the latencies of its last ``window`` successful calls (a
    fixed ring buffer: memory never grows). ``ewma`` is the smoothed latency
    ``lowest_latency`` ranks by (None before the first success)."""

    __slots__ = ("_count", "_lock", "_next", "_samples", "cancelled", "error_types", "errors",
                 "ewma", "input_tokens", "output_tokens", "requests", "successes")

    ALPHA = 0.3

    def __init__(self, window: int = 1024) -> None:
        if window < 1:
            raise ValueError("the latency window needs at least one slot")
        self._lock = threading.Lock()
        self._samples = [0.0] * window
        self._next = 0
        self._count = 0
        self.requests = 0
        self.successes = 0
        self.errors = 0
        self.cancelled = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.ewma: float | None = None
        self.error_types: dict[str, int] = {}

    def started(self) -> None:
        with self._lock:
            self.requests += 1

    def succeeded(self, latency: float, usage: Usage | None) -> None:
        with self._lock:
            self.successes += 1
            samples = self._samples
            samples[self._next] = latency
            self._next = (self._next + 1) % len(samples)
            self._count = min(self._count + 1, len(samples))
            self.ewma = latency if self.ewma is None else (
                self.ALPHA * latency + (1.0 - self.ALPHA) * self.ewma)
            if usage is not None:
                self.input_tokens += usage.input_tokens or 0
                self.output_tokens += usage.output_tokens or 0

    def failed(self, error: BaseException) -> None:
        name = type(error).__name__
        with self._lock:
            self.errors += 1
            self.error_types[name] = self.error_types.get(name, 0) + 1

    def was_cancelled(self) -> None:
        with self._lock:
            self.cancelled += 1

    def latencies(self) -> list[float]:
        """The kept latency samples (at most ``window``), oldest first."""
        with self._lock:
            samples, count, nxt = self._samples, self._count, self._next
            if count < len(samples):
                return samples[:count]
            return samples[nxt:] + samples[:nxt]

    def snapshot(self) -> dict[str, Any]:
        """The counters and latency percentiles (seconds) as a plain dict."""
        with self._lock:
            kept = self._samples[:self._count]
            out: dict[str, Any] = {
                "requests": self.requests, "successes": self.successes, "errors": self.errors,
                "cancelled": self.cancelled,
                "in_flight": self.requests - self.successes - self.errors - self.cancelled,
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "error_types": dict(self.error_types), "ewma_latency": self.ewma,
            }
        kept.sort()
        out.update(latency_samples=len(kept), p50=_percentile(kept, 0.50),
                   p95=_percentile(kept, 0.95), p99=_percentile(kept, 0.99),
                   mean_latency=sum(kept) / len(kept) if kept else 0.0)
        return out
