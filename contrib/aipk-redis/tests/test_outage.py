"""Redis stopped and restarted while requests run: every call goes on (no exception that is not
an AipkError, retries still save what they would have saved), the outage is logged once and
counted, and shared state resumes when the server is back."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
import redis

import aipk
from aipk.credentials import OAuthClient, OAuthCredential, OAuthEndpoints, OAuthManager
from aipk.limits import ClientLimits
from aipk_redis import RedisStore, RedisTokenStore
from aipk_testkit.emulator import Emulator, Fault
from aipk_testkit.emulator._oauth import oauth_server


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "aipk.redis" and r.levelno == logging.WARNING]


def test_requests_go_on_while_redis_is_down_and_sharing_resumes(
        own_redis_server: Any, namespace: str, aipk_emulator: Emulator,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aipk.redis")
    store = RedisStore.from_url(own_redis_server.url, namespace=namespace, retry_interval=0.1,
                                read_cache=0)
    client = aipk.Client("openai", api_key="sk-a", base_url=aipk_emulator.url("openai"),
                         store=store, limits=ClientLimits(requests_per_minute=100_000),
                         retry=aipk.RetryPolicy(max_retries=2, initial_delay=0.01, jitter=0))
    aipk_emulator.set_rate_limit(requests=100_000, tokens=10**9)
    done = threading.Event()
    errors: list[BaseException] = []
    served = [0]

    def run() -> None:
        while not done.is_set():
            try:
                client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
                served[0] += 1
            except BaseException as exc:
                errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        time.sleep(0.3)
        own_redis_server.stop()
        time.sleep(0.2)
        aipk_emulator.enqueue(Fault.status(503), Fault.status(502))  # saved by retries
        before_restart = served[0]
        time.sleep(0.4)
        assert not store.shared and store.outages == 1
        own_redis_server.start()
        time.sleep(0.5)
    finally:
        done.set()
        worker.join(10)
    assert errors == []
    assert served[0] > before_restart > 0
    assert store.outages == 1 and store.fallbacks > 0 and store.shared
    assert len(_warnings(caplog)) == 1  # once per outage, however many calls
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    back = redis.Redis.from_url(own_redis_server.url)
    assert back.exists(f"aipk:{namespace}:b:aipk.limits:openai/{client.credentials.credential.id}")  # type: ignore[attr-defined]
    back.close()


def test_a_store_pointing_nowhere_still_serves_every_call(namespace: str,
                                                          aipk_emulator: Emulator) -> None:
    store = RedisStore.from_url("redis://127.0.0.1:9/0", namespace=namespace)
    client = aipk.Client("openai", api_key="sk-a", base_url=aipk_emulator.url("openai"),
                         store=store, limits=ClientLimits(requests_per_minute=2),
                         retry=aipk.RetryPolicy(max_retries=0, max_retry_after=1))
    for _ in range(2):
        client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
    with pytest.raises(aipk.RateLimitError):  # the limit still holds, in this process
        client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
    assert store.outages == 1 and not store.shared
    half = RedisStore.from_url("redis://127.0.0.1:9/0", namespace=namespace, outage_share=0.5)
    rpm = [("rpm", 4.0, 60.0, 1.0)]
    assert [half.reserve("l", "k", rpm) > 0 for _ in range(3)] == [False, False, True]


def test_an_oauth_refresh_still_happens_while_redis_is_down(
        own_redis_server: Any, namespace: str, aipk_emulator: Emulator) -> None:
    handler = oauth_server(aipk_emulator)
    handler.reset()
    issued = handler.issue(expires_in=3600)
    store = RedisTokenStore.from_url(own_redis_server.url, namespace=namespace, timeout=0.2)
    store.save(OAuthCredential(id="acct", access_token=issued["access_token"],
                               refresh_token=issued["refresh_token"],
                               expires_at=time.time() - 60))
    client = OAuthClient(OAuthEndpoints(provider="openai", client_id="cli",
                                        token_url=f"{aipk_emulator.base_url}/oauth/token"))
    manager = OAuthManager.from_store("openai", store, refresh=client.refresh)
    own_redis_server.stop()
    fresh = manager.token("acct")
    assert fresh.access_token.reveal() != issued["access_token"]
    assert handler.grants["refresh_token"] == 1 and store.outages == 1
    assert manager.token("acct") == fresh  # no second refresh


def test_an_async_client_never_calls_redis_from_its_event_loop(
        own_redis_server: Any, namespace: str, aipk_emulator: Emulator) -> None:
    """Key failures, rate-limit headers, stale reads and a Redis restart in the middle: the
    store's blocking client is never used on the event loop's thread (bookings go through
    redis.asyncio, state reads and writes through the store's background thread)."""
    import asyncio

    from aipk.transports import AiohttpTransport

    store = RedisStore.from_url(own_redis_server.url, namespace=namespace, retry_interval=0.05,
                                read_cache=0)
    pool = store.client.connection_pool
    used_from: list[int] = []
    get_connection = pool.get_connection

    def recording_get_connection(*args: Any, **kwargs: Any) -> Any:
        used_from.append(threading.get_ident())
        return get_connection(*args, **kwargs)

    pool.get_connection = recording_get_connection  # type: ignore[method-assign]
    aipk_emulator.set_rate_limit(requests=100_000, tokens=10**9)
    aipk_emulator.fail_key("sk-bad", Fault.status(429, retry_after=1))
    loop_threads: list[int] = []
    outcomes: list[object] = []

    async def main() -> None:
        loop_threads.append(threading.get_ident())
        transport = AiohttpTransport()
        client = aipk.AsyncClient("openai", api_key=["sk-bad", "sk-good"],
                                  base_url=aipk_emulator.url("openai"), store=store,
                                  limits=ClientLimits(requests_per_minute=100_000),
                                  retry=aipk.RetryPolicy(max_retries=2, initial_delay=0.01,
                                                         jitter=0),
                                  transport=transport)
        try:
            for round_ in range(6):
                if round_ == 2:
                    own_redis_server.stop()
                if round_ == 4:
                    own_redis_server.start()
                    await asyncio.sleep(0.1)
                outcomes.extend(await asyncio.gather(
                    *(client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("hi")])
                      for _ in range(5)), return_exceptions=True))
                await asyncio.sleep(0.06)
        finally:
            await client.close()
            await transport.close()

    try:
        asyncio.run(main())
    finally:
        aipk_emulator.fail_key("sk-bad", None)
    assert store.flush()
    assert all(not isinstance(o, BaseException) for o in outcomes), outcomes
    assert len(outcomes) == 30
    assert used_from, "the store never wrote (the test would prove nothing)"
    assert loop_threads[0] not in used_from
    assert store.outages == 1 and store.shared
    # after the restart, the rate-limit state from headers reached Redis again
    assert list(store.client.scan_iter(f"aipk:{namespace}:v:aipk.ratelimit:*"))
    store.close()
