"""Google's sign-in for Gemini: the Google account login that Gemini CLI uses.

Authorization code with PKCE and a loopback callback on 127.0.0.1 (``/oauth2callback``), then
refresh tokens (``access_type=offline``; ``prompt=consent`` so a repeated login gets a new
refresh token too). The client is Gemini CLI's (github.com/google-gemini/gemini-cli,
``packages/core/src/code_assist/oauth2.ts``); Google's OAuth URLs are the documented ones for
installed apps. The client secret of an installed app is public by design ("the client secret
is obviously not treated as a secret", Google's docs); it is sent with token requests. Its
tokens work with the Code Assist endpoint (set the ``project_id`` option), not with API-key
``generativelanguage`` requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aipk.credentials import LoginFlow

__all__ = ["AUTHORIZE_URL", "CLIENT_ID", "CLIENT_SECRET", "EXTRA_AUTHORIZE_PARAMS",
           "REDIRECT_PATH", "SCOPES", "TOKEN_URL", "login_flow"]

CLIENT_ID = "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com"
CLIENT_SECRET = "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"  # public by design, see above
AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
TOKEN_URL = "https://oauth2.googleapis.com/token"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",
          "https://www.googleapis.com/auth/userinfo.email",
          "https://www.googleapis.com/auth/userinfo.profile")
REDIRECT_PATH = "/oauth2callback"
EXTRA_AUTHORIZE_PARAMS = {"access_type": "offline", "prompt": "consent"}


def login_flow() -> LoginFlow:
    """The ``gemini`` login (``aipk login gemini``)."""
    from aipk.credentials import LoginFlow, OAuthEndpoints

    endpoints = OAuthEndpoints(provider="gemini", client_id=CLIENT_ID, token_url=TOKEN_URL,
                               authorize_url=AUTHORIZE_URL, client_secret=CLIENT_SECRET,
                               scopes=SCOPES, redirect_path=REDIRECT_PATH,
                               extra_authorize_params=EXTRA_AUTHORIZE_PARAMS)
    return LoginFlow(kind="authorization_code", endpoints=endpoints)
