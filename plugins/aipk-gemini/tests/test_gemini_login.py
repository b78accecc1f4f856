"""The ``gemini`` login flow (Gemini CLI's Google sign-in: PKCE, offline access, an installed
app's client secret), and a login plus a refresh against the emulator over real HTTP."""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx
import pytest

import aipk_gemini.plugin
from aipk.credentials import OAuthClient, login, login_flow, oauth_root_for
from aipk.registry import Registry
from aipk_gemini import oauth
from aipk_testkit.emulator import Emulator
from aipk_testkit.emulator._oauth import oauth_server


@pytest.fixture
def registry() -> Registry:
    registry = Registry(entry_points=False)
    registry.register(aipk_gemini.plugin, name="gemini")
    return registry


def browser(url: str) -> bool:
    return httpx.get(url, follow_redirects=True, timeout=5).status_code == 200


def test_the_flow_is_gemini_clis(registry: Registry) -> None:
    flow = login_flow("gemini", registry=registry)
    ep = flow.endpoints
    assert (flow.kind, flow.port, flow.redirect_host) == ("authorization_code", 0, "127.0.0.1")
    assert ep.client_id.startswith("681255809395-") and ep.client_secret is not None
    assert (ep.authorize_url, ep.token_url) == ("https://accounts.google.com/o/oauth2/v2/auth",
                                                "https://oauth2.googleapis.com/token")
    assert "https://www.googleapis.com/auth/cloud-platform" in ep.scopes
    assert ep.redirect_path == "/oauth2callback" and ep.token_format == "form"
    assert oauth.CLIENT_SECRET not in repr(flow)


def test_login_then_refresh(registry: Registry, aipk_emulator: Emulator) -> None:
    server = oauth_server(aipk_emulator)
    server.reset()
    base = aipk_emulator.url("gemini")
    flow = login_flow("gemini", registry=registry, base_url=base)
    cred = login(flow, base_url=base, open_browser=browser, timeout=5)
    assert cred.refresh_token is not None
    (authorize,) = [dict(parse_qsl(r.query)) for r in aipk_emulator.requests
                    if r.path == "/oauth/authorize"]
    assert (authorize["access_type"], authorize["prompt"]) == ("offline", "consent")
    assert authorize["redirect_uri"].endswith("/oauth2callback")
    root = oauth_root_for(base)
    assert root is not None
    new = OAuthClient(flow.rebased(root).endpoints).refresh(cred)
    assert server.access_token_valid(new.access_token.reveal())
    assert server.refresh_token_state(cred.refresh_token.reveal()) == "rotated"
    forms = [dict(parse_qsl(r.body.decode())) for r in aipk_emulator.requests
             if r.path == "/oauth/token"]
    assert [f["grant_type"] for f in forms] == ["authorization_code", "refresh_token"]
    assert all(f["client_secret"] == oauth.CLIENT_SECRET for f in forms)
