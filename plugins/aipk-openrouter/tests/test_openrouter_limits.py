"""OpenRouter rate-limit headers (epoch-millisecond resets), the OpenAI fallback, retry-after,
and hypothesis (garbage never raises, waits never negative)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipk import RateLimitWindow
from aipk_openrouter import parse_rate_limits
from aipk_openrouter.limits import parse_reset_ms

NOW = 1_700_000_000.0


def test_openrouter_headers_fill_the_requests_window() -> None:
    state = parse_rate_limits(200, {"x-ratelimit-limit": "20", "x-ratelimit-remaining": "19",
                                    "x-ratelimit-reset": "1700000060000"}, NOW)
    assert state is not None
    assert state.requests == RateLimitWindow(limit=20, remaining=19, reset_at=NOW + 60)
    assert state.tokens is None and state.not_before is None and state.observed_at == NOW


def test_daily_free_model_cap_on_a_429() -> None:
    state = parse_rate_limits(429, {"x-ratelimit-limit": "50", "x-ratelimit-remaining": "0",
                                    "x-ratelimit-reset": "1700036000000"}, NOW)
    assert state is not None and state.requests is not None
    assert not state.can_send(NOW)
    assert state.wait_time(NOW) == pytest.approx(36_000.0)


def test_reset_is_read_as_milliseconds_only() -> None:
    assert parse_reset_ms("1700000060000", NOW) == NOW + 60
    assert parse_reset_ms("1700000060000.5", NOW) == pytest.approx(NOW + 60.0005)
    assert parse_reset_ms("60", NOW) is None  # not relative seconds: that is 1970
    assert parse_reset_ms("1700000060", NOW) is None  # epoch seconds: 1970 in ms
    assert parse_reset_ms("1800000000000", NOW) is None  # years ahead
    assert parse_reset_ms("1699999999500", NOW) == NOW  # just passed: now
    assert parse_reset_ms("soon", NOW) is None
    assert parse_reset_ms(None, NOW) is None


def test_openai_family_when_openrouter_headers_are_absent() -> None:
    state = parse_rate_limits(200, {
        "x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "9",
        "x-ratelimit-reset-requests": "6s", "x-ratelimit-limit-tokens": "5000",
        "x-ratelimit-remaining-tokens": "4000",
    }, NOW)
    assert state is not None
    assert state.requests == RateLimitWindow(limit=10, remaining=9, reset_at=NOW + 6)
    assert state.tokens == RateLimitWindow(limit=5000, remaining=4000)


def test_openrouter_requests_win_and_tokens_and_retry_after_are_kept() -> None:
    state = parse_rate_limits(429, {
        "x-ratelimit-limit": "20", "x-ratelimit-remaining": "0",
        "x-ratelimit-limit-requests": "99", "x-ratelimit-limit-tokens": "5000",
        "retry-after": "3",
    }, NOW)
    assert state is not None
    assert state.requests == RateLimitWindow(limit=20, remaining=0)
    assert state.tokens == RateLimitWindow(limit=5000)
    assert state.not_before == NOW + 3


def test_nothing_to_report() -> None:
    assert parse_rate_limits(200, {"content-type": "application/json"}, NOW) is None
    assert parse_rate_limits(200, {"x-ratelimit-limit": "0"}, NOW) is None


_NAMES = ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
          "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
          "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
          "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
          "retry-after", "retry-after-ms"]
_VALUES = st.one_of(
    st.text(max_size=30), st.integers(-10**16, 10**16).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["-1", "0", "1e400", "nan", "1700000060000", "1699999000000", "6m0s",
                     "Tue, 14 Nov 2023 22:13:30 GMT"]),
)


@given(headers=st.dictionaries(st.sampled_from(_NAMES), _VALUES, max_size=11))
def test_garbage_never_raises_and_waits_are_never_negative(headers: dict[str, str]) -> None:
    state = parse_rate_limits(429, headers, NOW)
    if state is None:
        return
    assert state.not_before is None or state.not_before >= NOW
    for window in state.windows().values():
        assert window.remaining is None or window.remaining >= 0
        assert window.reset_at is None or window.reset_at >= NOW
    assert state.wait_time(NOW, estimated_tokens=5) >= 0.0
