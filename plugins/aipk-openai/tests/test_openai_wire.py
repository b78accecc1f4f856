"""The OpenAI wire functions on their own: request bodies (snapshots), rate limits, error
mapping and the stream decoder's edge cases, also through the engine's StreamSession."""

from __future__ import annotations

import base64
import email.utils
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aipk
import aipk_openai.plugin
from aipk import (
    ChatRequest,
    FinishEvent,
    FinishReason,
    Image,
    IncompleteStreamError,
    Message,
    Provider,
    ProviderSpec,
    ReasoningDelta,
    RefusalDelta,
    StreamEvent,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
    UsageEvent,
)
from aipk._core import Engine
from aipk._session import StreamSession
from aipk.errors import (
    AipkError,
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    InvalidRequestError,
    OverloadedError,
    RateLimitError,
    ResponseError,
    ServerError,
    StreamError,
)
from aipk.registry import Registry
from aipk.sse import ServerSentEvent
from aipk_openai import GROQ, OPENAI, wire
from aipk_testkit.fixtures import make_engine, make_provider

NOW = 1_700_000_000.0
USER = [Message.user("hi")]
MAX_RESET = 7 * 24 * 3600.0


def _provider(spec: ProviderSpec = OPENAI, base_url: str | None = None,
              **options: Any) -> Provider:
    """A provider resolved the way the client does it: spec options, then the caller's."""
    return make_provider(spec, base_url, **options)


def _engine(provider: Provider | None = None) -> Engine:
    return make_engine(provider or _provider(), {"openai": aipk_openai.plugin}, clock=lambda: NOW)


def _body(request: ChatRequest, stream: bool = False, **options: Any) -> dict[str, Any]:
    return wire.build_chat_body(_provider(**options), request, stream)


def _sse(*chunks: Any, done: bool = True) -> bytes:
    out = b"".join(b"data: " + (c if isinstance(c, bytes) else json.dumps(c).encode()) + b"\n\n"
                   for c in chunks)
    return out + (b"data: [DONE]\n\n" if done else b"")


def _chunk(delta: Mapping[str, Any] | None = None, finish: str | None = None, index: int = 0,
           **extra: Any) -> dict[str, Any]:
    choice = {"index": index, "delta": dict(delta or {}), "finish_reason": finish}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o",
            "choices": [choice], **extra}


def _session(headers: Mapping[str, str] | None = None) -> StreamSession:
    return _engine().open_stream(ChatRequest(model="gpt-4o", messages=USER), headers or {}, None)


def _run(raw: bytes, pieces: Sequence[int] = ()) -> tuple[list[StreamEvent], StreamSession]:
    session = _session()
    events: list[StreamEvent] = []
    start = 0
    for end in [*pieces, len(raw)]:
        events.extend(session.feed(raw[start:end]))
        start = end
    events.extend(session.finish())
    return events, session


def _decode(*chunks: Any) -> list[StreamEvent]:
    decoder = wire.OpenAIStreamDecoder(_provider())
    out: list[StreamEvent] = []
    for chunk in chunks:
        data = chunk if isinstance(chunk, str) else json.dumps(chunk)
        out.extend(decoder.feed(ServerSentEvent(data)))
    return out


# -- request bodies --------------------------------------------------------------------------


def test_minimal_body_has_only_model_and_messages() -> None:
    assert _body(ChatRequest(model="gpt-4o-mini", messages=USER)) == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_zero_values_are_sent() -> None:
    body = _body(ChatRequest(model="m", messages=USER, temperature=0, top_p=0.0))
    assert body["temperature"] == 0
    assert body["top_p"] == 0.0
    assert "max_completion_tokens" not in body
    assert "max_tokens" not in body


def test_conversation_with_tool_calls() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}')
    request = ChatRequest(model="gpt-4o", messages=[
        Message.system("be brief"),
        Message.user("weather?"),
        Message.assistant(tool_calls=[call]),
        Message.tool("call_1", '{"temp":20}', name="get_weather"),
        Message.assistant("20 degrees"),
        {"role": "user", "content": "thanks"},
    ])
    assert _body(request)["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        ]},
        {"role": "tool", "content": '{"temp":20}', "tool_call_id": "call_1",
         "name": "get_weather"},
        {"role": "assistant", "content": "20 degrees"},
        {"role": "user", "content": "thanks"},
    ]


def test_images_by_url_and_by_bytes() -> None:
    png = b"\x89PNG\r\n\x1a\n"
    request = ChatRequest(model="gpt-4o", messages=[
        Message.user("what is this?", images=[
            Image(url="https://example.com/cat.jpg"),
            Image(data=png, media_type="image/png"),
        ]),
        Message(role="user", images=[Image(url="data:image/gif;base64,R0lG")]),
    ])
    assert _body(request)["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lG"}},
        ]},
    ]
    assert base64.b64decode("iVBORw0KGgo=") == png


def test_images_to_a_model_without_vision_are_refused_before_sending() -> None:
    request = ChatRequest(model="o3-mini", messages=[
        Message.user("look", images=[Image(url="https://example.com/a.png")])])
    with pytest.raises(InvalidRequestError, match="does not accept images") as info:
        _body(request)
    assert info.value.field == "messages"
    # Unknown models (and providers without a static list) are not second-guessed.
    unknown = ChatRequest(model="gpt-9", messages=request.messages)
    assert _body(unknown)["messages"][0]["content"][1]["type"] == "image_url"


def test_tools_with_description_and_strict() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"], "additionalProperties": False}
    request = ChatRequest(model="gpt-4o", messages=USER, tools=[
        Tool(name="get_weather", description="Weather for a city", parameters=schema,
             strict=True),
        Tool(name="now"),
        Tool(name="loose", strict=False),
    ])
    assert _body(request)["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": schema,
                                          "description": "Weather for a city", "strict": True}},
        {"type": "function", "function": {"name": "now",
                                          "parameters": {"type": "object", "properties": {}}}},
        {"type": "function", "function": {"name": "loose", "strict": False,
                                          "parameters": {"type": "object", "properties": {}}}},
    ]


@pytest.mark.parametrize(("choice", "wire_value"), [
    (ToolChoice.AUTO, "auto"),
    ("auto", "auto"),
    (ToolChoice.REQUIRED, "required"),
    ("none", "none"),
    (ToolChoice.function("now"), {"type": "function", "function": {"name": "now"}}),
])
def test_tool_choice(choice: ToolChoice | str, wire_value: Any) -> None:
    request = ChatRequest(model="m", messages=USER, tools=[Tool(name="now")], tool_choice=choice)
    assert _body(request)["tool_choice"] == wire_value


def test_no_tools_means_no_tool_fields() -> None:
    body = _body(ChatRequest(model="m", messages=USER))
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(body)


@pytest.mark.parametrize("parallel", [True, False])
def test_parallel_tool_calls(parallel: bool) -> None:
    request = ChatRequest(model="m", messages=USER, tools=[Tool(name="now")],
                          parallel_tool_calls=parallel)
    assert _body(request)["parallel_tool_calls"] is parallel


def test_stop_is_always_a_list() -> None:
    assert _body(ChatRequest(model="m", messages=USER, stop="END"))["stop"] == ["END"]
    assert _body(ChatRequest(model="m", messages=USER, stop=("a", "b")))["stop"] == ["a", "b"]


def test_extra_is_merged_last() -> None:
    request = ChatRequest(model="m", messages=USER, temperature=1.0, extra={
        "response_format": {"type": "json_object"}, "seed": 7, "temperature": 0.2})
    assert _body(request) == {
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2, "response_format": {"type": "json_object"}, "seed": 7,
    }


def test_streaming_adds_stream_and_usage() -> None:
    request = ChatRequest(model="m", messages=USER)
    assert _body(request, stream=True) == {
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "stream": True, "stream_options": {"include_usage": True},
    }
    assert "stream" not in _body(request, stream=False)
    no_usage = _body(request, stream=True, stream_usage=False)
    assert no_usage["stream"] is True
    assert "stream_options" not in no_usage


def test_max_tokens_field_per_spec() -> None:
    request = ChatRequest(model="m", messages=USER, max_tokens=64)
    openai_body = wire.build_chat_body(_provider(OPENAI), request, False)
    assert openai_body["max_completion_tokens"] == 64
    assert "max_tokens" not in openai_body
    groq_body = wire.build_chat_body(_provider(GROQ), request, False)
    assert groq_body["max_tokens"] == 64
    assert "max_completion_tokens" not in groq_body


def test_max_tokens_field_through_the_client() -> None:
    registry = Registry(entry_points=False)
    registry.register(aipk_openai.plugin, "openai")
    request = ChatRequest(model="gpt-4o", messages=USER, max_tokens=5)
    for name, field in (("openai", "max_completion_tokens"), ("groq", "max_tokens")):
        with aipk.Client(name, api_key="sk-test", registry=registry) as client:
            http, body = client._engine.build(request, stream=False)
        assert body is not None
        assert json.loads(body)[field] == 5
        assert http.headers["authorization"] == "Bearer sk-test"


def test_request_headers_and_url() -> None:
    request = ChatRequest(model="m", messages=USER)
    plain = wire.build_chat_request(_provider(), request, False)
    assert plain.method == "POST"
    assert plain.url == "https://api.openai.com/v1/chat/completions"
    assert dict(plain.headers) == {"content-type": "application/json",
                                   "accept": "application/json"}
    assert plain.json == wire.build_chat_body(_provider(), request, False)

    streaming = wire.build_chat_request(
        _provider(organization="org-1", project="proj_2"), request, True)
    assert dict(streaming.headers) == {
        "content-type": "application/json", "accept": "text/event-stream",
        "openai-organization": "org-1", "openai-project": "proj_2",
    }
    assert "org-1" not in repr(streaming)


@pytest.mark.parametrize("base_url", [
    "https://gw.example/openai/v1", "https://gw.example/openai/v1/",
    "https://gw.example/openai/v1//",
])
def test_url_joining(base_url: str) -> None:
    provider = _provider(base_url=base_url)
    request = ChatRequest(model="m", messages=USER)
    assert wire.build_chat_request(provider, request, False).url == \
        "https://gw.example/openai/v1/chat/completions"
    models = wire.build_models_request(provider)
    assert (models.method, models.url) == ("GET", "https://gw.example/openai/v1/models")


def test_parse_models_enriches_known_ids() -> None:
    data = {"object": "list", "data": [
        {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
        {"id": "ft:gpt-4o:acme", "object": "model", "created": 1, "owned_by": "acme"},
    ]}
    models = wire.parse_models(_provider(), data)
    assert [(m.id, m.created, m.extra) for m in models] == [
        ("gpt-4o", 1715367049, {"owned_by": "system"}),
        ("ft:gpt-4o:acme", 1, {"owned_by": "acme"}),
    ]
    assert models[0].context_window == 128_000
    assert models[1].capabilities is None
    assert wire.parse_models(_provider(), {"data": []}) == []


# -- rate limits -----------------------------------------------------------------------------

_FULL = {
    "x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
    "x-ratelimit-reset-requests": "1m26.4s",
    "x-ratelimit-limit-tokens": "30000", "x-ratelimit-remaining-tokens": "29000",
    "x-ratelimit-reset-tokens": "6m0s",
}


def test_rate_limits_with_go_durations() -> None:
    state = wire.parse_rate_limits(200, _FULL, NOW)
    assert state is not None
    assert state.requests is not None
    assert (state.requests.limit, state.requests.remaining) == (500, 499)
    assert state.requests.reset_at == pytest.approx(NOW + 86.4)
    assert state.tokens == aipk.RateLimitWindow(limit=30000, remaining=29000,
                                                reset_at=NOW + 360.0)
    assert state.not_before is None
    assert state.observed_at == NOW


@pytest.mark.parametrize(("value", "seconds"), [
    ("12ms", 0.012), ("1s", 1.0), ("1h2m3s", 3723.0), ("0s", 0.0), ("2.5", 2.5),
    ("500us", 0.0005),
])
def test_reset_durations(value: str, seconds: float) -> None:
    state = wire.parse_rate_limits(200, {"x-ratelimit-reset-tokens": value}, NOW)
    assert state is not None
    assert state.tokens is not None
    assert state.tokens.reset_at == pytest.approx(NOW + seconds)


@pytest.mark.parametrize("sentinel", ["-1", "0"])
def test_sentinel_limits_are_ignored(sentinel: str) -> None:
    headers = {"x-ratelimit-limit-requests": sentinel,
               "x-ratelimit-remaining-requests": sentinel}
    assert wire.parse_rate_limits(200, headers, NOW) is None
    with_reset = wire.parse_rate_limits(200, {**headers, "x-ratelimit-reset-requests": "1s"},
                                        NOW)
    assert with_reset is not None
    assert with_reset.requests == aipk.RateLimitWindow(reset_at=NOW + 1.0)
    # A sentinel must never read as "nothing left": the request may go.
    assert with_reset.can_send(NOW)


def test_no_rate_limit_headers_is_none() -> None:
    assert wire.parse_rate_limits(200, {"content-type": "application/json"}, NOW) is None


@pytest.mark.parametrize(("headers", "wait"), [
    ({"retry-after": "2"}, 2.0),
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
    ({"retry-after-ms": "junk", "retry-after": "3"}, 3.0),
    ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
])
def test_retry_after_sets_not_before(headers: dict[str, str], wait: float) -> None:
    state = wire.parse_rate_limits(429, headers, NOW)
    assert state is not None
    assert state.not_before == pytest.approx(NOW + wait)
    assert state.requests is None
    assert state.tokens is None
    assert not state.can_send(NOW)


@pytest.mark.parametrize("value", ["-5", "nan", "inf", "soon", "", "1e400", "99999999"])
def test_bad_retry_after_is_ignored(value: str) -> None:
    assert wire.parse_rate_limits(429, {"retry-after": value}, NOW) is None


_LIMIT_HEADERS = [f"x-ratelimit-{kind}-{window}" for kind in ("limit", "remaining", "reset")
                  for window in ("requests", "tokens")] + ["retry-after", "retry-after-ms"]
_header_value = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["-1", "0", "1e400", "nan", "-inf", "12ms", "1m26.4s", "6m0s", "1.5",
                     "9" * 5000, "Wed, 21 Oct 2015 07:28:00 GMT", "0001-01-01T00:00:00+14:00",
                     "9999-12-31", "1700000000000", "1.7e9", "\x00", "١٢"]),
    st.integers(-10**20, 10**20).map(str),
    st.floats().map(str),
)


@settings(max_examples=300, deadline=None)
@given(headers=st.dictionaries(st.sampled_from(_LIMIT_HEADERS), _header_value),
       status=st.sampled_from([200, 429, 500]))
def test_garbage_rate_limit_headers_never_raise(headers: dict[str, str], status: int) -> None:
    state = wire.parse_rate_limits(status, headers, NOW)
    if state is None:
        return
    for window in state.windows().values():
        for count in (window.limit, window.remaining):
            assert count is None or (type(count) is int and count >= 0)
        assert window.reset_at is None or NOW <= window.reset_at <= NOW + MAX_RESET
    assert state.not_before is None or NOW <= state.not_before <= NOW + MAX_RESET


# -- HTTP errors -----------------------------------------------------------------------------


def _error(status: int, data: Any, headers: Mapping[str, str] | None = None,
           request_id: str | None = None) -> Any:
    return wire.map_error(_provider(), status, headers or {}, data, request_id, NOW)


def _body_error(message: str, type_: str = "invalid_request_error",
                code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def test_map_error_by_status() -> None:
    bad = _error(400, _body_error("bad param", code="invalid_value"), request_id="req_9")
    assert type(bad) is BadRequestError
    assert (bad.code, bad.message, bad.request_id, bad.retryable) == (
        "invalid_value", "bad param", "req_9", False)

    auth = _error(401, _body_error("Incorrect API key provided: sk-...abcd.",
                                   code="invalid_api_key"))
    assert type(auth) is AuthenticationError
    assert auth.status == 401
    assert "Incorrect API key provided" in auth.message
    assert "check the API key" in auth.message

    limited = _error(429, _body_error("Rate limit reached", "requests", "rate_limit_exceeded"),
                     {"retry-after-ms": "1200"})
    assert type(limited) is RateLimitError
    assert limited.retryable
    assert limited.retry_after == 1.2
    assert limited.code == "rate_limit_exceeded"

    server = _error(500, _body_error("The server had an error", "server_error"))
    assert type(server) is ServerError
    assert server.retryable
    assert server.code == "server_error"

    assert type(_error(529, None)) is OverloadedError
    unavailable = _error(503, "<html>Service Unavailable</html>")
    assert type(unavailable) is ServerError
    assert unavailable.message == "<html>Service Unavailable</html>"
    assert unavailable.code is None


def test_map_error_odd_bodies() -> None:
    assert _error(500, None).message == "HTTP 500 with no error message"
    assert _error(400, {"error": "plain words"}).message == "plain words"
    assert _error(400, [1, 2]).message == "HTTP 400 with no error message"
    typed_only = _error(400, {"error": {"message": "m", "type": "invalid_request_error",
                                        "code": None}})
    assert typed_only.code == "invalid_request_error"
    numeric = _error(400, {"error": {"message": "m", "code": 400}})
    assert numeric.code == "400"


#: Cerebras's error body: OpenAI's fields at the top level, no "error" wrapper.
CEREBRAS_RATE_LIMIT = {"message": "Requests per minute limit exceeded - too many requests sent.",
                       "type": "too_many_requests_error", "param": "quota",
                       "code": "request_quota_exceeded"}
CEREBRAS_QUEUE = {"message": "We're experiencing high traffic right now! Please try again soon.",
                  "type": "too_many_requests_error", "param": "queue", "code": "queue_exceeded"}


def test_map_error_flat_body() -> None:
    limited = _error(429, CEREBRAS_RATE_LIMIT, {"retry-after": "3"})
    assert type(limited) is RateLimitError
    assert (limited.code, limited.retry_after, limited.retryable) == (
        "request_quota_exceeded", 3.0, True)
    assert limited.message == CEREBRAS_RATE_LIMIT["message"]
    too_long = _error(400, {"message": "Please reduce the length of the messages or completion.",
                            "type": "invalid_request_error", "param": "messages",
                            "code": "context_length_exceeded"})
    assert type(too_long) is ContextWindowExceededError
    typed_only = _error(400, {"message": "m", "type": "invalid_request_error", "code": None})
    assert (typed_only.code, typed_only.message) == ("invalid_request_error", "m")
    # a body with a message but neither type nor code is not taken for an error object
    assert _error(500, {"message": "hello"}).message == "HTTP 500 with no error message"


def test_flat_in_band_error_raises_stream_error() -> None:
    with pytest.raises(StreamError) as info:
        _decode(_chunk({"content": "Hel"}), CEREBRAS_QUEUE)
    assert (info.value.code, info.value.retryable) == ("queue_exceeded", True)
    assert info.value.message == CEREBRAS_QUEUE["message"]
    assert info.value.body == CEREBRAS_QUEUE
    with pytest.raises(StreamError) as bad:
        _decode({"message": "bad", "type": "invalid_request_error", "code": "wrong_param"})
    assert not bad.value.retryable


@pytest.mark.parametrize(("code", "retryable"), [("502", True), ("429", True), ("400", False),
                                                 (503, True), ("x1", False)])
def test_in_band_status_codes_as_strings_or_numbers(code: Any, retryable: bool) -> None:
    chunk = _chunk({"content": ""}, "error", error={"code": code, "message": "upstream"})
    with pytest.raises(StreamError) as info:
        _decode(chunk)
    assert (info.value.code, info.value.retryable) == (str(code), retryable)


def test_spent_quota_is_a_rate_limit_not_worth_retrying() -> None:
    body = _body_error("You exceeded your current quota, please check your plan and billing "
                       "details.", "insufficient_quota", "insufficient_quota")
    spent = _error(429, body, {"retry-after": "1"})
    assert type(spent) is RateLimitError
    assert not spent.retryable
    assert spent.code == "insufficient_quota"
    assert spent.message.startswith("You exceeded your current quota")
    assert "add credits" in spent.message and "retrying will not help" in spent.message
    assert aipk.RetryPolicy().delay(0, spent) is None
    # an ordinary 429 stays retryable
    assert _error(429, _body_error("Rate limit reached", "requests", "rate_limit_exceeded")
                  ).retryable


def test_x_should_retry_header_overrides_status() -> None:
    assert not _error(500, _body_error("x"), {"x-should-retry": "false"}).retryable
    assert _error(409, _body_error("x"), {"x-should-retry": "true"}).retryable
    assert not _error(404, _body_error("no such model", code="model_not_found")).retryable


def test_engine_error_with_non_json_body() -> None:
    error = _engine().error(502, {"x-request-id": "req_5"}, b"<html>Bad gateway</html>")
    assert type(error) is ServerError
    assert error.message == "<html>Bad gateway</html>"
    assert error.request_id == "req_5"
    deep = _engine().error(400, {}, b"[" * 100_000)
    assert type(deep) is BadRequestError


def test_error_body_with_status_200_raises_stream_error() -> None:
    data = {"error": {"message": "upstream failed", "code": 502}}
    with pytest.raises(StreamError) as info:
        wire.parse_chat_response(_provider(), ChatRequest(model="m", messages=USER), data)
    assert (info.value.code, info.value.retryable) == ("502", True)


def test_empty_choices_is_a_response_error() -> None:
    with pytest.raises(ResponseError, match="no choices"):
        wire.parse_chat_response(_provider(), ChatRequest(model="m", messages=USER),
                                 {"id": "x", "choices": []})


def test_chat_response_reasoning_and_usage_details() -> None:
    data = {"id": "c1", "model": "deepseek-r1", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "42", "reasoning_content": "think"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                      "prompt_tokens_details": {"cached_tokens": 4},
                      "completion_tokens_details": {"reasoning_tokens": 3}}}
    response = wire.parse_chat_response(_provider(), ChatRequest(model="m", messages=USER), data)
    assert (response.text, response.reasoning) == ("42", "think")
    assert response.usage == Usage(input_tokens=10, output_tokens=5, total_tokens=15,
                                   reasoning_tokens=3, cache_read_tokens=4)


def test_usage_ignores_counts_that_are_not_numbers() -> None:
    assert wire.parse_usage({"prompt_tokens": "7", "completion_tokens": None,
                             "total_tokens": True, "prompt_tokens_details": [1]}) == Usage()
    assert wire.parse_usage({"prompt_tokens": 3.0, "completion_tokens": -1}) == Usage(
        input_tokens=3, total_tokens=3)


_count_value = st.one_of(st.none(), st.integers(-5, 10**6), st.floats(allow_nan=True),
                         st.booleans(), st.text(max_size=3), st.just([1]))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens"]),
                       _count_value))
def test_usage_counts_are_what_count_makes_of_each_value(data: dict[str, Any]) -> None:
    usage = wire.parse_usage(data)
    prompt, completion = (aipk.json_count(data.get("prompt_tokens")),
                          aipk.json_count(data.get("completion_tokens")))
    total = aipk.json_count(data.get("total_tokens"))
    if total is None:
        total = (completion if prompt is None else prompt if completion is None
                 else prompt + completion)
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (
        prompt, completion, total)


_details_value = st.one_of(
    st.none(), st.just([1]), st.text(max_size=2),
    st.dictionaries(st.sampled_from(["reasoning_tokens", "cached_tokens", "cache_write_tokens",
                                     "audio_tokens"]), _count_value))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["completion_tokens_details", "prompt_tokens_details"]),
                       _details_value))
def test_usage_details_are_what_count_makes_of_each_value(data: dict[str, Any]) -> None:
    usage = wire.parse_usage(data)

    def detail(key: str, field: str) -> int | None:
        details = data.get(key)
        return aipk.json_count(details.get(field)) if isinstance(details, dict) else None

    assert (usage.reasoning_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (
        detail("completion_tokens_details", "reasoning_tokens"),
        detail("prompt_tokens_details", "cached_tokens"),
        detail("prompt_tokens_details", "cache_write_tokens"))


@settings(max_examples=200, deadline=None)
@given(content=st.none() | st.text(max_size=5), refusal=st.none() | st.text(max_size=5),
       reason=st.none() | st.sampled_from(["stop", "length", "tool_calls", "odd", ""]),
       calls=st.booleans())
def test_a_reply_message_is_what_message_makes_of_it(
        content: str | None, refusal: str | None, reason: str | None, calls: bool) -> None:
    msg: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    if calls:
        msg["tool_calls"] = [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]
    data = {"choices": [{"index": 0, "message": msg, "finish_reason": reason}]}
    response = wire.parse_chat_response(_provider(), ChatRequest(model="m", messages=USER),
                                        data)
    assert response.message == wire._message(_provider(), msg)
    expected = wire.finish_reason(reason) if reason else None
    if refusal and not content and expected is FinishReason.STOP:
        expected = FinishReason.REFUSAL
    if calls and expected is FinishReason.STOP:  # "stop" after tool calls
        expected = FinishReason.TOOL_CALLS
    assert response.finish_reason is expected


def _reference_response(data: dict[str, Any]) -> aipk.ChatResponse:
    """What parse_chat_response made of a one-choice reply when it read every message key."""
    first = data["choices"][0]
    msg = first.get("message") or {}
    raw = first.get("finish_reason")
    reason = wire.finish_reason(raw) if raw else None
    if msg.get("refusal") and not msg.get("content") and reason is FinishReason.STOP:
        reason = FinishReason.REFUSAL
    usage = data.get("usage")
    message = (wire._message(_provider(), msg) if msg.get("tool_calls") or msg.get(
        "function_call") else Message.assistant(msg.get("content")))
    if message.tool_calls and reason is FinishReason.STOP:  # "stop" after tool calls
        reason = FinishReason.TOOL_CALLS
    return aipk.ChatResponse(
        provider="openai", model=data.get("model") or "m",
        message=message,
        finish_reason=reason, raw_finish_reason=raw,
        usage=wire.parse_usage(usage) if usage else None, id=data.get("id"),
        refusal=msg.get("refusal"),
        reasoning=msg.get("reasoning_content") or msg.get("reasoning"),
        extra=wire._message_extra(msg))


_falsy: st.SearchStrategy[Any] = st.sampled_from([None, "", [], {}])
_message_values: dict[str, Any] = {
    "content": st.none() | st.text(max_size=3), "refusal": st.none() | st.text(max_size=3),
    "annotations": _falsy | st.just([{"type": "url_citation"}]),
    "audio": _falsy | st.just({"transcript": "hi"}), "images": _falsy | st.just([{"u": 1}]),
    "tool_calls": _falsy | st.just([{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]),
    "function_call": _falsy | st.just({"name": "g", "arguments": "{}"}),
    "reasoning_content": _falsy | st.text(max_size=3), "reasoning": _falsy | st.text(max_size=3),
}


@settings(max_examples=300, deadline=None)
@given(msg=st.fixed_dictionaries({}, optional=_message_values),
       reason=st.none() | st.sampled_from(["stop", "length", "odd"]),
       usage=st.none() | st.just({"prompt_tokens": 3, "completion_tokens": 2}))
def test_a_reply_is_what_reading_every_message_key_makes_of_it(
        msg: dict[str, Any], reason: str | None, usage: dict[str, Any] | None) -> None:
    # the usual text answer skips the keys it does not have: the same response as reading all
    data: dict[str, Any] = {"id": "x", "choices": [{"message": msg, "finish_reason": reason}]}
    if usage is not None:
        data["usage"] = usage
    response = wire.parse_chat_response(_provider(), ChatRequest(model="m", messages=USER),
                                        data)
    assert response == _reference_response(data)


def test_unknown_finish_reasons() -> None:
    assert wire.finish_reason("function_call") is FinishReason.TOOL_CALLS
    assert wire.finish_reason("content_filter") is FinishReason.CONTENT_FILTER
    assert wire.finish_reason("eos") is FinishReason.OTHER


# -- the stream decoder ----------------------------------------------------------------------


def test_decoder_basic_events() -> None:
    events = _decode(
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"reasoning_content": "hmm"}),
        _chunk({"reasoning": "!"}),
        _chunk({"content": "Hi"}),
        _chunk({}, "stop"),
        {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1,
                                                      "total_tokens": 4}},
        "[DONE]",
    )
    assert events == [
        ReasoningDelta(text="hmm"), ReasoningDelta(text="!"), TextDelta(text="Hi"),
        FinishEvent(reason=FinishReason.STOP, raw="stop"),
        UsageEvent(usage=Usage(input_tokens=3, output_tokens=1, total_tokens=4)),
    ]


def test_decoder_tags_other_choices() -> None:
    events = _decode(_chunk({"content": "A"}), _chunk({"content": "B"}, index=1),
                     _chunk({}, "length", index=1), _chunk({}, "stop"))
    assert events == [TextDelta(text="A"), TextDelta(text="B", choice=1),
                      FinishEvent(reason=FinishReason.LENGTH, raw="length", choice=1),
                      FinishEvent(reason=FinishReason.STOP, raw="stop")]
    with pytest.raises(ValueError, match="choice index"):
        _decode(_chunk({"content": "A"}, index="1"))


def test_decoder_tool_calls_per_index() -> None:
    events = _decode(
        _chunk({"tool_calls": [{"index": 0, "id": "a", "type": "function",
                                "function": {"name": "f", "arguments": ""}},
                               {"index": 1, "id": "b", "function": {"name": "g"}}]}),
        _chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":1}'}}]}),
        _chunk({}, "tool_calls"),
    )
    assert events[:4] == [
        ToolCallDelta(index=0, id="a", name="f"), ToolCallDelta(index=1, id="b", name="g"),
        ToolCallDelta(index=1, arguments="{}"), ToolCallDelta(index=0, arguments='{"x":1}'),
    ]


def test_tool_call_without_index_is_index_zero_and_odd_index_is_rejected() -> None:
    events = _decode(_chunk({"tool_calls": [{"id": "a", "function": {"name": "f"}}]}),
                     _chunk({"tool_calls": [{"index": None, "function": {"arguments": "{}"}}]}))
    assert events == [ToolCallDelta(index=0, id="a", name="f"),
                      ToolCallDelta(index=0, arguments="{}")]
    with pytest.raises(ValueError, match="not an integer"):
        _decode(_chunk({"tool_calls": [{"index": "1", "id": "a"}]}))


def test_whole_tool_calls_without_index_are_numbered_by_id() -> None:
    # some compatible servers send each call whole, in its own chunk, none with an index
    raw = _sse(_chunk({"tool_calls": [{"id": "call_a", "type": "function",
                                       "function": {"name": "f", "arguments": '{"a":1}'}}]}),
               _chunk({"tool_calls": [{"id": "call_b", "type": "function",
                                       "function": {"name": "g", "arguments": "{}"}},
                                      {"id": "call_c", "type": "function",
                                       "function": {"name": "h", "arguments": '{"c":'}}]}),
               _chunk({"tool_calls": [{"function": {"arguments": "3}"}}]}),
               _chunk({}, "tool_calls"))
    events, session = _run(raw)
    assert [e.index for e in events if type(e) is ToolCallDelta] == [0, 1, 2, 2]
    assert [(c.id, c.name, c.arguments) for c in session.response().tool_calls] == [
        ("call_a", "f", '{"a":1}'), ("call_b", "g", "{}"), ("call_c", "h", '{"c":3}')]


@settings(max_examples=30, deadline=None)
@given(calls=st.lists(st.tuples(st.sampled_from(["f", "g"]), st.dictionaries(
    st.sampled_from("xyz"), st.integers(0, 9), max_size=2)), min_size=1, max_size=4),
    cuts=st.lists(st.integers(1, 2000), max_size=12))
def test_unindexed_calls_any_chunking(calls: list[tuple[str, dict[str, int]]],
                                      cuts: list[int]) -> None:
    chunks = [_chunk({"tool_calls": [{"id": f"call_{n}", "function": {
        "name": name, "arguments": json.dumps(args)}}]}) for n, (name, args) in enumerate(calls)]
    raw = _sse(*chunks, _chunk({}, "tool_calls"))
    _, session = _run(raw, sorted({c for c in cuts if c < len(raw)}))
    assert [(c.id, c.name, json.loads(c.arguments)) for c in session.response().tool_calls] == [
        (f"call_{n}", name, args) for n, (name, args) in enumerate(calls)]


def test_streamed_refusal_finishes_as_refusal_like_chat() -> None:
    refusal = _decode(_chunk({"content": None, "refusal": "No."}), _chunk({}, "stop"))
    assert refusal == [RefusalDelta(text="No."),
                       FinishEvent(reason=FinishReason.REFUSAL, raw="stop")]
    mixed = _decode(_chunk({"content": "Well"}), _chunk({"refusal": "no"}), _chunk({}, "stop"))
    assert mixed[-1] == FinishEvent(reason=FinishReason.STOP, raw="stop")


def test_in_band_error_raises_stream_error() -> None:
    with pytest.raises(StreamError) as info:
        _decode(_chunk({"content": "par"}),
                {"error": {"message": "The server had an error", "type": "server_error",
                           "code": None}})
    assert info.value.code == "server_error"
    assert info.value.retryable
    assert "The server had an error" in str(info.value)

    with pytest.raises(StreamError) as bad:
        _decode({"error": {"message": "Invalid prompt", "type": "invalid_request_error",
                           "code": "invalid_prompt"}})
    assert (bad.value.code, bad.value.retryable) == ("invalid_prompt", False)

    with pytest.raises(StreamError) as text:
        _decode({"error": "overloaded"})
    assert text.value.message == "overloaded"
    assert text.value.code is None


def test_openrouter_error_inside_a_chunk_with_choices() -> None:
    chunk = _chunk({"content": ""}, "error",
                   error={"code": 502, "message": "Provider returned error"})
    with pytest.raises(StreamError) as info:
        _decode(_chunk({"content": "Hel"}), chunk)
    assert (info.value.code, info.value.retryable) == ("502", True)
    assert info.value.body == {"code": 502, "message": "Provider returned error"}
    assert "Provider returned error" in info.value.message


def test_in_band_error_through_the_session_carries_the_request_id() -> None:
    session = _session({"x-request-id": "req_7"})
    first = session.feed(_sse(_chunk({"content": "Hel"}), done=False))
    assert first == [TextDelta(text="Hel")]
    assert session.delivered
    with pytest.raises(StreamError) as info:
        session.feed(_sse({"error": {"message": "boom", "type": "server_error"}}))
    assert info.value.request_id == "req_7"
    assert info.value.retryable


@pytest.mark.parametrize("data", ['{"choices": [', "not json", "[1, 2]", '"text"', "null"])
def test_malformed_chunk(data: str) -> None:
    with pytest.raises(ValueError):
        _decode(data)
    session = _session({"x-request-id": "req_8"})
    with pytest.raises(ResponseError, match="could not be decoded") as info:
        session.feed(b"data: " + data.encode() + b"\n\n")
    assert info.value.request_id == "req_8"


def test_invalid_utf8_is_a_response_error() -> None:
    with pytest.raises(ResponseError, match="UTF-8"):
        _session().feed(b'data: {"x": "\xff"}\n\n')


def test_deeply_nested_json_is_a_response_error() -> None:
    with pytest.raises(ResponseError, match="RecursionError"):
        _session().feed(b"data: " + b"[" * 100_000 + b"\n\n")
    with pytest.raises(ResponseError, match="not valid JSON"):
        _engine().chat_response(ChatRequest(model="m", messages=USER), b"[" * 100_000, {}, None)


def test_odd_usage_and_tool_indices_never_escape_as_type_errors() -> None:
    raw = _sse(_chunk({"tool_calls": [{"index": None, "id": "a", "function": {"name": "f"}},
                                      {"index": 1, "id": "b", "function": {"name": "g"}}]}),
               _chunk({}, "tool_calls", usage={"prompt_tokens": "7", "total_tokens": 9}))
    events, session = _run(raw)
    response = session.response()
    assert [(c.id, c.name) for c in response.tool_calls] == [("a", "f"), ("b", "g")]
    assert response.usage == Usage(total_tokens=9)
    assert events[-1] == UsageEvent(usage=Usage(total_tokens=9))


def test_stream_without_done_or_finish_is_incomplete() -> None:
    decoder = wire.OpenAIStreamDecoder(_provider())
    decoder.feed(ServerSentEvent(json.dumps(_chunk({"content": "Hi"}))))
    assert not decoder.done and decoder.close() == ()  # the session, not close(), judges

    with pytest.raises(IncompleteStreamError, match=r"before its terminator \(\[DONE\]\)") as info:
        _run(_sse(_chunk({"content": "Hi"}), done=False))
    assert info.value.retryable and isinstance(info.value, ResponseError)
    assert info.value.partial.text == "Hi" and info.value.partial.finish_reason is None
    with pytest.raises(IncompleteStreamError) as info:
        _run(b"")
    assert info.value.partial.text == "" and info.value.partial.usage is None


def test_stream_with_finish_but_no_done_is_incomplete() -> None:
    # [DONE] is the terminator: every OpenAI-compatible server sends it last, after the finish
    # reason and the optional usage chunk, so a body that ends at the finish reason was cut.
    raw = _sse(_chunk({"content": "Hi"}), _chunk({}, "stop"), done=False)
    with pytest.raises(IncompleteStreamError, match="usage not yet sent") as info:
        _run(raw)
    partial = info.value.partial
    assert (partial.text, partial.finish_reason, partial.id, partial.model) == (
        "Hi", FinishReason.STOP, "chatcmpl-1", "gpt-4o")


def test_stream_with_finish_and_usage_but_no_done_is_incomplete_with_usage() -> None:
    raw = _sse(_chunk({"content": "Hi"}), _chunk({}, "stop"),
               {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 3,
                                                             "completion_tokens": 1}},
               done=False)
    with pytest.raises(IncompleteStreamError, match="usage included") as info:
        _run(raw)
    assert info.value.partial.usage == Usage(input_tokens=3, output_tokens=1)


def test_stream_with_done_but_no_finish_closes_fine() -> None:
    events, session = _run(_sse(_chunk({"content": "Hi"})))
    assert events == [TextDelta(text="Hi")]
    assert session.done
    assert session.response().finish_reason is None


def test_last_event_without_blank_line_is_flushed() -> None:
    raw = _sse(_chunk({"content": "Hi"}, "stop"), done=False) + b"data: [DONE]"
    events, session = _run(raw)
    assert events == [TextDelta(text="Hi"), FinishEvent(reason=FinishReason.STOP, raw="stop")]
    assert session.done
    raw = b"data: " + json.dumps(_chunk({"content": "Hi"}, "stop")).encode()
    with pytest.raises(IncompleteStreamError) as info:  # flushed into the partial answer
        _run(raw)
    assert info.value.partial.text == "Hi"


def test_stream_cut_inside_an_event_is_incomplete_not_undecodable() -> None:
    raw = _sse(_chunk({"content": "Hi"}), _chunk({"content": " there"}), done=False)
    with pytest.raises(IncompleteStreamError, match="in the middle of an event") as info:
        _run(raw[:-12])
    assert info.value.partial.text == "Hi"
    with pytest.raises(IncompleteStreamError, match="in the middle of an event"):
        _run(_sse(_chunk({"content": "Hi"}), done=False) + b"data: [DO")


def test_nothing_after_done_is_decoded() -> None:
    events, session = _run(_sse(_chunk({"content": "Hi"}, "stop")) + b"data: garbage\n\n")
    assert events == [TextDelta(text="Hi"), FinishEvent(reason=FinishReason.STOP, raw="stop")]
    assert session.done


def test_comments_keepalives_and_event_names_are_harmless() -> None:
    raw = (b": OPENROUTER PROCESSING\n\n" + b"event: message\n" +
           _sse(_chunk({"content": "Hi"}), _chunk({}, "stop")))
    events, _ = _run(raw, pieces=[3, 10, 40])
    assert events == [TextDelta(text="Hi"), FinishEvent(reason=FinishReason.STOP, raw="stop")]


# -- fuzzing through the StreamSession ------------------------------------------------------

_KEYS = ["id", "model", "choices", "index", "delta", "content", "refusal", "reasoning",
         "reasoning_content", "tool_calls", "function", "name", "arguments", "finish_reason",
         "usage", "prompt_tokens", "completion_tokens", "total_tokens",
         "completion_tokens_details", "reasoning_tokens", "error", "message", "code", "type"]
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False)
    | st.sampled_from(["", "stop", "length", "tool_calls", "x", "[DONE]"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner,
                                                               max_size=4),
    max_leaves=25,
)
_tool_call = st.fixed_dictionaries({}, optional={
    "index": _json | st.integers(0, 2), "id": _json,
    "function": st.fixed_dictionaries({}, optional={"name": _json, "arguments": _json}) | _json})
_delta = st.fixed_dictionaries({}, optional={
    "content": _json | st.text(max_size=3), "refusal": _json, "reasoning": _json,
    "tool_calls": st.lists(_tool_call, max_size=3) | _json})
_usage = st.dictionaries(
    st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens",
                     "prompt_tokens_details", "completion_tokens_details"]),
    _json | st.integers(0, 10) | st.fixed_dictionaries(
        {}, optional={"cached_tokens": _json, "reasoning_tokens": _json}))
_chunkish = st.fixed_dictionaries({}, optional={
    "id": _json,
    "choices": st.lists(st.fixed_dictionaries({}, optional={
        "index": _json, "delta": _delta | _json,
        "finish_reason": st.sampled_from(["stop", "tool_calls"]) | _json}), max_size=2) | _json,
    "usage": _usage | _json,
    "error": _json})


def _consume(pieces: Sequence[bytes]) -> None:
    session = _session()
    try:
        for piece in pieces:
            session.feed(piece)
        session.finish()
    except AipkError:
        return
    session.response()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.binary(max_size=40) | st.sampled_from(
    [b"data: ", b"\n\n", b"\r\n", b"data: [DONE]\n\n", b"{", b'{"choices":[{"delta":',
     b'"error":', b"\xef\xbb\xbf", b"\xff"]), max_size=12))
def test_arbitrary_bytes_only_raise_aipk_errors(pieces: list[bytes]) -> None:
    _consume(pieces)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(_chunkish | _json, max_size=6), done=st.booleans())
def test_arbitrary_chunks_only_raise_aipk_errors(chunks: list[Any], done: bool) -> None:
    _consume([_sse(*chunks, done=done)])


@pytest.mark.parametrize("odd", [{"a": 1}, ["gpt-4o"], 7])
def test_a_body_naming_its_model_oddly_is_read_without_a_crash(odd: Any) -> None:
    body = {"id": "c1", "object": "chat.completion", "model": odd,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
    reply = _engine().chat_response(ChatRequest(model="no-such-model", messages=USER),
                                    json.dumps(body).encode(), {}, None)
    assert reply.text == "ok" and reply.cost is None  # no price for the model asked for


def test_usage_reads_cache_writes_where_reported() -> None:
    # OpenRouter's usage for an Anthropic upstream (langchaingo's recording): the details name
    # cache writes next to cache reads; OpenAI's own answers leave them out.
    usage = wire.parse_usage({
        "prompt_tokens": 454, "completion_tokens": 231, "total_tokens": 685, "cost": 0.004827,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0,
                                  "audio_tokens": 0, "video_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 149, "image_tokens": 0}})
    assert usage == Usage(input_tokens=454, output_tokens=231, total_tokens=685,
                          reasoning_tokens=149, cache_read_tokens=0, cache_write_tokens=0)
    wrote = wire.parse_usage({"prompt_tokens": 9, "completion_tokens": 1,
                              "prompt_tokens_details": {"cache_write_tokens": 1200}})
    assert (wrote.cache_read_tokens, wrote.cache_write_tokens) == (None, 1200)
    assert wire.parse_usage({"prompt_tokens": 9}).cache_write_tokens is None
