"""A Prometheus custom collector over aipk's metrics model: each scrape builds fresh metric
families from `aipk.observability.Metrics.snapshot()`, so there is no second copy of the
state and nothing registered at import time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from aipk.observability import Distribution, Metrics, MetricsSnapshot, SeriesSnapshot

__all__ = ["DURATION_BUCKETS", "AipkCollector", "HealthSource", "register"]

#: Histogram bounds in seconds: OpenTelemetry's GenAI duration advisory (0.01 s x 2^n), each
#: one an exact bound of aipk's own histogram.
DURATION_BUCKETS: tuple[float, ...] = tuple(0.01 * 2 ** n for n in range(14))

_SERIES = ["provider", "model", "credential"]
_TOKENS = (("input", "input_tokens"), ("output", "output_tokens"),
           ("cache_read", "cache_read_tokens"), ("cache_write", "cache_write_tokens"),
           ("reasoning", "reasoning_tokens"))


class HealthSource(Protocol):
    """A credential pool or OAuth manager (``client.credentials``): anything with
    ``provider`` and ``health_all()`` (sources without it, like one fixed key, are skipped)."""

    provider: str

    def health_all(self) -> Mapping[str, Any]: ...


def _model(source: Any) -> Metrics:
    if isinstance(source, Metrics):
        return source
    model = getattr(source, "metrics_model", None)
    if isinstance(model, Metrics):
        return model
    raise TypeError(f"expected an aipk.observability.Metrics or a client, not "
                    f"{type(source).__name__}; pass client.metrics_model")


def _buckets(d: Distribution) -> list[tuple[str, float]]:
    counts = d.cumulative(DURATION_BUCKETS)
    out = [(repr(float(b)), float(n)) for b, n in zip(DURATION_BUCKETS, counts, strict=True)]
    out.append(("+Inf", float(d.count)))
    return out


class AipkCollector:
    """Exposes aipk's metrics (see docs/observability.md for the list).

    ``sources``: the `Metrics` to read, or clients (their
    ``metrics_model``); default the process-wide model (`aipk_prometheus.process_metrics()`),
    which this installs the feed for (`aipk_prometheus.install()` on aipk's default
    registry): calls are counted from then on. ``credentials``: pools or OAuth managers whose
    health to show as gauges. ``health``: a function returning a health checker's statuses.

    Each model is read once however often it is listed (two clients sharing a model count
    each call once). Series with the same labels in several models (two models recording the
    same provider, model and credential, or the same router target) are added up into one
    sample; a series' cost is left out when it is unknown in any model. Gauges of a
    credential or health target listed twice show the last reading.
    """

    def __init__(self, sources: Iterable[Any] | None = None, *,
                 credentials: Sequence[HealthSource] = (),
                 health: Callable[[], Iterable[Any]] | None = None) -> None:
        if sources is None:
            from .plugin import install

            sources = [install()]
        unique: dict[int, Metrics] = {}
        for source in sources:
            model = _model(source)
            unique.setdefault(id(model), model)
        self._models = list(unique.values())
        self._credentials = list(credentials)
        self._health = health

    def describe(self) -> list[Metric]:
        return []  # names are fixed but label sets are not known before the first scrape

    def collect(self) -> Iterator[Metric]:
        snaps = [m.snapshot() for m in self._models]
        yield from self._calls(snaps)
        yield from self._attempts(snaps)
        yield from self._targets(snaps)
        yield from self._routers(snaps)
        yield from self._credential_gauges()
        yield from self._health_gauges()

    def _calls(self, snaps: list[MetricsSnapshot]) -> Iterator[Metric]:
        requests = CounterMetricFamily("aipk_requests", "Calls that ended, by outcome.",
                                       labels=[*_SERIES, "outcome"])
        errors = CounterMetricFamily("aipk_errors", "Failed calls, by exception class.",
                                     labels=[*_SERIES, "error"])
        retries = CounterMetricFamily("aipk_retries", "Attempts retried after a wait.",
                                      labels=_SERIES)
        failovers = CounterMetricFamily(
            "aipk_failovers", "Attempts moved at once to another credential.", labels=_SERIES)
        tokens = CounterMetricFamily("aipk_tokens", "Tokens reported by the provider.",
                                     labels=[*_SERIES, "direction"])
        cost = CounterMetricFamily("aipk_cost_dollars",
                                   "US dollars spent, for models with known prices.",
                                   labels=_SERIES)
        duration = HistogramMetricFamily(
            "aipk_request_duration_seconds",
            "Seconds from a call's start to its last byte (answered calls).", labels=_SERIES)
        first = HistogramMetricFamily(
            "aipk_time_to_first_token_seconds",
            "Seconds from a stream's start to its first event.", labels=_SERIES)
        in_flight = GaugeMetricFamily("aipk_requests_in_flight",
                                      "Calls started and not yet ended.", labels=["provider"])
        flights: dict[str, int] = {}
        for snap in snaps:
            for provider, n in snap.in_flight.items():
                flights[provider] = flights.get(provider, 0) + n
        merged, unpriced = _merged_series(snaps)
        for key, s in sorted(merged.items()):
            labels = list(key)
            for outcome, n in (("success", s.successes), ("failure", s.failures),
                               ("cancelled", s.cancelled)):
                requests.add_metric([*labels, outcome], n)
            for name, n in sorted(s.errors.items()):
                errors.add_metric([*labels, name], n)
            retries.add_metric(labels, s.retries)
            failovers.add_metric(labels, s.failovers)
            for direction, field in _TOKENS:
                tokens.add_metric([*labels, direction], getattr(s, field))
            if s.cost is not None and key not in unpriced:
                cost.add_metric(labels, s.cost)
            duration.add_metric(labels, _buckets(s.latency), s.latency.sum)
            if s.time_to_first_token.count:
                first.add_metric(labels, _buckets(s.time_to_first_token),
                                 s.time_to_first_token.sum)
        for provider, n in sorted(flights.items()):
            in_flight.add_metric([provider], n)
        yield from (requests, errors, retries, failovers, tokens, cost, duration, first,
                    in_flight)

    def _attempts(self, snaps: list[MetricsSnapshot]) -> Iterator[Metric]:
        """Each credential's attempts as its key pool counted them (the same model)."""
        rows: dict[tuple[str, str], list[float]] = {}
        for snap in snaps:
            for c in snap.credentials:
                row = rows.setdefault((c.provider, c.id), [0, 0, 0, 0, 0.0])
                for i, n in enumerate((c.successes, c.errors, c.refreshes, c.refresh_errors,
                                       c.latency_total)):
                    row[i] += n
        if not rows:
            return
        labels = ["provider", "credential", "outcome"]
        attempts = CounterMetricFamily(
            "aipk_credential_attempts", "Attempts sent with the credential, by outcome.",
            labels=labels)
        refreshes = CounterMetricFamily(
            "aipk_credential_refreshes", "Token refreshes of the credential, by outcome.",
            labels=labels)
        seconds = CounterMetricFamily(
            "aipk_credential_attempt_seconds", "Seconds spent in the credential's attempts.",
            labels=["provider", "credential"])
        for (provider, cid), (ok, failed, refreshed, refresh_failed, spent) in sorted(
                rows.items()):
            attempts.add_metric([provider, cid, "success"], ok)
            attempts.add_metric([provider, cid, "error"], failed)
            refreshes.add_metric([provider, cid, "success"], refreshed)
            refreshes.add_metric([provider, cid, "error"], refresh_failed)
            seconds.add_metric([provider, cid], spent)
        yield from (attempts, refreshes, seconds)

    def _targets(self, snaps: list[MetricsSnapshot]) -> Iterator[Metric]:
        """Each router target's statistics (the same model)."""
        counts: dict[str, list[int]] = {}
        ewmas: dict[str, float] = {}
        for snap in snaps:
            for name, t in snap.targets.items():
                row = counts.setdefault(name, [0, 0, 0])
                for i, key in enumerate(("successes", "errors", "cancelled")):
                    row[i] += t[key]
                if t["ewma_latency"] is not None:  # in several models: the last one's
                    ewmas[name] = t["ewma_latency"]
        if not counts:
            return
        calls = CounterMetricFamily("aipk_router_target_calls",
                                    "Router calls to the target that ended, by outcome.",
                                    labels=["target", "outcome"])
        ewma = GaugeMetricFamily(
            "aipk_router_target_latency_ewma_seconds",
            "Smoothed latency the lowest_latency strategy ranks the target by.",
            labels=["target"])
        for name, row in sorted(counts.items()):
            for outcome, n in zip(("success", "error", "cancelled"), row, strict=True):
                calls.add_metric([name, outcome], n)
            if name in ewmas:
                ewma.add_metric([name], ewmas[name])
        yield from (calls, ewma)

    def _routers(self, snaps: list[MetricsSnapshot]) -> Iterator[Metric]:
        """Each router's totals, by router name (the same name in several models adds up)."""
        totals: dict[str, list[float]] = {}
        for snap in snaps:
            for name, r in snap.routers.items():
                row = totals.setdefault(name, [0.0] * 6)
                for i, n in enumerate((r.requests, r.successes, r.errors, r.cancelled, r.waits,
                                       r.waited)):
                    row[i] += n
        if not totals:
            return
        requests = CounterMetricFamily("aipk_router_requests",
                                       "Calls through the router that ended, by outcome.",
                                       labels=["router", "outcome"])
        in_flight = GaugeMetricFamily("aipk_router_requests_in_flight",
                                      "Calls through the router started and not yet ended.",
                                      labels=["router"])
        waits = CounterMetricFamily(
            "aipk_router_waits", "Pauses the router took for a target to become available.",
            labels=["router"])
        waited = CounterMetricFamily("aipk_router_wait_seconds",
                                     "Seconds the router paused for a target (max_wait).",
                                     labels=["router"])
        for name, (started, ok, failed, cancelled, n_waits, seconds) in sorted(totals.items()):
            for outcome, n in (("success", ok), ("error", failed), ("cancelled", cancelled)):
                requests.add_metric([name, outcome], n)
            in_flight.add_metric([name], max(0, started - ok - failed - cancelled))
            waits.add_metric([name], n_waits)
            waited.add_metric([name], seconds)
        yield from (requests, in_flight, waits, waited)

    def _credential_gauges(self) -> Iterator[Metric]:
        rows: dict[tuple[str, str], Any] = {}
        for source in self._credentials:
            health_all = getattr(source, "health_all", None)
            if health_all is not None:  # one fixed credential has no health state
                for cid, info in health_all().items():
                    rows[(source.provider, cid)] = info  # listed twice: the last reading
        if not rows:
            return
        labels = ["provider", "credential"]
        healthy = GaugeMetricFamily("aipk_credential_healthy",
                                    "1 if the credential is healthy.", labels=labels)
        available = GaugeMetricFamily("aipk_credential_available",
                                      "1 if the credential can be chosen now.", labels=labels)
        failures = GaugeMetricFamily("aipk_credential_consecutive_failures",
                                     "Failures since the credential's last success.",
                                     labels=labels)
        backoff = GaugeMetricFamily("aipk_credential_backoff_remaining_seconds",
                                    "Seconds until the credential's backoff ends.",
                                    labels=labels)
        for (provider, cid), info in sorted(rows.items()):
            pair = [provider, cid]
            healthy.add_metric(pair, float(info.healthy))
            available.add_metric(pair, float(info.available))
            failures.add_metric(pair, float(info.consecutive_failures))
            backoff.add_metric(pair, float(info.backoff_remaining))
        yield from (healthy, available, failures, backoff)

    def _health_gauges(self) -> Iterator[Metric]:
        if self._health is None:
            return
        labels = ["provider", "target"]
        up = GaugeMetricFamily("aipk_target_up",
                               "Health check: 1 healthy, 0.5 degraded, 0 unhealthy.",
                               labels=labels)
        latency = GaugeMetricFamily("aipk_health_check_latency_seconds",
                                    "Latency of the last health check.", labels=labels)
        statuses = {(status.provider, status.target): status for status in self._health()}
        for pair, status in statuses.items():  # a target listed twice: the last status
            up.add_metric(list(pair), {"healthy": 1.0, "degraded": 0.5}.get(status.state, 0.0))
            if status.latency is not None:
                latency.add_metric(list(pair), status.latency)
        yield from (up, latency)


def _merged_series(snaps: list[MetricsSnapshot]) -> tuple[
        dict[tuple[str, str, str], SeriesSnapshot], set[tuple[str, str, str]]]:
    """The models' series added up by labels, and the labels whose cost some model does not
    know (left out: once unknown it stays so, and the other models' parts alone could go
    down between scrapes)."""
    merged: dict[tuple[str, str, str], SeriesSnapshot] = {}
    unpriced: set[tuple[str, str, str]] = set()
    for snap in snaps:
        for s in snap.series:
            key = (s.provider, s.model, s.credential_id)
            if s.cost is None:
                unpriced.add(key)
            seen = merged.get(key)
            merged[key] = s if seen is None else seen.merge(s)
    return merged, unpriced


def register(registry: CollectorRegistry | None = None, sources: Iterable[Any] | None = None,
             **options: Any) -> AipkCollector:
    """Register an `AipkCollector` on ``registry`` (default: a new
    ``CollectorRegistry``, never the global one unless you pass ``prometheus_client.REGISTRY``)
    and return it."""
    collector = AipkCollector(sources, **options)
    (registry if registry is not None else CollectorRegistry()).register(collector)
    return collector
