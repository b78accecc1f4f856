"""What an Anthropic response says besides its answer: errors (an HTTP error body, or an
``error`` event mid-stream) as typed aipk errors, and the ``anthropic-ratelimit-*`` headers as
rate-limit state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aipk
from aipk import Provider, RateLimitState, RateLimitWindow
from aipk.errors import ProviderError, StreamError

__all__ = ["map_error", "parse_rate_limits"]


#: In-band error types worth retrying (Anthropic's own advice: overloaded, internal, rate).
_RETRYABLE_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error",
                              "timeout_error"})


def _stream_error(provider: Provider, error: Any) -> StreamError:
    if isinstance(error, Mapping):
        message = error.get("message")
        code = error.get("type")
    else:
        message, code = error, None
    code = None if code is None else str(code)
    return StreamError(str(message or "the provider reported an error mid-stream"),
                       provider=provider.name, code=code, retryable=code in _RETRYABLE_TYPES,
                       body=error)


def map_error(provider: Provider, status: int, headers: Mapping[str, str], data: Any,
              request_id: str | None, now: float) -> ProviderError:
    """``{"type": "error", "error": {"type", "message"}, "request_id"}`` as a typed error."""
    message: str | None = None
    code: str | None = None
    if isinstance(data, Mapping):
        error = data.get("error")
        if isinstance(error, Mapping):
            raw_message, raw_code = error.get("message"), error.get("type")
            message = None if raw_message is None else str(raw_message)
            code = None if raw_code is None else str(raw_code)
        elif isinstance(error, str):
            message = error
        body_id = data.get("request_id")
        if request_id is None and isinstance(body_id, str) and body_id:
            request_id = body_id
    elif isinstance(data, str) and data:
        message = data
    return aipk.error_for_status(provider=provider.name, status=status, headers=headers,
                                 body=data, message=message, code=code, request_id=request_id,
                                 now=now)


_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


def _window(headers: Mapping[str, str], name: str, now: float) -> RateLimitWindow | None:
    prefix = "anthropic-ratelimit-" + name
    return RateLimitWindow.from_values(
        headers.get(prefix + "-limit"),
        headers.get(prefix + "-remaining"),
        aipk.parse_reset(headers.get(prefix + "-reset"), now),
    )


def parse_rate_limits(status: int, headers: Mapping[str, str], now: float) -> (
        RateLimitState | None):
    """``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,
    reset}`` (RFC 3339 resets) and ``retry-after``."""
    requests, tokens, input_tokens, output_tokens = (
        _window(headers, name, now) for name in _LIMITS)
    retry_after = aipk.parse_retry_after(headers, now)
    if retry_after is None and requests is None and tokens is None and input_tokens is None \
            and output_tokens is None:
        return None
    return RateLimitState(
        requests=requests, tokens=tokens, input_tokens=input_tokens,
        output_tokens=output_tokens,
        not_before=now + retry_after if retry_after is not None else None,
        observed_at=now,
    )
