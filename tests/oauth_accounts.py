"""One OAuth account on the emulator's token server, for tests of refreshes."""

from __future__ import annotations

import time

from aipk.credentials import OAuthClient, OAuthCredential, OAuthEndpoints, OAuthManager
from aipk_testkit.emulator import Emulator
from aipk_testkit.emulator._oauth import oauth_server


def oauth_account(emu: Emulator, *, expires_in: float,
                  expired_at_server: bool = False) -> tuple[OAuthManager, str]:
    """A manager of one account ("me") whose access token our clock expires in
    ``expires_in`` seconds (the server's in an hour, or at once with ``expired_at_server``),
    refreshed at the emulator's token endpoint; and that access token."""
    oauth = oauth_server(emu)
    oauth.reset()
    emu.require_api_keys(oauth=True)
    refresher = OAuthClient(OAuthEndpoints(provider="openai", client_id="demo-cli",
                                           token_url=emu.base_url + "/oauth/token"))
    issued = oauth.issue(expires_in=3600)
    credential = OAuthCredential(id="me", access_token=issued["access_token"],
                                 refresh_token=issued["refresh_token"],
                                 expires_at=time.time() + expires_in)
    if expired_at_server:
        oauth.expire_access_tokens()  # the server says no before our clock does
    return (OAuthManager("openai", [credential], refresh=refresher.refresh,
                         arefresh=refresher.arefresh), issued["access_token"])
