"""OpenRouter rate-limit headers as a [`RateLimitState`][aipk.RateLimitState].

OpenRouter sends ``x-ratelimit-limit``, ``x-ratelimit-remaining`` and ``x-ratelimit-reset``, the
reset as an absolute time in epoch **milliseconds**; they describe request limits, so they fill
the ``requests`` window. They are read explicitly as milliseconds (a bare small number is not
mistaken for relative seconds). When they are absent the OpenAI family
(``x-ratelimit-*-requests`` / ``-tokens``) is read instead, and ``retry-after`` always becomes
``not_before``. Nonsense is ignored, never raised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import attrs

from aipk import RateLimitState, RateLimitWindow
from aipk_openai import wire

__all__ = ["parse_rate_limits", "parse_reset_ms"]

_MAX_AHEAD = 7 * 24 * 3600.0  # resets further out than a week are nonsense


def parse_reset_ms(value: str | None, now: float) -> float | None:
    """An epoch-milliseconds reset as absolute epoch seconds, or None if it makes no sense."""
    if value is None:
        return None
    try:
        at = float(value.strip()) / 1000.0
    except ValueError:
        return None
    if not math.isfinite(at) or at < now - 1.0 or at - now > _MAX_AHEAD:
        return None
    return max(at, now)


def _window(headers: Mapping[str, str], now: float) -> RateLimitWindow | None:
    return RateLimitWindow.from_values(
        headers.get("x-ratelimit-limit"),
        headers.get("x-ratelimit-remaining"),
        parse_reset_ms(headers.get("x-ratelimit-reset"), now),
    )


def parse_rate_limits(status: int, headers: Mapping[str, str], now: float) -> (
        RateLimitState | None):
    """The state in ``headers`` (lower-cased names), or None when they say nothing."""
    fallback = wire.parse_rate_limits(status, headers, now)
    own = _window(headers, now)
    if own is None:
        return fallback
    if fallback is None:
        return RateLimitState(requests=own, observed_at=now)
    return attrs.evolve(fallback, requests=own)
