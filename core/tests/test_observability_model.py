"""The metrics model without I/O: the bounded histogram's percentiles, the snapshots' JSON,
and feeding a model from observer records."""

from __future__ import annotations

import json
import math
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipk import ChatRequest, ChatResponse, Message, MetricsMergeError, Usage
from aipk.observability import (
    LATENCY_BOUNDS,
    CallFailed,
    CallFinished,
    CallRetried,
    CallStarted,
    Distribution,
    Metrics,
)
from aipk.observability._histogram import Histogram, cumulative, percentile

OTEL_DURATION_BOUNDS = [0.01 * 2 ** i for i in range(14)]


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


@given(st.lists(st.floats(min_value=1e-4, max_value=300.0), min_size=1, max_size=300),
       st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0]))
def test_percentile_is_within_one_bucket_of_the_exact_value(values: list[float],
                                                             q: float) -> None:
    h = Histogram()
    for v in values:
        h.add(v)
    got = percentile(h.counts, h.sums, h.count, q)
    want = _exact(values, q)
    assert got is not None
    assert want / 2 ** (1 / 8) * (1 - 1e-9) <= got <= want * 2 ** (1 / 8) * (1 + 1e-9)


@given(st.lists(st.sampled_from([0.001, 0.125, 0.5, 1.0, 7.25]), min_size=1, max_size=200))
def test_percentile_is_exact_when_a_buckets_values_are_equal(values: list[float]) -> None:
    h = Histogram()
    for v in values:
        h.add(v)
    for q in (0.5, 0.95, 0.99):  # exact up to the float rounding of the bucket's sum
        assert percentile(h.counts, h.sums, h.count, q) == pytest.approx(_exact(values, q),
                                                                         rel=1e-12)


@given(st.lists(st.floats(min_value=0.0, max_value=1000.0), max_size=200))
def test_cumulative_counts_are_exact_on_the_otel_boundaries(values: list[float]) -> None:
    h = Histogram()
    for v in values:
        h.add(v)
    got = cumulative(h.counts, OTEL_DURATION_BOUNDS)
    assert got == [sum(1 for v in values if v <= b) for b in OTEL_DURATION_BOUNDS]


def test_memory_is_flat_however_many_values() -> None:
    h = Histogram()
    size = sys.getsizeof(h.counts) + sys.getsizeof(h.sums)
    for i in range(100_000):
        h.add((i % 977) / 100.0)
    assert sys.getsizeof(h.counts) + sys.getsizeof(h.sums) == size
    assert h.count == 100_000 and len(LATENCY_BOUNDS) == 201


def test_values_outside_the_bounds_land_in_the_end_buckets() -> None:
    h = Histogram()
    for v in (-1.0, 0.0, 1e-9, 10_000.0):
        h.add(v)
    assert h.counts[0] == 3 and h.counts[-1] == 1 and h.min == 0.0 and h.max == 10_000.0
    assert percentile(h.counts, h.sums, h.count, 1.0) == 10_000.0


def test_empty_distribution() -> None:
    d = Distribution()
    assert (d.count, d.mean, d.p50, d.quantile(0.9)) == (0, None, None, None)
    assert d.cumulative([0.1, 1.0]) == [0, 0]


def test_distributions_merge_bucket_wise_and_refuse_other_buckets() -> None:
    a, b = Histogram(), Histogram()
    for value in (0.2, 0.3):
        a.add(value)
    b.add(0.05)
    one = Distribution.of(a.counts, a.sums, a.count, a.sum, a.min, a.max)
    other = Distribution.of(b.counts, b.sums, b.count, b.sum, b.min, b.max)
    both = one.merge(other)
    assert (both.count, both.min, both.max) == (3, 0.05, 0.3)
    assert both.sum == pytest.approx(0.55)
    assert both.bucket_counts == tuple(x + y for x, y in zip(a.counts, b.counts, strict=True))
    assert one.merge(Distribution()) is one and Distribution().merge(one) is one
    odd = Distribution(count=1, sum=0.1, min=0.1, max=0.1, bucket_counts=(1,),
                       bucket_sums=(0.1,))
    with pytest.raises(MetricsMergeError, match=r"LATENCY_BOUNDS\) \+ 1 bucket_counts"):
        one.merge(odd)


def _request() -> ChatRequest:
    return ChatRequest(model="m", messages=[Message.user("hi")])


def test_a_model_fed_by_observer_records() -> None:
    metrics = Metrics()
    response = ChatResponse(provider="p", model="m", message=Message.assistant("ok"))
    usage = Usage(input_tokens=10, output_tokens=5, reasoning_tokens=2, cache_read_tokens=4)
    metrics.observe(CallStarted(call_id=1, provider="p", model="m", stream=False,
                                base_url="http://127.0.0.1", request=_request(),
                                started_at=0.0))
    assert metrics.snapshot().in_flight == {"p": 1}
    metrics.observe(CallRetried(call_id=1, provider="p", model="m", credential_id="k1",
                                attempt=1, wait=0.5, error_type="ServerError",
                                request_id=None))
    metrics.observe(CallFinished(call_id=1, provider="p", model="m", credential_id="k1",
                                 stream=False, latency=0.5, time_to_first_token=None,
                                 attempts=2, usage=usage, cost=0.25, response=response))
    metrics.observe(CallStarted(call_id=2, provider="p", model="m", stream=False,
                                base_url="http://127.0.0.1", request=_request(),
                                started_at=0.0))
    metrics.observe(CallFailed(call_id=2, provider="p", model="m", credential_id="k2",
                               stream=False, latency=0.1, attempts=1,
                               error_type="BadRequestError", error=ValueError("x")))
    snap = metrics.snapshot()
    assert snap.in_flight == {"p": 0}
    k1, k2 = snap.series
    assert (k1.credential_id, k1.successes, k1.retries, k1.cost) == ("k1", 1, 1, 0.25)
    assert (k1.input_tokens, k1.output_tokens, k1.reasoning_tokens,
            k1.cache_read_tokens) == (10, 5, 2, 4)
    assert (k2.credential_id, k2.failures, k2.errors, k2.cost) == (
        "k2", 1, {"BadRequestError": 1}, None)
    assert snap.cost == 0.25 and snap.requests == 2
    assert json.loads(snap.to_json())["totals"]["errors"] == {"BadRequestError": 1}
    metrics.reset()
    assert metrics.snapshot().series == ()


def test_unpriced_calls_make_the_cost_unknown() -> None:
    metrics = Metrics()
    metrics.started("p")
    metrics.finished("p", "m", "k", latency=0.1, cost=1.0)
    metrics.started("p")
    metrics.finished("p", "m", "k", latency=0.1, cost=None)
    assert metrics.snapshot().cost is None


def test_router_totals_are_exact_under_threads_and_keyed_by_name() -> None:
    import threading

    from aipk.observability import Metrics, RouterTotals

    model = Metrics()

    def calls() -> None:
        totals = model.router("chat")
        for i in range(500):
            totals.started()
            (totals.succeeded, totals.failed, totals.was_cancelled)[i % 3]()
        totals.wait(0.5)

    threads = [threading.Thread(target=calls) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    model.router("other").started()
    snap = model.snapshot()
    assert snap.routers["chat"] == RouterTotals(name="chat", requests=2000, successes=668,
                                                errors=668, cancelled=664, waits=4, waited=2.0)
    assert snap.routers["other"] == RouterTotals(name="other", requests=1)
    assert list(json.loads(snap.to_json())["routers"]) == ["chat", "other"]
    assert Metrics().snapshot().to_dict()["routers"] == {}


def _reference_add(values: list[float]) -> tuple[list[int], list[float], int, float, float,
                                                 float]:
    """The histogram's buckets as adding each value at once makes them (the plain
    reference `Histogram.fold()` must match)."""
    from bisect import bisect_left

    counts, sums = [0] * (len(LATENCY_BOUNDS) + 1), [0.0] * (len(LATENCY_BOUNDS) + 1)
    total, low, high = 0.0, math.inf, 0.0
    for value in values:
        value = max(value, 0.0)
        i = bisect_left(LATENCY_BOUNDS, value)
        counts[i] += 1
        sums[i] += value
        total += value
        low, high = min(low, value), max(high, value)
    return counts, sums, len(values), total, low, high


_values = st.lists(st.one_of(
    st.floats(min_value=-1.0, max_value=1e6, allow_nan=False),
    st.sampled_from(LATENCY_BOUNDS),  # exactly on a bucket's bound
    st.sampled_from([math.inf, 0.0])), max_size=700)


@given(_values, st.integers(min_value=1, max_value=700))
def test_folding_pending_values_matches_adding_each_at_once(values: list[float],
                                                            read_every: int) -> None:
    h = Histogram()
    for n, value in enumerate(values, 1):
        h.add(value)
        if n % read_every == 0:
            assert h.count == n  # a read folds what is pending
    counts, sums, count, total, low, high = _reference_add(values)
    assert (h.counts, h.count, h.min, h.max) == (counts, count, low, high)
    assert h.sum == pytest.approx(total, rel=1e-12, abs=1e-300)
    assert h.sums == pytest.approx(sums, rel=1e-12, abs=1e-300)
    assert not h.pending


def test_a_nan_is_counted_as_adding_it_at_once_would() -> None:
    h = Histogram()
    for value in (0.5, math.nan, 0.25):
        h.add(value)
    assert h.counts[0] == 1 and h.count == 3 and math.isnan(h.sum)
