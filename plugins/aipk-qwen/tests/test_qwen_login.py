"""The ``qwen`` login (device code with PKCE) over real HTTP against the emulator, the
``resource_url`` it brings, and a client built from the credential talking to that host."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import parse_qsl

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import aipk
import aipk_openai.plugin
import aipk_qwen.plugin
from aipk.cli import main
from aipk.credentials import (
    FileTokenStore,
    OAuthClient,
    OAuthCredential,
    login,
    login_flow,
    oauth_root_for,
)
from aipk.errors import ConfigurationError
from aipk.registry import Registry
from aipk_qwen import base_url_for, base_url_for_resource, oauth
from aipk_testkit.emulator import Emulator, Reply
from aipk_testkit.emulator._oauth import OAuthHandler, oauth_server


@pytest.fixture
def registry() -> Registry:
    registry = Registry(entry_points=False)
    registry.register(aipk_openai.plugin, name="openai")
    registry.register(aipk_qwen.plugin, name="qwen")
    return registry


@pytest.fixture
def server(aipk_emulator: Emulator) -> OAuthHandler:
    handler = oauth_server(aipk_emulator)
    handler.reset()
    handler.device_interval = 0.01
    handler.token_extra = {"resource_url": aipk_emulator.base_url}  # the emulator's host
    return handler


def test_the_flow_is_qwen_codes(registry: Registry) -> None:
    flow = login_flow("qwen", registry=registry)
    ep = flow.endpoints
    assert (flow.kind, flow.pkce) == ("device_code", True)
    assert (ep.client_id, ep.device_authorization_url, ep.token_url) == (
        oauth.CLIENT_ID, oauth.DEVICE_CODE_URL, oauth.TOKEN_URL)
    assert ep.scopes == ("openid", "profile", "email", "model.completion")
    assert ep.token_format == "form" and ep.client_secret is None


def test_dashscope_has_no_login(registry: Registry) -> None:
    with pytest.raises(ConfigurationError, match="set DASHSCOPE_API_KEY instead"):
        login_flow("dashscope", registry=registry)


def test_device_login_and_a_client_on_the_resource_host(
        registry: Registry, aipk_emulator: Emulator, server: OAuthHandler) -> None:
    server.script_device("authorization_pending")
    base = aipk_emulator.url("openai")
    cred = login(login_flow("qwen", registry=registry), base_url=base, show=lambda d: None)
    assert cred.extra["resource_url"] == aipk_emulator.base_url
    (start,) = [dict(parse_qsl(r.body.decode())) for r in aipk_emulator.requests
                if r.path == "/oauth/device/code"]
    assert start["client_id"] == oauth.CLIENT_ID and start["code_challenge_method"] == "S256"

    assert base_url_for(cred) == aipk_emulator.url("openai")  # http://127.0.0.1:PORT/v1
    aipk_emulator.require_api_keys(oauth=True)
    aipk_emulator.enqueue(Reply(text="hi from qwen"))
    with aipk.Client("qwen", base_url=base_url_for(cred), credential=cred.credential,
                     registry=registry) as client:
        answer = client.chat(messages=[aipk.Message.user("hello")])
    assert answer.text == "hi from qwen"
    sent = aipk_emulator.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {cred.access_token.reveal()}"


def test_resource_url_survives_a_refresh_that_omits_it(
        registry: Registry, aipk_emulator: Emulator, server: OAuthHandler) -> None:
    base = aipk_emulator.url("openai")
    flow = login_flow("qwen", registry=registry)
    cred = login(flow, base_url=base, show=lambda d: None)
    root = oauth_root_for(base)
    assert root is not None
    refresher = OAuthClient(flow.rebased(root).endpoints)
    server.token_extra = {}
    kept = refresher.refresh(cred)
    assert kept.extra["resource_url"] == aipk_emulator.base_url
    assert kept.access_token != cred.access_token
    server.token_extra = {"resource_url": "portal.qwen.ai"}
    assert base_url_for(refresher.refresh(kept)) == "https://portal.qwen.ai/v1"


def test_cli_login_with_the_installed_plugin(aipk_emulator: Emulator, server: OAuthHandler,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "qwen.json"
    assert main(["login", "qwen", "--base-url", aipk_emulator.url("openai"),
                 "--token-file", str(path), "--id", "laptop"]) == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    saved = FileTokenStore(path).load("laptop")
    assert saved is not None and server.access_token_valid(saved.access_token.reveal())
    assert saved.extra["resource_url"] == aipk_emulator.base_url
    out = capsys.readouterr()
    assert saved.access_token.reveal() not in out.out + out.err


def test_base_url_for_without_resource_url() -> None:
    cred = OAuthCredential(access_token="at")
    assert base_url_for(cred) == "https://portal.qwen.ai/v1"
    assert base_url_for(cred, default="https://x.example/v1") == "https://x.example/v1"
    assert base_url_for(attrs.evolve(cred, extra={"resource_url": "  "})) == (
        "https://portal.qwen.ai/v1")


_HOSTS = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}",
                       fullmatch=True)


@given(host=_HOSTS, scheme=st.sampled_from(["", "https://", "http://"]))
def test_base_url_for_follows_the_resource_url_rule(host: str, scheme: str) -> None:
    cred = OAuthCredential(access_token="at", extra={"resource_url": scheme + host})
    assert base_url_for(cred) == base_url_for_resource(scheme + host)
    assert host in base_url_for(cred)
