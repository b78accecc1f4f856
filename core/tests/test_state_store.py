"""The state store: get/set/update/delete, TTL expiry on an injected clock, bounded size,
atomic updates under threads, the rate-limit tracker on top of it, and token buckets booked
in the store (shared client-side limits)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipk._ratelimit import RateLimitState, RateLimitTracker, RateLimitWindow
from aipk.limits import ClientLimits, Limiter
from aipk.state import (
    WINDOW_GROUPS,
    BucketStore,
    MemoryStore,
    StateStore,
    window_book,
    window_slot,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_memory_store_satisfies_the_protocol_and_namespaces_are_separate() -> None:
    store = MemoryStore()
    assert isinstance(store, StateStore)
    store.set("a", "k", 1)
    store.set("b", "k", 2)
    assert (store.get("a", "k"), store.get("b", "k"), store.get("c", "k")) == (1, 2, None)
    store.delete("a", "k")
    store.delete("a", "missing")  # no error
    assert store.get("a", "k") is None and store.get("b", "k") == 2
    assert len(store) == 1


def test_ttl_expiry_follows_the_injected_clock() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    store.set("ns", "short", "x", ttl=5.0)
    store.set("ns", "forever", "y")
    clock.now += 4.999
    assert store.get("ns", "short") == "x"
    clock.now += 0.001
    assert store.get("ns", "short") is None
    assert store.get("ns", "forever") == "y"
    assert len(store) == 1


def test_update_is_read_modify_write_and_none_deletes() -> None:
    store = MemoryStore()
    assert store.update("ns", "n", lambda old: (old or 0) + 1) == 1
    assert store.update("ns", "n", lambda old: (old or 0) + 1) == 2
    seen: list[object] = []

    def drop(old: int | None) -> int | None:
        seen.append(old)
        return None

    assert store.update("ns", "n", drop) is None
    assert seen == [2] and store.get("ns", "n") is None and len(store) == 0


def test_update_sees_an_expired_value_as_absent() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    store.set("ns", "k", 41, ttl=1.0)
    clock.now += 2.0
    assert store.update("ns", "k", lambda old: -1 if old is None else old + 1) == -1


def test_returning_the_same_object_keeps_the_entry_and_its_expiry() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    value = ("until", 130.0)
    store.set("ns", "k", value, ttl=30.0)
    clock.now += 10.0
    assert store.update("ns", "k", lambda old: old, ttl=1.0) is value
    clock.now += 5.0  # past the 1 s a rewrite would have set; the original 30 s still holds
    assert store.get("ns", "k") is value
    clock.now += 15.0
    assert store.get("ns", "k") is None


def test_store_is_bounded_by_max_entries_dropping_the_least_recently_written() -> None:
    store = MemoryStore(max_entries=3)
    for key in "abcd":
        store.set("ns", key, key)
    assert len(store) == 3 and store.get("ns", "a") is None
    store.update("ns", "b", lambda old: "b2")  # rewriting b makes c the oldest
    store.set("ns", "e", "e")
    assert store.get("ns", "c") is None
    assert [store.get("ns", k) for k in "bde"] == ["b2", "d", "e"]
    with pytest.raises(ValueError, match="max_entries"):
        MemoryStore(max_entries=0)


def test_rewriting_one_key_with_ttls_keeps_the_expiry_heap_bounded() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    for i in range(10_000):
        store.set("ns", "hot", i, ttl=3600.0)
    assert store.get("ns", "hot") == 9_999
    assert len(store._heap) <= 2 * len(store._data) + 65
    clock.now += 3600.0
    store.set("ns", "other", 0)  # a write purges what expired
    assert len(store._data) == 1 and store._heap == []


def test_updates_are_atomic_across_threads() -> None:
    store = MemoryStore()
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(2_000):
            store.update("ns", "count", lambda old: (old or 0) + 1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("ns", "count") == 16_000


OPS = st.lists(
    st.tuples(st.sampled_from(["set", "update", "delete", "advance"]),
              st.sampled_from(["a", "b", "c"]),
              st.one_of(st.none(), st.floats(min_value=0.1, max_value=50.0))),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_store_matches_a_reference_model_of_expiry(
        ops: list[tuple[str, str, float | None]]) -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    model: dict[str, tuple[int, float | None]] = {}  # key -> (value, expires_at)
    for counter, (op, key, amount) in enumerate(ops, 1):
        if op == "advance":
            clock.now += amount or 1.0
        elif op == "set":
            store.set("ns", key, counter, ttl=amount)
            model[key] = (counter, None if amount is None else clock.now + amount)
        elif op == "update":
            store.update("ns", key, lambda old, c=counter: c, ttl=amount)
            model[key] = (counter, None if amount is None else clock.now + amount)
        else:
            store.delete("ns", key)
            model.pop(key, None)
        live = {k: v for k, (v, exp) in model.items() if exp is None or exp > clock.now}
        for k in "abc":
            assert store.get("ns", k) == live.get(k)
        assert len(store) == len(live)
        assert len(store._heap) <= 2 * len(store._data) + 64


# --- the rate-limit tracker on the store --------------------------------------------------------


def test_tracker_keeps_its_states_in_the_given_store() -> None:
    store = MemoryStore()
    tracker = RateLimitTracker(store)
    key = ("openai", "api_key", "gpt-4o")
    first = RateLimitState(requests=RateLimitWindow(limit=10, remaining=3))
    tracker.update(key, first)
    merged = tracker.update(key, RateLimitState(tokens=RateLimitWindow(limit=100, remaining=5)))
    assert merged.requests == first.requests and merged.tokens is not None
    assert store.get(RateLimitTracker.NAMESPACE, "openai\x1fapi_key\x1fgpt-4o") == merged
    assert tracker.store is store and len(store) == 1
    # two trackers over one store share what they learn
    other = RateLimitTracker(store)
    assert other.get(key) == merged
    assert RateLimitTracker().get(key) is None  # the default store is private


def test_tracker_waits_for_states_other_writers_put_in_the_store() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    tracker = RateLimitTracker(store)
    key = ("openai", "api_key", "gpt-4o")
    name = "openai\x1fapi_key\x1fgpt-4o"
    assert tracker.wait_time(key, 1000.0) == 0.0  # nothing known
    tracker.update(key, RateLimitState(observed_at=999.0))
    assert tracker.wait_time(key, 1000.0) == 0.0
    # another tracker (another client, or another process through a shared store) wrote it
    store.set(RateLimitTracker.NAMESPACE, name, RateLimitState(not_before=1030.0))
    assert tracker.wait_time(key, 1000.0) == 30.0
    # a state that expires counts until it does
    store.set(RateLimitTracker.NAMESPACE, name, RateLimitState(not_before=1020.0), ttl=5.0)
    assert tracker.wait_time(key, 1000.0) == 20.0
    clock.now += 5.0
    assert tracker.wait_time(key, 1000.0) == 0.0
    store.set(RateLimitTracker.NAMESPACE, name, "not a state")
    assert tracker.wait_time(key, 1000.0) == 0.0


def test_rewriting_a_key_trims_a_store_whose_max_entries_was_lowered() -> None:
    store = MemoryStore(max_entries=4)
    for key in "abcd":
        store.set("ns", key, key)
    store.max_entries = 2
    store.update("ns", "c", lambda old: "c2")  # the write trims the least recently written
    assert [store.get("ns", k) for k in "abcd"] == [None, None, "c2", "d"]
    assert len(store) == 2


# -- client-side limits in the store (BucketStore): sliding windows ---------------------------


def test_memory_store_books_sliding_windows() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    assert isinstance(store, BucketStore)
    rpm = [("rpm", 3.0, 60.0, 1.0)]
    assert [store.reserve("lim", "k", rpm) for _ in range(3)] == [0.0, 0.0, 0.0]
    # the fourth waits until the first is a minute old, not a third of a minute
    assert store.reserve("lim", "k", rpm) == pytest.approx(60.0)
    assert store.reserve("lim", "k", rpm, max_wait=10.0) == pytest.approx(60.0)  # refused...
    assert store.reserve("lim", "k", rpm) == pytest.approx(60.0)  # ...so it booked nothing
    assert store.reserve("lim", "other", rpm) == 0.0  # keys have their own windows
    clock.now += 60.0
    assert store.reserve("lim", "k", rpm) == pytest.approx(0.0)  # queued behind the two
    both = [("rpm", 10.0, 60.0, 1.0), ("tpm", 100.0, 60.0, 90.0)]
    assert store.reserve("lim", "t", both) == 0.0
    assert store.reserve("lim", "t", both) == pytest.approx(60.0)  # tokens wait longest


def test_an_idle_window_expires_once_nothing_in_it_counts() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    store.reserve("lim", "k", [("rpm", 2.0, 60.0, 1.0)])
    assert len(store) == 1
    clock.now += 59.9
    assert len(store) == 1
    clock.now += 0.2
    assert len(store) == 0


def _assert_no_window_holds_more(booked: list[tuple[float, float]], capacity: float,
                                 period: float) -> None:
    """``booked`` is (moment, amount): no half-open window of ``period`` holds more than
    ``capacity`` (it suffices to check the windows starting at a booking). Moments are the
    caller's ``now + wait``, a float rounding away from the booked slot: 1e-6 s is allowed."""
    booked.sort()
    for i, (start, _) in enumerate(booked):
        inside = sum(amount for moment, amount in booked[i:]
                     if moment < start + period - 1e-6)
        assert inside <= capacity + 1e-6, (start, inside, booked)


@given(capacity=st.integers(1, 8), period=st.sampled_from([1.0, 10.0, 60.0]),
       steps=st.lists(st.tuples(st.floats(0, 20), st.integers(1, 8),
                                st.sampled_from([0.5, 5.0, 1e9])), max_size=60))
@settings(max_examples=150, deadline=None)
def test_no_window_of_one_period_ever_admits_more_than_the_limit(
        capacity: int, period: float, steps: list[tuple[float, int, float]]) -> None:
    """Arrivals at any moments, asking any amounts, giving up after any wait: what is booked
    (at the moment each caller is told to go) never exceeds the limit in any window."""
    clock = Clock()
    store = MemoryStore(clock=clock)
    booked: list[tuple[float, float]] = []
    for advance, amount, patience in steps:
        clock.now += advance
        wait = store.reserve("lim", "k", [("x", float(capacity), period, float(amount))],
                             max_wait=patience)
        assert wait >= 0.0
        if wait <= patience:
            booked.append((clock.now + wait, float(min(amount, capacity))))
    _assert_no_window_holds_more(booked, capacity, period)


def test_a_busy_window_still_lets_the_limit_through_each_period() -> None:
    """The groups that keep the state small cost little: with far more demand than the limit
    (one caller every 0.5 s, each waiting as told), 10 per minute still go each minute, less
    at most 1/WINDOW_GROUPS of it."""
    clock = Clock()
    store = MemoryStore(clock=clock)
    start, last = clock.now, 0.0
    for _ in range(1200):
        last = clock.now + store.reserve("lim", "k", [("rpm", 10.0, 60.0, 1.0)])
        clock.now += 0.5
    exact = 119 * 60.0  # an exact log sends the 1200th at the start of minute 120
    assert exact <= last - start <= exact * (1 + 1 / WINDOW_GROUPS) + 1e-6


def test_window_state_stays_small_however_many_requests_it_counts() -> None:
    log: list[float] = []
    for i in range(10_000):
        slot = window_slot(log, i * 0.01, 100_000.0, 60.0, 1.0)
        window_book(log, slot, 60.0, 1.0)
    assert len(log) <= 2 * (WINDOW_GROUPS + 1) + 1


def test_limiters_sharing_a_store_share_one_budget_per_key() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    limits = ClientLimits(requests_per_minute=2)
    first = Limiter(limits, store=store, scope="openai")
    second = Limiter(limits, store=store, scope="openai")
    assert first.reserve(0, "key-a") == 0.0
    assert second.reserve(0, "key-a") == 0.0
    assert first.reserve(0, "key-a") == pytest.approx(60.0)  # the pair spent the budget
    assert second.reserve(0, "key-b") == 0.0  # another key, another budget
    assert Limiter(limits, store=store, scope="gemini").reserve(0, "key-a") == 0.0
