"""Cerebras rate-limit headers as a [`RateLimitState`][aipk.RateLimitState].

Cerebras documents ``x-ratelimit-{limit,remaining,reset}-requests-day`` and
``…-tokens-minute``, with resets in *relative seconds* (``33011.382867``); the Go SDK also read
``…-requests-minute``. Other spellings seen in the wild are accepted as fallbacks, field by
field, in this order:

* requests (per minute): ``requests-minute``, then the plain OpenAI ``requests``;
* tokens (per minute): ``tokens-minute``, then ``tokens``;
* daily requests: ``requests-day``, ``requests-daily``, ``day-requests``, ``daily``;
* daily tokens: ``tokens-day``, ``tokens-daily``, ``day-tokens``.

``retry-after`` / ``retry-after-ms`` become an absolute ``not_before``. Garbage, negative and
out-of-range values are ignored (never raised), and a ``0`` limit is treated as "no data", as
the OpenAI parser does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aipk
from aipk import RateLimitState, RateLimitWindow

__all__ = ["DAILY_REQUESTS", "DAILY_TOKENS", "REQUESTS", "TOKENS", "parse_rate_limits"]

#: Header-name suffixes per window, most specific first.
REQUESTS = ("requests-minute", "requests")
TOKENS = ("tokens-minute", "tokens")
DAILY_REQUESTS = ("requests-day", "requests-daily", "day-requests", "daily")
DAILY_TOKENS = ("tokens-day", "tokens-daily", "day-tokens")


def _first(headers: Mapping[str, str], field: str, suffixes: Sequence[str]) -> str | None:
    for suffix in suffixes:
        value = headers.get(f"x-ratelimit-{field}-{suffix}")
        if value is not None:
            return value
    return None


def _window(headers: Mapping[str, str], suffixes: Sequence[str], now: float) -> (
        RateLimitWindow | None):
    return RateLimitWindow.from_values(
        _first(headers, "limit", suffixes),
        _first(headers, "remaining", suffixes),
        aipk.parse_reset(_first(headers, "reset", suffixes), now),
    )


def parse_rate_limits(status: int, headers: Mapping[str, str], now: float) -> (
        RateLimitState | None):
    """The state Cerebras reports in ``headers`` (lower-cased names), or None if it says none."""
    requests = _window(headers, REQUESTS, now)
    tokens = _window(headers, TOKENS, now)
    daily_requests = _window(headers, DAILY_REQUESTS, now)
    daily_tokens = _window(headers, DAILY_TOKENS, now)
    retry_after = aipk.parse_retry_after(headers, now)
    if retry_after is None and all(
            w is None for w in (requests, tokens, daily_requests, daily_tokens)):
        return None
    return RateLimitState(
        requests=requests, tokens=tokens, daily_requests=daily_requests,
        daily_tokens=daily_tokens,
        not_before=None if retry_after is None else now + retry_after,
        observed_at=now,
    )
