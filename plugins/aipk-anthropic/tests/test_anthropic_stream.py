"""The stream decoder's edge cases, on hand-built events and through the engine's
StreamSession, and hypothesis: arbitrary bytes only ever raise aipk errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aipk_anthropic.plugin
from aipk import (
    ChatRequest,
    FinishEvent,
    FinishReason,
    IncompleteStreamError,
    Message,
    Provider,
    ReasoningDelta,
    RefusalDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
)
from aipk._session import StreamSession
from aipk.errors import AipkError, ResponseError, StreamError
from aipk.sse import ServerSentEvent
from aipk_anthropic import ANTHROPIC, stream, wire
from aipk_testkit.fixtures import make_engine, make_provider

REQUEST = ChatRequest(model="claude-sonnet-4-5", messages=[Message.user("hi")])


def _provider() -> Provider:
    return make_provider(ANTHROPIC)


def _session(request_id: str | None = None) -> StreamSession:
    engine = make_engine(_provider(), {"anthropic": aipk_anthropic.plugin})
    headers = {"request-id": request_id} if request_id else {}
    return engine.open_stream(REQUEST, headers, None)


def _sse(*events: tuple[str | None, Any]) -> bytes:
    out = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
    return "".join(out).encode()


def _ev(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **fields}


def _start(input_tokens: int = 10, **usage: Any) -> tuple[str, dict[str, Any]]:
    return _ev("message_start", message={
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [], "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage}})


def _text_block(index: int) -> tuple[str, dict[str, Any]]:
    return _ev("content_block_start", index=index, content_block={"type": "text", "text": ""})


def _text(index: int, text: str) -> tuple[str, dict[str, Any]]:
    return _ev("content_block_delta", index=index, delta={"type": "text_delta", "text": text})


def _tool_block(index: int, call_id: str, name: str) -> tuple[str, dict[str, Any]]:
    return _ev("content_block_start", index=index, content_block={
        "type": "tool_use", "id": call_id, "name": name, "input": {}})


def _args(index: int, fragment: str) -> tuple[str, dict[str, Any]]:
    return _ev("content_block_delta", index=index,
               delta={"type": "input_json_delta", "partial_json": fragment})


def _stop_block(index: int) -> tuple[str, dict[str, Any]]:
    return _ev("content_block_stop", index=index)


def _delta(stop: str | None = "end_turn", **usage: Any) -> tuple[str, dict[str, Any]]:
    return _ev("message_delta", delta={"stop_reason": stop, "stop_sequence": None},
               usage=usage or {"output_tokens": 5})


STOP = _ev("message_stop")
PING = ("ping", {"type": "ping"})


def _run(raw: bytes, request_id: str | None = None) -> tuple[list[StreamEvent], StreamSession]:
    session = _session(request_id)
    events = session.feed(raw)
    events += session.finish()
    return events, session


# -- the state machine -----------------------------------------------------------------------


def test_a_tool_input_given_whole_at_its_block_start_is_the_calls_arguments() -> None:
    whole = _ev("content_block_start", index=0, content_block={
        "type": "tool_use", "id": "toolu_w", "name": "get_weather", "input": {"city": "Oslo"}})
    streamed = _ev("content_block_start", index=1, content_block={
        "type": "tool_use", "id": "toolu_s", "name": "get_time", "input": {"tz": "ignored"}})
    raw = _sse(_start(), whole, _stop_block(0), streamed, _args(1, '{"tz": "CET"}'),
               _stop_block(1), _delta("tool_use"), STOP)
    events, session = _run(raw)
    calls = session.response().tool_calls
    assert [(c.id, json.loads(c.arguments)) for c in calls] == [
        ("toolu_w", {"city": "Oslo"}), ("toolu_s", {"tz": "CET"})]  # deltas replace the start
    assert ToolCallDelta(index=0, arguments='{"city": "Oslo"}') in events


def test_tool_calls_are_numbered_by_tool_block_not_content_block() -> None:
    raw = _sse(_start(), _text_block(0), _text(0, "Let me check."), _stop_block(0),
               _tool_block(1, "toolu_a", "get_weather"), _args(1, ""), _args(1, '{"city":'),
               _args(1, ' "Oslo"}'), _stop_block(1), _text_block(2), _text(2, "And"),
               _stop_block(2), _tool_block(3, "toolu_b", "get_time"), _args(3, "{}"),
               _stop_block(3), _delta("tool_use"), STOP)
    events, session = _run(raw)
    assert [e for e in events if type(e) is ToolCallDelta] == [
        ToolCallDelta(index=0, id="toolu_a", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"city":'),
        ToolCallDelta(index=0, arguments=' "Oslo"}'),
        ToolCallDelta(index=1, id="toolu_b", name="get_time"),
        ToolCallDelta(index=1, arguments="{}"),
    ]
    response = session.response()
    assert [(c.id, c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("toolu_a", "get_weather", {"city": "Oslo"}), ("toolu_b", "get_time", {})]
    assert response.text == "Let me check.And"
    assert response.finish_reason is FinishReason.TOOL_CALLS


def test_usage_is_cumulative_message_start_first_then_merged() -> None:
    """message_start's counts come just before the first content (the prompt is billed from
    there); message_delta's are merged with them into the last UsageEvent, which wins."""
    raw = _sse(_start(100, cache_read_input_tokens=40, cache_creation_input_tokens=7),
               _text_block(0), _text(0, "x"),
               _delta("end_turn", output_tokens=30, input_tokens=100), STOP)
    events, session = _run(raw)
    usages = [e for e in events if type(e) is UsageEvent]
    assert usages == [
        UsageEvent(usage=Usage(input_tokens=147, output_tokens=1, cache_read_tokens=40,
                               cache_write_tokens=7)),
        UsageEvent(usage=Usage(input_tokens=147, output_tokens=30, cache_read_tokens=40,
                               cache_write_tokens=7))]
    assert events.index(usages[0]) == 0 and type(events[1]) is TextDelta
    assert session.response().usage == usages[-1].usage


def test_a_second_message_delta_overwrites_usage_not_adds() -> None:
    raw = _sse(_start(10), _delta(None, output_tokens=3), _delta("end_turn", output_tokens=8),
               STOP)
    events, session = _run(raw)
    assert [e.usage.output_tokens for e in events if type(e) is UsageEvent] == [3, 8]
    usage = session.response().usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (10, 8)
    assert [e for e in events if type(e) is FinishEvent] == [
        FinishEvent(reason=FinishReason.STOP, raw="end_turn")]


@pytest.mark.parametrize(("raw", "reason"), [
    ("end_turn", FinishReason.STOP), ("stop_sequence", FinishReason.STOP),
    ("max_tokens", FinishReason.LENGTH), ("tool_use", FinishReason.TOOL_CALLS),
    ("refusal", FinishReason.REFUSAL), ("pause_turn", FinishReason.OTHER),
    ("model_context_window_exceeded", FinishReason.LENGTH),
    ("something_new", FinishReason.OTHER),
])
def test_stop_reasons(raw: str, reason: FinishReason) -> None:
    events, session = _run(_sse(_start(), _delta(raw), STOP))
    assert [e for e in events if type(e) is FinishEvent] == [FinishEvent(reason=reason, raw=raw)]
    assert session.response().raw_finish_reason == raw
    assert wire.finish_reason(raw) is reason


def test_refusal_is_a_refusal_delta_before_the_finish() -> None:
    delta = _ev("message_delta", delta={"stop_reason": "refusal", "stop_details": {
        "type": "refusal", "explanation": "No."}}, usage={"output_tokens": 0})
    events, session = _run(_sse(_start(), delta, STOP))
    assert events[:2] == [RefusalDelta(text="No."),
                          FinishEvent(reason=FinishReason.REFUSAL, raw="refusal")]
    assert session.response().refusal == "No."


def test_thinking_reasoning_and_signature() -> None:
    raw = _sse(_start(), _ev("content_block_start", index=0, content_block={
        "type": "thinking", "thinking": "", "signature": ""}),
        _ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "Hm"}),
        _ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "m."}),
        _ev("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "S"}),
        _stop_block(0),
        _ev("content_block_start", index=1, content_block={"type": "redacted_thinking",
                                                           "data": "R"}),
        _stop_block(1), _text_block(2), _text(2, "ok"), _delta(), STOP)
    events, session = _run(raw)
    assert [e for e in events if type(e) is ReasoningDelta] == [
        ReasoningDelta(text="Hm"), ReasoningDelta(text="m.")]
    response = session.response()
    assert response.reasoning == "Hmm."
    assert response.extra["thinking_blocks"] == [
        {"type": "thinking", "thinking": "Hmm.", "signature": "S"},
        {"type": "redacted_thinking", "data": "R"}]


def test_thinking_without_block_stop_is_finished_at_message_stop() -> None:
    raw = _sse(_start(), _ev("content_block_start", index=0, content_block={
        "type": "thinking", "thinking": "a", "signature": ""}),
        _ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "b"}),
        _delta("max_tokens"), STOP)
    events, session = _run(raw)
    assert [e.text for e in events if type(e) is ReasoningDelta] == ["a", "b"]
    assert session.response().extra["thinking_blocks"][0]["thinking"] == "ab"


def test_ping_unknown_events_and_unknown_deltas_are_ignored() -> None:
    raw = _sse(_start(), PING, ("brand_new_event", {"type": "brand_new_event", "x": 1}),
               ("brand_new_event", "not even json"),
               _text_block(0), _ev("content_block_delta", index=0, delta={
                   "type": "citations_delta", "citation": {}}),
               _ev("content_block_delta", index=0, delta={"type": "future_delta"}),
               _text(0, "hi"), _stop_block(0), _delta(), STOP)
    events, session = _run(raw)
    assert [e for e in events if type(e) is TextDelta] == [TextDelta(text="hi")]
    assert session.response().text == "hi"


def test_events_without_event_names_use_the_json_type() -> None:
    raw = b"".join(b"data: " + json.dumps(data).encode() + b"\n\n" for _, data in (
        _start(), PING, _text_block(0), _text(0, "ok"), _delta(), STOP))
    _events, session = _run(raw)
    assert session.response().text == "ok"
    assert session.done


def test_whitespace_padding_inside_json_is_fine() -> None:
    raw = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":'
           b'"c","usage":{"input_tokens":3,"output_tokens":1}}        }\n\n'
           b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
           b'"delta":{"type":"text_delta","text":"x"}   }\n\n'
           b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
           b'"end_turn"},"usage":{"output_tokens":2}    }\n\n'
           b'event: message_stop\ndata: {"type":"message_stop"    }\n\n')
    _events, session = _run(raw)
    assert session.response().text == "x"
    usage = session.response().usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (3, 2)


def test_nothing_after_message_stop_is_decoded() -> None:
    raw = _sse(_start(), _text_block(0), _text(0, "a"), _delta(), STOP, _text(0, "zzz"))
    _events, session = _run(raw)
    assert session.response().text == "a"


# -- errors ----------------------------------------------------------------------------------


def test_in_band_overloaded_error_is_a_retryable_stream_error() -> None:
    raw = _sse(_start(), _text_block(0), _text(0, "partial"),
               ("error", {"type": "error", "error": {"type": "overloaded_error",
                                                      "message": "Overloaded"}}))
    session = _session("req_42")
    delivered = session.feed(raw)  # the text before the error is handed out first
    assert [e.text for e in delivered if type(e) is TextDelta] == ["partial"]
    with pytest.raises(StreamError, match="Overloaded") as info:
        session.finish()
    error = info.value
    assert (error.code, error.retryable, error.request_id, error.provider) == (
        "overloaded_error", True, "req_42", "anthropic")
    assert error.body == {"type": "overloaded_error", "message": "Overloaded"}


@pytest.mark.parametrize(("data", "code", "retryable", "message"), [
    ({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}},
     "invalid_request_error", False, "bad"),
    ({"type": "error", "error": {"type": "api_error", "message": "Internal"}}, "api_error",
     True, "Internal"),
    ("Service Unavailable", None, False, "Service Unavailable"),
    ({"type": "error"}, None, False, "mid-stream"),
])
def test_other_error_events(data: Any, code: str | None, retryable: bool, message: str) -> None:
    with pytest.raises(StreamError, match=message) as info:
        _run(_sse(_start(), ("error", data)))
    assert (info.value.code, info.value.retryable) == (code, retryable)


def test_error_event_without_event_name() -> None:
    raw = b'data: {"type":"error","error":{"type":"overloaded_error","message":"Busy"}}\n\n'
    with pytest.raises(StreamError, match="Busy") as info:
        _run(raw)
    assert info.value.retryable


@pytest.mark.parametrize("cut_after", ["message_start", "content_block_delta", "message_delta"])
def test_stream_ending_before_message_stop_is_incomplete(cut_after: str) -> None:
    events = [_start(), _text_block(0), _text(0, "half"), _stop_block(0), _delta()]
    names = [name for name, _ in events]
    raw = _sse(*events[: names.index(cut_after) + 1])
    session = _session("req_7")
    session.feed(raw)
    with pytest.raises(IncompleteStreamError, match=r"before its terminator \(message_stop\)"
                       ) as info:
        session.finish()
    assert info.value.retryable and info.value.request_id == "req_7"
    partial = info.value.partial
    assert partial.text == ("" if cut_after == "message_start" else "half")
    # message_start's counts arrive with the first content: a stream cut after it keeps them
    assert (partial.usage is not None) == (cut_after != "message_start")
    assert partial.id == "msg_1" and partial.request_id == "req_7"


@pytest.mark.parametrize("data", [
    "{not json", "[1, 2]", '"text"', "null",
    '{"type":"message_start"}',
    '{"type":"content_block_start","index":0}',
    '{"type":"content_block_start","index":[],"content_block":{"type":"text"}}',
    '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":5}}',
    '{"type":"content_block_delta","index":9,"delta":{"type":"input_json_delta",'
    '"partial_json":"{}"}}',
    '{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":1,'
    '"name":"f"}}',
    '{"type":"message_delta","delta":{"stop_reason":7}}',
])
def test_malformed_events_are_response_errors(data: str) -> None:
    session = _session()
    with pytest.raises(ResponseError, match="could not be decoded"):
        session.feed(f"data: {data}\n\n".encode())


def test_bare_decoder_contract() -> None:
    decoder = stream.AnthropicStreamDecoder(_provider())
    assert (decoder.done, decoder.response_id, decoder.model, decoder.extra) == (
        False, None, None, {})
    assert decoder.feed(ServerSentEvent('{"type": "ping"}', "ping")) == ()
    decoder.feed(ServerSentEvent(json.dumps(_start()[1]), "message_start"))
    assert (decoder.response_id, decoder.model) == ("msg_1", "claude-x")
    assert not decoder.done and decoder.close() == ()  # the session judges completeness
    decoder.feed(ServerSentEvent('{"type": "message_stop"}', "message_stop"))
    assert decoder.done and decoder.close() == ()


def test_invalid_utf8_is_a_response_error() -> None:
    with pytest.raises(ResponseError):
        _run(b"event: message_start\ndata: \xff\xfe\n\n")


# -- hypothesis: nothing but aipk errors escape -----------------------------------------------

_KINDS = ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
          "message_delta", "message_stop", "ping", "error", "other"]
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False)
    | st.sampled_from(["", "text", "tool_use", "thinking", "end_turn", "x", *_KINDS]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "index", "message", "usage", "delta", "content_block", "id",
                         "name", "text", "partial_json", "thinking", "signature",
                         "stop_reason", "input_tokens", "output_tokens", "error"]),
        inner, max_size=4),
    max_leaves=25,
)
_block = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["text", "tool_use", "thinking", "redacted_thinking",
                             "server_tool_use"]) | _json,
    "id": _json | st.just("toolu_1"), "name": _json | st.just("f"), "text": _json,
    "thinking": _json})
_delta_obj = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["text_delta", "input_json_delta", "thinking_delta",
                             "signature_delta"]) | _json,
    "text": _json | st.text(max_size=3), "partial_json": _json | st.text(max_size=3),
    "thinking": _json, "signature": _json, "stop_reason": _json | st.just("end_turn")})
_event = st.tuples(st.sampled_from([*_KINDS, None]), st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(_KINDS) | _json,
    "index": st.integers(0, 2) | _json,
    "message": st.fixed_dictionaries({}, optional={"id": _json, "model": _json,
                                                   "usage": _json}) | _json,
    "content_block": _block | _json,
    "delta": _delta_obj | _json,
    "usage": st.dictionaries(st.sampled_from(["input_tokens", "output_tokens",
                                              "cache_read_input_tokens",
                                              "output_tokens_details"]),
                             _json | st.integers(0, 10)) | _json,
    "error": _json}) | _json)


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
    [b"event: message_start\n", b"event: error\n", b"data: ", b"\n\n", b"\r\n", b"{",
     b'{"type":"message_stop"}', b'{"type":"content_block_delta","index":0,"delta":',
     b"\xef\xbb\xbf", b"\xff"]), max_size=12))
def test_arbitrary_bytes_only_raise_aipk_errors(pieces: list[bytes]) -> None:
    _consume(pieces)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(_event, max_size=8))
def test_arbitrary_events_only_raise_aipk_errors(events: list[tuple[str | None, Any]]) -> None:
    _consume([_sse(*events)])
