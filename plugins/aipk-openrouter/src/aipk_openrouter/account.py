"""The key endpoint: credits left and free-tier status.

``GET /key`` answers ``{"data": {"label", "limit", "usage", "limit_remaining", "is_free_tier",
"rate_limit": {"requests", "interval"}, …}}`` (``limit`` null: no spending cap). Build the
request with `key_request()` (send it with your client's credential), parse the body with
`parse_key()`, and merge `KeyInfo.state()` into what you track. Unlike the Go SDK, this
is never called before every chat request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from aipk import HttpRequest, Provider, RateLimitState
from aipk.errors import ResponseError

__all__ = ["KeyInfo", "key_request", "parse_key"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@attrs.frozen(kw_only=True)
class KeyInfo:
    """What OpenRouter says about the key in use. Amounts are in credits (US dollars)."""

    label: str | None = None
    limit: float | None = None
    usage: float | None = None
    limit_remaining: float | None = None
    is_free_tier: bool | None = None
    rate_limit_requests: int | None = None
    rate_limit_interval: str | None = None

    @property
    def credits_remaining(self) -> float | None:
        """Credits left under the key's limit; None when the key has no limit (or unknown)."""
        if self.limit_remaining is not None:
            return max(self.limit_remaining, 0.0)
        if self.limit is not None and self.usage is not None:
            return max(self.limit - self.usage, 0.0)
        return None

    def state(self, now: float) -> RateLimitState:
        """A RateLimitState carrying ``credits_remaining``, to merge into the tracker."""
        return RateLimitState(credits_remaining=self.credits_remaining, observed_at=now)


def key_request(provider: Provider) -> HttpRequest:
    """``GET {base_url}/key``, to be authenticated and sent by the client."""
    return HttpRequest(method="GET", url=provider.url("key"),
                       headers={"accept": "application/json"})


def parse_key(data: Any) -> KeyInfo:
    """The decoded ``GET /key`` body as KeyInfo; ResponseError if it is not that shape."""
    info = data.get("data") if isinstance(data, Mapping) else None
    if not isinstance(info, Mapping):
        raise ResponseError("the key endpoint answered without a 'data' object",
                            provider="openrouter")
    label = info.get("label")
    free = info.get("is_free_tier")
    limits = info.get("rate_limit")
    limits = limits if isinstance(limits, Mapping) else {}
    requests = limits.get("requests")
    interval = limits.get("interval")
    return KeyInfo(
        label=label if isinstance(label, str) else None,
        limit=_number(info.get("limit")),
        usage=_number(info.get("usage")),
        limit_remaining=_number(info.get("limit_remaining")),
        is_free_tier=free if isinstance(free, bool) else None,
        rate_limit_requests=requests if type(requests) is int and requests >= 0 else None,
        rate_limit_interval=interval if isinstance(interval, str) else None,
    )
