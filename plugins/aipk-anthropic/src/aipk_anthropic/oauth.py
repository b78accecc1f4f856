"""Anthropic's sign-in: the Claude account (Pro/Max) login that Claude Code uses.

Authorization code with PKCE, JSON token requests, and the login's ``state`` sent with the code
exchange. Anthropic does not document this flow: the values below are Claude Code's public
client as reproduced by open-source clients (e.g. opencode's Anthropic auth plugin), not
confirmed by Anthropic. Also not confirmed: that the token endpoint accepts a loopback
``http://localhost:<port>/callback`` redirect for this client (the widely copied variant
redirects to ``https://console.anthropic.com/oauth/code/callback`` and has the user paste the
code). Requests with the token need the ``anthropic-beta: oauth-2025-04-20`` header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aipk.credentials import LoginFlow

__all__ = ["AUTHORIZE_URL", "CLIENT_ID", "EXTRA_AUTHORIZE_PARAMS", "REDIRECT_PATH", "SCOPES",
           "TOKEN_URL", "login_flow"]

CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
AUTHORIZE_URL = "https://claude.ai/oauth/authorize"
TOKEN_URL = "https://console.anthropic.com/v1/oauth/token"
SCOPES = ("org:create_api_key", "user:profile", "user:inference")
REDIRECT_PATH = "/callback"
EXTRA_AUTHORIZE_PARAMS = {"code": "true"}


def login_flow() -> LoginFlow:
    """The ``anthropic`` login (``aipk login anthropic``)."""
    from aipk.credentials import LoginFlow, OAuthEndpoints

    endpoints = OAuthEndpoints(provider="anthropic", client_id=CLIENT_ID, token_url=TOKEN_URL,
                               authorize_url=AUTHORIZE_URL, scopes=SCOPES,
                               redirect_path=REDIRECT_PATH, token_format="json",
                               extra_authorize_params=EXTRA_AUTHORIZE_PARAMS,
                               state_in_token_request=True)
    return LoginFlow(kind="authorization_code", endpoints=endpoints, redirect_host="localhost")
