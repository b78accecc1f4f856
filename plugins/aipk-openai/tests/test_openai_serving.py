"""`aipk_openai.serving`, the server's side of the API, checked against the client's side
(`aipk_openai.wire`): what one writes, the other reads back unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipk import (
    ChatRequest,
    ChatResponse,
    FinishEvent,
    FinishReason,
    Message,
    ModelInfo,
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
from aipk.credentials import KeysExhaustedError
from aipk.errors import (
    AllTargetsFailedError,
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    InvalidRequestError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    RequestTimeout,
    ServerError,
)
from aipk_openai import OPENAI, OpenAIStreamDecoder, serving, wire
from aipk_testkit.fixtures import decode_sse, make_provider

PROVIDER = make_provider(OPENAI)
ASKED = ChatRequest(model="m", messages=[Message.user("Hi")])

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_name = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)
_id = st.from_regex(r"call_[a-z0-9]{1,8}", fullmatch=True)
_calls = st.lists(st.builds(ToolCall, id=_id, name=_name,
                            arguments=st.dictionaries(_name, st.integers(), max_size=2).map(
                                json.dumps)), max_size=2)
_messages = st.lists(st.one_of(
    st.builds(Message.system, _text.filter(bool)),
    st.builds(Message.user, _text.filter(bool)),
    st.builds(Message.assistant, st.one_of(st.none(), _text.filter(bool)), tool_calls=_calls),
    st.builds(Message.tool, _id, _text),
), min_size=1, max_size=5)
_tools = st.lists(st.builds(Tool, name=_name, description=_text.filter(bool),
                            parameters=st.just({"type": "object", "properties": {
                                "city": {"type": "string"}}})), max_size=2,
                  unique_by=lambda tool: tool.name)


@st.composite
def _requests(draw: st.DrawFn) -> ChatRequest:
    tools = draw(_tools)
    choice = draw(st.sampled_from([None, ToolChoice.AUTO, ToolChoice.NONE, ToolChoice.REQUIRED,
                                   *(ToolChoice.function(t.name) for t in tools)]))
    return ChatRequest(
        model=draw(_name), messages=draw(_messages),
        temperature=draw(st.none() | st.floats(0, 2)),
        top_p=draw(st.none() | st.floats(0, 1)),
        max_tokens=draw(st.none() | st.integers(1, 100_000)),
        stop=draw(st.none() | st.lists(_text.filter(bool), min_size=1, max_size=3)),
        tools=tools, tool_choice=choice if tools else None,
        parallel_tool_calls=draw(st.none() | st.booleans()) if tools else None)


@given(_requests(), st.booleans())
def test_a_request_the_client_writes_is_read_back_unchanged(request: ChatRequest,
                                                            stream: bool) -> None:
    body = wire.build_chat_body(PROVIDER, request, stream)
    inbound = serving.read_chat_request(json.dumps(body).encode())
    assert inbound.request == request
    assert (inbound.stream, inbound.include_usage) == (stream, stream)
    assert inbound.other == {}


def test_fields_aipk_does_not_model_are_kept_apart_and_developer_is_system() -> None:
    inbound = serving.read_chat_request({
        "model": "gpt-4o", "n": 2, "seed": 7, "user": "u-1", "max_completion_tokens": 50,
        "messages": [{"role": "developer", "content": "Be brief."},
                     {"role": "user", "content": [
                         {"type": "text", "text": "What is this?"},
                         {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}],
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "city", "strict": True,
            "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}},
        "tool_choice": "none", "stream": False,
        "stream_options": {"include_usage": True},
    })
    request = inbound.request
    assert inbound.other == {"n": 2, "seed": 7, "user": "u-1"}
    assert request.max_tokens == 50 and request.tool_choice == ToolChoice.NONE
    assert request.messages[0] == Message.system("Be brief.")
    assert request.messages[1].content == "What is this?"
    assert [image.url for image in request.messages[1].images] == ["https://x.test/a.png"]
    fmt = request.response_format
    assert fmt is not None and (fmt.name, fmt.strict) == ("city", True)
    assert fmt.schema == {"type": "object", "properties": {"name": {"type": "string"}}}
    assert not inbound.stream and not inbound.include_usage  # usage chunks are for streams
    assert serving.read_chat_request({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                      "response_format": {"type": "json_object"}}
                                     ).request.response_format.schema is None  # type: ignore[union-attr]


@pytest.mark.parametrize(("body", "field"), [
    (b"{not json", "body"),
    (b"[1, 2]", "body"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}, {"role": "robot"}]},
     "messages[1].role"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
     "messages[0].content[0]"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]},
     "messages[0].tool_call_id"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
     "temperature"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "x"}]},
     "tools[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}],
      "response_format": {"type": "yaml"}}, "response_format"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True,
      "stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
])
def test_a_bad_request_names_the_field(body: Any, field: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        serving.read_chat_request(body)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: " if field != "body" else "the request body")
    status, _, answer = serving.error_response(caught.value)
    assert status == 400 and answer["error"]["param"] == field


_usage = st.builds(Usage, input_tokens=st.none() | st.integers(0, 10**6),
                   output_tokens=st.none() | st.integers(0, 10**6),
                   reasoning_tokens=st.none() | st.integers(0, 100),
                   cache_read_tokens=st.none() | st.integers(0, 100))
_reasons = st.sampled_from([FinishReason.STOP, FinishReason.LENGTH, FinishReason.TOOL_CALLS,
                            FinishReason.CONTENT_FILTER])


@given(st.one_of(st.none(), _text.filter(bool)), _calls, st.none() | _reasons,
       st.none() | _usage, st.none() | _text.filter(bool), st.none() | _id)
def test_an_answer_the_server_writes_is_read_back_unchanged(
        text: str | None, calls: list[ToolCall], reason: FinishReason | None,
        usage: Usage | None, reasoning: str | None, response_id: str | None) -> None:
    response = ChatResponse(provider="openai", model="m",
                            message=Message.assistant(text, tool_calls=calls),
                            finish_reason=reason, usage=usage, reasoning=reasoning,
                            id=response_id)
    body = serving.chat_completion(response, created=5)
    back = wire.parse_chat_response(PROVIDER, ASKED,
                                    json.loads(json.dumps(body)))
    assert back.message == response.message
    assert back.usage == (usage if usage is not None and serving.usage_object(usage) else None)
    if reason is FinishReason.STOP and calls:  # "stop" after tool calls reads as TOOL_CALLS
        reason = FinishReason.TOOL_CALLS
    assert (back.finish_reason, back.reasoning) == (reason, reasoning)
    assert back.id == (response_id or body["id"]) and body["id"].startswith(
        "chatcmpl-" if response_id is None else response_id)
    assert body["created"] == 5 and body["object"] == "chat.completion"


def test_refusals_are_stop_with_the_refusal_text() -> None:
    response = ChatResponse(provider="anthropic", model="m", message=Message.assistant(None),
                            finish_reason=FinishReason.REFUSAL, refusal="I can't.")
    body = serving.chat_completion(response)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["refusal"] == "I can't."
    back = wire.parse_chat_response(PROVIDER, ASKED, body)
    assert (back.finish_reason, back.refusal) == (FinishReason.REFUSAL, "I can't.")


def _events(choice: int) -> st.SearchStrategy[StreamEvent]:
    return st.one_of(
        st.builds(TextDelta, text=_text.filter(bool), choice=st.just(choice)),
        st.builds(ReasoningDelta, text=_text.filter(bool), choice=st.just(choice)),
        st.builds(RefusalDelta, text=_text.filter(bool), choice=st.just(choice)),
        # a call keeps its one id (a new id at a used index is another call)
        st.integers(0, 2).flatmap(lambda index: st.builds(
            ToolCallDelta, index=st.just(index), id=st.none() | st.just(f"call_{index}"),
            name=st.none() | _name, arguments=_text, choice=st.just(choice))))


@given(st.lists(st.one_of(_events(0), _events(1)), max_size=12), st.none() | _reasons,
       st.none() | _usage, st.lists(st.integers(1, 40), max_size=20))
def test_a_stream_the_server_writes_is_decoded_to_the_same_events(
        events: list[StreamEvent], reason: FinishReason | None, usage: Usage | None,
        cuts: list[int]) -> None:
    events = list(events)
    if reason is not None:
        events.append(FinishEvent(reason=reason, raw=serving.finish_word(reason)))
    writer = serving.ChunkWriter(id="chatcmpl-1", model="m", created=1, include_usage=True)
    body = b"".join(writer.write(event) for event in events)
    if usage is not None:
        assert writer.write(UsageEvent(usage=usage)) == b""
    body += writer.close()
    pieces, start = [], 0
    for cut in sorted({min(c, len(body)) for c in cuts}):
        pieces.append(body[start:cut])
        start = cut
    pieces.append(body[start:])
    decoder = OpenAIStreamDecoder(PROVIDER)
    calls = {(e.choice, e.index) for e in events if type(e) is ToolCallDelta}
    if calls - {(e.choice, e.index) for e in events if type(e) is ToolCallDelta and e.name}:
        with pytest.raises(ValueError, match="without a tool name"):  # no tool to run
            decode_sse(decoder, pieces)
        return
    decoded = decode_sse(decoder, pieces)
    expected = list(events)
    refused = any(type(e) is RefusalDelta and not e.choice for e in events)
    texted = any(type(e) is TextDelta and not e.choice for e in events)
    if reason is FinishReason.STOP and refused and not texted:  # as chat() reads it
        expected[-1] = FinishEvent(reason=FinishReason.REFUSAL, raw="stop")
    elif reason is FinishReason.STOP and any(type(e) is ToolCallDelta and not e.choice
                                             for e in events):  # "stop" after tool calls
        expected[-1] = FinishEvent(reason=FinishReason.TOOL_CALLS, raw="stop")
    if usage is not None and serving.usage_object(usage):
        expected.append(UsageEvent(usage=usage))
    assert decoded == expected
    assert decoder.done
    assert decoder.response_id == ("chatcmpl-1" if body != b"data: [DONE]\n\n" else None)
    assert body.endswith(b"data: [DONE]\n\n")


def test_each_choice_opens_with_the_assistant_role_and_usage_waits_for_the_end() -> None:
    writer = serving.ChunkWriter(id="c", model="m", created=1)
    first = json.loads(writer.write(TextDelta(text="a"))[6:])
    again = json.loads(writer.write(TextDelta(text="b"))[6:])
    other = json.loads(writer.write(TextDelta(text="c", choice=1))[6:])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "a"}
    assert again["choices"][0]["delta"] == {"content": "b"}
    assert other["choices"][0]["delta"] == {"role": "assistant", "content": "c"}
    assert writer.write(UsageEvent(usage=Usage(input_tokens=1, output_tokens=2))) == b""
    assert writer.close() == b"data: [DONE]\n\n"  # include_usage was not asked for


@pytest.mark.parametrize(("error", "status", "code", "retry_after"), [
    (ContextWindowExceededError("too long", provider="p", status=400), 400,
     "context_length_exceeded", None),
    (NotFoundError("no model", provider="p", status=404), 404, "model_not_found", None),
    (BadRequestError("bad", provider="p", status=422), 400, None, None),
    (RateLimitError("slow down", provider="p", retry_after=2.5), 429, "rate_limit_exceeded",
     "3"),
    (AuthenticationError("key revoked", provider="p", status=401), 502, "upstream_auth", None),
    (KeysExhaustedError("all keys cooling", provider="p", retry_after=30.0), 503,
     "upstream_unavailable", "30"),
    (AllTargetsFailedError("every target failed", failures=[], skipped=[], available_at=0.0,
                           retry_after=4.0), 503,
     "upstream_unavailable", "4"),
    (ServerError("boom", provider="p", status=500), 502, "upstream_error", None),
    (NetworkError("reset", provider="p"), 502, "upstream_error", None),
    (RequestTimeout("slow", provider="p"), 504, "upstream_timeout", None),
    (RuntimeError("sk-secret-in-a-bug"), 500, None, None),
])
def test_errors_become_openai_error_objects(error: BaseException, status: int,
                                            code: str | None, retry_after: str | None) -> None:
    got_status, headers, body = serving.error_response(error)
    assert got_status == status
    assert body["error"]["code"] == code
    assert headers.get("retry-after") == retry_after
    assert "sk-secret" not in json.dumps(body)
    message = body["error"]["message"]
    if isinstance(error, RuntimeError):
        assert message == "internal error (RuntimeError)"
    elif status >= 500:
        who = ("every provider" if isinstance(error, AllTargetsFailedError)
               else f"the {error.provider} provider")  # type: ignore[attr-defined]
        assert message.startswith(f"{who} behind this server failed ({type(error).__name__})")
        assert error.message not in message  # type: ignore[attr-defined]
    else:
        assert message == getattr(error, "message", str(error))
    event = serving.ChunkWriter(id="c", model="m").error(error)
    assert json.loads(event[6:]) == body and event.endswith(b"\n\n")


def test_model_list_is_read_back_by_the_client() -> None:
    models = [ModelInfo(id="gpt-4o", provider="openai"), ModelInfo(id="claude", provider="x")]
    body = serving.model_list(models)
    assert [m.id for m in wire.parse_models(PROVIDER, body)] == ["gpt-4o", "claude"]
    assert body["data"][1]["owned_by"] == "x"
