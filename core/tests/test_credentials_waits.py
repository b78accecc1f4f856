"""How waits on one key combine under concurrency: waits only extend, a success clears only
what was known when its request was sent, failures of one incident count once, and a key the
provider rejected is parked. The pool runs on an injected clock; responses arrive in any
order."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aipk import Credential, Secret
from aipk.credentials import BackoffPolicy, KeyPool, KeysExhaustedError
from aipk.errors import AuthenticationError, AuthErrorCode, RateLimitError, ServerError

KEYS = ["sk-alpha-000111", "sk-bravo-222333", "sk-charlie-444555"]
POLICY = BackoffPolicy(jitter=0.0)


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_pool(clock: Clock, **kw: object) -> KeyPool:
    return KeyPool.from_keys("openai", KEYS, backoff=kw.pop("backoff", POLICY), clock=clock,
                             **kw)


def limited(seconds: float) -> RateLimitError:
    return RateLimitError("slow down", provider="openai", retry_after=seconds, status=429)


def rejected(status: int = 401) -> AuthenticationError:
    code = AuthErrorCode.INVALID_CREDENTIALS if status == 401 else AuthErrorCode.SCOPE_INSUFFICIENT
    return AuthenticationError("bad key", provider="openai", status=status, auth_code=code)


def test_a_later_shorter_wait_does_not_shorten_an_earlier_longer_one() -> None:
    clock = Clock()
    pool = make_pool(clock)
    pool.report_failure("key-1", limited(2.0), latency=0.05)       # retry-after: 2
    clock.now += 0.01
    pool.report_failure("key-1", limited(0.1), latency=0.05)       # retry-after-ms: 100
    clock.now += 0.2
    assert "key-1" not in {pool.acquire().id for _ in range(6)}
    assert 1.7 < pool.health("key-1").backoff_remaining <= 1.8
    clock.now += 1.8
    assert "key-1" in {pool.acquire().id for _ in range(3)}


def test_a_longer_wait_extends_a_shorter_one() -> None:
    clock = Clock()
    pool = make_pool(clock)
    pool.report_failure("key-1", limited(0.1), latency=0.05)
    clock.now += 0.01
    pool.report_failure("key-1", limited(5.0), latency=0.05)
    assert pool.health("key-1").backoff_remaining == 5.0


def test_a_success_sent_before_a_429_does_not_clear_it() -> None:
    """Request A goes to key-1; B goes to key-1 and gets a 429 (2 s); then A succeeds. A was
    sent before the 429 was known, so the 429 stands."""
    clock = Clock()
    pool = make_pool(clock)
    sent_a = clock.now
    clock.now += 0.1
    pool.report_failure("key-1", limited(2.0), latency=0.02)
    clock.now += 0.2
    pool.report_success("key-1", latency=clock.now - sent_a)
    clock.now += 0.3
    info = pool.health("key-1")
    assert not info.available and 1.4 < info.backoff_remaining <= 1.5
    assert info.consecutive_failures == 1
    assert "key-1" not in {pool.acquire().id for _ in range(4)}


def test_a_success_sent_after_the_news_clears_everything() -> None:
    clock = Clock()
    pool = make_pool(clock)
    pool.report_failure("key-1", ServerError("x", provider="openai", status=503), latency=0.1)
    clock.now += 5.0
    sent = clock.now
    assert pool.acquire(exclude=["key-2", "key-3"]).id == "key-1"
    clock.now += 0.5
    pool.report_success("key-1", latency=clock.now - sent)
    info = pool.health("key-1")
    assert info.available and info.consecutive_failures == 0 and info.status == "healthy"


def test_failures_of_one_incident_count_once() -> None:
    """Ten requests in flight on key-1 all fail: one incident, not ten consecutive failures
    (which would make the key unhealthy and escalate its backoff)."""
    clock = Clock()
    pool = make_pool(clock)
    sent = clock.now
    for _ in range(10):
        clock.now += 0.01
        pool.report_failure("key-1", ServerError("x", provider="openai", status=503),
                            latency=clock.now - sent)
    info = pool.health("key-1")
    assert info.consecutive_failures == 1 and info.healthy
    clock.now += 1.0
    sent = clock.now  # sent after the failures were known, and failed too: consecutive
    clock.now += 0.01
    pool.report_failure("key-1", ServerError("x", provider="openai", status=503),
                        latency=clock.now - sent)
    assert pool.health("key-1").consecutive_failures == 2


def test_a_rejected_key_is_parked_until_it_changes() -> None:
    clock = Clock()
    pool = make_pool(clock)
    assert pool.report_failure("key-1", rejected(401), latency=0.1)
    info = pool.health("key-1")
    assert (info.status, info.parked_reason) == ("parked", "HTTP 401")
    assert not info.healthy and info.backoff_remaining == POLICY.park_interval == 3600.0
    for minutes in (1, 3, 30, 59):  # not ~1 s and ~3 s later, nor at all within the hour
        clock.now = 1_000.0 + 60 * minutes
        assert "key-1" not in {pool.acquire().id for _ in range(6)}
    exported = json.loads(pool.export_json())["credentials"]["key-1"]
    assert (exported["status"], exported["parked_reason"]) == ("parked", "HTTP 401")
    assert 'aipk_credential_parked{provider="openai",credential="key-1"} 1' in \
        pool.export_prometheus()
    assert pool.health_summary().parked == 1
    pool.replace(Credential(kind="api_key", secret=Secret("sk-new-key-999"), id="key-1"))
    assert pool.health("key-1").status == "healthy"
    assert "key-1" in {pool.acquire().id for _ in range(3)}


def test_a_parked_key_is_probed_after_the_park_interval() -> None:
    clock = Clock()
    pool = make_pool(clock, backoff=BackoffPolicy(jitter=0.0, park_interval=600.0))
    pool.report_failure("key-2", rejected(403), latency=0.1)
    clock.now += 599.0
    assert "key-2" not in {pool.acquire().id for _ in range(6)}
    clock.now += 2.0
    probe = pool.acquire(exclude=["key-1", "key-3"])
    assert probe.id == "key-2"
    assert "key-2" not in {pool.acquire().id for _ in range(6)}  # one probe at a time
    clock.now += 0.5
    pool.report_success(probe, latency=0.5)
    assert pool.health("key-2").status == "healthy"


def test_unpark_and_all_parked_keys_say_check_the_keys() -> None:
    clock = Clock()
    pool = make_pool(clock)
    for cid in pool.ids:
        pool.report_failure(cid, rejected(401), latency=0.1)
    with pytest.raises(KeysExhaustedError) as info:
        pool.acquire()
    assert "3 parked as invalid" in str(info.value)
    assert "check that the keys are valid" in str(info.value)
    assert info.value.retry_after is not None and info.value.retry_after > 3000
    pool.unpark("key-3")
    assert pool.acquire().id == "key-3"
    pool.unpark("key-3")  # not parked: nothing happens
    assert pool.health("key-3").status == "healthy"


# -- the property ---------------------------------------------------------------------------

_outcome = st.one_of(
    st.tuples(st.just("429"), st.sampled_from([0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 30.0])),
    st.tuples(st.just("ok"), st.just(0.0)),
    st.tuples(st.just("5xx"), st.just(0.0)),
    st.tuples(st.just("401"), st.just(0.0)),
)
_ops = st.lists(st.one_of(
    st.tuples(st.just("send"), st.integers(0, 2), st.just(("", 0.0))),
    st.tuples(st.just("answer"), st.integers(0, 50), _outcome),
    st.tuples(st.just("tick"), st.integers(1, 3000), st.just(("", 0.0))),
), max_size=80)


_SEND_A: tuple[str, int, tuple[str, float]] = ("send", 0, ("", 0.0))


def _answer(outcome: str, wait: float = 0.0, which: int = 0) -> tuple[str, int, tuple[str, float]]:
    return ("answer", which, (outcome, wait))


@settings(max_examples=400, deadline=None)
@given(_ops)
# the cases the property exists for, always tried: two requests on one key in flight, then
@example([_SEND_A, _SEND_A, _answer("429", 2.0), _answer("429", 0.1),  # a shorter wait after
          ("tick", 200, ("", 0.0)), _SEND_A])
@example([_SEND_A, _SEND_A, _answer("429", 2.0, which=1), _answer("ok"),  # a stale success
          ("tick", 300, ("", 0.0)), _SEND_A])
@example([_SEND_A, _SEND_A, _answer("401"), _answer("429", 0.05),  # a short wait on a parked key
          ("tick", 1000, ("", 0.0)), _SEND_A])
def test_no_request_is_sent_to_a_key_inside_a_wait_the_provider_gave_it(
        ops: list[tuple[str, int, tuple[str, float]]]) -> None:
    """Whatever the interleaving of sends and answers (random 429s with random waits,
    successes, 5xx, 401s, in any order), a key is never acquired before every wait the
    provider gave it has passed, nor while it is parked. Times are whole milliseconds and
    every step advances the clock, so each answer knows exactly when its request was sent."""
    clock = Clock(1_000.0)
    pool = KeyPool.from_keys("openai", KEYS[:2], clock=clock,
                             backoff=BackoffPolicy(jitter=0.0, park_interval=60.0))
    in_flight: list[tuple[str, float]] = []
    promised: dict[str, float] = {}  # key id -> the latest deadline the provider gave it
    for kind, number, (outcome, wait) in ops:
        clock.now += 0.001
        if kind == "tick":
            clock.now += number / 1000
        elif kind == "send":  # to one chosen key (the other excluded), or to any (2)
            exclude = [cid for i, cid in enumerate(pool.ids) if i != number] if number < 2 \
                else []
            try:
                credential = pool.acquire(exclude=exclude)
            except KeysExhaustedError:
                continue
            assert clock.now >= promised.get(credential.id, 0.0), (
                f"{credential.id} acquired {promised[credential.id] - clock.now:.3f}s "
                f"inside its wait")
            in_flight.append((credential.id, clock.now))
        elif in_flight:
            cid, sent = in_flight.pop(number % len(in_flight))
            latency = clock.now - sent
            if outcome == "ok":
                pool.report_success(cid, latency=latency)
            elif outcome == "429":
                pool.report_failure(cid, limited(wait), latency=latency)
                promised[cid] = max(promised.get(cid, 0.0), clock.now + wait)
            elif outcome == "401":
                pool.report_failure(cid, rejected(401), latency=latency)
                promised[cid] = max(promised.get(cid, 0.0), clock.now + 60.0)
            else:
                pool.report_failure(cid, ServerError("x", provider="openai", status=503),
                                    latency=latency)
