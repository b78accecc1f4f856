"""The circuit breaker: transitions on an injected clock, a single half-open probe under
threads, state in the store, and a property test of its invariants."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipk.router import BreakerPolicy, BreakerState, CircuitBreaker
from aipk.state import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


POLICY = BreakerPolicy(failure_threshold=3, open_duration=10.0, probe_timeout=20.0)


def make() -> tuple[CircuitBreaker, Clock, MemoryStore]:
    clock = Clock()
    store = MemoryStore(clock=clock)
    return CircuitBreaker(POLICY, store=store, clock=clock), clock, store


def test_opens_after_threshold_consecutive_failures_and_success_resets() -> None:
    breaker, _, store = make()
    breaker.record_failure("t")
    breaker.record_failure("t")
    breaker.record_success("t")  # resets the count
    assert breaker.state("t") == BreakerState() and len(store) == 0
    for _ in range(2):
        breaker.record_failure("t")
        assert breaker.mode("t") == "closed" and breaker.allow("t")
    breaker.record_failure("t")
    assert breaker.mode("t") == "open" and not breaker.allow("t")
    assert breaker.available_at("t") == 1010.0
    assert breaker.state("other") == BreakerState()  # keys are independent
    assert store.get(CircuitBreaker.NAMESPACE, "t").mode == "open"


def test_half_open_lets_one_probe_through_then_closes_on_success() -> None:
    breaker, clock, _ = make()
    for _ in range(3):
        breaker.record_failure("t")
    clock.now += 9.9
    assert not breaker.allow("t")
    clock.now += 0.1
    assert breaker.mode("t") == "half_open"
    assert breaker.allow("t")  # the probe
    assert not breaker.allow("t") and not breaker.allow("t")  # everyone else waits
    breaker.record_success("t")
    assert breaker.mode("t") == "closed" and breaker.allow("t") and breaker.allow("t")


def test_failed_probe_reopens_for_a_full_period() -> None:
    breaker, clock, _ = make()
    for _ in range(3):
        breaker.record_failure("t")
    clock.now += 10.0
    assert breaker.allow("t")
    clock.now += 1.0
    breaker.record_failure("t")
    assert breaker.mode("t") == "open" and breaker.available_at("t") == 1021.0
    clock.now += 9.0
    assert not breaker.allow("t")
    clock.now += 1.0
    assert breaker.allow("t")


def test_a_lost_probe_frees_its_slot_after_probe_timeout_or_release() -> None:
    breaker, clock, _ = make()
    for _ in range(3):
        breaker.record_failure("t")
    clock.now += 10.0
    assert breaker.allow("t")
    clock.now += 19.9
    assert not breaker.allow("t")
    clock.now += 0.1
    assert breaker.allow("t")  # the first probe never reported; a new one may go
    breaker.release("t")  # that caller gave up without a verdict
    assert breaker.allow("t") and not breaker.allow("t")


def test_exactly_one_probe_among_racing_threads() -> None:
    breaker, clock, _ = make()
    for _ in range(3):
        breaker.record_failure("t")
    clock.now += 10.0
    barrier = threading.Barrier(16)
    granted: list[bool] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait()
        ok = breaker.allow("t")
        with lock:
            granted.append(ok)

    threads = [threading.Thread(target=race) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert granted.count(True) == 1 and len(granted) == 16


def test_policy_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="open_duration"):
        BreakerPolicy(open_duration=0)
    with pytest.raises(ValueError, match="failure_threshold"):
        BreakerPolicy(failure_threshold=0)


EVENTS = st.lists(st.one_of(
    st.just(("success", 0.0)), st.just(("failure", 0.0)), st.just(("allow", 0.0)),
    st.just(("release", 0.0)),
    st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=40.0)),
), max_size=80)


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_breaker_invariants_hold_for_any_sequence(events: list[tuple[str, float]]) -> None:
    breaker, clock, store = make()
    probe_granted_at: float | None = None  # the live probe, per our own bookkeeping
    for kind, amount in events:
        before = breaker.state("t")
        if kind == "advance":
            clock.now += amount
        elif kind == "success":
            breaker.record_success("t")
            assert breaker.state("t") == BreakerState()
            probe_granted_at = None
        elif kind == "failure":
            breaker.record_failure("t")
            after = breaker.state("t")
            if before.mode == "closed" and before.failures + 1 < POLICY.failure_threshold:
                assert after == BreakerState(failures=before.failures + 1)
            elif before.mode in ("closed", "half_open"):
                assert after.mode == "open" and after.opened_at == clock.now
                probe_granted_at = None
            else:
                assert after == before
        elif kind == "release":
            breaker.release("t")
            if before.mode == "half_open":
                assert breaker.state("t").probe_at is None
                probe_granted_at = None
        else:
            ok = breaker.allow("t")
            after = breaker.state("t")
            if before.mode == "closed":
                assert ok
            elif before.mode == "open":
                assert ok == (clock.now >= before.opened_at + POLICY.open_duration)
                if ok:
                    assert after.mode == "half_open" and after.probe_at == clock.now
                    probe_granted_at = clock.now
            else:
                # half-open: a second probe only when none is live or the live one timed out
                live = probe_granted_at is not None and (
                    clock.now < probe_granted_at + POLICY.probe_timeout)
                assert ok == (not live)
                if ok:
                    probe_granted_at = clock.now
        st_ = breaker.state("t")
        assert st_.mode in ("closed", "open", "half_open")
        assert 0 <= st_.failures < POLICY.failure_threshold
        assert (st_.mode == "half_open") or st_.probe_at is None
        if st_.mode != "closed":
            assert st_.failures == 0
        assert len(store) <= 1  # one key, and nothing at all while closed and clean
        if st_ == BreakerState():
            assert len(store) == 0
