"""Reading several metrics models as one: `merge_snapshots()` combines snapshots,
`snapshot_models()` reads each of several models once and combines their snapshots. Both
exporters (aipk-prometheus, aipk-otel) read their models through it, so one rule decides
what several models add up to.

Read-side code only: nothing here runs per call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aipk.errors import ConfigurationError, MetricsMergeError

from ._keys import CredentialSnapshot
from ._model import Metrics
from ._routers import RouterTotals
from ._snapshot import MetricsSnapshot, SeriesSnapshot, larger, smaller

__all__ = ["merge_snapshots", "snapshot_models"]

#: the numbers of a router target's statistics that count events (they add up)
_TARGET_COUNTS = ("requests", "successes", "errors", "cancelled", "in_flight", "input_tokens",
                  "output_tokens")
#: its latency readings over its window (taken together from one part)
_TARGET_READINGS = ("ewma_latency", "p50", "p95", "p99", "mean_latency", "latency_samples")
_SERIES_COUNTS = ("requests", "successes", "failures", "cancelled", "retries", "failovers",
                  "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                  "reasoning_tokens")
_CREDENTIAL_COUNTS = ("requests", "successes", "errors", "tokens", "latency_total",
                      "refreshes", "refresh_errors")


def snapshot_models(models: Iterable[Metrics]) -> MetricsSnapshot:
    """One snapshot of several `Metrics` models read as one: each model is read once however
    often it is listed (by identity: two clients sharing a model count each call once), and
    the snapshots are combined by `merge_snapshots()`, in the order the models are first
    listed. ConfigurationError if an element is not a `Metrics`."""
    distinct: dict[int, Metrics] = {}
    for model in models:
        if not isinstance(model, Metrics):
            raise ConfigurationError(
                f"snapshot_models() takes aipk.observability.Metrics models, not "
                f"{type(model).__name__}: pass client.metrics_model (or router.metrics_model, "
                f"pool.metrics_model)")
        distinct.setdefault(id(model), model)
    return merge_snapshots([model.snapshot() for model in distinct.values()])


def merge_snapshots(snapshots: Iterable[MetricsSnapshot]) -> MetricsSnapshot:
    """The snapshots of several models as the snapshot of one.

    A snapshot listed twice counts once (by identity). What has the same labels in several
    snapshots becomes one entry:

    * **Counters add up**: a series' (same provider, model and credential id) calls, errors
      by class, retries, failovers and tokens; `in_flight` per provider; a credential's
      (same provider and id) attempt counters and seconds; a router target's (same name)
      calls, in-flight calls, tokens and errors by class; a router's (same name) totals.
    * **A series' cost** is unknown (None) when one part answered calls without a known
      price; otherwise it is the sum of the parts' costs (a part that answered no call and
      was billed nothing has none to add). This is the cost one model recording every part's
      calls would show, and it never goes down between two reads: once unknown it stays so.
    * **Latency histograms** merge bucket-wise; `MetricsMergeError` (naming the series) when
      two parts' buckets differ, which only hand-built `Distribution` records can.
    * **Point-in-time readings** are the last part's that has one: a router target's latency
      readings (``ewma_latency``, ``p50``, ``p95``, ``p99``, ``mean_latency`` and the
      ``latency_samples`` they are over); a credential's ``first_used`` is the earliest and
      ``last_used`` / ``last_refresh`` the latest.

    The counters do not depend on the order of the snapshots, and merging is associative:
    ``merge_snapshots([a, merge_snapshots([b, c])])`` equals ``merge_snapshots([a, b, c])``
    (floating-point sums up to rounding). One snapshot comes back as it is; none gives an
    empty snapshot. ConfigurationError if an element is not a `MetricsSnapshot`.
    """
    distinct: dict[int, MetricsSnapshot] = {}
    for snap in snapshots:
        if not isinstance(snap, MetricsSnapshot):
            raise ConfigurationError(
                f"merge_snapshots() takes MetricsSnapshot records (model.snapshot()), not "
                f"{type(snap).__name__}: pass the models to "
                f"aipk.observability.snapshot_models() to read them as one")
        distinct.setdefault(id(snap), snap)
    parts = list(distinct.values())
    if len(parts) == 1:
        return parts[0]
    series: dict[tuple[str, str, str], SeriesSnapshot] = {}
    in_flight: dict[str, int] = {}
    credentials: dict[tuple[str, str], CredentialSnapshot] = {}
    targets: dict[str, Mapping[str, Any]] = {}
    routers: dict[str, RouterTotals] = {}
    for snap in parts:
        for s in snap.series:
            key = (s.provider, s.model, s.credential_id)
            seen = series.get(key)
            series[key] = s if seen is None else _series(seen, s)
        for provider, n in snap.in_flight.items():
            in_flight[provider] = in_flight.get(provider, 0) + n
        for c in snap.credentials:
            pair = (c.provider, c.id)
            known = credentials.get(pair)
            credentials[pair] = c if known is None else _credential(known, c)
        for name, t in snap.targets.items():
            earlier = targets.get(name)
            targets[name] = dict(t) if earlier is None else _target(earlier, t)
        for name, r in snap.routers.items():
            before = routers.get(name)
            routers[name] = r if before is None else _router(before, r)
    return MetricsSnapshot(
        series=tuple(s for _, s in sorted(series.items())),
        in_flight=dict(sorted(in_flight.items())),
        credentials=tuple(c for _, c in sorted(credentials.items())),
        targets=dict(sorted(targets.items())), routers=dict(sorted(routers.items())))


def _unknown_cost(s: SeriesSnapshot) -> bool:
    """A series whose cost is unknown: it answered calls and has no cost (a series without
    answered calls and without a billed stream has no cost because nothing was priced)."""
    return s.cost is None and s.successes > 0


def _series(a: SeriesSnapshot, b: SeriesSnapshot) -> SeriesSnapshot:
    errors = dict(a.errors)
    for name, n in b.errors.items():
        errors[name] = errors.get(name, 0) + n
    if _unknown_cost(a) or _unknown_cost(b) or (a.cost is None and b.cost is None):
        cost = None
    else:
        cost = (a.cost or 0.0) + (b.cost or 0.0)
    try:
        latency = a.latency.merge(b.latency)
        first_token = a.time_to_first_token.merge(b.time_to_first_token)
    except MetricsMergeError as error:
        raise MetricsMergeError(
            f"series provider={a.provider!r} model={a.model!r} "
            f"credential_id={a.credential_id!r}: {error}") from error
    counts = {name: getattr(a, name) + getattr(b, name) for name in _SERIES_COUNTS}
    return SeriesSnapshot(provider=a.provider, model=a.model, credential_id=a.credential_id,
                          errors=errors, cost=cost, latency=latency,
                          time_to_first_token=first_token, **counts)


def _credential(a: CredentialSnapshot, b: CredentialSnapshot) -> CredentialSnapshot:
    counts = {name: getattr(a, name) + getattr(b, name) for name in _CREDENTIAL_COUNTS}
    return CredentialSnapshot(
        id=a.id, provider=a.provider, first_used=smaller(a.first_used, b.first_used),
        last_used=larger(a.last_used, b.last_used),
        last_refresh=larger(a.last_refresh, b.last_refresh), **counts)


def _target(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    reading = b if b.get("ewma_latency") is not None else a
    merged = {**a, **b}
    for name in _TARGET_READINGS:
        if name in reading:
            merged[name] = reading[name]
    for name in _TARGET_COUNTS:
        if name in a or name in b:
            merged[name] = a.get(name, 0) + b.get(name, 0)
    if "error_types" in a or "error_types" in b:
        types = dict(a.get("error_types", {}))
        for name, n in b.get("error_types", {}).items():
            types[name] = types.get(name, 0) + n
        merged["error_types"] = types
    return merged


def _router(a: RouterTotals, b: RouterTotals) -> RouterTotals:
    return RouterTotals(name=a.name, requests=a.requests + b.requests,
                        successes=a.successes + b.successes, errors=a.errors + b.errors,
                        cancelled=a.cancelled + b.cancelled, waits=a.waits + b.waits,
                        waited=a.waited + b.waited)

