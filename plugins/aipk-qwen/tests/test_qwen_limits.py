"""Qwen / DashScope rate-limit headers: the OpenAI family, the qwen-/dashscope- spellings,
retry-after, and hypothesis (garbage never raises, waits never negative)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipk import RateLimitWindow
from aipk_qwen import parse_rate_limits

NOW = 1_700_000_000.0


def test_openai_family() -> None:
    state = parse_rate_limits(200, {
        "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "58",
        "x-ratelimit-reset-requests": "2s", "x-ratelimit-limit-tokens": "100000",
        "x-ratelimit-remaining-tokens": "99000", "x-ratelimit-reset-tokens": "6m0s",
    }, NOW)
    assert state is not None
    assert state.requests == RateLimitWindow(limit=60, remaining=58, reset_at=NOW + 2)
    assert state.tokens == RateLimitWindow(limit=100_000, remaining=99_000, reset_at=NOW + 360)
    assert state.not_before is None and state.observed_at == NOW


@pytest.mark.parametrize("prefix", ["qwen-ratelimit", "x-dashscope-ratelimit",
                                    "dashscope-ratelimit"])
def test_qwen_and_dashscope_spellings(prefix: str) -> None:
    state = parse_rate_limits(200, {f"{prefix}-limit-requests": "2000",
                                    f"{prefix}-remaining-requests": "1999",
                                    f"{prefix}-reset-tokens": "30"}, NOW)
    assert state is not None
    assert state.requests == RateLimitWindow(limit=2000, remaining=1999)
    assert state.tokens == RateLimitWindow(reset_at=NOW + 30)


def test_a_real_zero_is_not_overwritten_by_a_later_family() -> None:
    """The Go SDK treated 0 as unset and let qwen-* overwrite it; a 0 is an answer."""
    state = parse_rate_limits(429, {"x-ratelimit-limit-requests": "60",
                                    "x-ratelimit-remaining-requests": "0",
                                    "qwen-ratelimit-remaining-requests": "40",
                                    "x-ratelimit-reset-requests": "20"}, NOW)
    assert state is not None and state.requests is not None
    assert state.requests.remaining == 0
    assert state.wait_time(NOW) == pytest.approx(20.0)


def test_retry_after_only() -> None:
    state = parse_rate_limits(429, {"retry-after": "12"}, NOW)
    assert state is not None
    assert state.not_before == NOW + 12 and state.windows() == {}


def test_nothing_to_report() -> None:
    assert parse_rate_limits(200, {"req-cost-time": "85", "x-request-id": "abc"}, NOW) is None


_NAMES = [f"{prefix}-{field}-{window}"
          for prefix in ("x-ratelimit", "qwen-ratelimit", "x-dashscope-ratelimit",
                         "dashscope-ratelimit")
          for field in ("limit", "remaining", "reset") for window in ("requests", "tokens")]
_VALUES = st.one_of(
    st.text(max_size=30), st.integers(-10**15, 10**15).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["-1", "0", "1e400", "nan", "1s", "1700000000", "1700000000000",
                     "2023-11-14T22:13:20Z", "Tue, 14 Nov 2023 22:13:20 GMT"]),
)


@given(headers=st.dictionaries(st.sampled_from([*_NAMES, "retry-after", "retry-after-ms"]),
                               _VALUES, max_size=12))
def test_garbage_never_raises_and_waits_are_never_negative(headers: dict[str, str]) -> None:
    state = parse_rate_limits(429, headers, NOW)
    if state is None:
        return
    assert state.not_before is None or state.not_before >= NOW
    for window in state.windows().values():
        assert window.remaining is None or window.remaining >= 0
        assert window.reset_at is None or window.reset_at >= NOW
    assert state.wait_time(NOW) >= 0.0
