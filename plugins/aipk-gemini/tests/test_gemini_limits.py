"""The deprecated stand-alone limiter follows the core's sliding-window rule (at most N in any
window), driven by an injected clock (nothing sleeps); the clients enforce the plugin's default
through the core's limits."""

from __future__ import annotations

import threading
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aipk
from aipk.limits import ClientLimits, Limiter
from aipk_gemini import GEMINI, TokenBucket, limiter_for
from aipk_gemini.limits import DEFAULT_REQUESTS_PER_MINUTE
from aipk_testkit.emulator import Emulator

pytestmark = pytest.mark.filterwarnings("ignore:aipk_gemini.TokenBucket:DeprecationWarning")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_gemini_client_allows_15_in_any_minute_by_itself(aipk_emulator: Emulator) -> None:
    sleeps: list[float] = []
    with aipk.Client("gemini", base_url=aipk_emulator.url("gemini"), api_key="AIza-k",
                     sleep=sleeps.append) as client:
        assert client.limits.requests_per_minute == DEFAULT_REQUESTS_PER_MINUTE
        for _ in range(15):
            client.chat(model="gemini-2.5-flash", messages=[aipk.Message.user("hi")])
        assert sleeps == []  # a burst of 15 goes at once
        client.chat(model="gemini-2.5-flash", messages=[aipk.Message.user("hi")])
        assert len(sleeps) == 1 and 59.0 < sleeps[0] <= 60.0  # then the window is full
    assert len(aipk_emulator.requests) == 16


def test_bucket_and_limiter_for_are_deprecated_naming_the_core_limiter() -> None:
    with pytest.warns(DeprecationWarning, match=r"aipk\.limits\.Limiter") as caught:
        TokenBucket()
    assert caught[0].filename == __file__  # points at the caller
    with warnings.catch_warnings(record=True) as caught_list:
        warnings.simplefilter("always")
        limiter_for({})
    assert len(caught_list) == 1 and caught_list[0].filename == __file__
    assert "client.set_limits" in str(caught_list[0].message)


def test_default_is_the_free_tier_as_a_sliding_window() -> None:
    clock = Clock()
    bucket = TokenBucket(clock=clock)
    assert DEFAULT_REQUESTS_PER_MINUTE == 15 == GEMINI.options["requests_per_minute"]
    assert (bucket.requests_per_minute, bucket.burst) == (15, 15)
    assert [bucket.try_acquire() for _ in range(15)] == [0.0] * 15
    # no refill mid-window: the 16th waits until the first is a minute old
    assert bucket.try_acquire() == pytest.approx(60.0)
    assert bucket.available() == pytest.approx(0.0)
    clock.now += 59.9
    assert bucket.try_acquire() == pytest.approx(0.1)
    clock.now += 0.1
    assert bucket.available() == 15
    assert bucket.try_acquire() == 0.0


def test_the_same_rule_as_the_core_limiter() -> None:
    clock = Clock()
    bucket = TokenBucket(15, clock=clock)
    core = Limiter(ClientLimits(requests_per_minute=15), clock)
    for step in [0.0, 1.0, 3.5, 10.0, 0.0, 20.0, 30.0, 0.5, 59.0, 2.0] * 3:
        clock.now += step
        mine, theirs = bucket.try_acquire(), core.reserve(max_wait=0)
        assert mine == pytest.approx(theirs)


def test_burst_over_a_shorter_window_and_wait_time_takes_nothing() -> None:
    clock = Clock()
    bucket = TokenBucket(60, burst=2, clock=clock)  # at most 2 in any 2 s
    assert bucket.try_acquire(2) == 0.0
    assert bucket.wait_time() == pytest.approx(2.0)
    assert bucket.wait_time() == pytest.approx(2.0)  # asking twice takes nothing
    clock.now += 0.5
    assert bucket.try_acquire() == pytest.approx(1.5)
    clock.now += 1.5
    assert bucket.try_acquire() == 0.0
    clock.now += 100
    assert bucket.available() == 2  # never above burst


def test_set_rate_changes_tier_at_run_time() -> None:
    clock = Clock()
    bucket = TokenBucket(clock=clock)
    for _ in range(15):
        bucket.try_acquire()
    bucket.set_rate(360)
    assert (bucket.requests_per_minute, bucket.burst) == (360, 360)
    assert bucket.available() == pytest.approx(345.0)  # what was taken still counts
    bucket.set_rate(6, burst=2)
    assert bucket.available() == 0  # 15 taken in this 20 s window, above the new burst
    clock.now += 20
    assert bucket.try_acquire(2) == 0.0
    assert bucket.wait_time() == pytest.approx(20.0)


def test_clock_going_backwards_grants_nothing_extra() -> None:
    clock = Clock()
    bucket = TokenBucket(60, burst=1, clock=clock)
    assert bucket.try_acquire() == 0.0
    clock.now -= 50
    assert bucket.try_acquire() > 0.0
    clock.now += 51
    assert bucket.try_acquire() == 0.0


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan")])
def test_invalid_settings_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="requests_per_minute"):
        TokenBucket(bad)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(10, burst=bad)
    bucket = TokenBucket(10)
    with pytest.raises(ValueError, match="cost"):
        bucket.try_acquire(bad)
    with pytest.raises(ValueError, match="requests_per_minute"):
        bucket.set_rate(bad)


def test_cost_above_burst_could_never_succeed() -> None:
    with pytest.raises(ValueError, match="never"):
        TokenBucket(10, burst=3).wait_time(4)


@settings(max_examples=60, deadline=None)
@given(rpm=st.integers(1, 30),
       gaps=st.lists(st.floats(0.0, 20.0, allow_nan=False), min_size=1, max_size=80))
def test_no_window_ever_holds_more_than_the_limit(rpm: int, gaps: list[float]) -> None:
    clock = Clock()
    bucket = TokenBucket(rpm, clock=clock)
    granted: list[float] = []
    for gap in gaps:
        clock.now += gap
        if bucket.try_acquire() == 0.0:
            granted.append(clock.now)
    for i, start in enumerate(granted):
        assert sum(1 for t in granted[i:] if t < start + 60.0) <= rpm


def test_threads_never_overdraw() -> None:
    clock = Clock()
    bucket = TokenBucket(100, clock=clock)
    granted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = sum(1 for _ in range(50) if bucket.try_acquire() == 0.0)
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 100


def test_limiter_for_reads_provider_options() -> None:
    clock = Clock()
    bucket = limiter_for(GEMINI.options, clock=clock)
    assert bucket.requests_per_minute == 15
    custom = limiter_for({"requests_per_minute": "360", "burst": "10"}, clock=clock)
    assert (custom.requests_per_minute, custom.burst) == (360, 10)
    assert repr(custom) == "TokenBucket(requests_per_minute=360, burst=10)"
