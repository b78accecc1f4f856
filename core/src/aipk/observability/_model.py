"""The one metrics model: what every call recorded, by provider, model and credential id;
what each credential's attempts did (key pools); and each router target's statistics.

Clients record into a `Metrics` at the call boundary (what the caller saw), and retries
and failovers as they happen; key pools record each attempt into the credential's
[`CredentialMetrics`][aipk.observability._keys.CredentialMetrics] (`Metrics.credential()`), routers
each call to a target into its `TargetMetrics`
(`Metrics.target()`) and each call's outcome into the router's
[`RouterMetrics`][aipk.observability.RouterMetrics] (`Metrics.router()`, by router name).
Exporters read `Metrics.snapshot()`, or keep their own `Metrics` fed by the ``aipk_observe``
hook's records (`Metrics.observe()`).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._histogram import BOUNDS, FOLD_AT, Histogram
from ._keys import CredentialMetrics

if TYPE_CHECKING:  # routers' and targets' records load with the first router (see router())
    from aipk._responses import Usage

    from ._routers import RouterMetrics
    from ._snapshot import Distribution, MetricsSnapshot, SeriesSnapshot
    from ._targets import TargetMetrics

__all__ = ["LATENCY_BOUNDS", "Metrics"]

SeriesKey = tuple[str, str, str]


def _distribution(h: Histogram) -> Distribution:
    from ._snapshot import Distribution

    if not h.count:
        return Distribution()
    return Distribution.of(h.counts, h.sums, h.count, h.sum, h.min, h.max)


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

    def add_usage(self, usage: Usage) -> None:
        """Add ``usage``'s counts (the caller holds `lock`)."""
        self.input += usage.input_tokens or 0
        self.output += usage.output_tokens or 0
        self.cache_read += usage.cache_read_tokens or 0
        self.cache_write += usage.cache_write_tokens or 0
        self.reasoning += usage.reasoning_tokens or 0

    def succeeded(self, latency: float, time_to_first_token: float | None,
                  usage: Usage | None, cost: float | None) -> None:
        """One answered call (`Metrics.finished()`; what a call's recorder calls directly,
        once per call, so its arguments are positional)."""
        lock = self.lock
        lock.acquire()  # (acquire and release cost half what a ``with`` block does)
        try:
            self.successes += 1
            latencies = self.latency.pending  # `latency.add()`, inline: once per call
            latencies.append(latency)
            if len(latencies) >= FOLD_AT:
                self.latency.fold()
            if time_to_first_token is not None:
                self.ttft.add(time_to_first_token)
            if usage is not None:  # add_usage(), inline: once per call
                self.input += usage.input_tokens or 0
                self.output += usage.output_tokens or 0
                self.cache_read += usage.cache_read_tokens or 0
                self.cache_write += usage.cache_write_tokens or 0
                self.reasoning += usage.reasoning_tokens or 0
            if cost is None:
                self.priced = False
            else:
                self.cost += cost
        finally:
            lock.release()

    def snapshot(self, key: SeriesKey) -> SeriesSnapshot:
        from ._snapshot import SeriesSnapshot

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
                cost=self.cost if self.priced and (answered or self.cost) else None,
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
        self._credentials: dict[tuple[str, str], CredentialMetrics] = {}
        self._targets: dict[str, TargetMetrics] = {}
        self._routers: dict[str, RouterMetrics] = {}
        self._lock = threading.Lock()

    def _get(self, provider: str, model: str, credential_id: str) -> _Series:
        key = (provider, model, credential_id)
        series = self._series.get(key)
        if series is None:
            with self._lock:
                series = self._series.setdefault(key, _Series())
        return series

    def _started_counter(self, provider: str) -> itertools.count[int]:
        """The count of ``provider``'s calls started (``next()`` on it counts one; kept for
        as long as the model lives, `reset()` included)."""
        counter = self._started.get(provider)
        if counter is None:
            with self._lock:
                counter = self._started.setdefault(provider, itertools.count(1))
        return counter

    # -- the parts key pools and routers record into --------------------------------------

    def credential(self, provider: str, credential_id: str) -> CredentialMetrics:
        """The attempt counters of ``provider``'s credential ``credential_id`` (created on
        first use; a key pool records each attempt there)."""
        found = self._credentials.get((provider, credential_id))
        if found is None:
            with self._lock:
                found = self._credentials.setdefault(
                    (provider, credential_id), CredentialMetrics(credential_id, provider))
        return found

    def credentials(self, provider: str) -> dict[str, CredentialMetrics]:
        """``provider``'s credentials' attempt counters, by id."""
        with self._lock:
            return {cid: m for (p, cid), m in self._credentials.items() if p == provider}

    def forget_credential(self, provider: str, credential_id: str) -> None:
        """Drop a credential's attempt counters (it left its pool)."""
        with self._lock:
            self._credentials.pop((provider, credential_id), None)

    def target(self, name: str, window: int = 1024) -> TargetMetrics:
        """The statistics of the router target ``name`` (created on first use with a latency
        window of ``window`` calls; routers sharing a model share same-named targets')."""
        found = self._targets.get(name)
        if found is None:
            with self._lock:
                found = self._targets.get(name)
                if found is None:
                    from ._targets import TargetMetrics

                    found = self._targets[name] = TargetMetrics(window)
        return found

    def router(self, name: str) -> RouterMetrics:
        """The totals of the router named ``name`` (created on first use; routers sharing a
        model and a name add up, differently named ones keep separate totals).
        ConfigurationError if ``name`` is empty, padded with spaces or not printable."""
        found = self._routers.get(name) if isinstance(name, str) else None
        if found is None:
            from ._routers import RouterMetrics, check_router_name

            check_router_name(name)
            with self._lock:
                found = self._routers.setdefault(name, RouterMetrics(name))
        return found

    # -- recording -----------------------------------------------------------------------

    def started(self, provider: str) -> None:
        """A call began (counted as in flight until it ends)."""
        next(self._started_counter(provider))

    def finished(self, provider: str, model: str, credential_id: str, *, latency: float,
                 time_to_first_token: float | None = None, usage: Usage | None = None,
                 cost: float | None = None) -> None:
        """A call answered its caller."""
        self._get(provider, model, credential_id).succeeded(latency, time_to_first_token,
                                                            usage, cost)

    def failed(self, provider: str, model: str, credential_id: str, *, error_type: str,
               time_to_first_token: float | None = None, usage: Usage | None = None,
               cost: float | None = None) -> None:
        """A call raised ``error_type`` to its caller; ``usage`` (and its ``cost``) is what a
        stream reported before it failed."""
        s = self._get(provider, model, credential_id)
        with s.lock:
            s.failures += 1
            s.errors[error_type] = s.errors.get(error_type, 0) + 1
            if time_to_first_token is not None:
                s.ttft.add(time_to_first_token)
            if usage is not None:
                s.add_usage(usage)
            if cost is not None:
                s.cost += cost

    def cancelled(self, provider: str, model: str, credential_id: str, *,
                  time_to_first_token: float | None = None, usage: Usage | None = None,
                  cost: float | None = None) -> None:
        """The caller closed a stream before its end; ``usage`` (and its ``cost``) is what
        the stream reported until then."""
        s = self._get(provider, model, credential_id)
        with s.lock:
            s.cancelled += 1
            if time_to_first_token is not None:
                s.ttft.add(time_to_first_token)
            if usage is not None:
                s.add_usage(usage)
            if cost is not None:
                s.cost += cost

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
        record = _RECORDERS.get(type(event).__name__)
        if record is not None:
            record(self, event)

    # -- reading -------------------------------------------------------------------------

    def snapshot(self) -> MetricsSnapshot:
        """Every series, and the calls in flight."""
        from ._snapshot import MetricsSnapshot

        with self._lock:
            started = {p: _value(c) - 1 for p, c in self._started.items()}
            items = sorted(self._series.items())
            ended = dict(self._ended_before_reset)
            keys = sorted(self._credentials.items())
            targets = sorted(self._targets.items())
            routers = sorted(self._routers.items())
        series = tuple(s.snapshot(k) for k, s in items)
        for s in series:
            ended[s.provider] = ended.get(s.provider, 0) + s.requests
        in_flight = {p: max(0, n - ended.get(p, 0)) for p, n in started.items()}
        return MetricsSnapshot(series=series, in_flight=in_flight,
                               credentials=tuple(m.snapshot() for _, m in keys),
                               targets={name: t.snapshot() for name, t in targets},
                               routers={name: r.snapshot() for name, r in routers})

    def reset(self) -> None:
        """Forget the calls recorded per provider, model and credential (calls in flight stay
        counted). The per-key, per-target and per-router counters are kept: the key pools and
        routers feeding them hold them for as long as they live."""
        with self._lock:
            items = list(self._series.items())
            self._series.clear()
            for (provider, _, _), series in items:
                ended = series.snapshot(("", "", "")).requests
                self._ended_before_reset[provider] = (
                    self._ended_before_reset.get(provider, 0) + ended)


def _finished(m: Metrics, e: Any) -> None:
    m.finished(e.provider, e.model, e.credential_id, latency=e.latency,
               time_to_first_token=e.time_to_first_token, usage=e.usage, cost=e.cost)


#: how `Metrics.observe()` records each record type (FirstToken's time comes with the end)
_RECORDERS: dict[str, Callable[[Metrics, Any], None]] = {
    "CallStarted": lambda m, e: m.started(e.provider),
    "CallFinished": _finished,
    "CallFailed": lambda m, e: m.failed(e.provider, e.model, e.credential_id,
                                        error_type=e.error_type, usage=e.usage, cost=e.cost),
    "CallCancelled": lambda m, e: m.cancelled(e.provider, e.model, e.credential_id,
                                              usage=e.usage, cost=e.cost),
    "CallRetried": lambda m, e: m.retried(e.provider, e.model, e.credential_id),
    "CallFailedOver": lambda m, e: m.failed_over(e.provider, e.model, e.credential_id),
}


def _value(counter: itertools.count[int]) -> int:
    """The next number an ``itertools.count`` will give (read from its repr, ``count(n)``)."""
    return int(repr(counter)[6:-1])


#: The histogram's bucket upper bounds in seconds.
LATENCY_BOUNDS = BOUNDS
