"""The records of an OAuth login: endpoints, PKCE pairs, ``state`` values, and the
authorization-code and device requests in progress."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Literal

import attrs

from aipk._providers import Secret
from aipk.errors import AuthErrorCode

from ._errors import CredentialError
from ._oauthtoken import _secret_or_none, _strings

__all__ = [
    "PKCE",
    "AuthorizationRequest",
    "DeviceAuthorization",
    "OAuthEndpoints",
    "check_state",
    "new_state",
    "pkce_challenge",
]

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


@attrs.frozen(kw_only=True)
class OAuthEndpoints:
    """Where and as whom to authenticate; each provider plugin ships its own.

    ``provider`` labels errors. ``token_format`` is ``"form"`` (RFC 6749) or ``"json"``;
    ``extra_headers`` go on every token request (e.g. a beta header);
    ``extra_authorize_params`` on the authorization URL. ``state_in_token_request`` also sends
    the login's ``state`` with the code exchange (Anthropic's token endpoint expects it).

    Attributes:
        provider: The provider id, for error messages.
        client_id: The registered OAuth client id.
        token_url: The token endpoint.
        authorize_url: The authorization page (authorization-code and key-exchange logins).
        device_authorization_url: The device authorization endpoint (device logins).
        client_secret: The client secret, for installed apps that have one.
        scopes: The scopes to request.
        redirect_path: The callback path on the loopback redirect URI.
        token_format: How token requests are encoded: ``form`` or ``json``.
        extra_headers: Headers sent with every token request.
        extra_authorize_params: Parameters added to the authorization URL.
        state_in_token_request: Send the login's ``state`` with the code exchange too.
    """

    provider: str
    client_id: str
    token_url: str
    authorize_url: str | None = None
    device_authorization_url: str | None = None
    client_secret: Secret | None = attrs.field(default=None, converter=_secret_or_none)
    scopes: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    redirect_path: str = "/callback"
    token_format: Literal["form", "json"] = "form"
    extra_headers: Mapping[str, str] = attrs.field(factory=dict)
    extra_authorize_params: Mapping[str, str] = attrs.field(factory=dict)
    state_in_token_request: bool = False


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge: ``BASE64URL(SHA256(verifier))`` without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@attrs.frozen(kw_only=True)
class PKCE:
    """A PKCE verifier (secret) and its S256 challenge.

    Attributes:
        verifier: The code verifier, kept secret until the token request.
        challenge: Its S256 challenge, sent with the authorization request.
        method: The challenge method (``S256``).
    """

    verifier: Secret
    challenge: str
    method: str = "S256"

    @classmethod
    def generate(cls, verifier: str | None = None) -> PKCE:
        """A new pair (a random 86-character verifier), or the pair for ``verifier``."""
        value = secrets.token_urlsafe(64) if verifier is None else verifier
        if not _VERIFIER.match(value):
            raise ValueError("a PKCE verifier is 43 to 128 characters of A-Z a-z 0-9 - . _ ~")
        return cls(verifier=Secret(value), challenge=pkce_challenge(value))


def new_state() -> str:
    """A fresh, unguessable ``state`` value (256 bits)."""
    return secrets.token_urlsafe(32)


def check_state(expected: str, received: str | None, *, provider: str = "oauth") -> None:
    """Raise unless ``received`` equals ``expected`` (compared in constant time)."""
    if not received or not hmac.compare_digest(expected.encode(), received.encode()):
        raise CredentialError(
            "the sign-in callback's state does not match this login (a stale or forged "
            "link); nothing was saved: start the login again",
            provider=provider, auth_code=AuthErrorCode.OAUTH_FLOW_FAILED)


@attrs.frozen(kw_only=True)
class AuthorizationRequest:
    """One authorization-code login in progress: send the user to ``url``.

    Attributes:
        url: The authorization URL to open in the user's browser.
        redirect_uri: The loopback callback the provider redirects to.
        state: The anti-forgery value the callback must echo.
        pkce: The PKCE pair for the code exchange.
        scopes: The scopes requested.
    """

    url: str = attrs.field(repr=False)
    redirect_uri: str
    state: str = attrs.field(repr=False)
    pkce: PKCE = attrs.field(repr=False)
    scopes: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class DeviceAuthorization:
    """A device login in progress: show ``user_code`` and ``verification_uri`` to the user.

    Attributes:
        device_code: The code the client polls with (secret).
        user_code: The code the user enters on the verification page.
        verification_uri: Where the user enters it.
        verification_uri_complete: The same page with the code filled in, when the provider offers
            it.
        expires_in: Seconds until the codes expire.
        interval: Seconds between polls, as the provider asked.
        pkce: The PKCE pair, for providers that want a challenge.
        scopes: The scopes requested.
    """

    device_code: Secret
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None = None
    expires_in: float = 600.0
    interval: float = 5.0
    pkce: PKCE | None = attrs.field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
