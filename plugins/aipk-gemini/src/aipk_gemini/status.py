"""What a Gemini response says besides its answer: errors (an HTTP error body with its
``google.rpc`` details, or an ``error`` object mid-stream) as typed aipk errors, the waits and
daily quotas they name, and rate-limit state."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import aipk
from aipk import Provider, RateLimitState
from aipk.errors import (
    AuthenticationError,
    AuthErrorCode,
    OverloadedError,
    ProviderError,
    RateLimitError,
    StreamError,
)

__all__ = ["DAILY_QUOTA_CODE", "map_error", "parse_rate_limits", "rate_limit_state_from_error",
           "retry_delay", "seconds_until_daily_reset"]

#: ``RateLimitError.code`` for a 429 caused by a per-day quota (a ``quotaId`` containing
#: ``PerDay``): retrying today will not help, so the error is not retryable and its
#: ``retry_after`` is the time until the quota resets (midnight, US Pacific time).
DAILY_QUOTA_CODE = "DAILY_QUOTA_EXHAUSTED"
#: Longer retry delays are nonsense and ignored (the core's limit for resets, one week).
_MAX_DELAY = 7 * 24 * 3600.0
#: In-band error statuses worth retrying.
_RETRYABLE = {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED"}


def retry_delay(details: Any) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail's ``retryDelay`` (``"34s"``, ``"1.5s"``,
    or ``{"seconds", "nanos"}``); None when absent or nonsense. Never raises."""
    if not isinstance(details, list):
        return None
    for detail in details:
        if not isinstance(detail, Mapping) or not str(detail.get("@type", "")).endswith(
                "RetryInfo"):
            continue
        value = detail.get("retryDelay")
        seconds: float | None = None
        try:
            if isinstance(value, str):
                seconds = aipk.parse_duration(value)
            elif isinstance(value, Mapping):
                seconds = float(value.get("seconds") or 0) + float(value.get("nanos") or 0) / 1e9
        except (ValueError, TypeError, OverflowError):
            seconds = None
        if seconds is not None and math.isfinite(seconds) and 0 <= seconds <= _MAX_DELAY:
            return seconds
    return None


def _quota_ids(details: Any) -> list[str]:
    ids: list[str] = []
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("QuotaFailure"):
            for violation in detail.get("violations") or ():
                if isinstance(violation, Mapping) and isinstance(violation.get("quotaId"), str):
                    ids.append(violation["quotaId"])
    return ids


def _reason(details: Any) -> str | None:
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("ErrorInfo"):
            reason = detail.get("reason")
            return reason if isinstance(reason, str) else None
    return None


def _pacific() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("America/Los_Angeles")
    except Exception:  # noqa: BLE001 - no tz database (some Windows installs): use PST
        return timezone(timedelta(hours=-8))


def seconds_until_daily_reset(now: float) -> float:
    """Seconds from ``now`` until the next midnight US Pacific time (when daily quotas reset)."""
    local = datetime.fromtimestamp(now, _pacific())
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(0.0, midnight.timestamp() - now)


def _error_parts(data: Any) -> tuple[str | None, str | None, list[Any]]:
    if isinstance(data, list) and data:  # streaming endpoints answer errors as a JSON array
        data = data[0]
    error = data.get("error") if isinstance(data, Mapping) else None
    if isinstance(error, Mapping):
        message = error.get("message")
        status = error.get("status")
        details = error.get("details")
        return (str(message) if message else None,
                str(status) if status else (str(error["code"]) if error.get("code") else None),
                details if isinstance(details, list) else [])
    if isinstance(data, str) and data:
        return data, None, []
    return None, None, []


_AUTH_REASONS = {"API_KEY_INVALID": AuthErrorCode.INVALID_CREDENTIALS,
                 "API_KEY_EXPIRED": AuthErrorCode.INVALID_CREDENTIALS,
                 "ACCESS_TOKEN_EXPIRED": AuthErrorCode.TOKEN_EXPIRED,
                 "ACCESS_TOKEN_SCOPE_INSUFFICIENT": AuthErrorCode.SCOPE_INSUFFICIENT}


def map_error(provider: Provider, status: int, headers: Mapping[str, str], data: Any,
              request_id: str | None, now: float) -> ProviderError:
    """A Google error body (``{"error": {"code", "message", "status", "details"}}``) as a
    typed error: RetryInfo → ``retry_after``; a ``PerDay`` quota → `DAILY_QUOTA_CODE`,
    not retryable; an invalid API key (Gemini answers 400) → AuthenticationError."""
    message, code, details = _error_parts(data)
    reason = _reason(details)
    if reason in _AUTH_REASONS:
        auth_code = _AUTH_REASONS[reason]
        return AuthenticationError(
            f"{message or 'the credential was refused'} (check the API key: GEMINI_API_KEY or "
            f"api_key=; for OAuth, log in again)",
            provider=provider.name, auth_code=auth_code, status=status, body=data,
            headers=headers, request_id=request_id, details={"reason": reason})
    error = aipk.error_for_status(provider=provider.name, status=status, headers=headers,
                                  body=data, message=message, code=code, request_id=request_id,
                                  now=now)
    if isinstance(error, RateLimitError):
        delay = retry_delay(details)
        if delay is not None:
            error.retry_after = delay
        daily = [q for q in _quota_ids(details) if "PerDay" in q]
        if daily:
            error.code = DAILY_QUOTA_CODE
            error.retryable = False
            error.retry_after = seconds_until_daily_reset(now)
    elif status == 503 and message and "overloaded" in message.lower():
        return OverloadedError(error.message, provider=provider.name, status=status, body=data,
                               headers=headers, request_id=request_id, retryable=True,
                               code=code, retry_after=getattr(error, "retry_after", None))
    return error


def rate_limit_state_from_error(error: ProviderError, now: float) -> RateLimitState | None:
    """The ``not_before`` a RateLimitError's ``retry_after`` (from RetryInfo) implies.

    The rate-limit hook sees only headers, and Gemini puts its retry delay in the body; until
    the core feeds mapped errors to the tracker, callers can merge this state themselves.
    """
    if isinstance(error, RateLimitError) and error.retry_after is not None:
        return RateLimitState(not_before=now + error.retry_after, observed_at=now)
    return None


def parse_rate_limits(status: int, headers: Mapping[str, str], now: float) -> (
        RateLimitState | None):
    """Gemini sends no rate-limit headers; only a ``retry-after`` header (from a proxy, or the
    emulator) gives state. The RetryInfo in a 429 body is read by `map_error()`."""
    retry_after = aipk.parse_retry_after(headers, now)
    if retry_after is None:
        return None
    return RateLimitState(not_before=now + retry_after, observed_at=now)


def _stream_error(provider: Provider, error: Any) -> StreamError:
    if isinstance(error, Mapping):
        message = str(error.get("message") or "Gemini reported an error mid-stream")
        status = error.get("status")
        number = error.get("code")
        code = str(status) if status else (str(number) if number is not None else None)
        retryable = (status in _RETRYABLE
                     or (type(number) is int and (number >= 500 or number == 429)))
    else:
        message, code, retryable = str(error), None, False
    return StreamError(message, provider=provider.name, code=code, retryable=retryable,
                       body=error)
