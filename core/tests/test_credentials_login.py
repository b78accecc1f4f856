"""Login flows without a network: LoginFlow records, rebasing onto a local server, the token
file path, key-exchange answers, and ``OAuthCredential.extra`` (the flows over real HTTP are in
test_credentials_login_http.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipk import Credential, Secret
from aipk.credentials import (
    KEY_EXCHANGE,
    PKCE,
    AuthorizationRequest,
    CredentialError,
    LoginFlow,
    OAuthClient,
    OAuthCredential,
    OAuthEndpoints,
    OAuthManager,
    api_key_credential,
    default_token_file,
    key_exchange_result,
    oauth_root_for,
)
from aipk.errors import AuthErrorCode, ConfigurationError

ENDPOINTS = OAuthEndpoints(provider="demo", client_id="cli", token_url="https://id.example/t",
                           authorize_url="https://id.example/a",
                           device_authorization_url="https://id.example/d", scopes=("x",))


# -- LoginFlow -----------------------------------------------------------------------------

def test_a_flow_needs_the_url_its_kind_starts_at() -> None:
    no_device = attrs.evolve(ENDPOINTS, device_authorization_url=None)
    with pytest.raises(ConfigurationError, match="device_authorization_url"):
        LoginFlow(kind="device_code", endpoints=no_device)
    no_authorize = attrs.evolve(ENDPOINTS, authorize_url=None)
    for kind in ("authorization_code", "key_exchange"):
        with pytest.raises(ConfigurationError, match="authorize_url"):
            LoginFlow(kind=kind, endpoints=no_authorize)  # type: ignore[arg-type]
    assert LoginFlow(kind="device_code", endpoints=no_authorize).provider == "demo"


@pytest.mark.parametrize("host", ["example.com", "0.0.0.0", "192.168.1.2", ""])
def test_redirect_host_must_be_loopback(host: str) -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        LoginFlow(kind="authorization_code", endpoints=ENDPOINTS, redirect_host=host)


def test_rebased_moves_every_endpoint_to_the_local_server() -> None:
    flow = LoginFlow(kind="authorization_code", endpoints=ENDPOINTS, port=1455,
                     redirect_host="localhost")
    local = flow.rebased("http://127.0.0.1:9/oauth/")
    ep = local.endpoints
    assert (ep.authorize_url, ep.token_url, ep.device_authorization_url) == (
        "http://127.0.0.1:9/oauth/authorize", "http://127.0.0.1:9/oauth/token",
        "http://127.0.0.1:9/oauth/device/code")
    assert (ep.client_id, ep.scopes, local.kind) == ("cli", ("x",), "authorization_code")
    assert (local.port, local.redirect_host) == (0, "127.0.0.1")


def test_rebased_key_exchange_uses_the_auth_paths() -> None:
    flow = LoginFlow(kind="key_exchange", endpoints=attrs.evolve(
        ENDPOINTS, device_authorization_url=None))
    ep = flow.rebased("http://localhost:5/oauth").endpoints
    assert (ep.authorize_url, ep.token_url, ep.device_authorization_url) == (
        "http://localhost:5/oauth/auth", "http://localhost:5/oauth/auth/keys", None)


def test_authorization_url_of_the_real_flow_names_the_registered_redirect() -> None:
    flow = LoginFlow(kind="authorization_code", endpoints=ENDPOINTS, port=1455,
                     redirect_host="localhost")
    request = OAuthClient(flow.endpoints).authorization_request(
        f"http://{flow.redirect_host}:{flow.port}/callback")
    assert "redirect_uri=http%3A%2F%2Flocalhost%3A1455%2Fcallback" in request.url


@pytest.mark.parametrize(("base_url", "root"), [
    ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/oauth"),
    ("http://localhost:3/anthropic", "http://localhost:3/oauth"),
    ("https://[::1]:4", "https://[::1]:4/oauth"),
    ("https://api.openai.com/v1", None),
    ("http://10.0.0.1:80/v1", None),
    (None, None),
    ("", None),
])
def test_oauth_root_for(base_url: str | None, root: str | None) -> None:
    assert oauth_root_for(base_url) == root


@given(port=st.integers(1, 65535), path=st.from_regex(r"(/[a-z0-9]{1,8}){0,3}", fullmatch=True),
       host=st.sampled_from(["127.0.0.1", "localhost", "127.3.4.5"]))
def test_oauth_root_is_the_origin_plus_oauth(port: int, path: str, host: str) -> None:
    root = oauth_root_for(f"http://{host}:{port}{path}")
    assert root == f"http://{host}:{port}/oauth"


def test_default_token_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIPK_TOKEN_DIR", str(tmp_path))
    assert default_token_file("qwen") == tmp_path / "qwen.json"
    monkeypatch.delenv("AIPK_TOKEN_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert default_token_file("qwen") == tmp_path / "cfg" / "aipk" / "tokens" / "qwen.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert default_token_file("x") == Path("~/.config/aipk/tokens/x.json").expanduser()


# -- key exchange results ------------------------------------------------------------------

def test_api_key_credential_only_for_key_exchange_results() -> None:
    key = OAuthCredential(id="laptop", access_token="sk-or-1", extra={"grant": KEY_EXCHANGE})
    assert api_key_credential(key) == Credential(kind="api_key", secret=Secret("sk-or-1"),
                                                 id="laptop")
    tokens = OAuthCredential(id="laptop", access_token="at", refresh_token="rt")
    with pytest.raises(ConfigurationError, match="OAuthManager"):
        api_key_credential(tokens)


@pytest.mark.parametrize(("status", "data", "code", "text"), [
    (403, {"error": {"code": 403, "message": "Invalid code or code_verifier"}},
     AuthErrorCode.OAUTH_FLOW_FAILED, "Invalid code or code_verifier"),
    (400, {"error": "invalid", "error_description": "bad method"},
     AuthErrorCode.OAUTH_FLOW_FAILED, "bad method"),
    (503, None, AuthErrorCode.PROVIDER_UNAVAILABLE, "retry later"),
    (429, "slow", AuthErrorCode.PROVIDER_UNAVAILABLE, "HTTP 429"),
    (200, {"key": ""}, AuthErrorCode.OAUTH_FLOW_FAILED, "without a key"),
    (200, {"user_id": "u"}, AuthErrorCode.OAUTH_FLOW_FAILED, "token_url"),
])
def test_key_exchange_failures(status: int, data: Any, code: AuthErrorCode, text: str) -> None:
    with pytest.raises(CredentialError, match=text) as info:
        key_exchange_result("openrouter", status, data)
    assert info.value.auth_code is code


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@given(status=st.integers(100, 599), data=_JSON | st.dictionaries(
    st.sampled_from(["key", "error", "error_description"]), _JSON, max_size=3))
def test_key_exchange_result_never_leaks_the_code(status: int, data: Any) -> None:
    code = "code-SECRET-1234"
    echoed = {**data, "error_description": f"bad {code}"} if isinstance(data, dict) else data
    good = (status == 200 and isinstance(echoed, dict) and isinstance(echoed.get("key"), str)
            and bool(echoed["key"]))
    if good:
        assert key_exchange_result("openrouter", status, echoed).reveal() == echoed["key"]
        return
    with pytest.raises(CredentialError) as info:
        key_exchange_result("openrouter", status, echoed, hide=[code])
    assert code not in str(info.value) and code not in repr(info.value)
    assert info.value.auth_code in (AuthErrorCode.OAUTH_FLOW_FAILED,
                                    AuthErrorCode.PROVIDER_UNAVAILABLE)


# -- OAuthCredential.extra -----------------------------------------------------------------

_EXTRA = st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=4)


@given(extra=_EXTRA)
def test_extra_round_trips_through_a_token_store_dict(extra: dict[str, str]) -> None:
    cred = OAuthCredential(id="a", access_token="at", refresh_token="rt", expires_at=5.0,
                           extra=extra)
    data = json.loads(json.dumps(cred.to_dict()))
    assert OAuthCredential.from_dict("a", data) == cred
    assert dict(OAuthCredential.from_dict("a", data).extra) == extra


def test_old_token_files_without_extra_still_load() -> None:
    cred = OAuthCredential.from_dict("a", {"access_token": "at", "extra": ["junk"]})
    assert cred.extra == {}
    assert OAuthCredential.from_dict("a", {"access_token": "at"}).extra == {}


def test_extra_keeps_only_strings_and_its_repr_hides_values() -> None:
    cred = OAuthCredential(access_token="at", extra={"id_token": "eyJ.secret.sig", "n": 5,
                                                     "resource_url": "portal.qwen.ai"})
    assert dict(cred.extra) == {"id_token": "eyJ.secret.sig", "resource_url": "portal.qwen.ai"}
    assert "eyJ.secret.sig" not in repr(cred) and "portal.qwen.ai" not in repr(cred)
    assert "resource_url" in repr(cred)
    assert hash(cred) == hash(attrs.evolve(cred, extra={}))  # still hashable, as before


def _token_client(answers: list[dict[str, Any]]) -> tuple[OAuthClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answers.pop(0))

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return OAuthClient(ENDPOINTS, http=http, clock=lambda: 1000.0), seen


_KNOWN = {"access_token", "refresh_token", "expires_in", "scope", "token_type", "account_id"}


@given(fields=st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: k not in _KNOWN),
                              st.text(max_size=12) | st.integers() | st.none(), max_size=5))
def test_unknown_string_fields_of_a_token_response_go_to_extra(
        fields: dict[str, Any]) -> None:
    client, _ = _token_client([{"access_token": "at-1", "refresh_token": "rt-1",
                                "expires_in": 60, **fields}])
    cred = client.refresh(OAuthCredential(access_token="old", refresh_token="rt-0"))
    assert dict(cred.extra) == {k: v for k, v in fields.items() if isinstance(v, str)}
    assert cred.access_token == Secret("at-1") and cred.expires_at == 1060.0


def test_refresh_keeps_extra_the_answer_lacks_and_updates_what_it_brings() -> None:
    client, _ = _token_client([
        {"access_token": "at-2", "expires_in": 60},
        {"access_token": "at-3", "resource_url": "new.qwen.ai"},
    ])
    old = OAuthCredential(id="q", access_token="at-1", refresh_token="rt",
                          extra={"resource_url": "portal.qwen.ai", "other": "x"})
    once = client.refresh(old)
    assert dict(once.extra) == {"resource_url": "portal.qwen.ai", "other": "x"}
    twice = client.refresh(once)
    assert dict(twice.extra) == {"resource_url": "new.qwen.ai", "other": "x"}


def test_manager_keeps_extra_when_a_custom_refresh_drops_it() -> None:
    old = OAuthCredential(id="q", access_token="at-1", refresh_token="rt", expires_at=0.0,
                          extra={"resource_url": "portal.qwen.ai"})
    manager = OAuthManager("qwen", [old], clock=lambda: 100.0,
                           refresh=lambda c: OAuthCredential(access_token="at-2",
                                                             expires_at=9999.0))
    new = manager.token("q")
    assert new.access_token == Secret("at-2")
    assert dict(new.extra) == {"resource_url": "portal.qwen.ai"}


def test_state_in_token_request_is_opt_in() -> None:
    request = AuthorizationRequest(url="u", redirect_uri="http://127.0.0.1:1/cb", state="st-1",
                                   pkce=PKCE.generate())
    for flag, expected in ((False, None), (True, "st-1")):
        client, seen = _token_client([{"access_token": "at"}])
        client.endpoints = attrs.evolve(ENDPOINTS, state_in_token_request=flag)
        client.complete(request, {"state": "st-1", "code": "c"})
        form = dict(httpx.QueryParams(seen[0].content.decode()))
        assert form.get("state") == expected
        assert form["code"] == "c"
