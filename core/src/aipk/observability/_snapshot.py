"""The records a `Metrics` snapshot is made of (loaded on the
first snapshot, so that creating clients does not build these classes)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._histogram import cumulative, percentile
from ._keys import CredentialSnapshot
from ._routers import RouterTotals

__all__ = ["Distribution", "MetricsSnapshot", "SeriesSnapshot"]


@attrs.frozen(kw_only=True, slots=True)
class Distribution:
    """Recorded durations in seconds: exact count, sum, min and max; percentiles from the
    bounded histogram (`aipk.observability.LATENCY_BOUNDS`), each within one bucket
    (about 9%) of the true value, exact when the values in that bucket are equal."""

    #: how many values
    count: int = 0
    #: their sum
    sum: float = 0.0
    #: the smallest (None when empty)
    min: float | None = None
    #: the largest (None when empty)
    max: float | None = None
    #: the median (None when empty)
    p50: float | None = None
    #: the 95th percentile (None when empty)
    p95: float | None = None
    #: the 99th percentile (None when empty)
    p99: float | None = None
    #: values per histogram bucket (one more than the bounds: the last is unbounded)
    bucket_counts: tuple[int, ...] = ()
    #: sum of the values per bucket
    bucket_sums: tuple[float, ...] = ()

    @property
    def mean(self) -> float | None:
        """The mean (None when empty)."""
        return self.sum / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        """Any quantile, ``0 < q <= 1``, computed like `p50`."""
        return percentile(self.bucket_counts, self.bucket_sums, self.count, q)

    def cumulative(self, bounds: Sequence[float]) -> list[int]:
        """How many values were at most each bound (for a Prometheus or OTel histogram)."""
        if not self.bucket_counts:
            return [0] * len(bounds)
        return cumulative(self.bucket_counts, bounds)

    @classmethod
    def of(cls, counts: Sequence[int], sums: Sequence[float], count: int, total: float,
           low: float | None, high: float | None) -> Distribution:
        def q(p: float) -> float | None:
            return percentile(counts, sums, count, p)

        return cls(count=count, sum=total, min=low, max=high, p50=q(0.50), p95=q(0.95),
                   p99=q(0.99), bucket_counts=tuple(counts), bucket_sums=tuple(sums))

    def merge(self, other: Distribution) -> Distribution:
        """Both distributions' values as one: bucket-wise sums, the smaller min and the larger
        max, percentiles recomputed. MetricsMergeError when the buckets differ (every
        distribution aipk records has ``len(LATENCY_BOUNDS) + 1``)."""
        if not other.count:
            return self
        if not self.count:
            return other
        if (len(self.bucket_counts) != len(other.bucket_counts)
                or len(self.bucket_sums) != len(other.bucket_sums)):
            from aipk.errors import MetricsMergeError

            raise MetricsMergeError(
                f"cannot merge histograms of {len(self.bucket_counts)} and "
                f"{len(other.bucket_counts)} buckets: build each Distribution with "
                f"len(aipk.observability.LATENCY_BOUNDS) + 1 bucket_counts and bucket_sums, "
                f"as Metrics.snapshot() does")
        counts = [a + b for a, b in zip(self.bucket_counts, other.bucket_counts, strict=True)]
        sums = [a + b for a, b in zip(self.bucket_sums, other.bucket_sums, strict=True)]
        return Distribution.of(counts, sums, self.count + other.count, self.sum + other.sum,
                               smaller(self.min, other.min), larger(self.max, other.max))

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "sum": self.sum, "min": self.min, "max": self.max,
                "mean": self.mean, "p50": self.p50, "p95": self.p95, "p99": self.p99}


@attrs.frozen(kw_only=True, slots=True)
class SeriesSnapshot:
    """The calls of one (provider, model, credential id), at a moment.

    ``requests`` counts calls that ended: ``successes + failures + cancelled``."""

    #: the provider's name
    provider: str
    #: the requested model
    model: str
    #: the credential's public id (never the secret); "none" if no attempt was sent
    credential_id: str
    #: calls that ended
    requests: int = 0
    #: calls whose caller got an answer
    successes: int = 0
    #: calls whose caller got an exception
    failures: int = 0
    #: streams the caller closed before their end
    cancelled: int = 0
    #: failures by exception class name
    errors: Mapping[str, int] = attrs.field(factory=dict)
    #: attempts retried after a wait
    retries: int = 0
    #: attempts moved at once to another credential
    failovers: int = 0
    #: input tokens reported (cached ones included)
    input_tokens: int = 0
    #: output tokens reported (reasoning ones included)
    output_tokens: int = 0
    #: input tokens read from the provider's cache
    cache_read_tokens: int = 0
    #: input tokens written to the provider's cache
    cache_write_tokens: int = 0
    #: output tokens spent on reasoning
    reasoning_tokens: int = 0
    #: US dollars, when every answered call's model had known prices; else None
    cost: float | None = None
    #: seconds from the call's start to its last byte (successful calls)
    latency: Distribution = attrs.field(factory=Distribution)
    #: seconds from a stream's start to its first event
    time_to_first_token: Distribution = attrs.field(factory=Distribution)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values; the field names above, distributions as
        ``{count, sum, min, max, mean, p50, p95, p99}``."""
        return {
            "provider": self.provider, "model": self.model, "credential_id": self.credential_id,
            "requests": self.requests, "successes": self.successes, "failures": self.failures,
            "cancelled": self.cancelled, "errors": dict(sorted(self.errors.items())),
            "retries": self.retries, "failovers": self.failovers,
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens, "cost": self.cost,
            "latency": self.latency.to_dict(),
            "time_to_first_token": self.time_to_first_token.to_dict(),
        }

    def merge(self, other: SeriesSnapshot, **labels: str) -> SeriesSnapshot:
        """This series and ``other`` added up, under ``labels`` (default: this one's), as
        `MetricsSnapshot.totals` and `MetricsSnapshot.by` add up different series: the cost
        is the sum of the known costs (None when neither is known). The same series read from
        several models combines by a stricter rule: see
        [`merge_snapshots`][aipk.observability.merge_snapshots]."""
        errors = dict(self.errors)
        for name, n in other.errors.items():
            errors[name] = errors.get(name, 0) + n
        cost = (None if self.cost is None and other.cost is None
                else (self.cost or 0.0) + (other.cost or 0.0))
        return SeriesSnapshot(
            provider=labels.get("provider", self.provider),
            model=labels.get("model", self.model),
            credential_id=labels.get("credential_id", self.credential_id),
            requests=self.requests + other.requests,
            successes=self.successes + other.successes,
            failures=self.failures + other.failures,
            cancelled=self.cancelled + other.cancelled, errors=errors,
            retries=self.retries + other.retries, failovers=self.failovers + other.failovers,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens, cost=cost,
            latency=self.latency.merge(other.latency),
            time_to_first_token=self.time_to_first_token.merge(other.time_to_first_token),
        )


@attrs.frozen(kw_only=True, slots=True)
class MetricsSnapshot:
    """Everything a `Metrics` recorded, at a moment. The counters' names are read
    through `totals` (``snapshot.requests`` is ``snapshot.totals.requests``)."""

    #: one entry per (provider, model, credential id), sorted by those
    series: tuple[SeriesSnapshot, ...] = ()
    #: calls started and not yet ended, by provider
    in_flight: Mapping[str, int] = attrs.field(factory=dict)
    #: each credential's attempts as its key pool saw them, sorted by provider and id
    credentials: tuple[CredentialSnapshot, ...] = ()
    #: each router target's statistics (``Router.metrics()["targets"]`` less the router's
    #: cooldown and breaker state), by target name
    targets: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    #: each router's totals (its calls by outcome and its waits), by router name
    routers: Mapping[str, RouterTotals] = attrs.field(factory=dict)

    @property
    def totals(self) -> SeriesSnapshot:
        """All series added up (labels ``*``). Its ``cost`` is the sum of the series' known
        costs (what summing the exporters' cost counters shows), None when no series' cost is
        known; a series' own cost is unknown once one of its answered calls had no price."""
        total = SeriesSnapshot(provider="*", model="*", credential_id="*")
        for s in self.series:
            total = total.merge(s, provider="*", model="*", credential_id="*")
        return total

    def by(self, *, provider: str | None = None, model: str | None = None,
           credential_id: str | None = None) -> SeriesSnapshot:
        """The series matching the given labels, added up (labels not given are ``*``)."""
        total = SeriesSnapshot(provider=provider or "*", model=model or "*",
                               credential_id=credential_id or "*")
        for s in self.series:
            if ((provider is None or s.provider == provider)
                    and (model is None or s.model == model)
                    and (credential_id is None or s.credential_id == credential_id)):
                total = total.merge(s, provider=total.provider, model=total.model,
                                    credential_id=total.credential_id)
        return total

    def __getattr__(self, name: str) -> Any:
        if name in _COUNTERS:
            return getattr(self.totals, name)
        raise AttributeError(f"MetricsSnapshot has no attribute {name!r}")

    def __getitem__(self, key: str) -> Any:
        """The totals under the names of the plain dict ``client.metrics()`` used to return:
        ``requests``, ``successes``, ``errors`` (the number of failed calls), ``retries``,
        ``failovers``, ``input_tokens``, ``output_tokens``, ``mean_latency`` (seconds, 0.0
        when none). New code reads the attributes."""
        totals = self.totals
        if key == "errors":
            return totals.failures
        if key == "mean_latency":
            return totals.latency.mean or 0.0
        if key in _LEGACY_KEYS:
            return getattr(totals, key)
        raise KeyError(f"{key!r}: use the attributes of client.metrics() (see "
                       f"docs/observability.md)")

    def to_dict(self) -> dict[str, Any]:
        """``{"totals": {...}, "series": [{...}, ...], "in_flight": {provider: n},
        "credentials": [{...}, ...], "targets": {name: {...}}, "routers": {name: {...}}}``:
        each series as `SeriesSnapshot.to_dict()`, each credential and router as its
        fields."""
        return {"totals": self.totals.to_dict(),
                "series": [s.to_dict() for s in self.series],
                "in_flight": dict(sorted(self.in_flight.items())),
                "credentials": [c.to_record() for c in self.credentials],
                "targets": {name: dict(t) for name, t in sorted(self.targets.items())},
                "routers": {name: r.to_dict() for name, r in sorted(self.routers.items())}}

    def to_json(self) -> str:
        """`to_dict()` as JSON with sorted keys (stable across runs)."""
        return json.dumps(self.to_dict(), sort_keys=True)


def smaller(a: float | None, b: float | None) -> float | None:
    """The smaller of two optional values (None when both are)."""
    return b if a is None else a if b is None else min(a, b)


def larger(a: float | None, b: float | None) -> float | None:
    """The larger of two optional values (None when both are)."""
    return b if a is None else a if b is None else max(a, b)


_LEGACY_KEYS = frozenset({"requests", "successes", "retries", "failovers", "input_tokens",
                          "output_tokens"})
_COUNTERS = frozenset(f.name for f in attrs.fields(SeriesSnapshot)) - {
    "provider", "model", "credential_id"}
