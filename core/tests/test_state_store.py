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
from aipk.state import BucketStore, MemoryStore, StateStore, take_from_bucket


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


# -- token buckets in the store (BucketStore) -------------------------------------------------


def test_memory_store_books_buckets_like_a_token_bucket() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    assert isinstance(store, BucketStore)
    rpm = [("rpm", 3.0, 60.0, 1.0)]
    assert [store.reserve("lim", "k", rpm) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert store.reserve("lim", "k", rpm) == pytest.approx(20.0)  # one refills every 20 s
    store.refund("lim", "k", rpm)
    assert store.reserve("lim", "k", rpm) == pytest.approx(20.0)
    assert store.reserve("lim", "other", rpm) == 0.0  # keys have their own buckets
    clock.now += 40.0
    assert store.reserve("lim", "k", rpm) == pytest.approx(0.0)
    both = [("rpm", 10.0, 60.0, 1.0), ("tpm", 100.0, 60.0, 90.0)]
    assert store.reserve("lim", "t", both) == 0.0
    assert store.reserve("lim", "t", both) == pytest.approx(80 * 0.6)  # tokens wait longest


def test_an_idle_bucket_entry_expires_once_full_again() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    store.reserve("lim", "k", [("rpm", 2.0, 60.0, 1.0)])
    assert len(store) == 1
    clock.now += 30.01
    assert len(store) == 0  # full again after 30 s: nothing worth keeping


@given(st.lists(st.tuples(st.floats(0, 30), st.floats(0.1, 5)), max_size=40))
@settings(max_examples=60, deadline=None)
def test_bucket_booking_never_lets_more_through_than_capacity_plus_refill(
        steps: list[tuple[float, float]]) -> None:
    capacity, period = 5.0, 10.0
    level: float | None = None
    stamp = now = 0.0
    admitted = 0.0
    for advance, amount in steps:
        now += advance
        level, stamp, wait = take_from_bucket(level, stamp, now, capacity, period, amount)
        if wait == 0.0:
            admitted += amount
        else:
            level, stamp, _ = take_from_bucket(level, stamp, now, capacity, period, -amount)
        assert admitted <= capacity + now * capacity / period + 1e-9


def test_limiters_sharing_a_store_share_one_budget_per_key() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    limits = ClientLimits(requests_per_minute=2)
    first = Limiter(limits, store=store, scope="openai")
    second = Limiter(limits, store=store, scope="openai")
    assert first.reserve(0, "key-a") == 0.0
    assert second.reserve(0, "key-a") == 0.0
    assert first.reserve(0, "key-a") == pytest.approx(30.0)  # the pair spent the budget
    first.refund(0, "key-a")
    assert second.reserve(0, "key-b") == 0.0  # another key, another budget
    assert Limiter(limits, store=store, scope="gemini").reserve(0, "key-a") == 0.0
