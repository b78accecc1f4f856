"""The ``anthropic`` login flow (Claude Code's sign-in: PKCE, JSON token requests with the
state), and one run of it against the emulator's authorization server over real HTTP."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import httpx
import pytest

import aipk_anthropic.plugin
from aipk.credentials import login, login_flow
from aipk.registry import Registry
from aipk_anthropic import oauth
from aipk_testkit.emulator import Emulator
from aipk_testkit.emulator._oauth import oauth_server


@pytest.fixture
def registry() -> Registry:
    registry = Registry(entry_points=False)
    registry.register(aipk_anthropic.plugin, name="anthropic")
    return registry


def browser(url: str) -> bool:
    return httpx.get(url, follow_redirects=True, timeout=5).status_code == 200


def test_the_flow_is_claude_codes(registry: Registry) -> None:
    flow = login_flow("anthropic", registry=registry)
    ep = flow.endpoints
    assert (flow.kind, flow.redirect_host) == ("authorization_code", "localhost")
    assert ep.client_id == "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
    assert (ep.authorize_url, ep.token_url) == ("https://claude.ai/oauth/authorize",
                                                "https://console.anthropic.com/v1/oauth/token")
    assert ep.scopes == ("org:create_api_key", "user:profile", "user:inference")
    assert ep.token_format == "json" and ep.state_in_token_request
    assert dict(ep.extra_authorize_params) == {"code": "true"}


def test_login_sends_json_with_the_state(registry: Registry, aipk_emulator: Emulator) -> None:
    server = oauth_server(aipk_emulator)
    server.reset()
    base = aipk_emulator.url("anthropic")
    cred = login(login_flow("anthropic", registry=registry, base_url=base), base_url=base,
                 open_browser=browser, timeout=5)
    assert server.access_token_valid(cred.access_token.reveal())
    assert cred.scopes == oauth.SCOPES
    (authorize,) = [dict(parse_qsl(r.query)) for r in aipk_emulator.requests
                    if r.path == "/oauth/authorize"]
    assert authorize["code"] == "true" and authorize["client_id"] == oauth.CLIENT_ID
    (token,) = [r for r in aipk_emulator.requests if r.path == "/oauth/token"]
    assert token.headers["content-type"].startswith("application/json")
    body = json.loads(token.body)
    assert body["state"] == authorize["state"]
    assert body["grant_type"] == "authorization_code" and body["code_verifier"]
