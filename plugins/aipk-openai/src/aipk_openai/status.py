"""OpenAI's error answers and rate-limit headers, as pure functions: the error
mapping (HTTP errors and in-band stream errors) and the rate-limit parsing that
OpenAI-compatible plugins share; re-exported by `aipk_openai.wire`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aipk
from aipk import (
    Provider,
    RateLimitState,
)
from aipk.errors import (
    ContentFilteredError,
    ProviderError,
    RateLimitError,
    StreamError,
)

from .waits import wait_in_message

__all__ = ["map_error", "parse_rate_limits", "provider_rate_limits"]

#: in-band error codes (compared in lower case) of a transient failure on the server's side:
#: worth another try while nothing was delivered (Azure's ``ServiceUnavailable`` and
#: ``InternalServerError``, OpenAI's ``server_error``, compatible servers' ``internal_error``,
#: ``overloaded`` …)
_RETRYABLE_CODES = frozenset({
    "server_error", "overloaded", "overloaded_error", "rate_limit_exceeded", "timeout",
    "service_unavailable", "serviceunavailable", "too_many_requests_error", "queue_exceeded",
    "internal_error", "internalerror", "internal_server_error", "internalservererror",
    "bad_gateway", "gateway_timeout", "engine_overloaded", "model_overloaded"})


#: moderation codes of compatible servers that the core does not know as content filters:
#: DashScope's ``data_inspection_failed`` (its native API says ``DataInspectionFailed``)
_MODERATION_CODES = frozenset({"data_inspection_failed", "datainspectionfailed"})
#: codes (in lower case) of an account whose quota or credit is spent: OpenAI's
#: ``insufficient_quota``, DashScope's ``Arrearage`` (a 400: the account is in arrears)
_SPENT_CODES = frozenset({"insufficient_quota", "arrearage"})


def _flat_error(data: Any) -> bool:
    """True for the flat error body some compatible servers send instead of ``{"error": …}``
    (Cerebras: ``{"message", "type", "param", "code"}``)."""
    return (isinstance(data, Mapping) and "error" not in data
            and isinstance(data.get("message"), str) and ("type" in data or "code" in data))


def _stream_error(provider: Provider, error: Any) -> StreamError:
    kind: Any = None
    if isinstance(error, Mapping):
        message = str(error.get("message") or "the provider reported an error mid-stream")
        kind = error.get("type")
        code = error.get("code") or kind
    else:
        message, code = str(error), None
    if isinstance(code, str) and code.isdigit():  # OpenRouter's HTTP status, as a string
        code = int(code)
    retryable = (str(code).lower() in _RETRYABLE_CODES or str(kind).lower() in _RETRYABLE_CODES
                 or (isinstance(code, int) and (code >= 500 or code == 429)))
    return StreamError(message, provider=provider.name, code=None if code is None else str(code),
                       retryable=retryable, body=error)


def map_error(provider: Provider, status: int, headers: Mapping[str, str], data: Any,
              request_id: str | None, now: float) -> ProviderError:
    """An OpenAI-shaped error body (``{"error": {"message", "type", "code"}}``, or the same
    fields at the top level as Cerebras sends them) as a typed error."""
    message: str | None = None
    code: str | None = None
    error = data.get("error") if isinstance(data, Mapping) else None
    if isinstance(error, Mapping):
        message = error.get("message")
        raw_code = error.get("code") or error.get("type")
        code = None if raw_code is None else str(raw_code)
    elif isinstance(error, str):
        message = error
    elif _flat_error(data):
        message = data["message"]
        raw_code = data.get("code") or data.get("type")
        code = None if raw_code is None else str(raw_code)
    elif isinstance(data, str) and data:
        message = data
    if status == 400 and code is not None and code.lower() in _MODERATION_CODES:
        return ContentFilteredError(
            f"{message or 'the content was flagged'} (the provider's content moderation "
            f"flagged the prompt or the answer; rephrase it, retrying as is will not help)",
            provider=provider.name, status=status, body=data, headers=headers,
            request_id=request_id, retryable=False, code=code)
    spent = code is not None and code.lower() in _SPENT_CODES
    if spent:
        message = (f"{message or 'the quota is spent'} (the account's quota or credit is spent: "
                   f"add credits or raise the limit in the provider's billing settings; "
                   f"retrying will not help)")
    mapped: ProviderError
    if spent and status != 429:  # DashScope's Arrearage is a 400: the same spent account
        mapped = RateLimitError(message or "", provider=provider.name, status=status,
                                body=data, headers=headers, request_id=request_id, code=code)
    else:
        mapped = aipk.error_for_status(provider=provider.name, status=status,
                                       headers=headers, body=data, message=message, code=code,
                                       request_id=request_id, now=now)
    if spent:  # a 429 that waiting does not cure: the router cools the key down for long
        mapped.retryable = False
    elif isinstance(mapped, RateLimitError) and mapped.retry_after is None:
        mapped.retry_after = wait_in_message(message)  # "Please try again in 4.428s."
    return mapped


def parse_rate_limits(status: int, headers: Mapping[str, str], now: float) -> (
        RateLimitState | None):
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` and retry-after."""
    return provider_rate_limits(None, status, headers, now)


def provider_rate_limits(provider: Provider | None, status: int, headers: Mapping[str, str],
                         now: float) -> RateLimitState | None:
    """`parse_rate_limits()` with the ``aipk_parse_rate_limits`` hook's arguments (the
    provider is not needed): the plugin's hook itself, so a response costs no forwarding
    call."""
    # Retry-after means something only on a refusal (429, 503) or a redirect, not on a 2xx.
    retry_after = aipk.parse_retry_after(headers, now) if status >= 300 else None
    return RateLimitState.from_headers(headers, now, _REQUEST_HEADERS, _TOKEN_HEADERS,
                                       retry_after)


#: OpenAI's (limit, remaining, reset) headers of the requests and the tokens window
_REQUEST_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                    "x-ratelimit-reset-requests")
_TOKEN_HEADERS = ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
                  "x-ratelimit-reset-tokens")
