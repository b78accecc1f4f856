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

from aipk.observability import Distribution, Metrics, MetricsSnapshot, snapshot_models

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

    The models are read as one by `aipk.observability.snapshot_models()`: each model once
    however often it is listed (two clients sharing a model count each call once), the
    counters of the same labels in several models added up into one sample, a series' cost
    left out while it is unknown, a router target's EWMA the last model's reading. Gauges of
    a credential or health target listed twice show the last reading.
    """

    def __init__(self, sources: Iterable[Any] | None = None, *,
                 credentials: Sequence[HealthSource] = (),
                 health: Callable[[], Iterable[Any]] | None = None) -> None:
        if sources is None:
            from .plugin import install

            sources = [install()]
        self._models = [_model(source) for source in sources]
        self._credentials = list(credentials)
        self._health = health

    def describe(self) -> list[Metric]:
        return []  # names are fixed but label sets are not known before the first scrape

    def collect(self) -> Iterator[Metric]:
        snap = snapshot_models(self._models)
        yield from self._calls(snap)
        yield from self._attempts(snap)
        yield from self._targets(snap)
        yield from self._routers(snap)
        yield from self._credential_gauges()
        yield from self._health_gauges()

    def _calls(self, snap: MetricsSnapshot) -> Iterator[Metric]:
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
        for s in snap.series:
            labels = [s.provider, s.model, s.credential_id]
            for outcome, n in (("success", s.successes), ("failure", s.failures),
                               ("cancelled", s.cancelled)):
                requests.add_metric([*labels, outcome], n)
            for name, n in sorted(s.errors.items()):
                errors.add_metric([*labels, name], n)
            retries.add_metric(labels, s.retries)
            failovers.add_metric(labels, s.failovers)
            for direction, field in _TOKENS:
                tokens.add_metric([*labels, direction], getattr(s, field))
            if s.cost is not None:
                cost.add_metric(labels, s.cost)
            duration.add_metric(labels, _buckets(s.latency), s.latency.sum)
            if s.time_to_first_token.count:
                first.add_metric(labels, _buckets(s.time_to_first_token),
                                 s.time_to_first_token.sum)
        for provider, n in sorted(snap.in_flight.items()):
            in_flight.add_metric([provider], n)
        yield from (requests, errors, retries, failovers, tokens, cost, duration, first,
                    in_flight)

    def _attempts(self, snap: MetricsSnapshot) -> Iterator[Metric]:
        """Each credential's attempts as its key pool counted them (the same model)."""
        if not snap.credentials:
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
        for c in snap.credentials:
            attempts.add_metric([c.provider, c.id, "success"], c.successes)
            attempts.add_metric([c.provider, c.id, "error"], c.errors)
            refreshes.add_metric([c.provider, c.id, "success"], c.refreshes)
            refreshes.add_metric([c.provider, c.id, "error"], c.refresh_errors)
            seconds.add_metric([c.provider, c.id], c.latency_total)
        yield from (attempts, refreshes, seconds)

    def _targets(self, snap: MetricsSnapshot) -> Iterator[Metric]:
        """Each router target's statistics (the same model)."""
        if not snap.targets:
            return
        calls = CounterMetricFamily("aipk_router_target_calls",
                                    "Router calls to the target that ended, by outcome.",
                                    labels=["target", "outcome"])
        ewma = GaugeMetricFamily(
            "aipk_router_target_latency_ewma_seconds",
            "Smoothed latency the lowest_latency strategy ranks the target by.",
            labels=["target"])
        for name, t in sorted(snap.targets.items()):
            for outcome, key in (("success", "successes"), ("error", "errors"),
                                 ("cancelled", "cancelled")):
                calls.add_metric([name, outcome], t[key])
            if t["ewma_latency"] is not None:
                ewma.add_metric([name], t["ewma_latency"])
        yield from (calls, ewma)

    def _routers(self, snap: MetricsSnapshot) -> Iterator[Metric]:
        """Each router's totals, by router name (the same name in several models adds up)."""
        if not snap.routers:
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
        for name, r in sorted(snap.routers.items()):
            for outcome, n in (("success", r.successes), ("error", r.errors),
                               ("cancelled", r.cancelled)):
                requests.add_metric([name, outcome], n)
            in_flight.add_metric([name], max(0, r.requests - r.successes - r.errors
                                             - r.cancelled))
            waits.add_metric([name], r.waits)
            waited.add_metric([name], r.waited)
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


def register(registry: CollectorRegistry | None = None, sources: Iterable[Any] | None = None,
             **options: Any) -> AipkCollector:
    """Register an `AipkCollector` on ``registry`` (default: a new
    ``CollectorRegistry``, never the global one unless you pass ``prometheus_client.REGISTRY``)
    and return it."""
    collector = AipkCollector(sources, **options)
    (registry if registry is not None else CollectorRegistry()).register(collector)
    return collector
