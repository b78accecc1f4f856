"""The Gemini wire functions on their own: request bodies (snapshots), credentials and the
Code Assist endpoint, error mapping, rate limits, models and the stream decoder's edge cases."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aipk_gemini.plugin
from aipk import (
    ChatRequest,
    Credential,
    FinishEvent,
    FinishReason,
    HttpRequest,
    Image,
    IncompleteStreamError,
    Message,
    Provider,
    ReasoningDelta,
    RetryPolicy,
    Secret,
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
    AuthErrorCode,
    BadRequestError,
    ContentFilteredError,
    InvalidRequestError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ResponseError,
    ServerError,
    StreamError,
)
from aipk.sse import ServerSentEvent
from aipk_gemini import DAILY_QUOTA_CODE, GEMINI, endpoint_for, stream, wire
from aipk_testkit.fixtures import make_engine, make_provider

NOW = 1_700_000_000.0
BASE = "https://generativelanguage.googleapis.com/v1beta"
KEY = "AIzaSy-test-key-0123456789"
USER = [Message.user("hi")]
WEATHER = Tool(name="get_weather", description="Weather for a city",
               parameters={"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"], "additionalProperties": False,
                           "$schema": "http://json-schema.org/draft-07/schema#"})


def _provider(base_url: str = BASE, **options: Any) -> Provider:
    return make_provider(GEMINI, base_url, **options)


def _engine(provider: Provider | None = None,
            credential: Credential | None = None) -> Engine:
    return make_engine(provider or _provider(), {"gemini": aipk_gemini.plugin},
                       credential=credential, clock=lambda: NOW)


def _body(**fields: Any) -> dict[str, Any]:
    fields.setdefault("model", "gemini-2.5-flash")
    fields.setdefault("messages", USER)
    return wire.build_chat_body(_provider(), ChatRequest(**fields))


def _sse(*chunks: Any) -> bytes:
    return b"".join(b"data: " + (c if isinstance(c, bytes) else json.dumps(c).encode())
                    + b"\r\n\r\n" for c in chunks)


def _chunk(*parts: Any, finish: str | None = None, usage: Mapping[str, Any] | None = None,
           **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash",
                           "responseId": "resp-1", **extra}
    if usage is not None:
        out["usageMetadata"] = dict(usage)
    return out


def _session() -> StreamSession:
    return _engine().open_stream(ChatRequest(model="gemini-2.5-flash", messages=USER), {}, None)


def _run(raw: bytes) -> tuple[list[StreamEvent], StreamSession]:
    session = _session()
    events = session.feed(raw)
    events.extend(session.finish())
    return events, session


def _decode(*chunks: Any) -> tuple[list[StreamEvent], stream.GeminiStreamDecoder]:
    decoder = stream.GeminiStreamDecoder(_provider())
    out: list[StreamEvent] = []
    for chunk in chunks:
        out.extend(decoder.feed(ServerSentEvent(json.dumps(chunk))))
    return out, decoder


# -- request bodies --------------------------------------------------------------------------


def test_minimal_body_has_only_contents() -> None:
    assert _body() == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_generation_config_only_when_set_and_zero_is_sent() -> None:
    assert _body(temperature=0, top_p=0.5, max_tokens=100, stop=["END", "STOP"]) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"temperature": 0, "topP": 0.5, "maxOutputTokens": 100,
                             "stopSequences": ["END", "STOP"]},
    }
    assert _body(stop="X")["generationConfig"] == {"stopSequences": ["X"]}


def test_roles_system_instruction_and_conversation() -> None:
    body = _body(messages=[Message.system("Be brief."), Message.user("Hi"),
                           Message.assistant("Hello!"), Message.system("Use English."),
                           Message.user("Again")])
    assert body == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use English."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello!"}]},
            {"role": "user", "parts": [{"text": "Again"}]},
        ],
    }


def test_only_system_messages_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequestError) as info:
        _body(messages=[Message.system("alone")])
    assert info.value.field == "messages"


def test_tools_strip_rejected_schema_keys() -> None:
    body = _body(tools=[WEATHER, Tool(name="now")])
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather for a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                        "required": ["city"]}},
        {"name": "now"},  # no arguments: Gemini rejects an OBJECT with empty properties
    ]}]


def test_parameters_json_schema_option_sends_the_schema_untouched() -> None:
    provider = _provider(parameters_json_schema=True)
    body = wire.build_chat_body(provider, ChatRequest(model="m", messages=USER, tools=[WEATHER]))
    declaration = body["tools"][0]["functionDeclarations"][0]
    assert declaration["parametersJsonSchema"] == dict(WEATHER.parameters)
    assert "parameters" not in declaration


def test_inexpressible_schema_names_the_tool_and_keyword() -> None:
    bad = Tool(name="pick", parameters={"type": "object", "properties": {
        "x": {"not": {"type": "string"}}}})
    with pytest.raises(InvalidRequestError, match=r"'pick'.*'not'") as info:
        _body(tools=[bad])
    assert info.value.field == "tools"


@pytest.mark.parametrize(("choice", "config"), [
    (ToolChoice.AUTO, {"mode": "AUTO"}),
    (ToolChoice.REQUIRED, {"mode": "ANY"}),
    (ToolChoice.NONE, {"mode": "NONE"}),
    (ToolChoice.function("get_weather"), {"mode": "ANY",
                                          "allowedFunctionNames": ["get_weather"]}),
])
def test_tool_choice(choice: ToolChoice, config: dict[str, Any]) -> None:
    body = _body(tools=[WEATHER], tool_choice=choice)
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_parallel_tool_calls() -> None:
    assert "parallel_tool_calls" not in json.dumps(_body(parallel_tool_calls=True))
    with pytest.raises(InvalidRequestError) as info:
        _body(parallel_tool_calls=False)
    assert info.value.field == "parallel_tool_calls"


def test_images() -> None:
    png = b"\x89PNG\r\n"
    body = _body(messages=[Message.user("Look", images=[
        Image(data=png, media_type="image/png"),
        Image(url="data:image/jpeg;base64,AAEC"),
        Image(url="https://example.com/cat.webp?size=2"),
        Image(url="gs://bucket/file", media_type="image/gif"),
        Image(url="https://example.com/noext"),
    ])])
    assert body["contents"][0]["parts"] == [
        {"text": "Look"},
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}},
        {"inlineData": {"mimeType": "image/jpeg", "data": "AAEC"}},
        {"fileData": {"fileUri": "https://example.com/cat.webp?size=2",
                      "mimeType": "image/webp"}},
        {"fileData": {"fileUri": "gs://bucket/file", "mimeType": "image/gif"}},
        {"fileData": {"fileUri": "https://example.com/noext"}},
    ]
    only = _body(messages=[Message(role="user", images=[Image(url="gs://b/x.png")])])
    assert only["contents"][0]["parts"] == [{"fileData": {"fileUri": "gs://b/x.png",
                                                          "mimeType": "image/png"}}]
    with pytest.raises(InvalidRequestError) as info:
        _body(messages=[Message.user("x", images=[Image(url="data:image/png,raw")])])
    assert info.value.field == "images"


def test_tool_round_trip_with_signatures() -> None:
    assistant = Message(role="assistant", content="Let me check.", tool_calls=[
        ToolCall(id="call_0", name="get_weather", arguments='{"city": "Oslo"}'),
        ToolCall(id="call_1", name="get_time", arguments="{}")],
        extra={"thoughtSignature": "sig-text",
               "functionCallSignatures": {"call_1": "sig-call-1"}})
    body = _body(messages=[
        Message.user("Weather and time in Oslo?"), assistant,
        Message.tool("call_0", '{"temp": 3}'),
        Message.tool("call_1", "12:00"),
        Message.user("Thanks"),
    ])
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather and time in Oslo?"}]},
        {"role": "model", "parts": [
            {"text": "Let me check.", "thoughtSignature": "sig-text"},
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
            {"functionCall": {"name": "get_time", "args": {}},
             "thoughtSignature": "sig-call-1"},
        ]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 3}}},
            {"functionResponse": {"name": "get_time", "response": {"result": "12:00"}}},
        ]},
        {"role": "user", "parts": [{"text": "Thanks"}]},
    ]


def test_text_signature_moves_to_the_first_call_when_there_is_no_text() -> None:
    assistant = Message(role="assistant", tool_calls=[
        ToolCall(id="call_0", name="a"), ToolCall(id="call_1", name="b")],
        extra={"thoughtSignature": "sig"})
    parts = _body(messages=[Message.user("x"), assistant])["contents"][1]["parts"]
    assert parts == [{"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "sig"},
                     {"functionCall": {"name": "b", "args": {}}}]
    lone = Message(role="assistant", extra={"thoughtSignature": "s2"})
    assert _body(messages=[Message.user("x"), lone])["contents"][1]["parts"] == [
        {"text": "", "thoughtSignature": "s2"}]


def test_tool_result_name_comes_from_the_most_recent_matching_call() -> None:
    first = Message.assistant(tool_calls=[ToolCall(id="call_0", name="old")])
    second = Message.assistant(tool_calls=[ToolCall(id="call_0", name="new")])
    body = _body(messages=[Message.user("a"), first, Message.tool("call_0", "1"),
                           Message.user("b"), second, Message.tool("call_0", "2")])
    names = [p["functionResponse"]["name"] for c in body["contents"] for p in c["parts"]
             if "functionResponse" in p]
    assert names == ["old", "new"]
    named = _body(messages=[Message.user("a"), Message.tool("x9", "r", name="explicit")])
    assert named["contents"][1]["parts"][0]["functionResponse"]["name"] == "explicit"
    with pytest.raises(InvalidRequestError, match="x9") as info:
        _body(messages=[Message.user("a"), Message.tool("x9", "r")])
    assert info.value.field == "messages"


def test_non_object_tool_arguments_are_refused() -> None:
    assistant = Message.assistant(tool_calls=[ToolCall(id="c", name="f", arguments="[1]")])
    with pytest.raises(InvalidRequestError, match="JSON object"):
        _body(messages=[Message.user("a"), assistant])


def test_extra_is_merged_one_level_deep() -> None:
    body = _body(temperature=0.2, extra={
        "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT",
                            "threshold": "BLOCK_NONE"}]})
    assert body["generationConfig"] == {"temperature": 0.2,
                                        "thinkingConfig": {"thinkingBudget": 0}}
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"


def test_urls() -> None:
    provider = _provider()
    request = ChatRequest(model="gemini-2.5-flash", messages=USER)
    plain = wire.build_chat_request(provider, request, stream=False)
    streamed = wire.build_chat_request(provider, request, stream=True)
    assert plain.url == f"{BASE}/models/gemini-2.5-flash:generateContent"
    assert streamed.url == f"{BASE}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert streamed.headers["accept"] == "text/event-stream"
    prefixed = ChatRequest(model="models/gemini-2.0-flash", messages=USER)
    assert wire.build_chat_request(provider, prefixed, False).url == (
        f"{BASE}/models/gemini-2.0-flash:generateContent")
    tuned = ChatRequest(model="tunedModels/my-model", messages=USER)
    assert wire.build_chat_request(provider, tuned, False).url == (
        f"{BASE}/tunedModels/my-model:generateContent")
    assert wire.build_models_request(provider).url == f"{BASE}/models?pageSize=1000"


# -- credentials and endpoints ---------------------------------------------------------------


def test_api_key_only_in_the_header_never_in_url_or_repr() -> None:
    engine = _engine(credential=Credential(kind="api_key", secret=Secret(KEY), id="GEMINI"))
    for streamed in (False, True):
        http, body = engine.build(ChatRequest(model="gemini-2.5-flash", messages=USER), streamed)
        assert http.headers["x-goog-api-key"] == KEY
        assert "authorization" not in http.headers
        assert KEY not in http.url and "key=" not in http.url
        assert KEY not in repr(http)
        assert body is not None and KEY.encode() not in body
    models = engine.models_request()
    assert models is not None
    assert models[0].headers["x-goog-api-key"] == KEY and KEY not in models[0].url
    assert KEY not in repr(models[0])


def test_oauth_without_project_uses_the_standard_endpoint_with_bearer() -> None:
    token = Credential(kind="oauth", secret=Secret("ya29.token"), id="oauth")
    http, _ = _engine(credential=token).build(
        ChatRequest(model="gemini-2.5-pro", messages=USER), stream=True)
    assert http.headers["authorization"] == "Bearer ya29.token"
    assert "x-goog-api-key" not in http.headers
    assert http.url == f"{BASE}/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    assert "ya29" not in repr(http)
    assert endpoint_for(_provider(), token) == aipk_gemini.Endpoint(
        kind="standard", base_url=BASE, auth="bearer")


def test_oauth_with_project_uses_the_cloudcode_envelope() -> None:
    token = Credential(kind="oauth", secret=Secret("ya29.token"), id="oauth")
    provider = _provider(project_id="my-project")
    engine = _engine(provider, token)
    request = ChatRequest(model="gemini-2.5-pro", messages=USER, temperature=0.5)
    http, body = engine.build(request, stream=True)
    assert http.url == ("https://cloudcode-pa.googleapis.com/v1internal"
                        ":streamGenerateContent?alt=sse")
    assert http.headers["authorization"] == "Bearer ya29.token"
    assert http.json == {"model": "gemini-2.5-pro", "project": "my-project", "request": {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"temperature": 0.5}}}
    assert body is not None and json.loads(body) == http.json
    plain, _ = engine.build(request, stream=False)
    assert plain.url == "https://cloudcode-pa.googleapis.com/v1internal:generateContent"
    assert endpoint_for(provider, token) == aipk_gemini.Endpoint(
        kind="cloudcode", base_url="https://cloudcode-pa.googleapis.com/v1internal",
        auth="bearer", project="my-project")
    # The model listing is not a chat call: it is left on the standard endpoint.
    listing = engine.models_request()
    assert listing is not None and listing[0].url == f"{BASE}/models?pageSize=1000"


def test_cloudcode_base_url_option_and_api_key_ignore_project() -> None:
    provider = _provider(project_id="p", cloudcode_base_url="http://127.0.0.1:9/v1internal")
    token = Credential(kind="oauth", secret=Secret("t"))
    http, _ = _engine(provider, token).build(ChatRequest(model="m", messages=USER), False)
    assert http.url == "http://127.0.0.1:9/v1internal:generateContent"
    key = Credential(kind="api_key", secret=Secret(KEY))
    http, _ = _engine(provider, key).build(ChatRequest(model="m", messages=USER), False)
    assert http.url == f"{BASE}/models/m:generateContent"
    assert endpoint_for(provider, key).auth == "x-goog-api-key"
    none = Credential(kind="none")
    http, _ = _engine(provider, none).build(ChatRequest(model="m", messages=USER), False)
    assert "x-goog-api-key" not in http.headers and "authorization" not in http.headers
    assert endpoint_for(provider, none).auth == "none"


def test_to_cloudcode_leaves_other_requests_alone() -> None:
    listing = HttpRequest(method="GET", url=f"{BASE}/models")
    assert wire.to_cloudcode(listing, "p") is listing


def test_cloudcode_responses_are_unwrapped() -> None:
    inner = _chunk({"text": "hi"}, finish="STOP",
                   usage={"promptTokenCount": 2, "candidatesTokenCount": 1,
                          "totalTokenCount": 3})
    response = wire.parse_chat_response(_provider(), ChatRequest(model="m", messages=USER),
                                        {"response": inner, "traceId": "t"})
    assert (response.text, response.finish_reason) == ("hi", FinishReason.STOP)
    events, _ = _run(_sse({"response": inner, "traceId": "t"}))
    assert [type(e) for e in events] == [TextDelta, FinishEvent, UsageEvent]


# -- responses and stream decoding -----------------------------------------------------------


def test_missing_parts_and_content_do_not_crash() -> None:
    events, decoder = _decode(
        {"candidates": [{"index": 0}]},
        {"candidates": [{"content": {"role": "model"}, "index": 0}]},
        {"candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "SAFETY"}]})
    assert events == [TextDelta(text="ok"),
                      FinishEvent(reason=FinishReason.CONTENT_FILTER, raw="SAFETY")]
    assert decoder.close() == ()
    response = wire.parse_chat_response(_provider(), ChatRequest(model="m", messages=USER),
                                        {"candidates": [{"finishReason": "SAFETY"}]})
    assert response.finish_reason is FinishReason.CONTENT_FILTER and response.text == ""


@pytest.mark.parametrize(("raw", "reason"), [
    ("STOP", FinishReason.STOP), ("MAX_TOKENS", FinishReason.LENGTH),
    ("SAFETY", FinishReason.CONTENT_FILTER), ("RECITATION", FinishReason.CONTENT_FILTER),
    ("BLOCKLIST", FinishReason.CONTENT_FILTER),
    ("PROHIBITED_CONTENT", FinishReason.CONTENT_FILTER),
    ("SPII", FinishReason.CONTENT_FILTER),
    ("MALFORMED_FUNCTION_CALL", FinishReason.ERROR),
    ("LANGUAGE", FinishReason.OTHER), ("OTHER", FinishReason.OTHER),
    ("FINISH_REASON_UNSPECIFIED", FinishReason.OTHER),
])
def test_finish_reasons(raw: str, reason: FinishReason) -> None:
    assert wire.finish_reason(raw) is reason
    events, _ = _decode(_chunk({"text": "x"}, finish=raw))
    assert events[-1] == FinishEvent(reason=reason, raw=raw)


def test_function_calls_stream_whole_with_ids_and_signatures() -> None:
    events, decoder = _decode(
        _chunk({"text": "Checking"}),
        _chunk({"functionCall": {"name": "get_weather", "args": {"city": "Zürich"}},
                "thoughtSignature": "sig-a"},
               {"functionCall": {"name": "get_weather", "args": {"city": "Bern"},
                                 "id": "native-7"}}),
        _chunk({"text": ""}, finish="STOP"))
    assert events == [
        TextDelta(text="Checking"),
        ToolCallDelta(index=0, id="call_0", name="get_weather", arguments='{"city":"Zürich"}'),
        ToolCallDelta(index=1, id="native-7", name="get_weather", arguments='{"city":"Bern"}'),
        FinishEvent(reason=FinishReason.TOOL_CALLS, raw="STOP"),
    ]
    assert decoder.extra == {"functionCallSignatures": {"call_0": "sig-a"}}
    assert (decoder.response_id, decoder.model) == ("resp-1", "gemini-2.5-flash")


def test_thought_parts_are_reasoning() -> None:
    events, decoder = _decode(
        _chunk({"text": "Thinking about it", "thought": True}),
        _chunk({"text": "Answer", "thoughtSignature": "sig"}, finish="STOP"))
    assert events[:2] == [ReasoningDelta(text="Thinking about it"), TextDelta(text="Answer")]
    assert decoder.extra == {"thoughtSignature": "sig"}


def test_usage_snapshots_are_not_summed_and_repeats_are_dropped() -> None:
    meta = {"promptTokenCount": 10, "candidatesTokenCount": 2, "totalTokenCount": 12}
    events, _ = _decode(_chunk({"text": "a"}, usage=meta), _chunk({"text": "b"}, usage=meta),
                        _chunk({"text": "c"}, finish="STOP",
                               usage={**meta, "candidatesTokenCount": 3,
                                      "totalTokenCount": 13, "cachedContentTokenCount": 4}))
    usages = [e.usage for e in events if type(e) is UsageEvent]
    assert usages == [Usage(input_tokens=10, output_tokens=2, total_tokens=12),
                      Usage(input_tokens=10, output_tokens=3, total_tokens=13,
                            cache_read_tokens=4)]


def test_parse_usage_edge_cases() -> None:
    assert wire.parse_usage({"trafficType": "ON_DEMAND"}) is None
    assert wire.parse_usage("nonsense") is None
    assert wire.parse_usage({"promptTokenCount": 5, "toolUsePromptTokenCount": 2,
                             "candidatesTokenCount": "7", "thoughtsTokenCount": -1}) == Usage(
        input_tokens=7, output_tokens=None, total_tokens=7)


def test_blocked_prompt_stream_is_a_content_filtered_error() -> None:
    with pytest.raises(ContentFilteredError) as caught:
        _run(_sse({"promptFeedback": {"blockReason": "SAFETY"},
                   "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}}))
    assert caught.value.code == "SAFETY"
    assert caught.value.body["promptFeedback"] == {"blockReason": "SAFETY"}


def test_stream_with_nothing_usable_is_a_response_error() -> None:
    session = _session()
    assert session.feed(b": keep-alive\r\n\r\n") == []
    with pytest.raises(IncompleteStreamError, match="0 characters of text"):
        session.finish()
    with pytest.raises(ResponseError, match="not a GenerateContentResponse"):
        _run(_sse({"id": "chatcmpl-1", "choices": []}))


def test_usage_only_stream_without_finish_is_incomplete_with_the_usage() -> None:
    with pytest.raises(IncompleteStreamError, match="a finishReason") as info:
        _run(_sse({"usageMetadata": {"promptTokenCount": 1, "totalTokenCount": 1}}))
    assert info.value.partial.usage is not None
    assert info.value.partial.usage.input_tokens == 1


def test_in_band_error_is_a_stream_error() -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.",
                       "status": "UNAVAILABLE"}}
    with pytest.raises(StreamError, match="overloaded") as info:
        _run(_sse(_chunk({"text": "partial"}), error))
    assert info.value.code == "UNAVAILABLE" and info.value.retryable
    with pytest.raises(StreamError) as info:
        _run(_sse({"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}))
    assert not info.value.retryable
    with pytest.raises(StreamError, match="plain"):
        _run(_sse({"error": "plain"}))


def test_non_object_chunk_is_a_response_error() -> None:
    with pytest.raises(ResponseError, match="expected a JSON object"):
        _run(_sse(b"[1, 2]"))
    events, _ = _run(_sse([_chunk({"text": "wrapped"}, finish="STOP")]))
    assert TextDelta(text="wrapped") in events


def test_function_call_without_name_is_a_response_error() -> None:
    with pytest.raises(ResponseError, match="functionCall without a name"):
        _run(_sse(_chunk({"functionCall": {"args": {}}}, finish="STOP")))


def test_parse_response_edge_cases() -> None:
    request = ChatRequest(model="gemini-x", messages=USER)
    with pytest.raises(ResponseError, match="no candidates"):
        wire.parse_chat_response(_provider(), request, {"candidates": []})
    with pytest.raises(StreamError, match="quota"):
        wire.parse_chat_response(_provider(), request, {"error": {
            "code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}})
    response = wire.parse_chat_response(_provider(), request, {"candidates": [
        {"index": 1, "content": {"parts": [{"text": "second"}]}},
        {"content": {"parts": [{"text": "t", "thought": True}, {"text": "first"},
                               "junk", {"inlineData": {}}]}, "finishReason": "STOP"}]})
    assert (response.text, response.reasoning, response.model) == ("first", "t", "gemini-x")
    assert response.usage is None and response.id is None


def test_engine_turns_bad_bodies_into_response_errors() -> None:
    engine = _engine()
    request = ChatRequest(model="m", messages=USER)
    with pytest.raises(ResponseError, match="unexpected shape"):
        engine.chat_response(request, b'{"candidates": [{"content": {"parts": '
                                      b'[{"functionCall": {}}]}}]}', {}, None)
    with pytest.raises(ResponseError, match="unexpected shape"):
        engine.chat_response(request, b"[]", {}, None)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_arbitrary_bytes_only_raise_aipk_errors(pieces: list[bytes]) -> None:
    session = _session()
    try:
        for piece in pieces:
            session.feed(piece)
        session.finish()
    except AipkError:
        pass


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(
                         ["candidates", "content", "parts", "text", "thought", "functionCall",
                          "name", "args", "finishReason", "usageMetadata", "promptFeedback",
                          "blockReason", "error", "response", "index", "id",
                          "promptTokenCount", "thoughtSignature"]), inner, max_size=4),
                     max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(_JSON, min_size=1, max_size=4))
def test_arbitrary_json_events_only_raise_aipk_errors(chunks: list[Any]) -> None:
    session = _session()
    try:
        session.feed(_sse(*(json.dumps(c).encode() for c in chunks)))
        session.finish()
    except AipkError:
        pass


# -- errors ----------------------------------------------------------------------------------


def _google_error(code: int, status: str, message: str, *details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status,
                      "details": list(details)}}


RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"}


def _quota(quota_id: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaMetric": "generativelanguage.googleapis.com/"
                            "generate_content_free_tier_requests", "quotaId": quota_id}]}


def test_429_retry_info_becomes_retry_after() -> None:
    body = _google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.",
                         _quota("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
                         RETRY_INFO)
    error = wire.map_error(_provider(), 429, {}, body, "r1", NOW)
    assert type(error) is RateLimitError
    assert error.retry_after == 34.0 and error.retryable
    assert error.code == "RESOURCE_EXHAUSTED" and error.request_id == "r1"
    assert wire.rate_limit_state_from_error(error, NOW) is not None
    state = wire.rate_limit_state_from_error(error, NOW)
    assert state is not None and state.not_before == NOW + 34.0
    assert not state.can_send(NOW + 33.0) and state.can_send(NOW + 34.0)
    fractional = _google_error(429, "RESOURCE_EXHAUSTED", "q",
                               {**RETRY_INFO, "retryDelay": "1.5s"})
    assert wire.map_error(_provider(), 429, {"retry-after": "9"}, fractional, None,
                          NOW).retry_after == 1.5  # type: ignore[attr-defined]


def test_429_without_retry_info_uses_the_header() -> None:
    body = _google_error(429, "RESOURCE_EXHAUSTED", "slow down")
    error = wire.map_error(_provider(), 429, {"retry-after": "7"}, body, None, NOW)
    assert isinstance(error, RateLimitError) and error.retry_after == 7.0
    assert wire.map_error(_provider(), 429, {}, body, None, NOW).retry_after is None  # type: ignore[attr-defined]
    assert wire.rate_limit_state_from_error(
        wire.map_error(_provider(), 500, {}, body, None, NOW), NOW) is None


def test_daily_quota_is_not_retryable_until_midnight_pacific() -> None:
    body = _google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.",
                         _quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
                         RETRY_INFO)
    # 2023-11-14 22:13:20 UTC is 14:13:20 PST; the next Pacific midnight is 9h46m40s away.
    error = wire.map_error(_provider(), 429, {}, body, None, NOW)
    assert isinstance(error, RateLimitError)
    assert error.code == DAILY_QUOTA_CODE and not error.retryable
    assert error.retry_after == pytest.approx(9 * 3600 + 46 * 60 + 40)
    assert RetryPolicy().delay(0, error) is None


def test_invalid_api_key_400_is_an_authentication_error() -> None:
    body = _google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                         {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                          "reason": "API_KEY_INVALID", "domain": "googleapis.com"})
    error = wire.map_error(_provider(), 400, {}, body, None, NOW)
    assert type(error) is AuthenticationError
    assert error.auth_code is AuthErrorCode.INVALID_CREDENTIALS and not error.retryable
    assert error.status == 400 and "API key not valid" in error.message
    expired = _google_error(401, "UNAUTHENTICATED", "expired",
                            {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                             "reason": "ACCESS_TOKEN_EXPIRED"})
    token = wire.map_error(_provider(), 401, {}, expired, None, NOW)
    assert isinstance(token, AuthenticationError)
    assert token.auth_code is AuthErrorCode.TOKEN_EXPIRED and token.retryable


def test_other_statuses() -> None:
    overloaded = _google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again.")
    error = wire.map_error(_provider(), 503, {}, overloaded, None, NOW)
    assert type(error) is OverloadedError and error.retryable and error.code == "UNAVAILABLE"
    internal = wire.map_error(_provider(), 500, {}, _google_error(500, "INTERNAL", "oops"),
                              None, NOW)
    assert type(internal) is ServerError and internal.retryable
    denied = wire.map_error(_provider(), 403, {}, _google_error(403, "PERMISSION_DENIED", "no"),
                            None, NOW)
    assert type(denied) is PermissionDeniedError and not denied.retryable
    assert isinstance(denied, AuthenticationError)
    listed = wire.map_error(_provider(), 400, {}, [_google_error(400, "INVALID_ARGUMENT", "arr")],
                            None, NOW)
    assert type(listed) is BadRequestError and listed.message == "arr"
    text = wire.map_error(_provider(), 502, {}, "<html>Bad Gateway</html>", None, NOW)
    assert type(text) is ServerError and "Bad Gateway" in text.message
    bare = wire.map_error(_provider(), 400, {}, {"error": {"code": 400}}, None, NOW)
    assert isinstance(bare, BadRequestError) and bare.code == "400"
    assert "HTTP 400" in bare.message


def test_engine_error_uses_the_plugin() -> None:
    body = json.dumps(_google_error(429, "RESOURCE_EXHAUSTED", "q", RETRY_INFO)).encode()
    error = _engine().error(429, {"x-goog-request-id": "g"}, body)
    assert isinstance(error, RateLimitError) and error.retry_after == 34.0
    assert error.request_id == "g"


@pytest.mark.parametrize(("value", "seconds"), [
    ("34s", 34.0), ("1.5s", 1.5), ("0s", 0.0), ("0.000001s", 1e-6),
    ({"seconds": 3, "nanos": 500_000_000}, 3.5), ("-1s", None), ("forever", None),
    ("1e400s", None), (12, None), ({"seconds": "x"}, None), ("9999999s", None),
])
def test_retry_delay(value: Any, seconds: float | None) -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": value}]
    assert wire.retry_delay(details) == (pytest.approx(seconds) if seconds is not None
                                         else None)


@given(st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1")),
                 st.from_regex(r"-?[0-9]{0,12}(\.[0-9]{0,12})?(e[0-9]{1,4})?(s|ms|m|h|)",
                               fullmatch=True),
                 st.dictionaries(st.text(max_size=8), st.one_of(st.text(), st.integers(),
                                                                 st.floats()))))
def test_arbitrary_retry_delays_never_raise(value: Any) -> None:
    seconds = wire.retry_delay([{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                 "retryDelay": value}])
    assert seconds is None or 0 <= seconds <= 7 * 24 * 3600
    body = _google_error(429, "RESOURCE_EXHAUSTED", "q",
                         {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                          "retryDelay": value})
    error = wire.map_error(_provider(), 429, {}, body, None, NOW)
    assert isinstance(error, RateLimitError) and error.retry_after == seconds


@given(st.recursive(st.none() | st.text(max_size=5) | st.integers(),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(["error", "details", "@type", "message",
                                                       "status", "code", "retryDelay",
                                                       "violations", "quotaId", "reason"]),
                                      inner, max_size=4), max_leaves=15),
       st.sampled_from([400, 401, 403, 404, 429, 500, 503]))
def test_arbitrary_error_bodies_map_to_a_typed_error(data: Any, status: int) -> None:
    error = wire.map_error(_provider(), status, {}, data, None, NOW)
    assert error.provider == "gemini"
    assert getattr(error, "status", status) == status


# -- rate limits and models ------------------------------------------------------------------


def test_rate_limit_state_only_from_retry_after() -> None:
    assert wire.parse_rate_limits(200, {"content-type": "application/json"}, NOW) is None
    state = wire.parse_rate_limits(429, {"retry-after": "12"}, NOW)
    assert state is not None and state.not_before == NOW + 12 and state.windows() == {}
    engine = _engine()
    assert engine.observe(429, {"retry-after": "12"}, "m") is not None
    tracked = engine.tracker.get(("gemini", engine.credential.id, "m"))
    assert tracked is not None and tracked.wait_time(NOW) == 12.0


def test_models_listing() -> None:
    data = {"models": [
        {"name": "models/gemini-2.5-flash", "displayName": "Gemini 2.5 Flash", "version": "001",
         "inputTokenLimit": 1048576, "outputTokenLimit": 65536, "thinking": True,
         "supportedGenerationMethods": ["generateContent", "countTokens"]},
        {"name": "models/gemini-new", "displayName": "New", "inputTokenLimit": 32768,
         "outputTokenLimit": 4096},
        {"name": "models/text-embedding-004", "inputTokenLimit": 2048,
         "supportedGenerationMethods": ["embedContent"]},
    ]}
    models = wire.parse_models(_provider(), data)
    assert [m.id for m in models] == ["gemini-2.5-flash", "gemini-new"]
    flash, new = models
    assert flash.display_name == "Gemini 2.5 Flash" and flash.context_window == 1_048_576
    assert flash.input_price == 0.3 and flash.extra == {"version": "001"}
    assert flash.capabilities is not None and flash.capabilities.reasoning
    assert new.context_window == 32768 and new.input_price is None
    assert new.capabilities is not None and new.capabilities.max_output_tokens == 4096
    assert wire.parse_models(_provider(), {}) == []
    assert wire.parse_models(_provider(), {"models": ["x", {"displayName": "no name"}]}) == []
    for bad in ([], {"models": {"a": 1}}, "text"):
        with pytest.raises(ResponseError, match="model listing"):
            wire.parse_models(_provider(), bad)
    assert _engine().models(json.dumps(data).encode(), {})[0].id == "gemini-2.5-flash"


def test_static_models_carry_context_windows() -> None:
    assert GEMINI.default_model in {m.id for m in GEMINI.models}
    assert all(m.context_window and m.provider == "gemini" for m in GEMINI.models)
    assert GEMINI.options["requests_per_minute"] == 15


def _candidates_stream() -> bytes:
    def cand(index: int, text: str, finish: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"index": index, "content": {"role": "model",
                                                           "parts": [{"text": text}]}}
        if finish:
            out["finishReason"] = finish
        return out

    chunks = [
        {"candidates": [cand(0, "Oslo "), cand(1, "Bergen ")]},
        {"candidates": [cand(0, "is big.", "STOP"), cand(1, "is ")]},
        {"candidates": [cand(1, "wet.", "STOP")],
         "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 9}},
    ]
    return b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)


@pytest.mark.parametrize("cut", [1, 40, 200, 10_000])
def test_a_stream_of_two_candidates_ends_when_both_finished(cut: int) -> None:
    request = ChatRequest(model="gemini-2.5-flash", messages=USER,
                          extra={"generationConfig": {"candidateCount": 2}})
    session = _engine().open_stream(request, {}, None)
    raw = _candidates_stream()
    events: list[StreamEvent] = []
    for start in range(0, len(raw), cut):
        events.extend(session.feed(raw[start:start + cut]))
    events.extend(session.finish())
    second = "".join(e.text for e in events if isinstance(e, TextDelta) and e.choice == 1)
    assert second == "Bergen is wet."
    assert [(e.choice, e.reason) for e in events if isinstance(e, FinishEvent)] == [
        (0, FinishReason.STOP), (1, FinishReason.STOP)]
    assert any(isinstance(e, UsageEvent) and e.usage.output_tokens == 9 for e in events)


def test_candidate_count_is_read_from_the_request() -> None:
    def count(extra: dict[str, Any]) -> int:
        return stream.candidate_count(ChatRequest(model="m", messages=USER, extra=extra))

    assert count({}) == 1
    assert count({"generationConfig": {"candidateCount": 3}}) == 3
    assert count({"generationConfig": {"candidateCount": "3"}}) == 1
    assert count({"generationConfig": {"candidateCount": 0}}) == 1
    assert count({"generationConfig": "odd"}) == 1
