"""Client-side limits (sliding windows), with an injected clock (no sleeping)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipk.limits import ClientLimits, Limiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_window_lets_the_limit_through_then_waits_for_the_first_to_age() -> None:
    clock = Clock()
    limiter = Limiter(ClientLimits(requests_per_minute=15), clock)  # Gemini's free tier
    assert [limiter.reserve() for _ in range(15)] == [0.0] * 15
    waits = [limiter.reserve() for _ in range(3)]
    assert waits == pytest.approx([60.0, 60.0, 60.0])  # never 16 in any minute
    clock.now += 59.0
    assert limiter.reserve() == pytest.approx(1.0)
    assert limiter.reserve(max_wait=0.5) == pytest.approx(1.0)  # refused: nothing booked


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 30), steps=st.lists(st.floats(0, 30), max_size=60))
def test_a_limiter_never_admits_more_than_its_limit_in_any_minute(capacity: int,
                                                                  steps: list[float]) -> None:
    clock = Clock()
    limiter = Limiter(ClientLimits(requests_per_minute=capacity), clock)
    admitted: list[float] = []
    for step in steps:
        clock.now += step
        admitted.append(clock.now + limiter.reserve())
    admitted.sort()
    for i in range(len(admitted) - capacity):
        assert admitted[i + capacity] - admitted[i] >= 60.0 - 1e-9


def test_limiter_combines_requests_tokens_and_daily_limits() -> None:
    clock = Clock()
    limiter = Limiter(ClientLimits(requests_per_minute=60, tokens_per_minute=1000,
                                   requests_per_day=2), clock)
    assert limiter.reserve(tokens=900) == 0.0
    assert limiter.reserve(tokens=200) == pytest.approx(60.0)  # 1100 tokens in one minute: no
    # then the daily limit (2): the two went within one group (a 32nd of a day), which counts
    # until a day after its last
    assert limiter.reserve(tokens=0) == pytest.approx(86400 + 60)
    limiter.update(ClientLimits(tokens_per_minute=1000))  # what was booked still counts
    assert limiter.limits.requests_per_day is None
    assert limiter.reserve(tokens=600) == pytest.approx(60.0)  # beside the 200, after the 900
    assert limiter.reserve(tokens=600) == pytest.approx(120.0)  # 1400 in that minute: no


def test_limits_from_plugin_options_ignore_nonsense() -> None:
    limits = ClientLimits.from_options({"requests_per_minute": 15, "tokens_per_minute": "x",
                                        "requests_per_day": -5})
    assert limits == ClientLimits(requests_per_minute=15.0)
    assert limits.enabled
    assert not ClientLimits.from_options({}).enabled


def test_reserve_is_thread_safe() -> None:
    clock = Clock()
    limiter = Limiter(ClientLimits(requests_per_minute=1000), clock)
    waits: list[float] = []

    def worker() -> None:
        for _ in range(250):
            waits.append(limiter.reserve())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(w == 0.0 for w in waits) == 1000  # exactly the limit went at once
    assert max(waits) == pytest.approx(60.0)  # the rest in the next minute
