"""Generic mapping from an HTTP error response to a typed error.

Provider plugins call `error_for_status()` from their ``aipk_map_error`` hook after pulling
the message and code out of their own error body shape; the status decides the error class.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ._http import redact_url
from ._ratelimit import parse_retry_after
from .errors import (
    AuthenticationError,
    AuthErrorCode,
    BadRequestError,
    ContentFilteredError,
    ContextWindowExceededError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    StatusError,
)

__all__ = ["RETRYABLE_STATUSES", "error_for_status", "is_content_filter", "is_context_window",
           "should_retry_header"]

#: Statuses worth retrying: request timeout, conflict/lock timeout, rate limit, server errors.
RETRYABLE_STATUSES = frozenset({408, 409, 429})

_HINTS = {
    401: "check the API key (or re-run the login command for OAuth credentials)",
    403: "the credential lacks permission for this model or endpoint",
    404: "check the model name and base_url",
    413: "the request is too large; send fewer or shorter messages",
}


#: Error codes providers use for a prompt that does not fit the context window.
CONTEXT_CODES = frozenset({"context_length_exceeded", "context_window_exceeded",
                           "model_context_window_exceeded"})
#: What a too-long prompt's error message says (compiled by ``re`` on the first error).
_CONTEXT_TEXT = (r"context[ _-]?(length|window|limit)|prompt is too long"
                 r"|input token count.*exceeds|maximum number of tokens|too many (input )?tokens"
                 r"|range of input length")
#: Error codes for a prompt blocked by a safety filter (OpenAI/Azure, LiteLLM-style proxies).
CONTENT_FILTER_CODES = frozenset({"content_filter", "content_policy_violation",
                                  "content_filtered", "responsibleaipolicyviolation"})


def is_context_window(code: str | None, message: str | None) -> bool:
    """True when a 400-class error's code or message says the prompt is too long."""
    if code is not None and code.lower() in CONTEXT_CODES:
        return True
    return bool(message) and re.search(_CONTEXT_TEXT, message or "", re.IGNORECASE) is not None


def is_content_filter(code: str | None) -> bool:
    """True when a 400-class error's code says a safety filter blocked the prompt."""
    return code is not None and code.lower() in CONTENT_FILTER_CODES


def _redirected(text: str, headers: Mapping[str, str]) -> str:
    """The message for a redirect, which aipk never follows (on a cross-host redirect the
    HTTP libraries keep provider key headers such as ``x-api-key``)."""
    location = headers.get("location")
    where = f" to {redact_url(location)}" if location else ""
    return (f"{text}: the server redirected the request{where}; aipk does not follow "
            f"redirects, so a credential never goes to another address: set base_url= to the "
            f"address the provider answers at")


def should_retry_header(headers: Mapping[str, str]) -> bool | None:
    """The provider's own ``x-should-retry`` verdict, if it sent one."""
    value = headers.get("x-should-retry")
    if value is None:
        return None
    value = value.strip().lower()
    return True if value == "true" else False if value == "false" else None


def error_for_status(
    *,
    provider: str,
    status: int,
    headers: Mapping[str, str],
    body: Any,
    message: str | None,
    code: str | None = None,
    request_id: str | None = None,
    now: float = 0.0,
) -> ProviderError:
    """The typed error for ``status``, with ``message`` (the provider's words) and a fix hint.

    What ``aipk_map_error`` returns once it has read the provider's message and code from its
    error body. The class follows from the status: 429 `RateLimitError` (``retry_after`` from
    the ``retry-after-ms`` / ``retry-after`` headers, read at ``now``), 401
    `AuthenticationError`, 403 `PermissionDeniedError`, 404 `NotFoundError`, 529
    `OverloadedError`, other 5xx `ServerError`, other 4xx `BadRequestError`, a 3xx a
    `StatusError` (aipk never follows redirects). Among 4xx, ``code`` (or, for the context
    window, the message's wording such as "context length" or "prompt is too long") picks a
    subclass: ``context_length_exceeded``, ``context_window_exceeded`` or
    ``model_context_window_exceeded`` for `ContextWindowExceededError`; ``content_filter``,
    ``content_policy_violation``, ``content_filtered`` or ``responsibleaipolicyviolation``
    for `ContentFilteredError`. Translate the provider's own codes into these to get the
    subclasses. ``x-should-retry: true|false`` overrides whether the error is retryable.
    """
    said: object = message  # a plugin may pass on an odd body's message as it found it
    if said is not None and not isinstance(said, str):
        message = json.dumps(said, ensure_ascii=False, default=str)[:2000]
    given: object = code
    if given is not None and not isinstance(given, str):
        code = str(given)
    text = message or f"HTTP {status} with no error message"
    hint = _HINTS.get(status)
    if hint:
        text = f"{text} ({hint})"
    verdict = should_retry_header(headers)
    common: dict[str, Any] = {
        "provider": provider, "status": status, "body": body, "headers": headers,
        "request_id": request_id,
    }
    if 300 <= status < 400:
        return StatusError(_redirected(text, headers), retryable=False, code=code, **common)
    if status == 429:
        retry_after = parse_retry_after(headers, now)
        limited = RateLimitError(text, retry_after=retry_after, code=code, **common)
        if verdict is False:  # e.g. a 429 for an exhausted quota: waiting will not help
            limited.retryable = False
        return limited
    if status == 403:
        return PermissionDeniedError(text, auth_code=AuthErrorCode.SCOPE_INSUFFICIENT, **common)
    if status == 401:
        return AuthenticationError(text, auth_code=AuthErrorCode.INVALID_CREDENTIALS, **common)
    retryable = status in RETRYABLE_STATUSES or status >= 500
    if verdict is not None:
        retryable = verdict
    if status >= 500:
        wait = parse_retry_after(headers, now)
        kind = OverloadedError if status == 529 else ServerError
        return kind(text, retryable=retryable, code=code, retry_after=wait, **common)
    if 400 <= status < 500:
        if status == 404:
            return NotFoundError(text, retryable=retryable, code=code, **common)
        if is_content_filter(code):
            return ContentFilteredError(text, retryable=False, code=code, **common)
        if status in (400, 413, 422) and is_context_window(code, message):
            return ContextWindowExceededError(text, retryable=False, code=code, **common)
        return BadRequestError(text, retryable=retryable, code=code, **common)
    return StatusError(text, retryable=retryable, code=code, **common)
