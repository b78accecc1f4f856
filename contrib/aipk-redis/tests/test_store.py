"""RedisStore on a real redis-server: values, TTLs, atomic updates across stores and threads,
client-side limits, and the state aipk keeps (rate limits, key health, breakers) shared between
clients that only share the server."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

import aipk
from aipk._breaker import BreakerPolicy, CircuitBreaker
from aipk._ratelimit import RateLimitState, RateLimitWindow
from aipk.credentials import KeyPool
from aipk.credentials._health import HealthState
from aipk.errors import ConfigurationError
from aipk.limits import ClientLimits
from aipk.state import BucketStore, StateStore
from aipk_redis import RedisStore
from aipk_redis._codec import decode, encode
from aipk_testkit.emulator import Emulator


def _store(server: Any, namespace: str, **options: Any) -> RedisStore:
    return RedisStore.from_url(server.url, namespace=namespace, **options)


def _keys(client: redis.Redis, namespace: str) -> list[bytes]:
    return list(client.scan_iter(f"aipk:{namespace}:*"))


def test_values_round_trip_under_the_namespace_and_every_key_has_a_ttl(
        redis_server: Any, redis_client: redis.Redis, namespace: str) -> None:
    store = _store(redis_server, namespace)
    assert isinstance(store, StateStore) and isinstance(store, BucketStore)
    state = RateLimitState(requests=RateLimitWindow(limit=10, remaining=3, reset_at=5.0),
                           not_before=7.5, observed_at=1.0)
    store.set("aipk.ratelimit", "openai\x1fk\x1fm", state)
    store.set("router.cooldown", "a", 12.5, ttl=30)
    store.update("credentials.health", "openai/k", lambda old: HealthState(failures=2))
    store.reserve("aipk.limits", "openai/k", [("rpm", 5.0, 60.0, 1.0)])
    other = _store(redis_server, namespace, read_cache=0)
    assert other.get("aipk.ratelimit", "openai\x1fk\x1fm") == state
    assert other.get("router.cooldown", "a") == 12.5
    assert other.get("credentials.health", "openai/k") == HealthState(failures=2)
    assert _store(redis_server, namespace + "x").get("router.cooldown", "a") is None
    keys = _keys(redis_client, namespace)
    assert len(keys) == 4
    assert all(0 < redis_client.pttl(k) <= 86_400_000 for k in keys)
    assert 0 < redis_client.pttl(f"aipk:{namespace}:v:router.cooldown:a") <= 30_000
    other.delete("router.cooldown", "a")
    assert other.get("router.cooldown", "a") is None


def test_updates_are_atomic_across_stores_and_threads(redis_server: Any, namespace: str) -> None:
    stores = [_store(redis_server, namespace) for _ in range(2)]

    def bump(store: RedisStore) -> None:
        for _ in range(40):
            store.update("n", "counter", lambda old: (old or 0) + 1)

    threads = [threading.Thread(target=bump, args=(s,)) for s in stores for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _store(redis_server, namespace).get("n", "counter") == 240


def test_an_update_returning_none_deletes_and_returning_old_writes_nothing(
        redis_server: Any, redis_client: redis.Redis, namespace: str) -> None:
    store = _store(redis_server, namespace)
    store.set("n", "k", 1.5, ttl=100)
    assert store.update("n", "k", lambda old: old, ttl=5) == 1.5
    assert redis_client.pttl(f"aipk:{namespace}:v:n:k") > 5_000  # untouched, TTL too
    assert store.update("n", "k", lambda old: None) is None
    assert _keys(redis_client, namespace) == []


def test_values_that_cannot_be_shared_are_refused_and_foreign_ones_read_as_absent(
        redis_server: Any, redis_client: redis.Redis, namespace: str) -> None:
    store = _store(redis_server, namespace, read_cache=0)
    with pytest.raises(ConfigurationError, match="serialisable"):
        store.set("n", "k", object())
    for raw in (b"\x80garbage", b'{"@": "os:system"}', b'{"@": "aipk.state:nothing"}'):
        redis_client.set(f"aipk:{namespace}:v:n:k", raw)
        assert store.get("n", "k") is None
    with pytest.raises(ConfigurationError, match="namespace"):
        RedisStore(redis_client, namespace="has space")
    with pytest.raises(ConfigurationError, match="redis://"):
        RedisStore.from_url("http://localhost:6379")


windows = st.builds(RateLimitWindow, limit=st.none() | st.integers(0, 10**9),
                    remaining=st.none() | st.integers(0, 10**9),
                    reset_at=st.none() | st.floats(0, 1e10))


@given(st.builds(RateLimitState, requests=st.none() | windows, tokens=st.none() | windows,
                 not_before=st.none() | st.floats(0, 1e10),
                 credits_remaining=st.none() | st.floats(-1e6, 1e6),
                 observed_at=st.floats(0, 1e10)),
       st.tuples(st.integers(), st.text(), st.none()))
@settings(max_examples=80, deadline=None)
def test_the_codec_round_trips_aipk_records_and_plain_values(state: RateLimitState,
                                                             plain: tuple[Any, ...]) -> None:
    assert decode(encode(state)) == state
    assert decode(encode(plain)) == plain
    assert decode(encode({"a": [plain]})) == {"a": [plain]}


def test_limits_are_booked_on_the_server(redis_server: Any, namespace: str) -> None:
    first, second = _store(redis_server, namespace), _store(redis_server, namespace)
    rpm = [("rpm", 3.0, 60.0, 1.0)]
    assert [first.reserve("lim", "k", rpm), second.reserve("lim", "k", rpm),
            first.reserve("lim", "k", rpm)] == [0.0, 0.0, 0.0]
    assert second.reserve("lim", "k", rpm, max_wait=5.0) == pytest.approx(60.0, abs=0.1)
    assert first.reserve("lim", "k", rpm) == pytest.approx(60.0, abs=0.1)  # refused: no trace
    tokens = [("rpm", 10.0, 60.0, 1.0), ("tpm", 100.0, 60.0, 90.0)]
    assert first.reserve("lim", "t", tokens) == 0.0
    assert second.reserve("lim", "t", tokens) == pytest.approx(60.0, abs=0.1)


@given(capacity=st.integers(1, 8), period=st.sampled_from([1000.0, 60000.0]),
       steps=st.lists(st.tuples(st.integers(0, 20_000), st.integers(1, 8),
                                st.sampled_from([500.0, 1e12]), st.booleans()),
                      max_size=40))
@settings(max_examples=60, deadline=None)
def test_the_script_books_exactly_like_aipk_state(redis_server: Any, capacity: int,
                                                  period: float,
                                                  steps: list[tuple[int, int, float, bool]]
                                                  ) -> None:
    """The Lua script is aipk.state's window_slot/window_book line by line: fed the same
    times (ms) it answers the same waits, for one limit or two booked together."""
    import uuid

    from aipk.state import window_book, window_slot

    store = _store(redis_server, "diff" + uuid.uuid4().hex[:8])
    key = f"{store.prefix}b:lim:k"
    logs: dict[str, list[float]] = {"a": [], "b": []}
    now = 1.7e12
    try:
        for advance, amount, patience, both in steps:
            now += advance
            limits = [("a", float(capacity), period, float(amount))]
            if both:
                limits.append(("b", float(capacity + 2), period * 2, 1.0))
            args: list[Any] = [repr(patience), repr(now)]
            for name, cap, per, amt in limits:
                args += (name, repr(cap), repr(per), repr(amt))
            answer = float(store._scripts.reserve(keys=[key], args=args))
            slot = now
            for name, cap, per, amt in limits:
                slot = max(slot, window_slot(logs[name], now, cap, per, min(amt, cap)))
            assert answer == slot - now
            if slot - now <= patience:
                for name, cap, per, amt in limits:
                    window_book(logs[name], slot, per, min(amt, cap))
    finally:
        store.client.close()


def test_clients_share_rate_limit_state_and_limits(redis_server: Any, namespace: str,
                                                   aipk_emulator: Emulator) -> None:
    aipk_emulator.set_rate_limit(requests=100, tokens=100_000)
    url = aipk_emulator.url("openai")
    one, two = (aipk.Client("openai", api_key="sk-a", base_url=url,
                            store=_store(redis_server, namespace, read_cache=0),
                            limits=ClientLimits(requests_per_minute=2),
                            retry=aipk.RetryPolicy(max_retries=0, max_retry_after=1))
                for _ in range(2))
    one.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
    assert one._engine.tracker.store.flush()  # type: ignore[attr-defined]  # written behind
    seen = two.rate_limits("gpt-4o-mini", one.credentials.credential.id)  # type: ignore[attr-defined]
    assert seen is not None and seen.requests is not None and seen.requests.remaining == 99
    two.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
    with pytest.raises(aipk.RateLimitError) as refused:  # the two spent the shared 2/minute
        one.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
    assert refused.value.retry_after == pytest.approx(60.0, abs=0.5)  # 2 in any minute
    assert len(aipk_emulator.requests) == 2


def test_key_health_is_shared_between_pools(redis_server: Any, namespace: str) -> None:
    keys = {"a": "sk-a", "b": "sk-b"}
    one, two = (KeyPool.from_keys("openai", keys,
                                  state=_store(redis_server, namespace, read_cache=0))
                for _ in range(2))
    one.report_failure("a", 429)
    assert all(two.acquire().id == "b" for _ in range(4))  # the other process skips "a"


def test_breakers_sharing_a_store_see_one_state(redis_server: Any, namespace: str) -> None:
    policy = BreakerPolicy(failure_threshold=2, open_duration=30.0)
    one, two = (CircuitBreaker(policy, store=_store(redis_server, namespace, read_cache=0))
                for _ in range(2))
    one.record_failure("target")
    two.record_failure("target")
    assert one.mode("target") == "open" and not two.allow("target")


def test_async_clients_book_the_shared_limit_without_blocking(redis_server: Any, namespace: str,
                                                              aipk_emulator: Emulator) -> None:
    import asyncio

    from aipk.transports import AiohttpTransport

    store = _store(redis_server, namespace)
    limits = ClientLimits(requests_per_minute=3)
    policy = aipk.RetryPolicy(max_retries=0, max_retry_after=1)
    url = aipk_emulator.url("openai")
    sync = aipk.Client("openai", api_key="sk-a", base_url=url, store=store, limits=limits,
                       retry=policy)
    sync.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])

    async def main() -> list[object]:
        client = aipk.AsyncClient("openai", api_key="sk-a", base_url=url, store=store,
                                  limits=limits, retry=policy, transport=AiohttpTransport())
        assert client._engine.limiter.asynchronous
        try:
            return await asyncio.gather(
                *(client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
                  for _ in range(4)), return_exceptions=True)
        finally:
            await client.close()

    outcomes = asyncio.run(main())
    refused = [o for o in outcomes if isinstance(o, aipk.RateLimitError)]
    assert len(refused) == 2 and all(o.retry_after and o.retry_after > 1 for o in refused)
    assert len(aipk_emulator.requests) == 3  # one sync + two async: the shared 3 per minute
    assert store.fallbacks == 0


def test_rate_limit_state_is_written_behind_in_order_and_merged_with_redis(
        redis_server: Any, namespace: str) -> None:
    writer = _store(redis_server, namespace)
    other = _store(redis_server, namespace, read_cache=0)
    other.set("aipk.ratelimit", "k", RateLimitState(not_before=50.0, observed_at=1.0))
    for remaining in (9, 8, 7):
        merged = writer.update("aipk.ratelimit", "k", lambda old, r=remaining: (
            RateLimitState(requests=RateLimitWindow(limit=10, remaining=r, reset_at=9.0),
                           observed_at=2.0) if old is None else old.merge(
                RateLimitState(requests=RateLimitWindow(limit=10, remaining=r, reset_at=9.0),
                               observed_at=2.0))))
        assert merged.requests.remaining == remaining  # this process sees it at once
    assert writer.flush()
    stored = other.get("aipk.ratelimit", "k")
    assert stored.requests.remaining == 7 and stored.not_before == 50.0  # merged with Redis's
    writer.close()


def test_a_config_file_selects_the_redis_store(redis_server: Any, namespace: str,
                                               aipk_emulator: Emulator) -> None:
    from aipk.config import parse_config

    aipk_emulator.set_rate_limit(requests=100, tokens=100_000)
    config = parse_config(
        f'state = {{ backend = "redis", url = "{redis_server.url}", namespace = "{namespace}", '
        f'read_cache = 0 }}\n'
        f'[providers.openai]\napi_key = "sk-a"\nbase_url = "{aipk_emulator.url("openai")}"\n'
        f'limits = {{ requests_per_minute = 2 }}\n')
    store = config.store()
    assert isinstance(store, RedisStore) and config.store() is store  # one per config
    one, two = (aipk.Client.from_config("openai", config=config,
                                        retry=aipk.RetryPolicy(max_retries=0,
                                                               max_retry_after=1))
                for _ in range(2))
    one.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
    two.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
    with pytest.raises(aipk.RateLimitError):  # the two clients spent the shared 2/minute
        one.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
    assert len(aipk_emulator.requests) == 2


@given(st.lists(st.text() | st.binary(), max_size=12))
@settings(max_examples=100, deadline=None)
def test_commands_are_packed_as_redis_py_packs_them(args: list[str | bytes]) -> None:
    """The batcher's own RESP packing (cached per booking) matches redis-py's byte for byte."""
    from redis.asyncio.connection import Connection

    from aipk_redis._batch import pack

    # (redis-py splits its first argument, the command's name, at spaces: ours have none)
    assert pack("EVALSHA", *args) == b"".join(Connection().pack_command("EVALSHA", *args))
