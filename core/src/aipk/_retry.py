"""When to retry, and how long to wait first.

Defaults (all configurable per client and per call through
[`RetryPolicy`][aipk._retry.RetryPolicy]):

* up to ``max_retries=2`` retries (3 attempts);
* retried: 408, 409, 429, 5xx, 529, timeouts and connection errors *before the first byte*,
  any failure before the caller received anything (a 2xx body cut, truncated or not JSON; a
  stream cut before its first event), and whatever the provider's ``x-should-retry`` header
  says; never 400/401/403/404/422;
* wait ``min(initial_delay * 2**attempt, max_delay) * U(1 - jitter, 1)``: 0.5 s, 1 s, 2 s …
  capped at 8 s;
* a server-given delay (``retry-after-ms``, ``retry-after``) on a 429 or a 5xx (a 503 or 529
  often has one) is used as is when it is at most ``max_retry_after`` (60 s); beyond it the
  call fails at once with the RateLimitError or ServerError, whose ``retry_after`` says how
  long the provider asked for;
* a stream that has already delivered events is never restarted.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ._records import record
from .errors import ProviderError, RateLimitError, ServerError

__all__ = ["RetryPolicy"]


@record(kw_only=True)
class RetryPolicy:
    """How many times to retry and how long to wait between attempts.

    Attributes:
        max_retries: Retries after the first attempt (0 disables retrying).
        initial_delay: Seconds before the first retry; doubled for each later one.
        max_delay: Upper bound, in seconds, on one computed backoff delay.
        max_retry_after: Longest provider-requested wait (``retry-after``) honoured; a longer one
            raises at once.
        jitter: Up to this fraction is taken off each computed delay, at random.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    jitter: float = 0.25

    def delay(
        self, attempt: int, error: ProviderError, rand: Callable[[], float] = random.random
    ) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to give up now."""
        if attempt >= self.max_retries or not error.retryable:
            return None
        if isinstance(error, (RateLimitError, ServerError)) and error.retry_after is not None:
            wait: float = error.retry_after  # the provider's retry-after (429, 503, 529 …)
            return max(wait, 0.0) if wait <= self.max_retry_after else None
        base = min(self.initial_delay * (2.0**attempt), self.max_delay)
        return base * (1.0 - self.jitter * rand())
