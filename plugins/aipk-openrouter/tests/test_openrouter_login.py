"""The ``openrouter`` login: PKCE whose result is a permanent API key, over real HTTP against
the emulator's ``/auth`` and ``/auth/keys``, joining a KeyPool and then signing requests."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

import aipk
import aipk_openai.plugin
import aipk_openrouter.plugin
from aipk import HttpRequest
from aipk.credentials import KeyPool, OAuthCredential, login, login_flow
from aipk.errors import ConfigurationError
from aipk.registry import Registry
from aipk_openrouter import oauth
from aipk_testkit.emulator import Emulator, Reply
from aipk_testkit.emulator._oauth import OAuthHandler, oauth_server


@pytest.fixture
def registry() -> Registry:
    registry = Registry(entry_points=False)
    registry.register(aipk_openai.plugin, name="openai")
    registry.register(aipk_openrouter.plugin, name="openrouter")
    return registry


@pytest.fixture
def server(aipk_emulator: Emulator) -> OAuthHandler:
    handler = oauth_server(aipk_emulator)
    handler.reset()
    return handler


def browser(url: str) -> bool:
    return httpx.get(url, follow_redirects=True, timeout=5).status_code == 200


def test_the_flow_is_a_key_exchange(registry: Registry) -> None:
    flow = login_flow("openrouter", registry=registry)
    assert (flow.kind, flow.redirect_host, flow.port) == ("key_exchange", "localhost", 0)
    assert (flow.endpoints.authorize_url, flow.endpoints.token_url) == (oauth.AUTH_URL,
                                                                        oauth.KEYS_URL)


def test_login_adds_a_key_to_the_pool_that_signs_requests(
        registry: Registry, aipk_emulator: Emulator, server: OAuthHandler) -> None:
    base = aipk_emulator.url("openai")
    result = login(login_flow("openrouter", registry=registry), base_url=base,
                   open_browser=browser, timeout=5, credential_id="laptop")
    pool = KeyPool.from_keys("openrouter", {"env": "sk-or-env"})
    added = oauth.add_to_pool(pool, result)
    assert (added.kind, added.id) == ("api_key", "laptop")
    assert server.key_valid(added.secret.reveal() if added.secret else "")
    assert pool.ids == ("env", "laptop")

    aipk_emulator.require_api_key(result.access_token.reveal())
    aipk_emulator.enqueue(Reply(text="routed"))
    with aipk.Client("openrouter", base_url=base, credential=pool.get("laptop"),
                     registry=registry) as client:
        assert client.chat(messages=[aipk.Message.user("hi")]).text == "routed"


def test_add_to_pool_refuses_what_is_not_an_openrouter_key() -> None:
    key = OAuthCredential(access_token="sk-or-1", extra={"grant": "key_exchange"})
    with pytest.raises(ConfigurationError, match="KeyPool for 'openrouter'"):
        oauth.add_to_pool(KeyPool.from_keys("openai", ["sk-1"]), key)
    tokens = OAuthCredential(access_token="at", refresh_token="rt")
    pool = KeyPool.from_keys("openrouter", ["sk-or-2"])
    with pytest.raises(ConfigurationError, match="OAuthManager"):
        oauth.add_to_pool(pool, tokens)
    assert len(pool) == 1


def _send(built: HttpRequest) -> httpx.Response:
    return httpx.request(built.method, built.url, headers=dict(built.headers), json=built.json)


def test_the_pure_pieces_against_the_emulator(aipk_emulator: Emulator,
                                              server: OAuthHandler) -> None:
    auth_url = aipk_emulator.base_url + "/oauth/auth"
    keys_url = aipk_emulator.base_url + "/oauth/auth/keys"

    def code_for(verifier: str) -> str:
        url = oauth.authorization_url("http://localhost:3000/cb", oauth.code_challenge(verifier),
                                      auth_url=auth_url)
        answer = httpx.get(url)
        assert answer.status_code == 302
        location = answer.headers["location"]
        assert location.startswith("http://localhost:3000/cb?")
        return dict(parse_qsl(urlsplit(location).query))["code"]

    verifier = oauth.new_code_verifier()
    code = code_for(verifier)
    wrong = _send(oauth.key_exchange_request(code, oauth.new_code_verifier(), keys_url=keys_url))
    assert wrong.status_code == 403
    again = _send(oauth.key_exchange_request(code, verifier, keys_url=keys_url))
    assert again.status_code == 403  # a code is single-use, even after a failed attempt
    verifier = oauth.new_code_verifier()
    good = _send(oauth.key_exchange_request(code_for(verifier), verifier, keys_url=keys_url))
    assert good.status_code == 200
    assert server.key_valid(oauth.parse_key_exchange(good.json()).reveal())
    assert server.grants["key_exchange"] == 3
