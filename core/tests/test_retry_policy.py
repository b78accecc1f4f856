"""RetryPolicy.delay and the status -> error mapping that decides what is retryable."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipk._errormap import RETRYABLE_STATUSES, error_for_status, should_retry_header
from aipk._retry import RetryPolicy
from aipk.errors import (
    AuthenticationError,
    AuthErrorCode,
    BadRequestError,
    ContentFilteredError,
    ContextWindowExceededError,
    NetworkError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    StatusError,
    StreamError,
)

NOW = 1696004797.0


def server_error() -> ServerError:
    return ServerError("boom", provider="p", status=500, retryable=True)


def rate_limited(retry_after: float | None) -> RateLimitError:
    return RateLimitError("slow down", provider="p", retry_after=retry_after)


def zero() -> float:
    return 0.0


# --- RetryPolicy.delay -------------------------------------------------------------------------


def test_default_policy_values() -> None:
    policy = RetryPolicy()
    assert (policy.max_retries, policy.initial_delay, policy.max_delay) == (2, 0.5, 8.0)
    assert (policy.max_retry_after, policy.jitter) == (60.0, 0.25)


def test_backoff_schedule_without_jitter() -> None:
    policy = RetryPolicy(max_retries=10)
    delays = [policy.delay(attempt, server_error(), rand=zero) for attempt in range(7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_backoff_for_other_retryable_errors() -> None:
    policy = RetryPolicy(max_retries=5)
    for error in (
        RequestTimeout("slow", provider="p"),
        NetworkError("reset", provider="p"),
        rate_limited(None),  # a 429 without retry-after backs off like anything else
        StreamError("overloaded", provider="p", retryable=True),
    ):
        assert policy.delay(1, error, rand=zero) == 1.0


def test_max_jitter_gives_three_quarters() -> None:
    policy = RetryPolicy(max_retries=10)
    assert policy.delay(0, server_error(), rand=lambda: 1.0) == pytest.approx(0.375)
    assert policy.delay(6, server_error(), rand=lambda: 1.0) == pytest.approx(6.0)


@settings(max_examples=300)
@given(
    st.integers(min_value=0, max_value=9),
    st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_jitter_bounds(attempt: int, r: float) -> None:
    policy = RetryPolicy(max_retries=10)
    base = min(0.5 * 2**attempt, 8.0)
    delay = policy.delay(attempt, server_error(), rand=lambda: r)
    assert delay is not None
    assert 0.75 * base <= delay <= base
    assert delay == pytest.approx(base * (1 - 0.25 * r))


@settings(max_examples=100)
@given(
    st.integers(min_value=0, max_value=60),
    st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    st.floats(min_value=0.01, max_value=5.0),
    st.floats(min_value=0.01, max_value=100.0),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_delay_never_exceeds_cap_and_is_positive(
    attempt: int, r: float, initial: float, cap: float, jitter: float
) -> None:
    policy = RetryPolicy(max_retries=100, initial_delay=initial, max_delay=cap, jitter=jitter)
    delay = policy.delay(attempt, server_error(), rand=lambda: r)
    assert delay is not None
    assert 0 <= delay <= max(cap, 0)
    assert delay >= min(initial * 2**attempt, cap) * (1 - jitter) - 1e-12


def test_uses_random_by_default() -> None:
    policy = RetryPolicy()
    delays = {policy.delay(1, server_error()) for _ in range(50)}
    assert all(d is not None and 0.75 <= d <= 1.0 for d in delays)
    assert len(delays) > 1


def test_not_retryable_gives_none() -> None:
    policy = RetryPolicy(max_retries=5)
    for error in (
        BadRequestError("bad", provider="p", status=400),
        AuthenticationError("no", provider="p", status=401),
        StreamError("bad", provider="p"),
        ProviderError("x", provider="p"),
        NetworkError("reset mid-stream", provider="p", retryable=False),
    ):
        assert policy.delay(0, error, rand=zero) is None


@given(st.integers(min_value=0, max_value=6), st.integers(min_value=0, max_value=20))
def test_attempt_at_or_beyond_max_retries_gives_none(max_retries: int, attempt: int) -> None:
    policy = RetryPolicy(max_retries=max_retries)
    result = policy.delay(attempt, server_error(), rand=zero)
    assert (result is None) == (attempt >= max_retries)
    # A server-given retry_after does not bypass the attempt budget either.
    assert (policy.delay(attempt, rate_limited(1.0)) is None) == (attempt >= max_retries)


def test_zero_max_retries_never_retries() -> None:
    assert RetryPolicy(max_retries=0).delay(0, server_error()) is None


@pytest.mark.parametrize("retry_after", [0.0, 0.25, 1.5, 20.0, 59.999, 60.0])
def test_retry_after_within_cap_is_used_exactly(retry_after: float) -> None:
    # The server's value is used as is: no jitter, no backoff cap (it is above max_delay here).
    policy = RetryPolicy()
    assert policy.delay(0, rate_limited(retry_after), rand=lambda: 0.9) == retry_after
    assert policy.delay(1, rate_limited(retry_after), rand=lambda: 0.9) == retry_after


@pytest.mark.parametrize("retry_after", [60.001, 61.0, 3600.0])
def test_retry_after_beyond_cap_fails_fast(retry_after: float) -> None:
    assert RetryPolicy().delay(0, rate_limited(retry_after)) is None


def test_retry_after_cap_is_configurable() -> None:
    assert RetryPolicy(max_retry_after=120).delay(0, rate_limited(90.0)) == 90.0
    assert RetryPolicy(max_retry_after=5).delay(0, rate_limited(6.0)) is None


def test_negative_retry_after_means_now() -> None:
    assert RetryPolicy().delay(0, rate_limited(-3.0)) == 0.0


@given(
    st.floats(min_value=0, max_value=1000, allow_nan=False),
    st.floats(min_value=0, max_value=1000, allow_nan=False),
)
def test_retry_after_property(retry_after: float, cap: float) -> None:
    result = RetryPolicy(max_retry_after=cap).delay(0, rate_limited(retry_after), rand=zero)
    assert result == (retry_after if retry_after <= cap else None)


# --- should_retry_header -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_a_server_errors_retry_after_is_used_like_a_rate_limits(status: int) -> None:
    policy = RetryPolicy()
    asked = err(status, {"retry-after": "7"})
    assert isinstance(asked, ServerError) and asked.retry_after == 7.0
    assert policy.delay(0, asked, rand=lambda: 0.9) == 7.0
    assert policy.delay(0, err(status, {"retry-after-ms": "250"})) == 0.25
    assert policy.delay(0, err(status, {"retry-after": "120"})) is None  # past max_retry_after
    unasked = err(status)
    assert isinstance(unasked, ServerError) and unasked.retry_after is None
    assert policy.delay(0, unasked, rand=zero) == policy.initial_delay


@pytest.mark.parametrize(
    ("value", "verdict"),
    [("true", True), ("TRUE", True), (" true ", True), ("false", False), ("False", False),
     ("1", None), ("yes", None), ("", None), (None, None)],
)
def test_should_retry_header(value: str | None, verdict: bool | None) -> None:
    headers = {} if value is None else {"x-should-retry": value}
    assert should_retry_header(headers) is verdict


# --- error_for_status --------------------------------------------------------------------------


def err(status: int, headers: dict[str, str] | None = None, message: str | None = "msg",
        **kwargs: Any) -> ProviderError:
    return error_for_status(provider="acme", status=status, headers=headers or {},
                            body={"error": {"message": message}}, message=message, now=NOW,
                            **kwargs)


def test_429_is_rate_limit_with_retry_after() -> None:
    error = err(429, {"retry-after": "20"})
    assert type(error) is RateLimitError
    assert error.retryable
    assert error.retry_after == 20.0
    assert error.status == 429
    assert err(429, {"retry-after-ms": "1500", "retry-after": "20"}).retry_after == 1.5
    assert err(429, {"retry-after": "Fri, 29 Sep 2023 16:26:57 GMT"}).retry_after == 20.0
    assert err(429).retry_after is None
    assert err(429, {"retry-after": "garbage"}).retry_after is None


def test_429_retry_after_feeds_retry_policy() -> None:
    policy = RetryPolicy()
    assert policy.delay(0, err(429, {"retry-after": "7"})) == 7.0
    assert policy.delay(0, err(429, {"retry-after": "120"})) is None


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, AuthErrorCode.INVALID_CREDENTIALS), (403, AuthErrorCode.SCOPE_INSUFFICIENT)],
)
def test_auth_statuses(status: int, code: AuthErrorCode) -> None:
    error = err(status)
    assert type(error) is (PermissionDeniedError if status == 403 else AuthenticationError)
    assert isinstance(error, AuthenticationError)
    assert error.auth_code is code
    assert error.code == code.value
    assert error.status == status
    assert not error.retryable


@pytest.mark.parametrize("status", [400, 404, 413, 422, 418])
def test_client_errors_are_bad_requests_and_not_retryable(status: int) -> None:
    error = err(status)
    assert type(error) is (NotFoundError if status == 404 else BadRequestError)
    assert isinstance(error, BadRequestError)
    assert not error.retryable
    assert RetryPolicy().delay(0, error) is None


@pytest.mark.parametrize("status", [408, 409])
def test_timeout_and_conflict_are_retryable(status: int) -> None:
    error = err(status)
    assert isinstance(error, StatusError)
    assert error.retryable
    assert status in RETRYABLE_STATUSES


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_server_errors_are_retryable(status: int) -> None:
    error = err(status)
    assert type(error) is ServerError
    assert error.retryable
    assert RetryPolicy().delay(0, error, rand=zero) == 0.5


def test_529_is_overloaded() -> None:
    error = err(529)
    assert type(error) is OverloadedError
    assert isinstance(error, ServerError)
    assert error.retryable


def test_x_should_retry_overrides_the_status() -> None:
    assert not err(503, {"x-should-retry": "false"}).retryable
    assert type(err(503, {"x-should-retry": "false"})) is ServerError
    assert not err(529, {"x-should-retry": "false"}).retryable
    assert err(400, {"x-should-retry": "true"}).retryable
    assert type(err(400, {"x-should-retry": "true"})) is BadRequestError
    assert not err(408, {"x-should-retry": "false"}).retryable
    assert err(503, {"x-should-retry": "maybe"}).retryable  # unknown verdicts are ignored


def test_x_should_retry_false_stops_a_429() -> None:
    # e.g. OpenAI's "insufficient_quota" 429: waiting will not help (openai-python stops too).
    error = err(429, {"x-should-retry": "false", "retry-after": "1"})
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 1.0
    assert not error.retryable
    assert RetryPolicy().delay(0, error) is None
    assert err(429, {"x-should-retry": "true"}).retryable


@pytest.mark.parametrize(
    ("status", "words"),
    [(401, "check the API key"), (403, "lacks permission"), (404, "check the model name"),
     (413, "too large")],
)
def test_message_includes_hint(status: int, words: str) -> None:
    error = err(status, message="Incorrect thing provided")
    assert error.message.startswith("Incorrect thing provided")
    assert words in error.message
    assert words in str(error)


@pytest.mark.parametrize("odd", [{"detail": "x"}, ["a", "b"], 42, True])
def test_a_message_or_code_of_an_odd_shape_still_gives_a_typed_error(odd: Any) -> None:
    for status in (400, 404, 413, 429, 500):
        error = error_for_status(provider="acme", status=status, headers={}, body={},
                                 message=odd, code=odd, now=NOW)
        assert isinstance(error, ProviderError)
        assert error.message.startswith(json.dumps(odd))
        assert error.code == str(odd)


def test_message_without_provider_text() -> None:
    error = err(500, message=None)
    assert "HTTP 500" in error.message
    assert error.message == "HTTP 500 with no error message"


def test_common_fields_are_carried() -> None:
    headers = {"x-request-id": "req_1", "retry-after": "3"}
    error = err(500, headers, code="server_error", request_id="req_1")
    assert isinstance(error, ServerError)
    assert error.provider == "acme"
    assert error.status == 500
    assert error.code == "server_error"
    assert error.request_id == "req_1"
    assert error.headers == headers
    assert error.body == {"error": {"message": "msg"}}
    assert str(error) == "[acme HTTP 500, request id req_1] msg"


@settings(max_examples=200)
@given(
    st.integers(min_value=400, max_value=599),
    st.sampled_from([None, "true", "false", "garbage"]),
)
def test_status_mapping_property(status: int, verdict: str | None) -> None:
    headers = {} if verdict is None else {"x-should-retry": verdict}
    error = err(status, headers)
    assert isinstance(error, StatusError)
    assert error.status == status
    if status == 429:
        assert isinstance(error, RateLimitError)
        assert error.retryable is (verdict != "false")
    elif status in (401, 403):
        assert isinstance(error, AuthenticationError)
        assert not error.retryable
    else:
        default = status in (408, 409) or status >= 500
        expected = {"true": True, "false": False}.get(verdict or "", default)
        assert error.retryable is expected
        if status >= 500:
            assert isinstance(error, ServerError)
            assert isinstance(error, OverloadedError) == (status == 529)
        else:
            assert type(error) is (NotFoundError if status == 404 else BadRequestError)


@given(status=st.integers(400, 499),
       code=st.one_of(st.none(), st.sampled_from(["context_length_exceeded", "content_filter",
                                                  "CONTENT_FILTER", "invalid_request_error",
                                                  "model_not_found"]), st.text(max_size=12)),
       message=st.one_of(st.none(), st.sampled_from([
           "prompt is too long: 210000 tokens > 200000 maximum",
           "The input token count (1200000) exceeds the maximum number of tokens allowed",
           "unknown field 'foo'"]), st.text(max_size=30)))
def test_finer_client_errors_refine_the_old_classes(status: int, code: str | None,
                                                    message: str | None) -> None:
    error = error_for_status(provider="acme", status=status, headers={}, body=None,
                             message=message, code=code)
    if status == 429:
        assert isinstance(error, RateLimitError)
    elif status == 403:
        assert type(error) is PermissionDeniedError and isinstance(error, AuthenticationError)
    elif status == 401:
        assert type(error) is AuthenticationError
    else:
        assert isinstance(error, BadRequestError)  # existing handlers still catch it
        if status == 404:
            assert type(error) is NotFoundError
        elif code is not None and code.lower() in ("content_filter",):
            assert type(error) is ContentFilteredError and not error.retryable
        elif status in (400, 413, 422) and (code == "context_length_exceeded" or (
                message is not None and ("too long" in message or "exceeds" in message))):
            assert type(error) is ContextWindowExceededError and not error.retryable
