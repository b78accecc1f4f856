"""Key pools: round-robin selection, backoff, probes, exhaustion, failover, metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipk import Credential, Secret
from aipk.credentials import (
    BackoffPolicy,
    CredentialPool,
    KeyPool,
    KeysExhaustedError,
    SingleCredential,
    acall_with_failover,
    call_with_failover,
)
from aipk.errors import (
    AuthenticationError,
    AuthErrorCode,
    BadRequestError,
    ConfigurationError,
    MissingCredentialError,
    NetworkError,
    RateLimitError,
    ServerError,
)

KEYS = ["sk-alpha-000111", "sk-bravo-222333", "sk-charlie-444555"]
NO_JITTER = BackoffPolicy(jitter=0.0)


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_pool(clock: Clock, keys: list[str] = KEYS, **kw: object) -> KeyPool:
    return KeyPool.from_keys("openai", keys, backoff=kw.pop("backoff", NO_JITTER),
                             clock=clock, **kw)


def server_error() -> ServerError:
    return ServerError("boom", provider="openai", status=503)


def test_round_robin_over_healthy_keys() -> None:
    pool = make_pool(Clock())
    picks = [pool.acquire().id for _ in range(6)]
    assert picks == ["key-1", "key-2", "key-3"] * 2
    assert pool.get("key-2").secret == Secret(KEYS[1])


def test_keys_in_backoff_are_skipped_until_the_backoff_ends() -> None:
    clock = Clock()
    pool = make_pool(clock)
    assert pool.report_failure("key-1", server_error()) is True
    assert {pool.acquire().id for _ in range(10)} == {"key-2", "key-3"}
    clock.now += 1.0  # the first backoff is 1 s
    assert "key-1" in {pool.acquire().id for _ in range(3)}


def test_400_and_422_never_put_a_key_in_backoff() -> None:
    pool = make_pool(Clock(), keys=KEYS[:1])
    for status in (400, 422):
        error = BadRequestError("bad", provider="openai", status=status)
        assert pool.report_failure("key-1", error) is False
    assert pool.acquire().id == "key-1"
    info = pool.health("key-1")
    assert info.consecutive_failures == 0
    assert pool.metrics.get("key-1").snapshot().errors == 2  # still counted as requests


def test_unhealthy_key_gets_exactly_one_probe_and_heals_on_success() -> None:
    clock = Clock()
    pool = make_pool(clock, keys=KEYS[:2])
    for _ in range(3):
        pool.report_failure("key-1", server_error())
        clock.now += 10.0
    assert not pool.health("key-1").healthy
    clock.now += 60.0
    picks = Counter(pool.acquire().id for _ in range(6))
    assert picks["key-1"] == 1  # one probe; the others go elsewhere meanwhile
    pool.report_success("key-1", latency=0.2, tokens=10)
    info = pool.health("key-1")
    assert info.healthy
    assert info.consecutive_failures == 0
    assert Counter(pool.acquire().id for _ in range(4)) == {"key-1": 2, "key-2": 2}


def test_failed_probe_backs_off_longer() -> None:
    clock = Clock()
    pool = make_pool(clock, keys=KEYS[:1])
    for _ in range(3):
        pool.report_failure("key-1", server_error())
    clock.now += 4.0
    assert pool.acquire().id == "key-1"  # the probe
    pool.report_failure("key-1", server_error())
    assert pool.health("key-1").backoff_remaining == 8.0


def test_retry_after_of_a_429_sets_the_backoff() -> None:
    clock = Clock()
    pool = make_pool(clock, keys=KEYS[:2])
    pool.report_failure("key-1", RateLimitError("slow down", provider="openai",
                                                retry_after=42.0))
    assert pool.health("key-1").backoff_remaining == 42.0
    assert pool.next_available_in() == 0.0
    assert pool.next_available_in(exclude={"key-2"}) == 42.0


def test_all_keys_exhausted_says_when_the_earliest_is_back() -> None:
    clock = Clock()
    pool = make_pool(clock)
    pool.report_failure("key-1", RateLimitError("x", provider="openai", retry_after=30.0))
    pool.report_failure("key-2", server_error())
    pool.report_failure("key-3", RateLimitError("x", provider="openai", retry_after=5.0))
    with pytest.raises(KeysExhaustedError) as info:
        pool.acquire()
    error = info.value
    assert isinstance(error, AuthenticationError)
    assert error.auth_code is AuthErrorCode.ALL_KEYS_EXHAUSTED
    assert error.retryable
    assert error.retry_after == 1.0
    assert error.details["credential"] == "key-2"
    text = str(error)
    assert "'key-2'" in text
    assert "1.0s" in text
    assert "HTTP 429" in text
    assert "HTTP 0" not in text
    assert not any(key in text or key in repr(error) for key in KEYS)


def test_exhausted_by_401s_says_to_check_the_keys() -> None:
    pool = make_pool(Clock(), keys=KEYS[:2])
    for cid in ("key-1", "key-2"):
        pool.report_failure(cid, AuthenticationError("no", provider="openai", status=401))
    with pytest.raises(KeysExhaustedError, match="check that the keys are valid"):
        pool.acquire()


def test_exclude_skips_keys_already_tried() -> None:
    pool = make_pool(Clock())
    assert pool.acquire(exclude={"key-1", "key-2"}).id == "key-3"
    with pytest.raises(KeysExhaustedError, match="already tried"):
        pool.acquire(exclude=set(pool.ids))
    pool.report_failure("key-3", RateLimitError("x", provider="openai", retry_after=8.0))
    with pytest.raises(KeysExhaustedError) as info:
        pool.acquire(exclude={"key-1", "key-2"})
    assert info.value.retry_after == 8.0  # the wait of a key this request may still use
    assert info.value.details["credential"] == "key-3"


def test_empty_pool() -> None:
    pool = make_pool(Clock(), keys=KEYS[:1])
    pool.remove("key-1")
    with pytest.raises(KeysExhaustedError, match="empty") as info:
        pool.acquire()
    assert info.value.retry_after is None


def test_add_and_remove_keys_at_run_time() -> None:
    pool = make_pool(Clock(), keys=KEYS[:1])
    pool.add(Credential(kind="api_key", secret=Secret("sk-new-999"), id="new"))
    assert {pool.acquire().id for _ in range(4)} == {"key-1", "new"}
    pool.remove("key-1")
    assert {pool.acquire().id for _ in range(4)} == {"new"}
    with pytest.raises(ConfigurationError):
        pool.add(Credential(kind="api_key", secret=Secret("x"), id="new"))


def test_from_keys_drops_blanks_and_duplicates_and_accepts_ids() -> None:
    pool = KeyPool.from_keys("openai", ["sk-a", " ", "sk-a", Secret("sk-b")])
    assert pool.ids == ("key-1", "key-4")
    named = KeyPool.from_keys("openai", {"prod": "sk-a", "backup": "sk-b"})
    assert named.ids == ("prod", "backup")
    with pytest.raises(ConfigurationError):
        KeyPool.from_keys("openai", ["", " "])
    with pytest.raises(ConfigurationError, match="twice"):
        CredentialPool("openai", [named.get("prod"), named.get("prod")])


def test_from_env_splits_a_comma_list() -> None:
    env = {"OPENAI_API_KEY": "sk-one, sk-two,,sk-three"}
    pool = KeyPool.from_env("openai", "OPENAI_API_KEY", environ=env)
    assert pool.ids == ("OPENAI_API_KEY#1", "OPENAI_API_KEY#2", "OPENAI_API_KEY#3")
    assert pool.get("OPENAI_API_KEY#3").secret == Secret("sk-three")
    single = KeyPool.from_env("gemini", ["GEMINI_API_KEY", "GOOGLE_API_KEY"],
                              environ={"GOOGLE_API_KEY": "g-1"})
    assert single.ids == ("GOOGLE_API_KEY",)
    with pytest.raises(MissingCredentialError, match="OPENAI_API_KEY"):
        KeyPool.from_env("openai", "OPENAI_API_KEY", environ={})


def test_no_secret_in_reprs_logs_or_exports(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aipk.credentials")
    clock = Clock()
    pool = make_pool(clock)
    for cid in pool.ids:
        for _ in range(3):
            pool.report_failure(cid, server_error())
    with pytest.raises(KeysExhaustedError) as info:
        pool.acquire()
    pool.report_success("key-1")
    outputs = [repr(pool), repr(list(pool)), caplog.text, str(info.value), repr(info.value),
               pool.export_json(), pool.export_prometheus(), repr(pool.health_all())]
    assert "unhealthy" in caplog.text
    for text in outputs:
        assert not any(key in text for key in KEYS), text


def test_metrics_json_and_prometheus() -> None:
    clock = Clock(1_700_000_000.0)
    pool = make_pool(clock, keys=KEYS[:2])
    pool.report_success("key-1", latency=0.1, tokens=100)
    clock.now += 10
    pool.report_success("key-1", latency=0.3, tokens=50)
    pool.report_failure("key-2", server_error(), latency=0.5)
    pool.add_tokens("key-1", 7)
    data = json.loads(pool.export_json())
    assert data["provider"] == "openai"
    one = data["credentials"]["key-1"]
    assert one["request_count"] == 2
    assert one["success_count"] == 2
    assert one["tokens_used"] == 157
    assert one["average_latency_ms"] == pytest.approx(200.0)
    assert one["success_rate"] == 1.0
    assert one["first_used"] == "2023-11-14T22:13:20Z"
    assert one["healthy"] is True
    two = data["credentials"]["key-2"]
    assert two["error_count"] == 1
    assert two["consecutive_failures"] == 1
    assert two["last_error"] == "HTTP 503"
    text = pool.export_prometheus()
    assert "# TYPE aipk_credential_requests_total counter" in text
    assert 'aipk_credential_requests_total{provider="openai",credential="key-1"} 2' in text
    assert 'aipk_credential_tokens_total{provider="openai",credential="key-1"} 157' in text
    assert 'aipk_credential_latency_seconds_sum{provider="openai",credential="key-2"} 0.5' in text
    assert 'aipk_credential_healthy{provider="openai",credential="key-2"} 1' in text
    assert 'aipk_credential_available{provider="openai",credential="key-2"} 0' in text
    for line in text.splitlines():
        assert line.startswith("#") or line.count(" ") == 1, line
    summary = pool.health_summary()
    assert (summary.total, summary.healthy, summary.available, summary.in_backoff) == (2, 2, 1, 1)
    assert summary.success_rate == pytest.approx(2 / 3)


def test_prometheus_escapes_label_values() -> None:
    pool = KeyPool.from_keys('we"ird\\', {'id"\n': "sk-x"})
    pool.report_success('id"\n')
    assert 'provider="we\\"ird\\\\",credential="id\\"\\n"' in pool.export_prometheus()


@settings(max_examples=120, deadline=None)
@given(st.integers(min_value=1, max_value=5), st.lists(st.tuples(
    st.sampled_from(["fail", "ok", "429", "tick", "acquire"]),
    st.integers(min_value=0, max_value=4)), max_size=60))
def test_selection_never_picks_a_key_in_backoff(n: int, ops: list[tuple[str, int]]) -> None:
    clock = Clock()
    pool = make_pool(clock, keys=[f"sk-{i:04d}" for i in range(n)],
                     backoff=BackoffPolicy(jitter=0.5))
    ids = pool.ids
    for op, arg in ops:
        cid = ids[arg % n]
        if op == "fail":
            pool.report_failure(cid, server_error())
        elif op == "429":
            pool.report_failure(cid, RateLimitError("x", provider="openai", retry_after=arg))
        elif op == "ok":
            pool.report_success(cid)
        elif op == "tick":
            clock.now += arg * 1.7
        else:
            before = {i: pool.health(i) for i in ids}
            try:
                chosen = pool.acquire()
            except KeysExhaustedError:
                assert not any(info.available for info in before.values())
            else:
                assert before[chosen.id].available
                assert before[chosen.id].backoff_remaining == 0.0


def test_concurrent_selection_and_reports_from_threads() -> None:
    pool = KeyPool.from_keys("openai", [f"sk-{i}" for i in range(4)])
    barrier = threading.Barrier(16)

    def work() -> None:
        barrier.wait()
        for i in range(500):
            cred = pool.acquire()
            if i % 50 == 0:
                pool.report_failure(cred, BadRequestError("x", provider="openai", status=400))
            else:
                pool.report_success(cred, latency=0.001, tokens=1)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snaps = pool.metrics.snapshot()
    assert sum(s.requests for s in snaps.values()) == 16 * 500
    assert sum(s.tokens for s in snaps.values()) == 16 * 490
    assert all(1600 <= s.requests <= 2400 for s in snaps.values())  # round-robin spread


# -- failover -------------------------------------------------------------------------------

def test_failover_moves_to_the_next_key_within_one_call() -> None:
    pool = make_pool(Clock())
    seen: list[str] = []

    def call(cred: Credential) -> str:
        seen.append(cred.id)
        if cred.id != "key-3":
            raise RateLimitError("busy", provider="openai", retry_after=9.0)
        return "ok"

    assert call_with_failover(pool, call) == "ok"
    assert seen == ["key-1", "key-2", "key-3"]
    assert pool.health("key-1").backoff_remaining == 9.0
    assert pool.metrics.get("key-3").snapshot().successes == 1


def test_failover_does_not_retry_a_bad_request() -> None:
    pool = make_pool(Clock())
    calls: list[str] = []

    def call(cred: Credential) -> str:
        calls.append(cred.id)
        raise BadRequestError("bad field", provider="openai", status=400)

    with pytest.raises(BadRequestError):
        call_with_failover(pool, call)
    assert calls == ["key-1"]
    assert all(pool.health(cid).consecutive_failures == 0 for cid in pool.ids)


def test_failover_raises_the_last_error_when_every_key_failed() -> None:
    pool = make_pool(Clock())

    def call(cred: Credential) -> str:
        raise NetworkError(f"down via {cred.id}", provider="openai")

    with pytest.raises(NetworkError, match="key-3"):
        call_with_failover(pool, call)
    with pytest.raises(KeysExhaustedError):  # now every key is in backoff
        call_with_failover(pool, call)


def test_failover_respects_max_attempts() -> None:
    pool = make_pool(Clock())
    calls: list[str] = []

    def call(cred: Credential) -> str:
        calls.append(cred.id)
        raise server_error()

    with pytest.raises(ServerError):
        call_with_failover(pool, call, max_attempts=2)
    assert calls == ["key-1", "key-2"]


def test_async_failover_from_many_tasks() -> None:
    pool = make_pool(Clock())

    async def call(cred: Credential) -> str:
        await asyncio.sleep(0)
        if cred.id == "key-1":
            raise server_error()
        return cred.id

    async def main() -> list[str]:
        return await asyncio.gather(*(acall_with_failover(pool, call) for _ in range(50)))

    results = asyncio.run(main())
    assert "key-1" not in results
    assert len(results) == 50
    failed = pool.metrics.get("key-1").snapshot().errors
    assert failed >= 1
    assert not pool.health("key-1").available
    asyncio.run(main())  # key-1 is in backoff now: nobody picks it
    assert pool.metrics.get("key-1").snapshot().errors == failed


def test_single_credential_source_never_locks_itself_out() -> None:
    source = SingleCredential("openai", Credential(kind="api_key", secret=Secret("sk-x"),
                                                   id="api_key"))

    def call(cred: Credential) -> str:
        raise server_error()

    for _ in range(5):
        with pytest.raises(ServerError):
            call_with_failover(source, call)
    assert source.acquire().id == "api_key"
    assert source.metrics.get("api_key").snapshot().errors == 5
    assert source.recover(source.credential, server_error()) is None
