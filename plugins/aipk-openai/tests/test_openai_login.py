"""The ``openai`` login flow (Codex CLI's ChatGPT sign-in), and one run of it against the
emulator's authorization server over real HTTP."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

import aipk_openai.plugin
from aipk.credentials import OAuthClient, login, login_flow
from aipk.errors import ConfigurationError
from aipk.registry import Registry
from aipk_openai import oauth
from aipk_testkit.emulator import Emulator
from aipk_testkit.emulator._oauth import oauth_server


@pytest.fixture
def registry() -> Registry:
    registry = Registry(entry_points=False)
    registry.register(aipk_openai.plugin, name="openai")
    return registry


def browser(url: str) -> bool:
    return httpx.get(url, follow_redirects=True, timeout=5).status_code == 200


def test_the_flow_is_codex_clis(registry: Registry) -> None:
    flow = login_flow("openai", registry=registry)
    ep = flow.endpoints
    assert (flow.kind, flow.port, flow.redirect_host) == ("authorization_code", 1455, "localhost")
    assert (ep.client_id, ep.authorize_url, ep.token_url) == (
        "app_EMoamEEZ73f0CkXaXp7hrann", "https://auth.openai.com/oauth/authorize",
        "https://auth.openai.com/oauth/token")
    assert ep.scopes == ("openid", "profile", "email", "offline_access")
    assert ep.redirect_path == "/auth/callback" and ep.client_secret is None
    url = OAuthClient(ep).authorization_request("http://localhost:1455/auth/callback").url
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["redirect_uri"] == "http://localhost:1455/auth/callback"
    assert query["codex_cli_simplified_flow"] == "true"
    assert query["id_token_add_organizations"] == "true"


@pytest.mark.parametrize(("name", "fix"), [("groq", "set GROQ_API_KEY instead"),
                                           ("ollama", "set OLLAMA_API_KEY instead")])
def test_compatible_services_have_no_login(registry: Registry, name: str, fix: str) -> None:
    with pytest.raises(ConfigurationError, match=fix):
        login_flow(name, registry=registry)


def test_login_against_the_emulator_keeps_the_id_token(registry: Registry,
                                                       aipk_emulator: Emulator) -> None:
    server = oauth_server(aipk_emulator)
    server.reset()
    server.token_extra = {"id_token": "eyJhbGciOi.payload.sig"}
    flow = login_flow("openai", registry=registry, base_url=aipk_emulator.url("openai"))
    cred = login(flow, base_url=aipk_emulator.url("openai"), open_browser=browser, timeout=5)
    assert server.access_token_valid(cred.access_token.reveal())
    assert cred.extra["id_token"] == "eyJhbGciOi.payload.sig"
    assert "eyJhbGciOi" not in repr(cred)
    (authorize,) = [dict(parse_qsl(r.query)) for r in aipk_emulator.requests
                    if r.path == "/oauth/authorize"]
    assert authorize["client_id"] == oauth.CLIENT_ID
    assert authorize["scope"] == "openid profile email offline_access"
    assert authorize["redirect_uri"].endswith("/auth/callback")
    assert authorize["codex_cli_simplified_flow"] == "true"
