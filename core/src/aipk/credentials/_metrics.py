"""A key pool's view of its credentials' attempt counters, which live in the metrics model
(`aipk.observability.Metrics.credential()`), and their export as JSON and as Prometheus
text.

Each credential has its own [`CredentialMetrics`][aipk.credentials._metrics.CredentialMetrics] with
its own lock, held for a few additions, so requests on different credentials never contend.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aipk.observability._keys import CredentialMetrics, CredentialSnapshot, rfc3339
from aipk.observability._model import Metrics

if TYPE_CHECKING:
    from ._health import HealthInfo


__all__ = ["CredentialMetrics", "MetricsRegistry", "MetricsSnapshot"]

#: One credential's attempt counters at a moment (the name `aipk.credentials` has
#: always used for `aipk.observability.CredentialSnapshot`).
MetricsSnapshot = CredentialSnapshot
_rfc3339 = rfc3339


class MetricsRegistry:
    """One provider's credentials' `CredentialMetrics`, read from and recorded into
    the metrics model ``model`` (default a new one), and their exports. ``clock`` (epoch
    seconds) stamps first and last use."""

    def __init__(self, provider: str, clock: Callable[[], float] = time.time,
                 model: Metrics | None = None) -> None:
        self.provider = provider
        self._clock = clock
        #: the metrics model holding the counters
        self.model = model if model is not None else Metrics()
        self._metrics: dict[str, CredentialMetrics] = {}  # a lock-free cache of the model's

    def get(self, credential_id: str) -> CredentialMetrics:
        """The counters of ``credential_id``, created on first use."""
        metrics = self._metrics.get(credential_id)
        if metrics is None:
            metrics = self._metrics[credential_id] = self.model.credential(self.provider,
                                                                          credential_id)
        return metrics

    def remove(self, credential_id: str) -> None:
        self._metrics.pop(credential_id, None)
        self.model.forget_credential(self.provider, credential_id)

    def snapshot(self) -> dict[str, MetricsSnapshot]:
        """Every credential's counters, by id."""
        return {cid: m.snapshot()
                for cid, m in sorted(self.model.credentials(self.provider).items())}

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
