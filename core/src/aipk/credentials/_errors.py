"""Credential errors: `AuthenticationError` subclasses that print cleanly
when no HTTP response was involved, and the helper that keeps secrets out of messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aipk._providers import Secret
from aipk._secrets import redact
from aipk.errors import AuthenticationError, AuthErrorCode

__all__ = ["CredentialError", "KeysExhaustedError", "scrub"]


class CredentialError(AuthenticationError):
    """A credential could not be used, refreshed, stored or obtained; ``auth_code`` says why
    and the message says what to do. ``status`` is the token endpoint's HTTP status, or 0."""

    def __init__(self, message: str, *, provider: str, auth_code: AuthErrorCode,
                 status: int = 0, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, provider=provider, auth_code=auth_code, status=status,
                         details=details)

    def __str__(self) -> str:
        if self.status:
            return super().__str__()
        return f"[{self.provider}] {self.message}"


class KeysExhaustedError(CredentialError):
    """Every credential in a pool is in backoff, unhealthy or already tried for this request.

    ``retry_after`` is the number of seconds until the earliest one is available again (None
    when none will be, e.g. the pool is empty).
    """

    def __init__(self, message: str, *, provider: str, retry_after: float | None,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, provider=provider, auth_code=AuthErrorCode.ALL_KEYS_EXHAUSTED,
                         details={**(details or {}), "retry_after": retry_after})
        self.retry_after = retry_after


def scrub(text: str, secrets: Iterable[Secret | str | None], limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters with every given secret value, and every live
    [`Secret`][aipk.Secret]'s (see `aipk._secrets.redact()`), replaced by ``****``."""
    out = text
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value and len(value) >= 4:
            out = out.replace(value, "****")
    out = redact(out)
    return out if len(out) <= limit else out[:limit] + "…"
