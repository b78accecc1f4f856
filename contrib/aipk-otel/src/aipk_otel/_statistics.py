"""Observable (asynchronous) OpenTelemetry instruments over aipk's metrics models: the calls'
counters, each key pool's attempts, each router target's statistics and each router's totals,
read from `Metrics.snapshot()` when a metric reader collects, so nothing runs per call.

OpenTelemetry instruments cannot be removed and the Python API cannot unregister a callback,
and a meter hands back the instrument already registered under a name (with its first
callbacks). So each meter provider gets one set of instruments (`instruments_for`), created
on first use, whose callbacks read every `ModelExport` started on it and yield nothing once
all are stopped."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from aipk.errors import ConfigurationError
from aipk.observability import Metrics, MetricsSnapshot, snapshot_models

__all__ = ["INSTRUMENTS", "HealthSource", "Instruments", "ModelExport", "Readings",
           "instruments_for", "metrics_model", "read"]

PROVIDER = "aipk.provider"
MODEL = "aipk.model"
CREDENTIAL = "aipk.credential"
OUTCOME = "aipk.outcome"
TARGET = "aipk.target"
ROUTER = "aipk.router"
TOKEN_TYPE = "aipk.token.type"
ERROR_TYPE = "error.type"

_Attributes = tuple[tuple[str, str], ...]
#: instrument name -> {attribute set: value}
Readings = dict[str, dict[_Attributes, float]]

#: (name, kind, unit, description) of every instrument, in the order they are created
#: (the first one's callback takes the snapshots the others read in the same collection)
INSTRUMENTS: tuple[tuple[str, str, str, str], ...] = (
    ("aipk.requests", "counter", "{request}", "Calls that ended, by outcome."),
    ("aipk.errors", "counter", "{request}", "Failed calls, by exception class."),
    ("aipk.retries", "counter", "{attempt}", "Attempts retried after a wait."),
    ("aipk.failovers", "counter", "{attempt}", "Attempts moved at once to another credential."),
    ("aipk.tokens", "counter", "{token}", "Tokens reported by the provider, by type."),
    ("aipk.cost", "counter", "{USD}", "US dollars spent, for models with known prices."),
    ("aipk.requests.in_flight", "updowncounter", "{request}", "Calls started and not yet ended."),
    ("aipk.credential.attempts", "counter", "{attempt}",
     "Attempts sent with the credential, by outcome, as its key pool counted them."),
    ("aipk.credential.refreshes", "counter", "{refresh}",
     "Token refreshes of the credential, by outcome."),
    ("aipk.credential.attempt.time", "counter", "s",
     "Seconds spent in the credential's attempts."),
    ("aipk.router.target.calls", "counter", "{request}",
     "Router calls to the target that ended, by outcome."),
    ("aipk.router.target.calls.in_flight", "updowncounter", "{request}",
     "Router calls to the target started and not yet ended."),
    ("aipk.router.target.latency.ewma", "gauge", "s",
     "Smoothed latency the lowest_latency strategy ranks the target by."),
    ("aipk.router.requests", "counter", "{request}",
     "Calls through the router that ended, by outcome."),
    ("aipk.router.requests.in_flight", "updowncounter", "{request}",
     "Calls through the router started and not yet ended."),
    ("aipk.router.waits", "counter", "{wait}",
     "Pauses the router took for a target to become available (max_wait)."),
    ("aipk.router.wait.time", "counter", "s", "Seconds the router paused for a target."),
    ("aipk.credential.healthy", "gauge", "1", "1 if the credential is healthy."),
    ("aipk.credential.available", "gauge", "1", "1 if the credential can be chosen now."),
    ("aipk.credential.consecutive_failures", "gauge", "{failure}",
     "Failures since the credential's last success."),
    ("aipk.credential.backoff.remaining", "gauge", "s",
     "Seconds until the credential's backoff ends."),
    ("aipk.target.up", "gauge", "1", "Health check: 1 healthy, 0.5 degraded, 0 unhealthy."),
    ("aipk.health_check.latency", "gauge", "s", "Latency of the target's last health check."),
)

_TOKENS = (("input", "input_tokens"), ("output", "output_tokens"),
           ("cache_read", "cache_read_tokens"), ("cache_write", "cache_write_tokens"),
           ("reasoning", "reasoning_tokens"))
_STATES = {"healthy": 1.0, "degraded": 0.5}


class HealthSource(Protocol):
    """A key pool or OAuth manager (``client.credentials``): anything with ``provider`` and
    ``health_all()`` (sources without it, like one fixed key, are skipped)."""

    provider: str

    def health_all(self) -> Mapping[str, Any]: ...


def metrics_model(source: object) -> Metrics:
    """``source`` if it is a `Metrics`, else its ``metrics_model`` (a client, router or key
    pool); ConfigurationError naming the fix otherwise."""
    if isinstance(source, Metrics):
        return source
    model = getattr(source, "metrics_model", None)
    if isinstance(model, Metrics):
        return model
    raise ConfigurationError(
        f"models= takes aipk.observability.Metrics or objects with a metrics_model (a client, "
        f"router or key pool), not {type(source).__name__}: pass e.g. "
        f"aipk_otel.instrument(models=[router.metrics_model, pool.metrics_model])")


class ModelExport:
    """What one observer exports at collection time: ``models`` (each read once however
    often it is listed), the health of the ``credentials`` sources and the statuses
    ``health()`` returns. Exported only between `instruments_for(...).start(export)` and
    ``stop(export)``."""

    __slots__ = ("credentials", "health", "models")

    def __init__(self, models: Iterable[object] = (), *,
                 credentials: Sequence[HealthSource] = (),
                 health: Callable[[], Iterable[Any]] | None = None) -> None:
        self.models = tuple(dict.fromkeys(metrics_model(source) for source in models))
        self.credentials = tuple(credentials)
        self.health = health

    def __bool__(self) -> bool:
        return bool(self.models or self.credentials or self.health is not None)


def _add(readings: Readings, name: str, value: float, *pairs: tuple[str, str]) -> None:
    row = readings.setdefault(name, {})
    row[pairs] = row.get(pairs, 0) + value


def _set(readings: Readings, name: str, value: float, *pairs: tuple[str, str]) -> None:
    readings.setdefault(name, {})[pairs] = value


def _read_series(readings: Readings, snap: MetricsSnapshot) -> None:
    """The calls' counters (a series' cost when it is known)."""
    for provider, n in snap.in_flight.items():
        _add(readings, "aipk.requests.in_flight", n, (PROVIDER, provider))
    for s in snap.series:
        labels = ((PROVIDER, s.provider), (MODEL, s.model), (CREDENTIAL, s.credential_id))
        for outcome, n in (("success", s.successes), ("failure", s.failures),
                           ("cancelled", s.cancelled)):
            _add(readings, "aipk.requests", n, *labels, (OUTCOME, outcome))
        for error, n in s.errors.items():
            _add(readings, "aipk.errors", n, *labels, (ERROR_TYPE, error))
        _add(readings, "aipk.retries", s.retries, *labels)
        _add(readings, "aipk.failovers", s.failovers, *labels)
        for kind, field in _TOKENS:
            _add(readings, "aipk.tokens", getattr(s, field), *labels, (TOKEN_TYPE, kind))
        if s.cost is not None:
            _add(readings, "aipk.cost", s.cost, *labels)


def _read_parts(readings: Readings, snap: MetricsSnapshot) -> None:
    for c in snap.credentials:
        key = ((PROVIDER, c.provider), (CREDENTIAL, c.id))
        _add(readings, "aipk.credential.attempts", c.successes, *key, (OUTCOME, "success"))
        _add(readings, "aipk.credential.attempts", c.errors, *key, (OUTCOME, "error"))
        _add(readings, "aipk.credential.refreshes", c.refreshes, *key, (OUTCOME, "success"))
        _add(readings, "aipk.credential.refreshes", c.refresh_errors, *key, (OUTCOME, "error"))
        _add(readings, "aipk.credential.attempt.time", c.latency_total, *key)
    for name, t in snap.targets.items():
        target = (TARGET, name)
        for outcome, field in (("success", "successes"), ("error", "errors"),
                               ("cancelled", "cancelled")):
            _add(readings, "aipk.router.target.calls", t[field], target, (OUTCOME, outcome))
        _add(readings, "aipk.router.target.calls.in_flight", t["in_flight"], target)
        if t["ewma_latency"] is not None:
            _set(readings, "aipk.router.target.latency.ewma", t["ewma_latency"], target)
    for name, r in snap.routers.items():
        router = (ROUTER, name)
        for outcome, n in (("success", r.successes), ("error", r.errors),
                           ("cancelled", r.cancelled)):
            _add(readings, "aipk.router.requests", n, router, (OUTCOME, outcome))
        _add(readings, "aipk.router.requests.in_flight",
             max(0, r.requests - r.successes - r.errors - r.cancelled), router)
        _add(readings, "aipk.router.waits", r.waits, router)
        _add(readings, "aipk.router.wait.time", r.waited, router)


def _read_health(readings: Readings, export: ModelExport) -> None:
    for source in export.credentials:
        health_all = getattr(source, "health_all", None)
        if health_all is None:  # one fixed credential has no health state
            continue
        for cid, info in health_all().items():
            key = ((PROVIDER, source.provider), (CREDENTIAL, cid))
            _set(readings, "aipk.credential.healthy", float(info.healthy), *key)
            _set(readings, "aipk.credential.available", float(info.available), *key)
            _set(readings, "aipk.credential.consecutive_failures",
                 float(info.consecutive_failures), *key)
            _set(readings, "aipk.credential.backoff.remaining",
                 float(info.backoff_remaining), *key)
    if export.health is not None:
        for status in export.health():
            key = ((PROVIDER, status.provider), (TARGET, status.target))
            _set(readings, "aipk.target.up", _STATES.get(status.state, 0.0), *key)
            if status.latency is not None:
                _set(readings, "aipk.health_check.latency", status.latency, *key)


def read(exports: Iterable[ModelExport]) -> Readings:
    """Every instrument's values over ``exports``: their models read as one by
    `aipk.observability.snapshot_models()` (each model once, counters of the same attributes
    in several models added up, a series' cost left out while it is unknown), then the
    exports' health readings."""
    readings: Readings = {}
    exports = list(exports)
    snap = snapshot_models(model for export in exports for model in export.models)
    _read_series(readings, snap)
    _read_parts(readings, snap)
    for export in exports:
        _read_health(readings, export)
    return readings


class Instruments:
    """The observable instruments on one meter provider, created once; their callbacks read
    the exports started on it (none: they yield nothing)."""

    def __init__(self, meter: metrics.Meter) -> None:
        self._lock = threading.Lock()
        self._exports: list[ModelExport] = []
        self._readings: Readings = {}
        for index, (name, kind, unit, description) in enumerate(INSTRUMENTS):
            create = {"counter": meter.create_observable_counter,
                      "updowncounter": meter.create_observable_up_down_counter,
                      "gauge": meter.create_observable_gauge}[kind]
            create(name, callbacks=[self._callback(name, refresh=index == 0)], unit=unit,
                   description=description)

    def start(self, export: ModelExport) -> None:
        """Export ``export`` from the next collection on."""
        with self._lock:
            if not any(e is export for e in self._exports):
                self._exports.append(export)

    def stop(self, export: ModelExport) -> None:
        """Stop exporting ``export`` (a no-op when not started)."""
        with self._lock:
            self._exports = [e for e in self._exports if e is not export]
            if not self._exports:
                self._readings = {}

    def exporting(self, export: ModelExport) -> bool:
        with self._lock:
            return any(e is export for e in self._exports)

    def _callback(self, name: str, *, refresh: bool
                  ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterator[Observation]:
            with self._lock:
                exports = list(self._exports)
            if not exports:
                return
            if refresh:  # the meter calls the first instrument first in every collection
                try:
                    readings = read(exports)
                except Exception:  # the SDK logs it; no instrument shows stale values
                    with self._lock:
                        self._readings = {}
                    raise
                with self._lock:
                    self._readings = readings
            with self._lock:
                rows = dict(self._readings.get(name, {}))
            for pairs, value in rows.items():
                yield Observation(value, dict(pairs))

        return observe


_by_provider: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()
#: instruments made on the global meter provider of their moment, with that provider
_made_on_global: list[tuple[Any, Instruments]] = []
_by_provider_lock = threading.Lock()


def instruments_for(meter_provider: metrics.MeterProvider | None) -> Instruments:
    """The instruments on ``meter_provider`` (default: OpenTelemetry's global one), created
    on first use. Instruments made through the global provider before the application set it
    were forwarded to the provider it set, so they serve that provider too."""
    global_now = metrics.get_meter_provider()
    provider = meter_provider if meter_provider is not None else global_now
    with _by_provider_lock:
        found = _by_provider.get(provider)
        if found is None and provider is global_now:
            found = next((made for earlier, made in _made_on_global if earlier is not global_now),
                         None)
        if found is None:
            found = Instruments(metrics.get_meter("aipk", meter_provider=provider))
            if provider is global_now:
                _made_on_global.append((provider, found))
        _by_provider[provider] = found
        return found
