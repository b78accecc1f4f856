"""Client-side token buckets and limiters, with an injected clock (no sleeping)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipk.limits import ClientLimits, Limiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_starts_full_then_spaces_requests_evenly() -> None:
    clock = Clock()
    bucket = TokenBucket(15, 60.0, clock)  # Gemini's free tier: 15 requests per minute
    assert [bucket.reserve() for _ in range(15)] == [0.0] * 15
    waits = [bucket.reserve() for _ in range(3)]
    assert waits == pytest.approx([4.0, 8.0, 12.0])  # one every 4 s, queued in arrival order
    clock.now += 12.0
    assert bucket.reserve() == pytest.approx(4.0)


def test_refund_returns_capacity() -> None:
    clock = Clock()
    bucket = TokenBucket(1, 10.0, clock)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(10.0)
    bucket.refund()
    assert bucket.reserve() == pytest.approx(10.0)
    assert bucket.available() == 0.0


def test_bucket_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0, 60.0)
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(5, -1.0)


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 100), steps=st.lists(st.floats(0, 30), max_size=40))
def test_bucket_never_admits_more_than_its_rate(capacity: int, steps: list[float]) -> None:
    clock = Clock()
    bucket = TokenBucket(capacity, 60.0, clock)
    start = clock.now
    admitted_by: list[float] = []
    for step in steps:
        clock.now += step
        admitted_by.append(clock.now + bucket.reserve())
    for i, moment in enumerate(sorted(admitted_by)):
        # by time t, at most capacity + rate * (t - start) requests may have gone
        assert i + 1 <= capacity + (moment - start) * capacity / 60.0 + 1e-6


def test_limiter_combines_requests_tokens_and_daily_limits() -> None:
    clock = Clock()
    limiter = Limiter(ClientLimits(requests_per_minute=60, tokens_per_minute=1000,
                                   requests_per_day=2), clock)
    assert limiter.reserve(tokens=900) == 0.0
    assert limiter.reserve(tokens=200) == pytest.approx(6.0)  # 100 tokens short at 1000/min
    assert limiter.reserve(tokens=0) == pytest.approx(86400 / 2)  # then the daily limit
    limiter.update(ClientLimits(tokens_per_minute=1000))
    assert limiter.limits.requests_per_day is None
    assert limiter.reserve(tokens=600) == 0.0
    assert limiter.reserve(tokens=600) == pytest.approx(12.0)  # 200 short at 1000/min


def test_limits_from_plugin_options_ignore_nonsense() -> None:
    limits = ClientLimits.from_options({"requests_per_minute": 15, "tokens_per_minute": "x",
                                        "requests_per_day": -5})
    assert limits == ClientLimits(requests_per_minute=15.0)
    assert limits.enabled
    assert not ClientLimits.from_options({}).enabled


def test_reserve_is_thread_safe() -> None:
    clock = Clock()
    bucket = TokenBucket(1000, 60.0, clock)
    waits: list[float] = []

    def worker() -> None:
        for _ in range(250):
            waits.append(bucket.reserve())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(w == 0.0 for w in waits) == 1000  # exactly the capacity went at once
    assert max(waits) == pytest.approx(1000 * 60 / 1000)
