"""Qwen OAuth constants and the ``resource_url`` rule.

Qwen's portal (``portal.qwen.ai``) takes OAuth access tokens from the device-code flow that
qwen-code uses (RFC 8628 with PKCE, public client, no secret). The flow itself (requesting a
device code, polling, refreshing, storing tokens) belongs to aipk's credential machinery; this
module pins Qwen's endpoints and client (`login_flow()`, what ``aipk login qwen`` runs).

A token response may carry ``resource_url``: the host the token is valid for (for example
``portal.qwen.ai``); aipk keeps it in ``OAuthCredential.extra``. `base_url_for_resource()`
turns it into an API base URL, and `base_url_for()` does so for a credential::

    cred = OAuthManager.from_store("qwen", store, ...).token("default")
    client = aipk.Client("qwen", base_url=base_url_for(cred), credential=cred.credential)
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from aipk.errors import ConfigurationError

if TYPE_CHECKING:
    from aipk.credentials import LoginFlow, OAuthCredential

__all__ = [
    "CLIENT_ID",
    "DEVICE_CODE_URL",
    "DEVICE_GRANT_TYPE",
    "SCOPE",
    "TOKEN_URL",
    "base_url_for",
    "base_url_for_resource",
    "login_flow",
]

#: Where the device flow starts (POST, form-encoded: client_id, scope, code_challenge,
#: code_challenge_method=S256).
DEVICE_CODE_URL = "https://chat.qwen.ai/api/v1/oauth2/device/code"
#: Where the device code (and later the refresh token) is exchanged for tokens.
TOKEN_URL = "https://chat.qwen.ai/api/v1/oauth2/token"
#: The public client id qwen-code uses.
CLIENT_ID = "f0304373b74a44d2b584a3fb70ca9e56"
SCOPE = "openid profile email model.completion"
DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
#: The portal's API when a token names no ``resource_url``.
DEFAULT_BASE_URL = "https://portal.qwen.ai/v1"


def login_flow() -> LoginFlow:
    """The ``qwen`` login (``aipk login qwen``): a device code with PKCE, form-encoded."""
    from aipk.credentials import LoginFlow, OAuthEndpoints

    endpoints = OAuthEndpoints(provider="qwen", client_id=CLIENT_ID, token_url=TOKEN_URL,
                               device_authorization_url=DEVICE_CODE_URL,
                               scopes=tuple(SCOPE.split()))
    return LoginFlow(kind="device_code", endpoints=endpoints, pkce=True)


def base_url_for(credential: OAuthCredential, default: str = DEFAULT_BASE_URL) -> str:
    """The API base URL for a Qwen OAuth credential: from the ``resource_url`` its token
    response carried (kept in ``credential.extra``), else ``default``."""
    resource_url = credential.extra.get("resource_url", "").strip()
    return base_url_for_resource(resource_url) if resource_url else default


def base_url_for_resource(resource_url: str) -> str:
    """The API base URL for a token's ``resource_url``: ``https://<resource_url>/v1``.

    A bare host gets ``https://``; an explicit ``http://`` or ``https://`` is kept; the path
    ends in exactly one ``/v1``; query, fragment and trailing slashes are dropped. Anything
    without a host, or with another scheme, raises ConfigurationError.
    """
    text = resource_url.strip()
    if "://" not in text:
        text = "https://" + text.lstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"resource_url {resource_url!r} is not a host name or http(s) URL; expected "
            f"something like 'portal.qwen.ai'"
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
