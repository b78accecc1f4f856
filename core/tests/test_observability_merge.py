"""Several metrics models read as one (`merge_snapshots`, `snapshot_models`): the models are
real `Metrics` fed the calls, attempts, router targets and router totals hypothesis draws; the
merge must equal what one model recording all of them shows."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aipk.errors import ConfigurationError, MetricsMergeError
from aipk.observability import (
    LATENCY_BOUNDS,
    Distribution,
    Metrics,
    MetricsSnapshot,
    SeriesSnapshot,
    merge_snapshots,
    snapshot_models,
)

Op = tuple[int, str, str, str, bool, float]

_OPS = st.lists(st.tuples(
    st.integers(0, 2),
    st.sampled_from(["ok", "failed", "cancelled", "started", "retried", "failed_over",
                     "attempt", "refresh", "target", "router", "wait"]),
    st.sampled_from(["openai", "anthropic"]),
    st.sampled_from(["key-1", "key-2"]),
    st.booleans(),
    st.floats(min_value=0.0, max_value=50.0, allow_nan=False)), max_size=40)


def _apply(models: list[Metrics], ops: list[Op], now: list[float] | None = None) -> None:
    """Record ``ops``, op ``i`` into ``models[i % len(models)]``'s choice (the credential
    clock ticks once per op, so one model's first and last use are the earliest and latest)."""
    clock = now if now is not None else [0.0]
    for index, op, provider, key, flag, seconds in ops:
        m = models[index % len(models)]
        clock[0] += 1.0
        if op in ("ok", "failed", "cancelled", "started"):
            m.started(provider)
        if op == "ok":
            m.finished(provider, "m", key, latency=seconds, cost=seconds if flag else None,
                       time_to_first_token=seconds / 2 if flag else None)
        elif op == "failed":  # a stream billed before it failed, or a plain failure
            m.failed(provider, "m", key, error_type="ServerError" if flag else "RateLimitError",
                     cost=seconds if flag else None)
        elif op == "cancelled":
            m.cancelled(provider, "m", key, cost=seconds if flag else None)
        elif op == "retried":
            m.retried(provider, "m", key)
        elif op == "failed_over":
            m.failed_over(provider, "m", key)
        elif op == "attempt":
            m.credential(provider, key).record(ok=flag, now=clock[0], latency=seconds, tokens=3)
        elif op == "refresh":
            m.credential(provider, key).record_refresh(ok=flag, now=clock[0])
        elif op == "target":
            target = m.target(key)
            target.started()
            if flag:
                target.succeeded(seconds, None)
            else:
                target.failed(RuntimeError("boom"))
        elif op == "router":
            router = m.router(provider)
            router.started()
            if flag:
                router.succeeded()
            else:
                router.was_cancelled()
        elif op == "wait":
            m.router(provider).wait(seconds)


def _models(ops: list[Op]) -> list[Metrics]:
    models = [Metrics(), Metrics(), Metrics()]
    _apply(models, ops)
    return models


#: a router target's latency readings: the last part's, so they depend on the order
_READINGS = {"ewma_latency", "p50", "p95", "p99", "mean_latency", "latency_samples"}


def _plain(snap: MetricsSnapshot, *, readings: bool = True) -> dict[str, Any]:
    out = snap.to_dict()
    for s, series in zip(out["series"], snap.series, strict=True):
        s["latency_buckets"] = series.latency.bucket_counts
        s["first_token_buckets"] = series.time_to_first_token.bucket_counts
    if not readings:
        out["targets"] = {name: {k: v for k, v in t.items() if k not in _READINGS}
                          for name, t in out["targets"].items()}
    return out


def _close(a: Any, b: Any, where: str = "") -> None:
    """``a == b``, floats up to rounding (sums added up in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None, (where, a, b)
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (where, a, b)
    else:
        assert a == b, (where, a, b)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS)
@example(ops=[(0, "ok", "openai", "key-1", True, 1.0), (1, "ok", "openai", "key-1", False, 1.0)])
@example(ops=[(0, "failed", "openai", "key-1", False, 0.0),
              (1, "ok", "openai", "key-1", True, 2.0)])  # a part that priced nothing
def test_the_merge_is_what_one_model_recording_every_part_shows(ops: list[Op]) -> None:
    models = _models(ops)
    one = Metrics()
    _apply([one], ops)
    merged = snapshot_models(models)
    _close(_plain(merged, readings=False), _plain(one.snapshot(), readings=False))


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, order=st.permutations([0, 1, 2]))
def test_counters_do_not_depend_on_the_order(ops: list[Op], order: list[int]) -> None:
    snaps = [m.snapshot() for m in _models(ops)]
    _close(_plain(merge_snapshots(snaps), readings=False),
           _plain(merge_snapshots([snaps[i] for i in order]), readings=False))


@settings(max_examples=60, deadline=None)
@given(ops=_OPS)
def test_merging_is_associative(ops: list[Op]) -> None:
    a, b, c = (m.snapshot() for m in _models(ops))
    flat = _plain(merge_snapshots([a, b, c]))
    _close(_plain(merge_snapshots([a, merge_snapshots([b, c])])), flat)
    _close(_plain(merge_snapshots([merge_snapshots([a, b]), c])), flat)


@settings(max_examples=40, deadline=None)
@given(ops=_OPS)
def test_one_snapshot_comes_back_and_an_empty_one_adds_nothing(ops: list[Op]) -> None:
    snap = _models(ops)[0].snapshot()
    assert merge_snapshots([snap]) is snap
    assert merge_snapshots([snap, snap]) is snap  # the same snapshot counts once
    empty = Metrics().snapshot()
    assert merge_snapshots([snap, empty]) == snap
    assert merge_snapshots([MetricsSnapshot(), snap]) == snap
    assert merge_snapshots([]) == MetricsSnapshot()


def _unknown(snap: MetricsSnapshot) -> bool:
    return any(s.cost is None and s.successes for s in snap.series)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS)
def test_totals_of_the_merge_are_the_sum_of_the_totals(ops: list[Op]) -> None:
    snaps = [m.snapshot() for m in _models(ops)]
    totals = merge_snapshots(snaps).totals
    for name in ("requests", "successes", "failures", "cancelled", "retries", "failovers"):
        assert getattr(totals, name) == sum(getattr(s.totals, name) for s in snaps), name
    assert totals.latency.count == sum(s.totals.latency.count for s in snaps)
    costs = [s.totals.cost for s in snaps if s.totals.cost is not None]
    if not any(_unknown(s) for s in snaps):  # every cost known: the totals add up
        assert (totals.cost is None) == (not costs)
        if costs:
            assert totals.cost == pytest.approx(sum(costs))
    else:  # a series unknown in one part is unknown in the merge: its known parts drop out
        assert (totals.cost or 0.0) <= sum(costs) + 1e-9


@settings(max_examples=40, deadline=None)
@given(first=_OPS, then=_OPS)
@example(first=[(0, "ok", "openai", "key-1", True, 1.0), (1, "ok", "openai", "key-1", True, 0.0)],
         then=[(0, "ok", "openai", "key-1", False, 0.0)])  # one part's cost goes unknown
def test_a_series_cost_never_goes_down_and_stays_unknown(first: list[Op],
                                                          then: list[Op]) -> None:
    models = [Metrics(), Metrics(), Metrics()]
    clock = [0.0]
    _apply(models, first, clock)
    before = {(s.provider, s.credential_id): s for s in snapshot_models(models).series}
    _apply(models, then, clock)
    after = {(s.provider, s.credential_id): s for s in snapshot_models(models).series}
    for key, old in before.items():
        new = after[key]
        if old.cost is None and old.successes:
            assert new.cost is None, key  # unknown stays unknown
        elif old.cost is not None and new.cost is not None:
            assert new.cost >= old.cost - 1e-9, key


def test_the_rules_on_a_small_example() -> None:
    first, second = Metrics(), Metrics()
    for m, latency in ((first, 0.2), (second, 0.4)):
        m.started("openai")
        m.finished("openai", "gpt", "key-1", latency=latency, cost=0.5)
        m.target("primary").started()
        m.target("primary").succeeded(latency, None)
        m.router("chat").started()
    second.started("openai")
    second.failed("openai", "gpt", "key-2", error_type="ServerError")  # priced nothing
    second.started("openai")  # still in flight
    snap = snapshot_models([first, second, first])
    gpt = snap.by(credential_id="key-1")
    assert (gpt.successes, gpt.cost, gpt.latency.count) == (2, 1.0, 2)
    assert (gpt.latency.min, gpt.latency.max) == (0.2, 0.4)
    assert snap.by(credential_id="key-2").cost is None  # nothing priced, not unknown
    assert snap.totals.cost == 1.0
    assert snap.in_flight == {"openai": 1}
    assert snap.targets["primary"]["successes"] == 2
    assert snap.targets["primary"]["ewma_latency"] == 0.4  # the last model's reading
    assert snap.routers["chat"].requests == 2
    third = Metrics()
    third.finished("openai", "gpt", "key-1", latency=0.1, cost=None)  # no price: unknown
    assert snapshot_models([first, third]).by(credential_id="key-1").cost is None
    assert snapshot_models([first, third]).totals.cost is None


def test_each_model_is_read_once() -> None:
    class Counting(Metrics):
        reads = 0

        def snapshot(self) -> MetricsSnapshot:
            self.reads += 1
            return super().snapshot()

    model = Counting()
    model.finished("openai", "gpt", "key-1", latency=0.1)
    assert snapshot_models([model, model, model]).successes == 1
    assert model.reads == 1


def test_histograms_with_other_buckets_name_the_series_and_the_fix() -> None:
    model = Metrics()
    model.finished("openai", "gpt", "key-1", latency=0.1)
    odd = SeriesSnapshot(provider="openai", model="gpt", credential_id="key-1", requests=1,
                         successes=1, latency=Distribution(count=1, sum=0.1, min=0.1, max=0.1,
                                                           bucket_counts=(1, 0),
                                                           bucket_sums=(0.1, 0.0)))
    with pytest.raises(MetricsMergeError) as caught:
        merge_snapshots([model.snapshot(), MetricsSnapshot(series=(odd,))])
    message = str(caught.value)
    assert "model='gpt'" in message and "key-1" in message
    assert "LATENCY_BOUNDS" in message and f"{len(LATENCY_BOUNDS) + 1} and 2 buckets" in message
    assert isinstance(caught.value, ConfigurationError)


def test_what_is_not_a_snapshot_or_a_model_names_the_fix() -> None:
    with pytest.raises(ConfigurationError, match="snapshot_models"):
        merge_snapshots([Metrics()])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="metrics_model"):
        snapshot_models([Metrics().snapshot()])  # type: ignore[list-item]
