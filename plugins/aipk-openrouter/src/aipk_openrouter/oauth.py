"""OpenRouter's PKCE login, as pure pieces: it yields a permanent API key for the key pool.

1. Make a verifier (`new_code_verifier()`) and its S256 `code_challenge()`.
2. Send the user to `authorization_url()` (``https://openrouter.ai/auth?callback_url=…
   &code_challenge=…&code_challenge_method=S256``); OpenRouter redirects to ``callback_url``
   with ``?code=…``.
3. Send `key_exchange_request()` (``POST https://openrouter.ai/api/v1/auth/keys`` with
   ``{code, code_verifier, code_challenge_method}``) and read the key with
   `parse_key_exchange()`. There is no refresh: the key is permanent until revoked.

Running the callback server belongs to aipk's credential machinery: `login_flow()` is the
``key_exchange`` [`LoginFlow`][aipk.credentials.LoginFlow] that ``aipk login openrouter`` runs
(localhost callbacks on any port are allowed), and `add_to_pool()` puts the key it returns
into a [`KeyPool`][aipk.credentials.KeyPool]::

    key = login(login_flow(), credential_id="laptop")
    add_to_pool(pool, key)
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from aipk import HttpRequest, Secret
from aipk.errors import ConfigurationError, ResponseError

if TYPE_CHECKING:
    from aipk import Credential
    from aipk.credentials import KeyPool, LoginFlow, OAuthCredential

__all__ = ["AUTH_URL", "KEYS_URL", "add_to_pool", "authorization_url", "code_challenge",
           "key_exchange_request", "login_flow", "new_code_verifier", "parse_key_exchange"]

AUTH_URL = "https://openrouter.ai/auth"
KEYS_URL = "https://openrouter.ai/api/v1/auth/keys"
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_code_verifier() -> str:
    """A fresh RFC 7636 verifier: 32 random bytes, base64url, 43 characters."""
    return _b64url(secrets.token_bytes(32))


def code_challenge(verifier: str) -> str:
    """The S256 challenge for ``verifier`` (which must be 43-128 unreserved characters)."""
    if not _VERIFIER.fullmatch(verifier):
        raise ValueError("a PKCE code verifier is 43-128 characters of A-Z a-z 0-9 - . _ ~")
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def authorization_url(callback_url: str, challenge: str, *, auth_url: str = AUTH_URL) -> str:
    """Where to send the user; ``callback_url`` (http or https) is escaped properly."""
    parts = urlsplit(callback_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"callback_url {callback_url!r} must be an http(s) URL, e.g. "
            f"'http://localhost:3000/callback'")
    query = urlencode({"callback_url": callback_url, "code_challenge": challenge,
                       "code_challenge_method": "S256"})
    return f"{auth_url}?{query}"


def key_exchange_request(code: str, code_verifier: str, *, keys_url: str = KEYS_URL) -> (
        HttpRequest):
    """``POST /auth/keys`` trading the callback's ``code`` and the verifier for a key."""
    if not code:
        raise ConfigurationError("the callback carried no code; start the login again")
    return HttpRequest(
        method="POST", url=keys_url,
        headers={"content-type": "application/json", "accept": "application/json"},
        json={"code": code, "code_verifier": code_verifier, "code_challenge_method": "S256"},
    )


def parse_key_exchange(data: Any) -> Secret:
    """The API key from the exchange's ``{"key": …}`` answer, wrapped as a Secret."""
    key = data.get("key") if isinstance(data, Mapping) else None
    if not isinstance(key, str) or not key:
        raise ResponseError("the key exchange answered without a key; start the login again",
                            provider="openrouter")
    return Secret(key)


def login_flow() -> LoginFlow:
    """The ``openrouter`` login: PKCE whose result is a permanent API key (no client id)."""
    from aipk.credentials import LoginFlow, OAuthEndpoints

    endpoints = OAuthEndpoints(provider="openrouter", client_id="", authorize_url=AUTH_URL,
                               token_url=KEYS_URL)
    return LoginFlow(kind="key_exchange", endpoints=endpoints, redirect_host="localhost")


def add_to_pool(pool: KeyPool, result: OAuthCredential) -> Credential:
    """Add the key a login returned to ``pool`` as an ``api_key`` credential (same id) and
    return that credential; the pool's provider must be ``openrouter``."""
    from aipk.credentials import api_key_credential

    if pool.provider != "openrouter":
        raise ConfigurationError(f"an OpenRouter key cannot join the {pool.provider!r} pool; "
                                 f"use a KeyPool for 'openrouter'")
    credential = api_key_credential(result)
    pool.add(credential)
    return credential
