"""The key endpoint: request builder and the pure parser into KeyInfo / RateLimitState."""

from __future__ import annotations

from typing import Any

import pytest

from aipk import Provider, RateLimitState
from aipk.errors import ResponseError
from aipk_openrouter import OPENROUTER, KeyInfo, key_request, parse_key

NOW = 1_700_000_000.0


def test_key_request() -> None:
    provider = Provider(spec=OPENROUTER, base_url="https://openrouter.ai/api/v1/")
    built = key_request(provider)
    assert (built.method, built.url) == ("GET", "https://openrouter.ai/api/v1/key")
    assert built.json is None and "authorization" not in built.headers


def test_paid_key_with_a_limit() -> None:
    info = parse_key({"data": {
        "label": "sk-or-v1-abc...xyz", "limit": 100, "usage": 25.5, "limit_remaining": 74.5,
        "is_free_tier": False, "rate_limit": {"requests": 10, "interval": "10s"}}})
    assert info == KeyInfo(label="sk-or-v1-abc...xyz", limit=100.0, usage=25.5,
                           limit_remaining=74.5, is_free_tier=False, rate_limit_requests=10,
                           rate_limit_interval="10s")
    assert info.credits_remaining == 74.5
    assert info.state(NOW) == RateLimitState(credits_remaining=74.5, observed_at=NOW)


def test_limit_minus_usage_when_limit_remaining_is_missing() -> None:
    info = parse_key({"data": {"limit": 10, "usage": 12.5}})
    assert info.credits_remaining == 0.0  # overspent: never negative


def test_free_tier_key_without_a_limit() -> None:
    info = parse_key({"data": {"limit": None, "usage": 0, "limit_remaining": None,
                               "is_free_tier": True}})
    assert info.is_free_tier is True
    assert info.credits_remaining is None  # no cap: nothing to count down
    assert info.state(NOW).credits_remaining is None


def test_nonsense_fields_are_ignored() -> None:
    info = parse_key({"data": {"limit": "100", "usage": True, "limit_remaining": float("nan"),
                               "is_free_tier": "yes", "label": 5,
                               "rate_limit": {"requests": -1, "interval": 10}}})
    assert info == KeyInfo()


@pytest.mark.parametrize("data", [None, {}, {"data": None}, {"data": []}, "text",
                                  {"error": {"code": 401}}])
def test_wrong_shape_is_a_response_error(data: Any) -> None:
    with pytest.raises(ResponseError, match="data"):
        parse_key(data)
