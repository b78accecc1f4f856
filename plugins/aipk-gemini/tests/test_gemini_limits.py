"""The client-side token bucket, driven by an injected clock (nothing sleeps)."""

from __future__ import annotations

import threading

import pytest

from aipk_gemini import GEMINI, TokenBucket, limiter_for
from aipk_gemini.limits import DEFAULT_REQUESTS_PER_MINUTE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_default_is_the_free_tier_and_starts_full() -> None:
    clock = Clock()
    bucket = TokenBucket(clock=clock)
    assert DEFAULT_REQUESTS_PER_MINUTE == 15
    assert (bucket.requests_per_minute, bucket.burst) == (15, 15)
    assert [bucket.try_acquire() for _ in range(15)] == [0.0] * 15
    assert bucket.try_acquire() == pytest.approx(4.0)  # one token every 60/15 s
    assert bucket.available() == pytest.approx(0.0)


def test_refill_over_time_and_wait_time_takes_nothing() -> None:
    clock = Clock()
    bucket = TokenBucket(60, burst=2, clock=clock)
    assert bucket.try_acquire(2) == 0.0
    assert bucket.wait_time() == pytest.approx(1.0)
    assert bucket.wait_time() == pytest.approx(1.0)  # asking twice takes nothing
    clock.now += 0.5
    assert bucket.try_acquire() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.try_acquire() == 0.0
    clock.now += 100
    assert bucket.available() == 2  # capped at burst


def test_set_rate_changes_tier_at_run_time() -> None:
    clock = Clock()
    bucket = TokenBucket(clock=clock)
    for _ in range(15):
        bucket.try_acquire()
    bucket.set_rate(360)
    assert (bucket.requests_per_minute, bucket.burst) == (360, 360)
    assert bucket.available() == pytest.approx(0.0)  # earned tokens kept, not refilled
    clock.now += 1
    assert bucket.available() == pytest.approx(6.0)
    bucket.set_rate(6, burst=2)
    assert bucket.available() == 2  # clamped to the new burst
    assert bucket.try_acquire(2) == 0.0
    assert bucket.wait_time() == pytest.approx(10.0)


def test_clock_going_backwards_adds_nothing() -> None:
    clock = Clock()
    bucket = TokenBucket(60, burst=1, clock=clock)
    assert bucket.try_acquire() == 0.0
    clock.now -= 50
    assert bucket.try_acquire() == pytest.approx(1.0)
    clock.now += 1
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
