"""Backoff schedule, the health state machine, and which failures count."""

from __future__ import annotations

import asyncio

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipk.credentials import (
    BackoffPolicy,
    CredentialError,
    HealthState,
    KeysExhaustedError,
    classify_failure,
)
from aipk.errors import (
    AuthenticationError,
    AuthErrorCode,
    BadRequestError,
    ConfigurationError,
    ContentFilteredError,
    InvalidRequestError,
    NetworkError,
    OverloadedError,
    RateLimitError,
    RequestTimeout,
    ResponseError,
    ServerError,
    StreamError,
)

NO_JITTER = BackoffPolicy(jitter=0.0)


# -- §4.3 vectors ---------------------------------------------------------------------------

@pytest.mark.parametrize(("failures", "expected"), [
    (0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0), (6, 32.0), (7, 60.0),
    (8, 60.0), (50, 60.0), (10_000, 60.0),
])
def test_backoff_schedule_matches_the_go_sdk_vectors(failures: int, expected: float) -> None:
    assert NO_JITTER.schedule(failures) == expected
    assert NO_JITTER.delay(failures) == expected


def test_backoff_is_configurable() -> None:
    policy = BackoffPolicy(base=0.5, cap=5.0, multiplier=3.0, jitter=0.0)
    assert [policy.schedule(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 5.0, 5.0]
    assert BackoffPolicy(multiplier=1e300).schedule(5) == 60.0  # overflow is capped


@given(st.integers(min_value=1, max_value=40), st.floats(min_value=0.0, max_value=1.0))
def test_jitter_only_shortens_and_stays_within_its_band(failures: int, rand: float) -> None:
    policy = BackoffPolicy(jitter=0.25)
    delay = policy.delay(failures, rand=lambda: rand)
    assert 0.75 * policy.schedule(failures) - 1e-9 <= delay <= policy.schedule(failures)


@pytest.mark.parametrize("bad", [
    {"base": 0.0}, {"cap": -1.0}, {"multiplier": 0.5}, {"jitter": 1.0}, {"jitter": -0.1},
    {"failure_threshold": 0}, {"probe_timeout": 0.0},
])
def test_backoff_policy_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**bad)  # type: ignore[arg-type]


# -- the state machine ----------------------------------------------------------------------

def test_three_failures_make_a_credential_unhealthy_and_one_success_heals_it() -> None:
    state = HealthState()
    for n, now in enumerate((100.0, 101.0, 103.0), 1):
        state = state.failed(now, NO_JITTER, label="HTTP 500")
        assert state.failures == n
        assert state.backoff_until == now + NO_JITTER.schedule(n)
    assert not state.healthy
    assert not state.available(106.9)
    assert state.available(107.0)  # re-tried once its backoff ends
    probing = state.probing(107.0, NO_JITTER)
    assert not probing.available(107.0)  # only one probe at a time
    assert probing.available(107.0 + NO_JITTER.probe_timeout)
    healed = probing.succeeded(108.0)
    assert healed.healthy
    assert healed.failures == 0
    assert healed.available(108.0)
    assert healed.last_error == "HTTP 500"


def test_retry_after_overrides_the_schedule() -> None:
    state = HealthState().failed(10.0, NO_JITTER, label="HTTP 429", retry_after=17.5)
    assert state.backoff_until == 27.5
    state = state.failed(30.0, NO_JITTER, label="HTTP 429", retry_after=0.25)
    assert state.backoff_until == 30.25  # shorter than the 2 s schedule: still used


def test_state_round_trips_through_plain_values() -> None:
    state = HealthState().failed(5.0, NO_JITTER, label="HTTP 503")
    assert HealthState.from_dict(state.to_dict()) == state


events = st.lists(st.tuples(
    st.sampled_from(["fail", "fail429", "success", "claim"]),
    st.floats(min_value=0.0, max_value=90.0),
    st.floats(min_value=0.0, max_value=1.0),
), max_size=40)


@settings(max_examples=150, deadline=None)
@given(events, st.integers(min_value=1, max_value=5))
def test_health_state_machine_invariants(seq: list[tuple[str, float, float]],
                                         threshold: int) -> None:
    policy = BackoffPolicy(failure_threshold=threshold)
    state = HealthState()
    now = 1000.0
    streak = 0
    for kind, dt, rand in seq:
        now += dt
        if kind == "success":
            state = state.succeeded(now)
            streak = 0
            assert state.available(now)
            assert state.backoff_until == 0.0
        elif kind == "claim":
            if not state.healthy and state.available(now):
                state = state.probing(now, policy)
                assert not state.available(now)
        else:
            streak += 1
            retry_after = 7.0 if kind == "fail429" else None
            before = state.backoff_until
            state = state.failed(now, policy, label="x", retry_after=retry_after,
                                 rand=lambda r=rand: r)  # type: ignore[misc]
            # Waits only extend: the new deadline is the later of the old one and this one's.
            assert state.backoff_until >= before
            wait = state.backoff_until - now
            own = max(wait, 0.0) if state.backoff_until > before else None
            if own is not None and retry_after is None:
                low, high = 0.9 * policy.schedule(streak), policy.schedule(streak)
                assert low - 1e-6 <= own <= high + 1e-6
                assert own <= policy.cap
            elif own is not None:
                assert own == pytest.approx(retry_after)
        assert state.failures == streak
        assert state.healthy == (streak < threshold)
        assert (state.wait(now) == 0.0) == state.available(now)
        if state.available(now):
            assert now >= state.backoff_until


def test_concurrent_failure_reports_are_all_counted() -> None:
    import threading

    from aipk.credentials import KeyPool

    pool = KeyPool.from_keys("p", ["sk-1"], backoff=BackoffPolicy(failure_threshold=10_000))

    def hammer() -> None:
        for _ in range(500):
            pool.report_failure("key-1", 503)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pool.health("key-1").consecutive_failures == 4000
    assert pool.metrics.get("key-1").snapshot().errors == 4000


def test_health_lives_in_a_state_store() -> None:
    from aipk.credentials import KeyPool
    from aipk.state import MemoryStore

    state = MemoryStore()
    first = KeyPool.from_keys("p", ["sk-1"], state=state)
    second = KeyPool.from_keys("p", ["sk-1"], state=state)  # e.g. another client, same store
    first.report_failure("key-1", 500)
    stored = state.get("credentials.health", "p/key-1")
    assert isinstance(stored, HealthState)
    assert stored.failures == 1
    assert second.health("key-1").consecutive_failures == 1


# -- what counts ----------------------------------------------------------------------------

def _status(cls: type, status: int, **kw: object) -> Exception:
    return cls("x", provider="p", status=status, **kw)  # type: ignore[no-any-return]


COUNTED = [
    _status(AuthenticationError, 401),
    AuthenticationError("x", provider="p", status=403,
                        auth_code=AuthErrorCode.SCOPE_INSUFFICIENT),
    RateLimitError("x", provider="p", retry_after=3.0),
    _status(ServerError, 500), _status(ServerError, 503), _status(OverloadedError, 529),
    _status(BadRequestError, 408),
    RequestTimeout("x", provider="p"), NetworkError("x", provider="p"),
    AuthenticationError("x", provider="p", auth_code=AuthErrorCode.REFRESH_FAILED),
    StreamError("overloaded", provider="p", retryable=True, code="overloaded_error"),
    TimeoutError(), ConnectionResetError(), 401, 429, 500, 529,
    CredentialError("refresh token revoked", provider="p", status=400,
                    auth_code=AuthErrorCode.INVALID_CREDENTIALS),
]
NOT_COUNTED = [
    _status(BadRequestError, 400), _status(BadRequestError, 404), _status(BadRequestError, 422),
    _status(ContentFilteredError, 403), _status(ContentFilteredError, 400),
    InvalidRequestError("x"), ConfigurationError("x"), ValueError("x"),
    RateLimitError("client-side", provider="p", status=0, retry_after=4.0),
    ResponseError("x", provider="p"), StreamError("bad", provider="p", retryable=False),
    AuthenticationError("x", provider="p", auth_code=AuthErrorCode.STORAGE_ERROR),
    KeysExhaustedError("x", provider="p", retry_after=1.0),
    asyncio.CancelledError(), KeyboardInterrupt(), 400, 404, 422, 200,
    CredentialError("bad client id", provider="p", status=401,
                    auth_code=AuthErrorCode.INVALID_CONFIG),
    CredentialError("corrupt file", provider="p", auth_code=AuthErrorCode.STORAGE_ERROR),
]


@pytest.mark.parametrize("error", COUNTED, ids=repr)
def test_counted_failures(error: BaseException | int) -> None:
    assert classify_failure(error) is not None


@pytest.mark.parametrize("error", NOT_COUNTED, ids=repr)
def test_failures_that_are_not_the_credentials_fault(error: BaseException | int) -> None:
    assert classify_failure(error) is None


def test_classification_details() -> None:
    limited = classify_failure(RateLimitError("x", provider="p", retry_after=3.0))
    assert limited is not None
    assert limited.retry_after == 3.0
    unauthorized = classify_failure(_status(AuthenticationError, 401))
    assert unauthorized is not None
    assert unauthorized.unauthorized
    forbidden = classify_failure(403)
    assert forbidden is not None
    assert not forbidden.unauthorized
    assert attrs.asdict(classify_failure(503))["label"] == "HTTP 503"  # type: ignore[arg-type]


def test_httpx_transport_errors_count() -> None:
    import httpx

    assert classify_failure(httpx.ConnectError("refused")) is not None
    assert classify_failure(httpx.ReadTimeout("slow")) is not None
    assert classify_failure(httpx.HTTPStatusError.__new__(httpx.HTTPStatusError)) is None
