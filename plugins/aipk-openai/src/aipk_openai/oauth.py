"""OpenAI's sign-in: the ChatGPT account login that OpenAI's Codex CLI uses.

Authorization code with PKCE and a loopback callback. The values are the Codex CLI's public
client (github.com/openai/codex, ``codex-rs/login``): the redirect URI registered for it is
``http://localhost:1455/auth/callback``, so the callback must listen on port 1455.

Not confirmed: that the resulting access token is accepted by ``api.openai.com`` chat
completions (the Codex CLI uses it with the ChatGPT backend, or trades its ``id_token`` for an
API key); the ``id_token`` is kept in ``OAuthCredential.extra``. Codex also sends an
``originator`` parameter, left out here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aipk.credentials import LoginFlow

__all__ = ["AUTHORIZE_URL", "CALLBACK_PORT", "CLIENT_ID", "EXTRA_AUTHORIZE_PARAMS",
           "REDIRECT_PATH", "SCOPES", "TOKEN_URL", "login_flow"]

CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
AUTHORIZE_URL = "https://auth.openai.com/oauth/authorize"
TOKEN_URL = "https://auth.openai.com/oauth/token"
SCOPES = ("openid", "profile", "email", "offline_access")
CALLBACK_PORT = 1455
REDIRECT_PATH = "/auth/callback"
EXTRA_AUTHORIZE_PARAMS = {"id_token_add_organizations": "true",
                          "codex_cli_simplified_flow": "true"}


def login_flow() -> LoginFlow:
    """The ``openai`` login (``aipk login openai``)."""
    from aipk.credentials import LoginFlow, OAuthEndpoints

    endpoints = OAuthEndpoints(provider="openai", client_id=CLIENT_ID, token_url=TOKEN_URL,
                               authorize_url=AUTHORIZE_URL, scopes=SCOPES,
                               redirect_path=REDIRECT_PATH,
                               extra_authorize_params=EXTRA_AUTHORIZE_PARAMS)
    return LoginFlow(kind="authorization_code", endpoints=endpoints, port=CALLBACK_PORT,
                     redirect_host="localhost")
