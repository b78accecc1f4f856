"""Error mapping, rate limits, model listing, response edge cases, the hook routing, and the
plugin end to end through ``aipk.Client`` over an in-process httpx transport."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aipk
import aipk_anthropic.plugin as plugin
from aipk import (
    ChatRequest,
    FinishReason,
    Message,
    ModelInfo,
    Provider,
    ProviderSpec,
)
from aipk.errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ResponseError,
    ServerError,
    StreamError,
)
from aipk.registry import Registry
from aipk_anthropic import ANTHROPIC, MODELS, wire
from aipk_testkit.fixtures import Captures, find_fixtures, make_engine, make_provider

NOW = 1_700_000_000.0
REQUEST = ChatRequest(model="claude-sonnet-4-5", messages=[Message.user("hi")])
CAPTURES = Captures(find_fixtures(__file__) / "anthropic")


def _provider() -> Provider:
    return make_provider(ANTHROPIC)


def _error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message},
            "request_id": "req_body"}


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "kind", "cls", "retryable"), [
    (400, "invalid_request_error", BadRequestError, False),
    (401, "authentication_error", AuthenticationError, False),
    (403, "permission_error", PermissionDeniedError, False),
    (404, "not_found_error", NotFoundError, False),
    (413, "request_too_large", BadRequestError, False),
    (429, "rate_limit_error", RateLimitError, True),
    (500, "api_error", ServerError, True),
    (529, "overloaded_error", OverloadedError, True),
])
def test_map_error_by_status(status: int, kind: str, cls: type[Exception],
                             retryable: bool) -> None:
    headers = {"request-id": "req_hdr"}
    error = wire.map_error(_provider(), status, headers, _error_body(kind, "words"), "req_hdr",
                           NOW)
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.message.startswith("words")
    assert error.request_id == "req_hdr"
    if not issubclass(cls, AuthenticationError):  # auth errors carry their AuthErrorCode
        assert getattr(error, "code", None) == kind


def test_overloaded_529_is_retryable_overloaded_error() -> None:
    error = wire.map_error(_provider(), 529, {}, _error_body("overloaded_error", "Overloaded"),
                           None, NOW)
    assert isinstance(error, OverloadedError) and isinstance(error, ServerError)
    assert error.retryable and error.status == 529 and error.request_id == "req_body"


def test_429_retry_after_and_x_should_retry() -> None:
    error = wire.map_error(_provider(), 429, {"retry-after": "7"},
                           _error_body("rate_limit_error", "slow down"), None, NOW)
    assert isinstance(error, RateLimitError) and error.retry_after == 7.0
    never = wire.map_error(_provider(), 500, {"x-should-retry": "false"},
                           _error_body("api_error", "x"), None, NOW)
    assert not never.retryable


@pytest.mark.parametrize(("data", "message"), [
    ("upstream connect error", "upstream connect error"),
    ({"error": "plain string"}, "plain string"),
    ({"unexpected": True}, "HTTP 502 with no error message"),
    (None, "HTTP 502 with no error message"),
    ({"type": "error", "error": {"type": 5, "message": 6}}, "6"),
])
def test_map_error_odd_bodies(data: Any, message: str) -> None:
    error = wire.map_error(_provider(), 502, {}, data, None, NOW)
    assert isinstance(error, ServerError)
    assert error.message.startswith(message)
    assert error.request_id is None


def test_error_body_with_status_200_raises_stream_error() -> None:
    with pytest.raises(StreamError, match="Overloaded") as info:
        wire.parse_messages_response(_provider(), REQUEST,
                                     _error_body("overloaded_error", "Overloaded"))
    assert info.value.retryable and info.value.code == "overloaded_error"


# -- rate limits -----------------------------------------------------------------------------


def test_rate_limits_partial_headers_and_retry_after() -> None:
    headers = {"anthropic-ratelimit-requests-remaining": "0",
               "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:40Z",
               "retry-after": "20"}
    state = wire.parse_rate_limits(429, headers, NOW)
    assert state is not None and state.requests is not None
    assert (state.requests.limit, state.requests.remaining) == (None, 0)
    assert state.requests.reset_at == NOW + 20.0  # 2023-11-14T22:13:40Z
    assert state.not_before == NOW + 20.0
    assert set(state.windows()) == {"requests"}
    assert not state.can_send(NOW)


def test_retry_after_alone_gives_state_and_nothing_gives_none() -> None:
    state = wire.parse_rate_limits(429, {"retry-after": "3"}, NOW)
    assert state is not None and state.not_before == NOW + 3 and state.windows() == {}
    assert wire.parse_rate_limits(200, {"content-type": "application/json"}, NOW) is None


def test_zero_limit_sentinel_and_garbage_are_ignored() -> None:
    headers = {"anthropic-ratelimit-tokens-limit": "0",
               "anthropic-ratelimit-tokens-remaining": "0",
               "anthropic-ratelimit-output-tokens-limit": "lots",
               "anthropic-ratelimit-output-tokens-reset": "yesterday-ish"}
    assert wire.parse_rate_limits(200, headers, NOW) is None


_LIMIT_HEADERS = [f"anthropic-ratelimit-{n}-{p}" for n in ("requests", "tokens", "input-tokens",
                                                             "output-tokens")
                  for p in ("limit", "remaining", "reset")] + ["retry-after", "retry-after-ms"]
_header_value = st.text(max_size=30) | st.sampled_from(
    ["-1", "0", "1e400", "NaN", "9" * 500, "2025-13-40T99:99:99Z", "2023-11-14T22:13:40Z",
     "Tue, 14 Nov 2023 22:13:40 GMT", "60", "1.5"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=st.dictionaries(st.sampled_from(_LIMIT_HEADERS), _header_value),
       status=st.sampled_from([200, 429, 529]))
def test_garbage_rate_limit_headers_never_raise(headers: dict[str, str], status: int) -> None:
    state = wire.parse_rate_limits(status, headers, NOW)
    if state is not None:
        for window in state.windows().values():
            assert window.reset_at is None or NOW - 1 <= window.reset_at <= NOW + 7 * 86400


# -- models ----------------------------------------------------------------------------------


def test_parse_models_enriches_known_ids_and_reads_listing_limits() -> None:
    data = {"data": [
        {"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5",
         "created_at": "2025-09-29T00:00:00Z"},
        {"type": "model", "id": "claude-new", "display_name": "Claude New",
         "created_at": "not a date", "max_input_tokens": 500_000, "max_tokens": 32_000},
        {"type": "model", "id": "claude-opus-4-7", "max_input_tokens": 900_000},
    ], "has_more": False}
    models = wire.parse_models(_provider(), data)
    assert [m.id for m in models] == ["claude-sonnet-4-5-20250929", "claude-new",
                                      "claude-opus-4-7"]
    sonnet, new, opus = models
    assert sonnet.display_name == "Claude Sonnet 4.5"
    assert sonnet.created == 1759104000
    assert sonnet.context_window == 200_000 and sonnet.input_price == 3.0
    assert new.created is None and new.input_price is None
    assert new.capabilities is not None
    assert (new.context_window, new.capabilities.max_output_tokens) == (500_000, 32_000)
    assert opus.display_name == "Claude Opus 4.7"
    assert opus.capabilities is not None
    assert (opus.context_window, opus.capabilities.max_output_tokens) == (900_000, 128_000)
    assert all(m.provider == "anthropic" for m in models)


def test_static_models_have_context_windows() -> None:
    assert ANTHROPIC.models == MODELS
    assert ANTHROPIC.default_model in {m.id for m in MODELS}
    for info in MODELS:
        assert info.capabilities is not None
        assert info.context_window in (200_000, 1_000_000), info.id
        assert info.capabilities.max_output_tokens, info.id
    assert len({m.id for m in MODELS}) == len(MODELS)


# -- responses -------------------------------------------------------------------------------


def test_thinking_tool_use_and_cache_usage_in_a_body() -> None:
    data = {"id": "msg_1", "model": "claude-opus-4-5", "stop_reason": "tool_use",
            "content": [
                {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "blob"},
                {"type": "text", "text": "Checking "},
                {"type": "text", "text": "now."},
                {"type": "server_tool_use", "id": "srv", "name": "web_search", "input": {}},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": "né"}},
            ],
            "usage": {"input_tokens": 5, "output_tokens": 9, "cache_read_input_tokens": 100,
                      "cache_creation_input_tokens": 20}}
    response = wire.parse_messages_response(_provider(), REQUEST, data)
    assert response.text == "Checking now."
    assert response.reasoning == "Let me think."
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("toolu_1", "f", '{"q": "né"}')]
    blocks = [{"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
              {"type": "redacted_thinking", "data": "blob"}]
    assert response.message.extra == {"thinking_blocks": blocks}
    assert response.extra == {"thinking_blocks": blocks, "other_blocks": [
        {"type": "server_tool_use", "id": "srv", "name": "web_search", "input": {}}]}
    assert response.usage == aipk.Usage(input_tokens=125, output_tokens=9,
                                        cache_read_tokens=100, cache_write_tokens=20)
    assert response.finish_reason is FinishReason.TOOL_CALLS
    assert response.refusal is None


def test_refusal_body_and_missing_usage() -> None:
    data = {"id": "m", "model": "c", "content": [], "stop_reason": "refusal",
            "stop_details": {"type": "refusal", "explanation": "Not this."}}
    response = wire.parse_messages_response(_provider(), REQUEST, data)
    assert response.finish_reason is FinishReason.REFUSAL
    assert response.refusal == "Not this."
    assert response.usage is None and response.text == ""
    assert response.extra == {"stop_details": {"type": "refusal", "explanation": "Not this."}}


def test_unexpected_shape_is_a_response_error_through_the_engine() -> None:
    engine = make_engine(_provider(), {"anthropic": plugin})
    with pytest.raises(ResponseError, match="unexpected shape") as info:
        engine.chat_response(REQUEST, b'{"choices": []}', {"request-id": "req_9"}, None)
    assert info.value.request_id == "req_9"


# -- hook routing ----------------------------------------------------------------------------


def test_hooks_ignore_other_protocols() -> None:
    other = Provider(spec=ProviderSpec(name="x", protocol="openai",
                                       default_base_url="http://x"), base_url="http://x")
    built = aipk.HttpRequest(url="http://x")
    credential = aipk.Credential(kind="api_key", secret=aipk.Secret("k"))
    assert plugin.aipk_build_request(other, REQUEST, False) is None
    assert plugin.aipk_apply_credential(other, built, credential) is None
    assert plugin.aipk_parse_rate_limits(other, 200, {}, NOW) is None
    assert plugin.aipk_parse_response(other, REQUEST, {}, {}) is None
    assert plugin.aipk_stream_decoder(other, REQUEST) is None
    assert plugin.aipk_map_error(other, 500, {}, None, None) is None
    assert plugin.aipk_models_request(other) is None
    assert plugin.aipk_parse_models(other, {}) is None
    assert plugin.aipk_providers() == (ANTHROPIC,)


def test_spec() -> None:
    assert ANTHROPIC.name == ANTHROPIC.protocol == "anthropic"
    assert ANTHROPIC.default_base_url == "https://api.anthropic.com"
    assert ANTHROPIC.env_vars == ("ANTHROPIC_API_KEY",)
    assert ANTHROPIC.base_url_env == "ANTHROPIC_BASE_URL"
    assert set(ANTHROPIC.auth_kinds) == {"api_key", "oauth"}


# -- end to end through aipk.Client (in-process transport, no network) -------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler, sleeps: list[float] | None = None, **kwargs: Any) -> aipk.Client:
    registry = Registry(entry_points=False)
    registry.register(plugin, "anthropic")
    return aipk.Client("anthropic", api_key="sk-ant-test", registry=registry,
                       http_client=httpx.Client(transport=httpx.MockTransport(handler)),
                       sleep=(sleeps.append if sleeps is not None else lambda s: None),
                       **kwargs)


def _fixture_response(name: str, status: int = 200) -> httpx.Response:
    raw = CAPTURES.raw(name)
    kind = "text/event-stream" if name.endswith(".sse") else "application/json"
    return httpx.Response(status, content=raw, headers={"content-type": kind,
                                                        "request-id": "req_e2e"})


def test_client_chat_sends_the_right_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = CAPTURES.response("pai-text-basic.json").body
        return httpx.Response(200, content=body.encode(), headers={"request-id": "req_e2e"})

    with _client(handler) as client:
        reply = client.chat(model="claude-3-opus-20240229", temperature=0,
                            messages=[Message.system("Be brief."), Message.user("Capital?")])
    assert reply.text == "The capital of France is Paris."
    assert reply.request_id == "req_e2e"
    request = seen[0]
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {
        "model": "claude-3-opus-20240229", "max_tokens": 4096, "system": "Be brief.",
        "messages": [{"role": "user", "content": "Capital?"}], "temperature": 0}


def test_client_stream_fixture() -> None:
    with _client(lambda r: _fixture_response("sdk-stream-tool-use.sse")) as client, \
            client.stream(model="claude-sonnet-4-5", messages=[Message.user("Paris?")]) as stream:
        events = list(stream)
    assert any(isinstance(e, aipk.ToolCallDelta) for e in events)
    response = stream.response
    assert response.text == "I'll check the current weather in Paris for you."
    assert [(c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("get_weather", {"location": "Paris"})]
    assert response.request_id == "req_e2e"


def test_client_retries_529_then_succeeds() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(529, json=_error_body("overloaded_error", "Overloaded"))
        return _fixture_response("sdk-stream-text-basic.sse")

    with _client(handler, sleeps) as client:
        with client.stream(model="claude-sonnet-4-5", messages=[Message.user("hi")]) as stream:
            list(stream)
        assert stream.response.text == "Hello there!"
        assert len(calls) == 2 and len(sleeps) == 1
        with pytest.raises(OverloadedError) as info:
            _client(lambda r: httpx.Response(529, json=_error_body("overloaded_error", "Busy")),
                    max_retries=0).chat(model="claude-sonnet-4-5",
                                        messages=[Message.user("hi")])
    assert info.value.request_id == "req_body" and info.value.retryable


def test_client_models_listing_and_static_fallback() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/models"
        assert request.headers["x-api-key"] == "sk-ant-test"
        return httpx.Response(200, json={"data": [
            {"type": "model", "id": "claude-haiku-4-5-20251001", "display_name": "Claude Haiku "
             "4.5", "created_at": "2025-10-15T00:00:00Z"}], "has_more": False})

    with _client(handler) as client:
        models = client.models()
        assert [m.id for m in models] == ["claude-haiku-4-5-20251001"]
        assert models[0].context_window == 200_000
        assert client.models(static=True) == list(MODELS)
        assert isinstance(client.models(static=True)[0], ModelInfo)


def test_client_invalid_request_is_refused_before_sending() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be sent")

    with _client(handler) as client, pytest.raises(aipk.InvalidRequestError):
        client.chat(model="claude-sonnet-4-5",
                    messages=[Message.user("a"), Message.user("b")])
