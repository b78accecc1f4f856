"""The OAuth credential record and the refresh-function types that act on it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs

from aipk._providers import Credential, Secret
from aipk._secrets import check_credential

__all__ = [
    "AsyncRefreshFn",
    "OAuthCredential",
    "OnTokenRefresh",
    "RefreshFn",
]


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _secret(value: Secret | str) -> Secret:
    """``value`` as a Secret, without surrounding whitespace (a header cannot carry it)."""
    text = value.reveal() if isinstance(value, Secret) else value
    if isinstance(value, Secret) and text == text.strip():
        return value
    return Secret(text.strip() if isinstance(text, str) else text)


def _secret_or_none(value: Secret | str | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value or None
    return Secret(value) if value else None


def _extra(values: Mapping[str, Any] | None) -> Mapping[str, str]:
    return {str(k): v for k, v in (values or {}).items() if isinstance(v, str)}


def _keys_only(values: Mapping[str, str]) -> str:
    return repr(sorted(values))  # values may be identity tokens: never in a repr


@attrs.frozen(kw_only=True)
class OAuthCredential:
    """One OAuth account's tokens. ``expires_at`` is epoch seconds (None: unknown, refreshed
    only after a 401); ``id`` is a stable, non-secret label. ``extra`` keeps the token
    response's other string fields (Qwen's ``resource_url``, an ``id_token``); a refresh answer
    without them keeps the old values. Its repr shows only the keys.

    Attributes:
        id: A stable, non-secret label.
        access_token: The bearer token sent with requests.
        refresh_token: The token that obtains a new access token, if the provider issued one.
        expires_at: When the access token expires (None: unknown).
        scopes: The scopes granted.
        account_id: The provider's account id, when it says.
        token_type: The token type (``Bearer``).
        extra: The token response's other string fields.
    """

    id: str = "default"
    access_token: Secret = attrs.field(converter=_secret)
    refresh_token: Secret | None = attrs.field(default=None, converter=_secret_or_none)
    expires_at: float | None = None
    scopes: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    account_id: str | None = None
    token_type: str = "Bearer"
    extra: Mapping[str, str] = attrs.field(factory=dict, converter=_extra, repr=_keys_only,
                                           hash=False)

    @access_token.validator
    def _check_access(self, attribute: attrs.Attribute[Secret], value: Secret) -> None:
        if not value:
            raise ValueError("access_token must not be empty")
        # it goes into a header: a line break or a non-ASCII character must fail here, named,
        # not in the HTTP library with the token in its message
        check_credential(value.reveal(), where=f"the access token of OAuth credential "
                         f"{self.id!r}", fix="log in again, or fix the token endpoint's answer")

    def expires_in(self, now: float) -> float | None:
        """Seconds of validity left (negative once expired; None if unknown)."""
        return None if self.expires_at is None else self.expires_at - now

    @property
    def credential(self) -> Credential:
        """The access token as the [`Credential`][aipk.Credential] a request is signed with."""
        return Credential(kind="oauth", secret=self.access_token, id=self.id)

    def to_dict(self) -> dict[str, Any]:
        """Plain values *including the secrets*, for a token store to write."""
        return {
            "access_token": self.access_token.reveal(),
            "refresh_token": self.refresh_token.reveal() if self.refresh_token else None,
            "expires_at": self.expires_at,
            "scopes": list(self.scopes),
            "account_id": self.account_id,
            "token_type": self.token_type,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, credential_id: str, data: Mapping[str, Any]) -> OAuthCredential:
        """The inverse of `to_dict()` (KeyError/TypeError/ValueError when malformed)."""
        expires = data.get("expires_at")
        return cls(
            id=credential_id,
            access_token=Secret(str(data["access_token"])),
            refresh_token=data.get("refresh_token"),
            expires_at=None if expires is None else float(expires),
            scopes=tuple(str(s) for s in data.get("scopes") or ()),
            account_id=data.get("account_id"),
            token_type=str(data.get("token_type") or "Bearer"),
            extra=data.get("extra") if isinstance(data.get("extra"), Mapping) else None,
        )


#: Exchanges a credential's refresh token for new tokens (raise CredentialError on failure).
RefreshFn = Callable[[OAuthCredential], OAuthCredential]
AsyncRefreshFn = Callable[[OAuthCredential], Awaitable[OAuthCredential]]
#: Called with the new credential after every successful refresh (persist it, audit it).
OnTokenRefresh = Callable[[OAuthCredential], object]
