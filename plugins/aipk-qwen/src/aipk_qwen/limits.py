"""Qwen / DashScope rate-limit headers as a [`RateLimitState`][aipk.RateLimitState].

Qwen's portal and DashScope mostly send no rate-limit headers (hence the client-side limits
on the ``qwen`` spec). When they do, they use the OpenAI family; the Go SDK also read
``qwen-ratelimit-*`` and ``(x-)dashscope-ratelimit-*`` with the same
``<prefix>-{limit,remaining,reset}-{requests,tokens}`` shape. Each field is taken from the first
family that has it, in that order. Unlike the Go SDK, a real ``0`` remaining is kept, never
treated as "unset". ``retry-after`` / ``retry-after-ms`` become ``not_before``; nonsense values
are ignored, never raised.
"""

from __future__ import annotations

from collections.abc import Mapping

import aipk
from aipk import RateLimitState, RateLimitWindow

__all__ = ["PREFIXES", "parse_rate_limits"]

#: Header families, most authoritative first.
PREFIXES = ("x-ratelimit", "qwen-ratelimit", "x-dashscope-ratelimit", "dashscope-ratelimit")


def _first(headers: Mapping[str, str], field: str, window: str) -> str | None:
    for prefix in PREFIXES:
        value = headers.get(f"{prefix}-{field}-{window}")
        if value is not None:
            return value
    return None


def _window(headers: Mapping[str, str], window: str, now: float) -> RateLimitWindow | None:
    return RateLimitWindow.from_values(
        _first(headers, "limit", window),
        _first(headers, "remaining", window),
        aipk.parse_reset(_first(headers, "reset", window), now),
    )


def parse_rate_limits(status: int, headers: Mapping[str, str], now: float) -> (
        RateLimitState | None):
    """The state in ``headers`` (lower-cased names), or None when they say nothing."""
    requests = _window(headers, "requests", now)
    tokens = _window(headers, "tokens", now)
    retry_after = aipk.parse_retry_after(headers, now)
    if requests is None and tokens is None and retry_after is None:
        return None
    return RateLimitState(
        requests=requests, tokens=tokens,
        not_before=None if retry_after is None else now + retry_after,
        observed_at=now,
    )
