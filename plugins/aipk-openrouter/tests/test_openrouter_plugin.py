"""The OpenRouter spec as installed, attribution headers, the router option in requests, error
mapping details, and that other providers are untouched."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aipk_openai.plugin
import aipk_openrouter.plugin
from aipk import ChatRequest, Client, Message, ProviderSpec
from aipk._core import Engine
from aipk.errors import (
    BadRequestError,
    ConfigurationError,
    ContentFilteredError,
    PermissionDeniedError,
    RateLimitError,
)
from aipk.registry import Registry
from aipk_openai import OPENAI
from aipk_openrouter import OPENROUTER, ModelRouter
from aipk_testkit.fixtures import make_engine, make_provider

REQUEST = ChatRequest(model="openai/gpt-4o-mini", messages=[Message.user("hi")])


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENROUTER_REFERER", "OPENROUTER_TITLE", "OPENROUTER_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def _engine(spec: ProviderSpec = OPENROUTER, **options: Any) -> Engine:
    return make_engine(make_provider(spec, **options),
                       {"openai": aipk_openai.plugin, "openrouter": aipk_openrouter.plugin})


def test_installed_entry_point_declares_openrouter() -> None:
    spec = Registry().spec("openrouter")
    assert spec is OPENROUTER
    assert spec.protocol == "openai"
    assert spec.default_base_url == "https://openrouter.ai/api/v1"
    assert spec.env_vars == ("OPENROUTER_API_KEY",)
    assert spec.option_env == {"referer": "OPENROUTER_REFERER", "title": "OPENROUTER_TITLE"}


def test_no_attribution_headers_by_default() -> None:
    built, body = _engine().build(REQUEST, stream=False)
    assert {k.lower() for k in built.headers} == {"content-type", "accept"}
    assert body is not None and b"referer" not in body.lower() and b"title" not in body


def test_attribution_from_options() -> None:
    built, body = _engine(referer="https://myapp.example", title="My App").build(REQUEST, False)
    assert built.headers["http-referer"] == "https://myapp.example"
    assert built.headers["x-title"] == "My App"
    assert body is not None and b"myapp" not in body  # headers only, never the JSON body


def test_attribution_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_REFERER", "https://env.example")
    monkeypatch.setenv("OPENROUTER_TITLE", "Env App")
    with Client("openrouter", api_key="sk-or-test") as client:
        assert client.provider.options["referer"] == "https://env.example"
        assert client.provider.options["title"] == "Env App"


@pytest.mark.parametrize("value", ["My\r\nX-Evil: 1", "tab\there", "bell\x07"])
def test_attribution_with_control_characters_is_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match="title"):
        _engine(title=value).build(REQUEST, stream=False)


def test_blank_attribution_is_left_out() -> None:
    built, _ = _engine(referer="  ", title="").build(REQUEST, stream=False)
    assert "http-referer" not in built.headers and "x-title" not in built.headers


def test_router_option_puts_the_order_into_every_request() -> None:
    engine = _engine(router=ModelRouter(models=["a/1", "b/2", "c/3"], strategy="round_robin"))
    bodies = [engine.build(REQUEST, stream=False)[0].json for _ in range(2)]
    assert [(b["model"], b["models"]) for b in bodies] == [
        ("a/1", ["a/1", "b/2", "c/3"]), ("b/2", ["b/2", "c/3", "a/1"])]


def test_explicit_models_in_extra_win_over_the_router() -> None:
    engine = _engine(router=ModelRouter(models=["a/1"]))
    request = ChatRequest(model="x/y", messages=[Message.user("hi")],
                          extra={"models": ["x/y", "z/w"]})
    body = engine.build(request, stream=False)[0].json
    assert (body["model"], body["models"]) == ("x/y", ["x/y", "z/w"])


def test_router_option_of_the_wrong_type() -> None:
    with pytest.raises(ConfigurationError, match="ModelRouter"):
        _engine(router=["a/1"]).build(REQUEST, stream=False)


def test_other_providers_are_untouched() -> None:
    engine = _engine(OPENAI, referer="https://x.example", router=ModelRouter(models=["a/1"]))
    built, _ = engine.build(ChatRequest(model="gpt-4o", messages=[Message.user("hi")]), False)
    assert "http-referer" not in built.headers and "models" not in built.json
    assert engine.observe(200, {"x-ratelimit-limit": "20", "x-ratelimit-remaining": "3"},
                          "gpt-4o") is None


def _error(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    return _engine().error(status, headers or {}, json.dumps(body).encode())


def test_429_wait_from_metadata_headers() -> None:
    reset_ms = int((time.time() + 120) * 1000)
    error = _error(429, {"error": {
        "message": "Rate limit exceeded: free-models-per-day", "code": 429,
        "metadata": {"headers": {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0",
                                 "X-RateLimit-Reset": str(reset_ms)}, "provider_name": None}}})
    assert type(error) is RateLimitError
    assert error.message == "Rate limit exceeded: free-models-per-day"
    assert error.retry_after is not None and 100 < error.retry_after <= 120


def test_429_retry_after_header_wins_over_metadata() -> None:
    error = _error(429, {"error": {"message": "slow down", "code": 429, "metadata": {
        "headers": {"X-RateLimit-Reset": str(int((time.time() + 500) * 1000))}}}},
        {"retry-after": "4"})
    assert isinstance(error, RateLimitError) and error.retry_after == 4.0


def test_402_names_the_fix() -> None:
    error = _error(402, {"error": {"message": "Insufficient credits", "code": 402}})
    assert type(error) is BadRequestError and not error.retryable
    assert error.message.startswith("Insufficient credits (add credits at https://openrouter.ai")


def test_moderation_reasons_and_structured_raw() -> None:
    flagged = _error(403, {"error": {"message": "Input was flagged", "code": 403, "metadata": {
        "reasons": ["violence", "hate"], "provider_name": "OpenAI", "flagged_input": "…"}}})
    assert flagged.message.startswith("Input was flagged: (OpenAI) flagged for violence, hate")
    assert type(flagged) is ContentFilteredError  # moderation, not a permission problem
    assert (flagged.status, flagged.code, flagged.retryable) == (403, "403", False)
    assert "rephrase it" in flagged.message
    denied = _error(403, {"error": {"message": "Key not allowed", "code": 403}})
    assert type(denied) is PermissionDeniedError
    upstream = _error(502, {"error": {"message": "Provider returned error", "code": 502,
                                      "metadata": {"raw": {"error": "boom"} ,
                                                   "provider_name": "Foo"}}})
    assert upstream.message == 'Provider returned error: (Foo) {"error": "boom"}'
    assert upstream.retryable
    long_raw = _error(400, {"error": {"message": "bad", "code": 400,
                                      "metadata": {"raw": "x" * 2000}}})
    assert long_raw.message == "bad: " + "x" * 500 + "…"


def test_non_openrouter_error_bodies_fall_back_to_openai_mapping() -> None:
    error = _engine().error(500, {}, b"upstream proxy exploded")
    assert error.message.startswith("upstream proxy exploded")
    assert error.retryable


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.lists(st.text(max_size=8), min_size=1, max_size=6), min_size=1,
                      max_size=3),
       signature=st.text(min_size=1, max_size=12))
def test_streamed_reasoning_details_merge_per_index(texts: list[list[str]],
                                                    signature: str) -> None:
    from aipk_openrouter.wire import _merge_details

    merged: list[dict[str, Any]] = []
    for index, pieces in enumerate(texts):
        for piece in pieces:
            _merge_details(merged, [{"type": "reasoning.text", "text": piece, "index": index,
                                     "format": "anthropic-claude-v1"}])
    for index in range(len(texts)):  # the signature comes alone, after the text
        _merge_details(merged, [{"type": "reasoning.text", "signature": signature,
                                 "index": index}])
    _merge_details(merged, [None, "junk"])  # not entries: ignored
    assert merged == [{"type": "reasoning.text", "text": "".join(pieces), "index": index,
                       "format": "anthropic-claude-v1", "signature": signature}
                      for index, pieces in enumerate(texts)]


def test_router_option_as_a_table_keeps_its_round_robin_place() -> None:
    engine = _engine(router={"models": ["a/1", "b/2"], "strategy": "round_robin"})
    bodies = [engine.build(REQUEST, stream=False)[0].json for _ in range(3)]
    assert [b["model"] for b in bodies] == ["a/1", "b/2", "a/1"]
    assert bodies[0]["models"] == ["a/1", "b/2"]


@pytest.mark.parametrize(("table", "words"), [
    ({"models": ["a/1"], "stratgy": "failover"}, "no key 'stratgy'; its keys are models"),
    ({"models": "a/1"}, "must be a list of model ids"),
    ({"models": ["a/1"], "strategy": "fastest"}, "'fastest' is not one of failover"),
    ({"models": ["a/1"], "free_only": "yes"}, "free_only must be true or false"),
    ({"models": []}, "needs at least one model"),
])
def test_a_bad_router_table_names_the_fix(table: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        _engine(router=table).build(REQUEST, stream=False)
    assert words in str(error.value)
