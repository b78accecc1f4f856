"""The one metrics model: what every call recorded, by provider, model and credential id.

Clients record into a :class:`Metrics` at the call boundary (what the caller saw), and retries
and failovers as they happen. Exporters read :meth:`Metrics.snapshot`, or keep their own
:class:`Metrics` fed by the ``aipk_observe`` hook's records (:meth:`Metrics.observe`).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ._events import (
    CallCancelled,
    CallFailed,
    CallFailedOver,
    CallFinished,
    CallRetried,
    CallStarted,
    FirstToken,
)
from ._histogram import BOUNDS, Histogram, cumulative, percentile

if TYPE_CHECKING:
    from aipk._responses import Usage

__all__ = ["Distribution", "Metrics", "MetricsSnapshot", "SeriesSnapshot"]

SeriesKey = tuple[str, str, str]


@attrs.frozen(kw_only=True, slots=True)
class Distribution:
    """Recorded durations in seconds: exact count, sum, min and max; percentiles from the
    bounded histogram (:data:`aipk.observability.LATENCY_BOUNDS`), each within one bucket
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
        """Any quantile, ``0 < q <= 1``, computed like :attr:`p50`."""
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
        if not other.count:
            return self
        if not self.count:
            return other
        counts = [a + b for a, b in zip(self.bucket_counts, other.bucket_counts, strict=True)]
        sums = [a + b for a, b in zip(self.bucket_sums, other.bucket_sums, strict=True)]
        return Distribution.of(counts, sums, self.count + other.count, self.sum + other.sum,
                               min(self.min or 0.0, other.min or 0.0),
                               max(self.max or 0.0, other.max or 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "sum": self.sum, "min": self.min, "max": self.max,
                "mean": self.mean, "p50": self.p50, "p95": self.p95, "p99": self.p99}


def _distribution(h: Histogram) -> Distribution:
    if not h.count:
        return Distribution()
    return Distribution.of(h.counts, h.sums, h.count, h.sum, h.min, h.max)


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
    """Everything a :class:`Metrics` recorded, at a moment. The counters' names are read
    through :attr:`totals` (``snapshot.requests`` is ``snapshot.totals.requests``)."""

    #: one entry per (provider, model, credential id), sorted by those
    series: tuple[SeriesSnapshot, ...] = ()
    #: calls started and not yet ended, by provider
    in_flight: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def totals(self) -> SeriesSnapshot:
        """All series added up (labels ``*``)."""
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
        """``{"totals": {...}, "series": [{...}, ...], "in_flight": {provider: n}}``: each
        entry as :meth:`SeriesSnapshot.to_dict`."""
        return {"totals": self.totals.to_dict(),
                "series": [s.to_dict() for s in self.series],
                "in_flight": dict(sorted(self.in_flight.items()))}

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON with sorted keys (stable across runs)."""
        return json.dumps(self.to_dict(), sort_keys=True)


_LEGACY_KEYS = frozenset({"requests", "successes", "retries", "failovers", "input_tokens",
                          "output_tokens"})
_COUNTERS = frozenset(f.name for f in attrs.fields(SeriesSnapshot)) - {
    "provider", "model", "credential_id"}


class _Series:
    __slots__ = ("cache_read", "cache_write", "cancelled", "cost", "errors", "failovers",
                 "failures", "input", "latency", "lock", "output", "priced", "reasoning",
                 "retries", "successes", "ttft")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.successes = self.failures = self.cancelled = self.retries = self.failovers = 0
        self.input = self.output = self.cache_read = self.cache_write = self.reasoning = 0
        self.cost = 0.0
        self.priced = True  # every answered call so far had a cost
        self.errors: dict[str, int] = {}
        self.latency = Histogram()
        self.ttft = Histogram()

    def snapshot(self, key: SeriesKey) -> SeriesSnapshot:
        with self.lock:
            answered = self.successes
            return SeriesSnapshot(
                provider=key[0], model=key[1], credential_id=key[2],
                requests=self.successes + self.failures + self.cancelled,
                successes=self.successes, failures=self.failures, cancelled=self.cancelled,
                errors=dict(self.errors), retries=self.retries, failovers=self.failovers,
                input_tokens=self.input, output_tokens=self.output,
                cache_read_tokens=self.cache_read, cache_write_tokens=self.cache_write,
                reasoning_tokens=self.reasoning,
                cost=self.cost if self.priced and answered else None,
                latency=_distribution(self.latency), time_to_first_token=_distribution(self.ttft),
            )


class Metrics:
    """Counters and latency histograms by (provider, model, credential id); thread-safe,
    memory bounded by the number of such combinations.

    ``clock`` (seconds, monotonic) times the calls; tests inject their own. One instance can be
    shared by several clients (``Client(metrics=...)``), e.g. the targets of a router.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self._series: dict[SeriesKey, _Series] = {}
        # Calls started, per provider: next() on an itertools.count is atomic, so a call's
        # start takes no lock. In flight = started - ended (ended: the series' requests).
        self._started: dict[str, itertools.count[int]] = {}
        self._ended_before_reset: dict[str, int] = {}
        self._lock = threading.Lock()

    def _get(self, provider: str, model: str, credential_id: str) -> _Series:
        key = (provider, model, credential_id)
        series = self._series.get(key)
        if series is None:
            with self._lock:
                series = self._series.setdefault(key, _Series())
        return series

    # -- recording -----------------------------------------------------------------------

    def started(self, provider: str) -> None:
        """A call began (counted as in flight until it ends)."""
        counter = self._started.get(provider)
        if counter is None:
            with self._lock:
                counter = self._started.setdefault(provider, itertools.count(1))
        next(counter)

    def finished(self, provider: str, model: str, credential_id: str, *, latency: float,
                 time_to_first_token: float | None = None, usage: Usage | None = None,
                 cost: float | None = None) -> None:
        """A call answered its caller."""
        s = self._get(provider, model, credential_id)
        with s.lock:
            s.successes += 1
            s.latency.add(latency)
            if time_to_first_token is not None:
                s.ttft.add(time_to_first_token)
            if usage is not None:
                s.input += usage.input_tokens
                s.output += usage.output_tokens
                s.cache_read += usage.cache_read_tokens or 0
                s.cache_write += usage.cache_write_tokens or 0
                s.reasoning += usage.reasoning_tokens or 0
            if cost is None:
                s.priced = False
            else:
                s.cost += cost

    def failed(self, provider: str, model: str, credential_id: str, *, error_type: str,
               time_to_first_token: float | None = None) -> None:
        """A call raised ``error_type`` to its caller."""
        s = self._get(provider, model, credential_id)
        with s.lock:
            s.failures += 1
            s.errors[error_type] = s.errors.get(error_type, 0) + 1
            if time_to_first_token is not None:
                s.ttft.add(time_to_first_token)

    def cancelled(self, provider: str, model: str, credential_id: str, *,
                  time_to_first_token: float | None = None) -> None:
        """The caller closed a stream before its end."""
        s = self._get(provider, model, credential_id)
        with s.lock:
            s.cancelled += 1
            if time_to_first_token is not None:
                s.ttft.add(time_to_first_token)

    def retried(self, provider: str, model: str, credential_id: str) -> None:
        """An attempt failed and will be retried."""
        s = self._get(provider, model, credential_id)
        with s.lock:
            s.retries += 1

    def failed_over(self, provider: str, model: str, credential_id: str) -> None:
        """An attempt failed and the call moved to another credential."""
        s = self._get(provider, model, credential_id)
        with s.lock:
            s.failovers += 1

    def observe(self, event: object) -> None:
        """Record one ``aipk_observe`` record (how an exporter keeps a process-wide model)."""
        if isinstance(event, CallStarted):
            self.started(event.provider)
        elif isinstance(event, CallFinished):
            self.finished(event.provider, event.model, event.credential_id,
                          latency=event.latency, time_to_first_token=event.time_to_first_token,
                          usage=event.usage, cost=event.cost)
        elif isinstance(event, CallFailed):
            self.failed(event.provider, event.model, event.credential_id,
                        error_type=event.error_type)
        elif isinstance(event, CallCancelled):
            self.cancelled(event.provider, event.model, event.credential_id)
        elif isinstance(event, CallRetried):
            self.retried(event.provider, event.model, event.credential_id)
        elif isinstance(event, CallFailedOver):
            self.failed_over(event.provider, event.model, event.credential_id)
        elif isinstance(event, FirstToken):
            pass  # recorded with the call's end

    # -- reading -------------------------------------------------------------------------

    def snapshot(self) -> MetricsSnapshot:
        """Every series, and the calls in flight."""
        with self._lock:
            started = {p: _value(c) - 1 for p, c in self._started.items()}
            items = sorted(self._series.items())
            ended = dict(self._ended_before_reset)
        series = tuple(s.snapshot(k) for k, s in items)
        for s in series:
            ended[s.provider] = ended.get(s.provider, 0) + s.requests
        in_flight = {p: max(0, n - ended.get(p, 0)) for p, n in started.items()}
        return MetricsSnapshot(series=series, in_flight=in_flight)

    def reset(self) -> None:
        """Forget everything recorded (calls in flight stay counted)."""
        with self._lock:
            items = list(self._series.items())
            self._series.clear()
            for (provider, _, _), series in items:
                ended = series.snapshot(("", "", "")).requests
                self._ended_before_reset[provider] = (
                    self._ended_before_reset.get(provider, 0) + ended)


def _value(counter: itertools.count[int]) -> int:
    """The next number an ``itertools.count`` will give (read from its repr, ``count(n)``)."""
    return int(repr(counter)[6:-1])


#: The histogram's bucket upper bounds in seconds.
LATENCY_BOUNDS = BOUNDS
