"""Per-credential attempt counters, as a key pool sees them, kept in the metrics model.

Each credential has its own [`CredentialMetrics`][aipk.observability._keys.CredentialMetrics] with
its own lock, held for a few additions, so attempts on different credentials never contend. A pool's
``pool.metrics`` is a view over these
([`aipk.credentials.MetricsRegistry`][aipk.credentials.MetricsRegistry]).
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import attrs

from aipk._records import record

__all__ = ["CredentialMetrics", "CredentialSnapshot"]


@record(kw_only=True)
class CredentialSnapshot:
    """One credential's attempt counters at a moment. Latency in seconds, times in epoch
    seconds (the pool's clock).

    Attributes:
        id: The credential's id.
        provider: The provider it signs for ("" when built by hand).
        requests: Attempts sent with it.
        successes: Attempts that succeeded.
        errors: Attempts that failed.
        tokens: Tokens used, from the responses' usage.
        latency_total: Sum of the attempts' latencies.
        refreshes: Successful token refreshes.
        refresh_errors: Failed token refreshes.
        first_used: When it was first used.
        last_used: When it was last used.
        last_refresh: When its token was last refreshed.
    """

    id: str
    provider: str = ""
    requests: int = 0
    successes: int = 0
    errors: int = 0
    tokens: int = 0
    latency_total: float = 0.0
    refreshes: int = 0
    refresh_errors: int = 0
    first_used: float | None = None
    last_used: float | None = None
    last_refresh: float | None = None

    @property
    def mean_latency(self) -> float:
        return self.latency_total / self.requests if self.requests else 0.0

    @property
    def success_rate(self) -> float:
        """Successes over requests; 1.0 before the first request."""
        return self.successes / self.requests if self.requests else 1.0

    def requests_per_hour(self, now: float) -> float:
        """Requests per hour since first use (over at least one minute)."""
        if self.first_used is None:
            return 0.0
        return self.requests * 3600.0 / max(now - self.first_used, 60.0)

    def to_dict(self, now: float) -> dict[str, Any]:
        """JSON-ready values (names as the Go SDK's ``ExportJSON``; times in RFC 3339)."""
        return {
            "request_count": self.requests,
            "success_count": self.successes,
            "error_count": self.errors,
            "tokens_used": self.tokens,
            "average_latency_ms": round(self.mean_latency * 1000.0, 3),
            "success_rate": self.success_rate,
            "requests_per_hour": round(self.requests_per_hour(now), 3),
            "refresh_count": self.refreshes,
            "refresh_error_count": self.refresh_errors,
            "first_used": rfc3339(self.first_used),
            "last_used": rfc3339(self.last_used),
            "last_refresh": rfc3339(self.last_refresh),
        }

    def to_record(self) -> dict[str, Any]:
        """The fields as they are (the metrics model's JSON)."""
        return attrs.asdict(self)


def rfc3339(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat().replace("+00:00", "Z")


class CredentialMetrics:
    """Attempt counters for one credential."""

    __slots__ = ("_lock", "errors", "first_used", "id", "last_refresh", "last_used",
                 "latency_total", "provider", "refresh_errors", "refreshes", "requests",
                 "successes", "tokens")

    def __init__(self, credential_id: str, provider: str = "") -> None:
        self._lock = threading.Lock()
        self.id = credential_id
        self.provider = provider
        self.requests = 0
        self.successes = 0
        self.errors = 0
        self.tokens = 0
        self.latency_total = 0.0
        self.refreshes = 0
        self.refresh_errors = 0
        self.first_used: float | None = None
        self.last_used: float | None = None
        self.last_refresh: float | None = None

    def record(self, *, ok: bool, now: float, latency: float = 0.0, tokens: int = 0) -> None:
        """Count one attempt's outcome."""
        with self._lock:
            self.requests += 1
            if ok:
                self.successes += 1
            else:
                self.errors += 1
            self.tokens += tokens
            self.latency_total += latency
            if self.first_used is None:
                self.first_used = now
            self.last_used = now

    def succeeded(self, now: float, latency: float, tokens: int) -> None:
        """Count one attempt that succeeded (`record()` with ``ok=True``, for the send loop:
        once per request, so positional and without the outcome's branch)."""
        lock = self._lock
        lock.acquire()  # (acquire and release cost half what a ``with`` block does)
        try:
            self.requests += 1
            self.successes += 1
            self.tokens += tokens
            self.latency_total += latency
            if self.first_used is None:
                self.first_used = now
            self.last_used = now
        finally:
            lock.release()

    def add_tokens(self, tokens: int) -> None:
        """Add tokens learnt after the outcome was recorded (e.g. at the end of a stream)."""
        with self._lock:
            self.tokens += tokens

    def record_refresh(self, *, ok: bool, now: float) -> None:
        with self._lock:
            if ok:
                self.refreshes += 1
                self.last_refresh = now
            else:
                self.refresh_errors += 1

    def snapshot(self) -> CredentialSnapshot:
        with self._lock:
            return CredentialSnapshot(
                id=self.id, provider=self.provider, requests=self.requests,
                successes=self.successes, errors=self.errors, tokens=self.tokens,
                latency_total=self.latency_total, refreshes=self.refreshes,
                refresh_errors=self.refresh_errors, first_used=self.first_used,
                last_used=self.last_used, last_refresh=self.last_refresh,
            )
