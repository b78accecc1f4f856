"""What the router does about each target's error (`classify()`), and its default
policies."""

from __future__ import annotations

import math
from typing import Literal

import attrs

from aipk._breaker import BreakerPolicy, CooldownPolicy
from aipk._errormap import is_context_window
from aipk._retry import RetryPolicy
from aipk.errors import (
    AllTargetsFailedError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContextWindowExceededError,
    ProviderError,
    RateLimitError,
    ResponseError,
    ServerError,
    StatusError,
    StreamError,
    TransportError,
)

#: The retry policy each call to a target uses by default: no retries inside a target (the
#: router is the retry loop, across targets) and no client-side wait over 1 s before sending
#: (the router fails over instead).
TARGET_RETRY = RetryPolicy(max_retries=0, max_retry_after=1.0)


def _wait_budget(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0 <= value < math.inf):
        raise ConfigurationError(
            f"max_wait must be a finite number of seconds, 0 or more (0 fails at once when no "
            f"target is available), got {value!r}")
    return float(value)


DEFAULT_COOLDOWN = CooldownPolicy()
_NO_COOLDOWN = CooldownPolicy(rate_limit=0, server_error=0, network=0, credential=0)
DEFAULT_BREAKER = BreakerPolicy()


def is_context_window_error(error: BaseException) -> bool:
    """True for a provider's "the request does not fit the model's context window" error: a
    [`ContextWindowExceededError`][aipk.errors.ContextWindowExceededError], or a BadRequestError
    whose code or text says so (errors built by hand or by an older plugin)."""
    if isinstance(error, ContextWindowExceededError):
        return True
    if not isinstance(error, BadRequestError):
        return False
    return is_context_window(error.code, error.message)


Action = Literal["raise", "failover", "context"]
BreakerVerdict = Literal["success", "failure", "neutral"]


@attrs.frozen(slots=True)
class Verdict:
    """What the router does about one target's error: ``action`` (raise it, fail over, or the
    context-window fallback), the target's ``cooldown`` in seconds, and what it tells the
    breaker.

    Attributes:
        action: ``raise``, ``failover`` or ``context`` (the context-window fallback).
        cooldown: Seconds to skip the target.
        breaker: What the breaker records: ``success``, ``failure`` or ``neutral``.
    """

    action: Action
    cooldown: float = 0.0
    breaker: BreakerVerdict = "neutral"


def classify(error: ProviderError, cooldown: CooldownPolicy = DEFAULT_COOLDOWN) -> Verdict:
    """What the router does about ``error`` from one target (see docs/routing.md)."""
    c = cooldown
    if isinstance(error, RateLimitError):
        if error.retry_after is not None:
            wait = error.retry_after
        else:
            wait = c.rate_limit if error.retryable else c.credential  # a spent quota: long
        return Verdict("failover", min(wait, c.max_cooldown), "neutral")
    if isinstance(error, AuthenticationError):
        return Verdict("failover", min(c.credential, c.max_cooldown), "failure")
    if isinstance(error, BadRequestError):
        if is_context_window_error(error):
            return Verdict("context", 0.0, "success")
        if error.retryable:  # 408, 409: transient
            return Verdict("failover", min(c.server_error, c.max_cooldown), "neutral")
        return Verdict("raise", 0.0, "success")
    if isinstance(error, ServerError) and error.retry_after is not None:  # 503 + retry-after
        return Verdict("failover", min(max(c.server_error, error.retry_after), c.max_cooldown),
                       "failure")
    if isinstance(error, (ServerError, StatusError, ResponseError)):
        return Verdict("failover", min(c.server_error, c.max_cooldown), "failure")
    if isinstance(error, TransportError):
        return Verdict("failover", min(c.network, c.max_cooldown), "failure")
    if isinstance(error, StreamError):
        if error.retryable:
            return Verdict("failover", min(c.server_error, c.max_cooldown), "failure")
        return Verdict("raise", 0.0, "success")
    if isinstance(error, AllTargetsFailedError):  # a router used as a target's client
        return Verdict("failover", min(error.retry_after, c.max_cooldown), "neutral")
    return Verdict("raise", 0.0, "neutral")
