"""Per-credential counters, and their export as JSON and as Prometheus text.

Each credential has its own [`CredentialMetrics`][aipk.credentials._metrics.CredentialMetrics] with
its own lock, held for a few additions, so requests on different credentials never contend.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from ._health import HealthInfo

__all__ = ["CredentialMetrics", "MetricsRegistry", "MetricsSnapshot"]


@attrs.frozen(kw_only=True)
class MetricsSnapshot:
    """One credential's counters at a moment. Latency in seconds, times in epoch seconds.

    Attributes:
        id: The credential's id.
        requests: Requests sent with it.
        successes: Requests that succeeded.
        errors: Requests that failed.
        tokens: Tokens used, from the responses' usage.
        latency_total: Sum of the requests' latencies.
        refreshes: Successful token refreshes.
        refresh_errors: Failed token refreshes.
        first_used: When it was first used.
        last_used: When it was last used.
        last_refresh: When its token was last refreshed.
    """

    id: str
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
            "first_used": _rfc3339(self.first_used),
            "last_used": _rfc3339(self.last_used),
            "last_refresh": _rfc3339(self.last_refresh),
        }


def _rfc3339(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat().replace("+00:00", "Z")


class CredentialMetrics:
    """Counters for one credential."""

    __slots__ = ("_lock", "errors", "first_used", "id", "last_refresh", "last_used",
                 "latency_total", "refresh_errors", "refreshes", "requests", "successes",
                 "tokens")

    def __init__(self, credential_id: str) -> None:
        self._lock = threading.Lock()
        self.id = credential_id
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
        """Count one request's outcome."""
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

    def snapshot(self) -> MetricsSnapshot:
        with self._lock:
            return MetricsSnapshot(
                id=self.id, requests=self.requests, successes=self.successes,
                errors=self.errors, tokens=self.tokens, latency_total=self.latency_total,
                refreshes=self.refreshes, refresh_errors=self.refresh_errors,
                first_used=self.first_used, last_used=self.last_used,
                last_refresh=self.last_refresh,
            )


class MetricsRegistry:
    """The `CredentialMetrics` of one provider's credentials, and their exports."""

    def __init__(self, provider: str, clock: Callable[[], float] = time.time) -> None:
        self.provider = provider
        self._clock = clock
        self._metrics: dict[str, CredentialMetrics] = {}
        self._lock = threading.Lock()

    def get(self, credential_id: str) -> CredentialMetrics:
        """The counters of ``credential_id``, created on first use."""
        metrics = self._metrics.get(credential_id)
        if metrics is None:
            with self._lock:
                metrics = self._metrics.setdefault(credential_id,
                                                   CredentialMetrics(credential_id))
        return metrics

    def remove(self, credential_id: str) -> None:
        with self._lock:
            self._metrics.pop(credential_id, None)

    def snapshot(self) -> dict[str, MetricsSnapshot]:
        """Every credential's counters, by id."""
        with self._lock:
            items = list(self._metrics.items())
        return {cid: m.snapshot() for cid, m in items}

    def to_json(self, health: Mapping[str, HealthInfo] | None = None) -> str:
        """``{"provider": …, "credentials": {id: {request_count, …, healthy, …}}}``."""
        now = self._clock()
        out: dict[str, Any] = {}
        for cid, snap in self.snapshot().items():
            entry = snap.to_dict(now)
            info = (health or {}).get(cid)
            if info is not None:
                entry.update(healthy=info.healthy, available=info.available,
                             consecutive_failures=info.consecutive_failures,
                             backoff_remaining=round(info.backoff_remaining, 3),
                             last_error=info.last_error, expires_at=_rfc3339(info.expires_at),
                             status=info.status, parked_reason=info.parked_reason)
            out[cid] = entry
        return json.dumps({"provider": self.provider, "credentials": out}, sort_keys=True)

    def to_prometheus(self, health: Mapping[str, HealthInfo] | None = None,
                      prefix: str = "aipk_credential") -> str:
        """The counters (and health gauges, if given) in the Prometheus text exposition
        format, labelled ``provider`` and ``credential``."""
        snaps = self.snapshot()
        families: list[tuple[str, str, str, Callable[[MetricsSnapshot], float | None]]] = [
            ("requests_total", "counter", "Requests sent with the credential.",
             lambda s: s.requests),
            ("successes_total", "counter", "Requests that succeeded.", lambda s: s.successes),
            ("errors_total", "counter", "Requests that failed.", lambda s: s.errors),
            ("tokens_total", "counter", "Tokens used.", lambda s: s.tokens),
            ("refreshes_total", "counter", "Successful token refreshes.",
             lambda s: s.refreshes),
            ("refresh_errors_total", "counter", "Failed token refreshes.",
             lambda s: s.refresh_errors),
            ("last_used_timestamp_seconds", "gauge", "When the credential was last used.",
             lambda s: s.last_used),
        ]
        lines: list[str] = []
        for name, kind, help_text, value in families:
            lines += _family(prefix + "_" + name, kind, help_text,
                             [(cid, value(s)) for cid, s in snaps.items()], self.provider)
        latency = prefix + "_latency_seconds"
        lines += [f"# HELP {latency} Request latency.", f"# TYPE {latency} summary"]
        for cid, s in snaps.items():
            labels = _labels(self.provider, cid)
            lines.append(f"{latency}_sum{labels} {_number(s.latency_total)}")
            lines.append(f"{latency}_count{labels} {s.requests}")
        if health:
            gauges: list[tuple[str, str, Callable[[HealthInfo], float]]] = [
                ("healthy", "1 if the credential is healthy.", lambda h: float(h.healthy)),
                ("available", "1 if the credential can be selected now.",
                 lambda h: float(h.available)),
                ("consecutive_failures", "Failures since the last success.",
                 lambda h: h.consecutive_failures),
                ("backoff_remaining_seconds", "Seconds until the backoff ends.",
                 lambda h: h.backoff_remaining),
                ("parked", "1 if the provider rejected the credential as invalid (parked).",
                 lambda h: float(h.status == "parked")),
            ]
            for name, help_text, read in gauges:
                lines += _family(prefix + "_" + name, "gauge", help_text,
                                 [(cid, read(h)) for cid, h in health.items()], self.provider)
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(provider: str, credential: str) -> str:
    return f'{{provider="{_escape(provider)}",credential="{_escape(credential)}"}}'


def _number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and float(value).is_integer()):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _family(name: str, kind: str, help_text: str, samples: list[tuple[str, float | None]],
            provider: str) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for cid, value in samples:
        if value is not None:
            lines.append(f"{name}{_labels(provider, cid)} {_number(value)}")
    return lines
