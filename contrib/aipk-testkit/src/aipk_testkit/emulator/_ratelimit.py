"""A fixed-window request and token budget, protocol-neutral.

The emulator counts every routed request (and the tokens of each reply) against the budget and
asks the protocol handler to turn a `RateLimitSnapshot` into that provider's headers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimitSnapshot:
    """The budget after a request: limits, what remains, and when the window resets.

    Attributes:
        requests_limit: Requests allowed per window.
        requests_remaining: Requests left in the window, this one counted.
        tokens_limit: Tokens allowed per window.
        tokens_remaining: Tokens left in the window.
        reset_in: Seconds until the window resets.
        reset_at: The same instant as a Unix timestamp (for protocols with absolute resets).
    """

    requests_limit: int
    requests_remaining: int
    tokens_limit: int
    tokens_remaining: int
    reset_in: float
    reset_at: float


class RateLimiter:
    """``requests`` and ``tokens`` per ``window`` seconds; the window starts when created."""

    def __init__(self, requests: int, tokens: int, window: float) -> None:
        if requests < 1 or tokens < 1 or window <= 0:
            raise ValueError("requests and tokens must be >= 1 and window > 0")
        self.requests = requests
        self.tokens = tokens
        self.window = window
        self._start = time.monotonic()
        self._used_requests = 0
        self._used_tokens = 0

    def _roll(self, now: float) -> None:
        if now - self._start >= self.window:
            self._start = now
            self._used_requests = self._used_tokens = 0

    def exhausted(self) -> tuple[str, float] | None:
        """``(which, seconds until reset)`` when no request may pass now, else ``None``."""
        now = time.monotonic()
        self._roll(now)
        if self._used_requests >= self.requests:
            return "requests", self._start + self.window - now
        if self._used_tokens >= self.tokens:
            return "tokens", self._start + self.window - now
        return None

    def consume(self, requests: int, tokens: int) -> RateLimitSnapshot:
        """Charge a request and its tokens; the snapshot to report on its response."""
        now = time.monotonic()
        self._roll(now)
        self._used_requests += requests
        self._used_tokens += tokens
        reset_in = max(0.0, self._start + self.window - now)
        return RateLimitSnapshot(
            requests_limit=self.requests,
            requests_remaining=max(0, self.requests - self._used_requests),
            tokens_limit=self.tokens,
            tokens_remaining=max(0, self.tokens - self._used_tokens),
            reset_in=reset_in,
            reset_at=time.time() + reset_in,
        )
