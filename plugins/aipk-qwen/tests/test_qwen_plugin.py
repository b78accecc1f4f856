"""The Qwen specs as installed, client-side limits, the ``resource_url`` rewrite through the
hooks, the portal's static model list, and header parsing through the hooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import aipk_openai.plugin
import aipk_qwen.plugin
from aipk import (
    ChatRequest,
    Client,
    Credential,
    Message,
    ProviderSpec,
    Secret,
)
from aipk._core import Engine
from aipk.errors import ConfigurationError
from aipk.limits import ClientLimits
from aipk.registry import Registry
from aipk_openai import OPENAI
from aipk_qwen import DASHSCOPE, QWEN, effective_base_url
from aipk_testkit.fixtures import make_engine, make_provider

NOW = 1_700_000_000.0
REQUEST = ChatRequest(model="qwen3-coder-plus", messages=[Message.user("hi")])


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("QWEN_BASE_URL", "QWEN_RESOURCE_URL", "DASHSCOPE_BASE_URL",
                "DASHSCOPE_API_KEY"):
        monkeypatch.delenv(var, raising=False)


def _engine(spec: ProviderSpec, *, base_url: str | None = None,
            credential: Credential | None = None, **options: Any) -> Engine:
    return make_engine(make_provider(spec, base_url, **options),
                       {"openai": aipk_openai.plugin, "qwen": aipk_qwen.plugin},
                       credential=credential, clock=lambda: NOW)


def test_installed_entry_point_declares_both_providers() -> None:
    registry = Registry()
    assert registry.spec("qwen") is QWEN
    assert registry.spec("dashscope") is DASHSCOPE
    assert QWEN.protocol == DASHSCOPE.protocol == "openai"
    assert QWEN.default_base_url == "https://portal.qwen.ai/v1"
    assert DASHSCOPE.default_base_url == "https://dashscope.aliyuncs.com/compatible-mode/v1"
    assert DASHSCOPE.env_vars == ("DASHSCOPE_API_KEY",)
    assert "oauth" in QWEN.auth_kinds


def test_portal_client_side_limits_default_and_override() -> None:
    with Client("qwen", api_key="tok") as client:
        assert client.limits == ClientLimits(requests_per_minute=60, requests_per_day=2000)
    with Client("qwen", api_key="tok", requests_per_minute=10) as client:
        assert client.limits == ClientLimits(requests_per_minute=10, requests_per_day=2000)
    with Client("dashscope", api_key="sk") as client:
        assert not client.limits.enabled


def test_coder_models_with_context_windows() -> None:
    for spec in (QWEN, DASHSCOPE):
        ids = {m.id: m for m in spec.models}
        assert ids["qwen3-coder-plus"].context_window == 1_048_576
        assert ids["qwen3-coder-flash"].context_window == 1_048_576
        assert all(m.provider == spec.name and m.context_window for m in spec.models)
        assert spec.default_model in ids
    dashscope = {m.id: m for m in DASHSCOPE.models}
    assert dashscope["qwen3-coder-480b-a35b-instruct"].context_window == 262_144


@pytest.mark.parametrize(("resource_url", "url"), [
    ("portal.qwen.ai", "https://portal.qwen.ai/v1/chat/completions"),
    ("https://eu.portal.qwen.ai/v1/", "https://eu.portal.qwen.ai/v1/chat/completions"),
    (None, "https://portal.qwen.ai/v1/chat/completions"),
    ("   ", "https://portal.qwen.ai/v1/chat/completions"),
])
def test_resource_url_rebuilds_the_request_url(resource_url: str | None, url: str) -> None:
    options: dict[str, Any] = {} if resource_url is None else {"resource_url": resource_url}
    built, body = _engine(QWEN, **options).build(REQUEST, stream=False)
    assert built.url == url
    assert body is not None and b'"qwen3-coder-plus"' in body


def test_explicit_base_url_wins_over_resource_url() -> None:
    engine = _engine(QWEN, base_url="http://127.0.0.1:9/v1", resource_url="portal.qwen.ai")
    built, _ = engine.build(REQUEST, stream=True)
    assert built.url == "http://127.0.0.1:9/v1/chat/completions"


def test_resource_url_only_applies_to_the_portal() -> None:
    built, _ = _engine(DASHSCOPE, resource_url="portal.qwen.ai").build(REQUEST, stream=False)
    assert built.url == "https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions"


def test_bad_resource_url_fails_before_sending() -> None:
    with pytest.raises(ConfigurationError, match="resource_url"):
        _engine(QWEN, resource_url="ftp://x").build(REQUEST, stream=False)


def test_resource_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWEN_RESOURCE_URL", "chat-eu.qwen.ai")
    with Client("qwen", api_key="tok") as client:
        assert client.provider.options["resource_url"] == "chat-eu.qwen.ai"
        assert effective_base_url(client.provider) == "https://chat-eu.qwen.ai/v1"


def test_oauth_token_is_a_bearer_header_and_the_body_is_plain_openai() -> None:
    token = Credential(kind="oauth", secret=Secret("qwen-access-token"), id="qwen-oauth")
    built, _ = _engine(QWEN, credential=token, resource_url="portal.qwen.ai").build(
        ChatRequest(model="qwen3-coder-flash", messages=[Message.user("hi")], max_tokens=20),
        stream=True)
    assert built.headers["authorization"] == "Bearer qwen-access-token"
    assert built.json == {"model": "qwen3-coder-flash",
                          "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20,
                          "stream": True, "stream_options": {"include_usage": True}}


def test_portal_models_come_from_the_static_list_dashscope_lists_live() -> None:
    assert _engine(QWEN).models_request() is None
    listed = _engine(DASHSCOPE).models_request()
    assert listed is not None
    assert listed[0].method == "GET"
    assert listed[0].url == "https://dashscope.aliyuncs.com/compatible-mode/v1/models"
    with Client("qwen", api_key="tok") as client:
        assert [m.id for m in client.models()] == [m.id for m in QWEN.models]


def test_other_openai_providers_are_untouched() -> None:
    engine = _engine(OPENAI, resource_url="portal.qwen.ai")
    built, _ = engine.build(ChatRequest(model="gpt-4o", messages=[Message.user("x")]), False)
    assert built.url == "https://api.openai.com/v1/chat/completions"
    assert engine.models_request() is not None
    headers: Mapping[str, str] = {"qwen-ratelimit-remaining-requests": "3"}
    assert engine.observe(200, headers, "gpt-4o") is None


@pytest.mark.parametrize("spec", [QWEN, DASHSCOPE])
def test_rate_limit_headers_through_the_hooks(spec: ProviderSpec) -> None:
    engine = _engine(spec)
    state = engine.observe(200, {"qwen-ratelimit-limit-requests": "60",
                                 "qwen-ratelimit-remaining-requests": "59"}, "qwen3-coder-plus")
    assert state is not None and state.requests is not None
    assert (state.requests.limit, state.requests.remaining) == (60, 59)
