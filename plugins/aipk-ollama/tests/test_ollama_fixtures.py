"""Every Ollama capture in ``tests/fixtures/ollama/`` through the real hooks (the sans-IO engine
with this plugin alone), with expected values written out by hand from the captures.

A meta-test fails when a capture is added without an expectation here.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aipk_ollama.plugin
from aipk import (
    ChatRequest,
    FinishEvent,
    FinishReason,
    Message,
    ReasoningDelta,
    TextDelta,
    Tool,
    ToolCall,
    Usage,
    UsageEvent,
)
from aipk._core import Engine
from aipk.errors import BadRequestError
from aipk_ollama import OLLAMA_NATIVE, wire
from aipk_ollama.wire import build_chat_body
from aipk_testkit.fixtures import (
    Captures,
    find_fixtures,
    make_engine,
    make_provider,
    manifest_names,
    replay_stream,
    split_at,
)

FIXTURES = find_fixtures(__file__)
CAPTURES = Captures(FIXTURES / "ollama")
NOW = 1_700_000_000.0


def _engine() -> Engine:
    return make_engine(OLLAMA_NATIVE, {"ollama-native": aipk_ollama.plugin}, clock=lambda: NOW)


def _request(model: str, **fields: object) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message.user("hi")], **fields)  # type: ignore[arg-type]


@attrs.frozen
class Expect:
    model: str
    text_start: str
    text_end: str
    usage: tuple[int, int]
    finish: FinishReason = FinishReason.STOP
    raw_finish: str = "stop"
    reasoning_start: str | None = None
    lines: int = 0


STREAMS = {
    "lcgo-chat-stream-count.ndjson": Expect(
        "gemma3:1b", "Okay, here we go!", "1, 2, 3, 4, 5\n", (16, 22), lines=22),
    "lcgo-chat-stream-done-length.ndjson": Expect(
        "gemma3:1b", "Hello there! I’m doing well", "😊 ", (15, 50),
        finish=FinishReason.LENGTH, raw_finish="length", lines=51),
    "lcgo-chat-stream-format-json.ndjson": Expect(
        "gemma3:1b", '{"answer": "600"}', '"600"}', (25, 9), lines=9),
    "lcgo-chat-stream-format-schema.ndjson": Expect(
        "gemma3:1b", '{"feet": 6076}', "6076}", (25, 10), lines=10),
    "lcgo-cloud-chat-stream-thinking.ndjson": Expect(
        "gpt-oss:120b", "1  \n2", "4  \n5", (74, 57),
        reasoning_start='User asks: "Count from 1 to 5".', lines=48),
    "olm-chat-stream-llama3.ndjson": Expect(
        "llama3", "Why did the OpenTelemetry agent go to therapy?", "face!)", (17, 50),
        lines=50),
}
#: interaction captures whose body is the .ndjson next to them
STREAM_INTERACTIONS = {name.replace(".ndjson", ".json") for name in STREAMS}
BODIES = {"olm-chat-nonstream.json", "olm-chat-nonstream-no-prompt-eval-count.json",
          "olm-chat-after-tool-result.json", "lcgo-cloud-chat-tool-call.json"}
OTHERS = {"lc-tags.json", "lcgo-error-400-tools-unsupported.json"}


def test_every_ollama_capture_has_a_test() -> None:
    assert CAPTURES.names() == set(STREAMS) | STREAM_INTERACTIONS | BODIES | OTHERS


def test_manifest_lists_exactly_the_ollama_captures() -> None:
    assert manifest_names(FIXTURES, "ollama") == CAPTURES.names()


def test_ndjson_files_are_the_interaction_bodies() -> None:
    for name in STREAMS:
        assert CAPTURES.body(name.replace(".ndjson", ".json")) == CAPTURES.raw(name), name


# -- streams ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_stream_capture(name: str) -> None:
    expect = STREAMS[name]
    raw = CAPTURES.raw(name)
    assert raw.count(b"\n") == expect.lines
    lines = raw.splitlines(keepends=True)  # one HTTP chunk per line, as Ollama flushes them
    events, response = replay_stream(_engine(), _request(expect.model), lines)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text.startswith(expect.text_start) and text.endswith(expect.text_end)
    assert response.text == text
    assert response.model == expect.model
    assert response.finish_reason is expect.finish
    assert response.raw_finish_reason == expect.raw_finish
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == expect.usage
    assert [type(e) for e in events[-2:]] == [FinishEvent, UsageEvent]
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    if expect.reasoning_start is None:
        assert reasoning == "" and response.reasoning is None
    else:
        assert reasoning.startswith(expect.reasoning_start)
        assert response.reasoning == reasoning
    assert response.extra["total_duration"] > 0


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(sorted(STREAMS)),
       cuts=st.lists(st.integers(min_value=1, max_value=8000), max_size=20))
def test_stream_capture_any_split_gives_the_same_response(name: str, cuts: list[int]) -> None:
    raw = CAPTURES.raw(name)
    request = _request(STREAMS[name].model)
    whole_events, whole = replay_stream(_engine(), request, [raw])
    events, response = replay_stream(_engine(), request, split_at(raw, cuts))
    assert events == whole_events
    assert response == whole


def test_stream_cut_before_done_is_a_response_error() -> None:
    raw = CAPTURES.raw("lcgo-chat-stream-count.ndjson")
    cut = raw[:raw.rindex(b"\n", 0, len(raw) - 1) + 1]  # every line but the done: true one
    from aipk import IncompleteStreamError

    with pytest.raises(IncompleteStreamError, match='"done": true'):
        replay_stream(_engine(), _request("gemma3:1b"), [cut])


# -- requests --------------------------------------------------------------------------------


def test_request_body_matches_the_captured_format_json_request() -> None:
    captured = json.loads(CAPTURES.request("lcgo-chat-stream-format-json.json")["body"])
    request = ChatRequest(model="gemma3:1b", messages=[Message.user(
        captured["messages"][0]["content"])], temperature=0, extra={"format": "json"})
    body = build_chat_body(make_provider(OLLAMA_NATIVE), request, stream=True)
    assert body == {"model": "gemma3:1b", "messages": captured["messages"], "stream": True,
                    "options": {"temperature": 0}, "format": "json"}


def test_request_body_matches_the_captured_schema_and_count_requests() -> None:
    schema_req = json.loads(CAPTURES.request("lcgo-chat-stream-format-schema.json")["body"])
    request = ChatRequest(model="gemma3:1b", messages=[Message.user(
        schema_req["messages"][0]["content"])], temperature=0,
        extra={"format": schema_req["format"]})
    body = build_chat_body(make_provider(OLLAMA_NATIVE), request, stream=True)
    assert body["format"] == schema_req["format"] and body["options"] == schema_req["options"]
    count_req = json.loads(CAPTURES.request("lcgo-chat-stream-count.json")["body"])
    request = ChatRequest(model="gemma3:1b", messages=[Message.user("Count from 1 to 5")],
                          max_tokens=50, temperature=0)
    body = build_chat_body(make_provider(OLLAMA_NATIVE), request, stream=True)
    assert body["options"] == count_req["options"] == {"num_predict": 50, "temperature": 0}


def test_tool_round_trip_request_matches_the_captured_shape() -> None:
    captured = json.loads(CAPTURES.request("olm-chat-after-tool-result.json")["body"])
    request = ChatRequest(model="llama3.1", messages=[
        Message(role="assistant", content="", tool_calls=[ToolCall(
            id="call_0", name="get_current_weather", arguments='{"location": "San Francisco"}')]),
        Message(role="tool", content="The weather in San Francisco is 70 degrees and sunny.",
                tool_call_id="call_0"),
    ])
    body = build_chat_body(make_provider(OLLAMA_NATIVE), request, stream=False)
    assert body["messages"] == captured["messages"]


# -- non-streamed bodies ---------------------------------------------------------------------


def test_nonstream_text() -> None:
    _status, headers, body = CAPTURES.response("olm-chat-nonstream.json")
    reply = _engine().chat_response(_request("llama3"), body.encode(), headers, None)
    assert reply.text.startswith("A joke about OpenTelemetry!")
    assert reply.text.endswith("smile to your face!)")
    assert reply.finish_reason is FinishReason.STOP and reply.model == "llama3"
    assert reply.usage is not None and (reply.usage.input_tokens,
                                        reply.usage.output_tokens) == (17, 66)
    assert reply.extra["load_duration"] == 8078850750


def test_nonstream_without_prompt_eval_count_has_no_input_count() -> None:
    _status, headers, body = CAPTURES.response("olm-chat-nonstream-no-prompt-eval-count.json")
    reply = _engine().chat_response(_request("llama3"), body.encode(), headers, None)
    # Ollama left prompt_eval_count out (it had the prompt cached): not reported, not 0
    assert reply.usage == Usage(input_tokens=None, output_tokens=79, total_tokens=79)
    assert "Instrument" in reply.text


def test_nonstream_after_tool_result() -> None:
    _status, headers, body = CAPTURES.response("olm-chat-after-tool-result.json")
    reply = _engine().chat_response(_request("llama3.1"), body.encode(), headers, None)
    assert reply.text.startswith("This is a simple example")
    assert reply.tool_calls == () and reply.finish_reason is FinishReason.STOP
    assert reply.usage is not None and reply.usage.total_tokens == 44 + 113


def test_cloud_tool_call_with_thinking() -> None:
    _status, headers, body = CAPTURES.response("lcgo-cloud-chat-tool-call.json")
    request = _request("gpt-oss:120b", tools=[Tool(name="getWeather")])
    reply = _engine().chat_response(request, body.encode(), headers, None)
    assert reply.finish_reason is FinishReason.TOOL_CALLS and reply.raw_finish_reason == "stop"
    [call] = reply.tool_calls
    assert (call.id, call.name) == ("call_mo1wm122", "getWeather")
    assert call.parsed_arguments() == {"location": "San Francisco, CA"}
    assert reply.reasoning == ("User asks about weather in San Francisco. Use function "
                               "getWeather.")
    assert reply.request_id == "9da05030-f8a3-4d49-b758-dcf3e5188e76"
    assert reply.usage is not None and reply.usage.input_tokens == 145


# -- models and errors -----------------------------------------------------------------------


def test_tags_are_the_model_listing() -> None:
    _status, headers, body = CAPTURES.response("lc-tags.json")
    models = _engine().models(body.encode(), headers)
    assert models[0].id == "deepseek-r1:8b" and models[0].provider == "ollama-native"
    assert models[0].extra == {"family": "qwen3", "parameter_size": "8.2B",
                               "quantization_level": "Q4_K_M", "size": 5225376047}
    assert len(models) == json.loads(body)["models"].__len__()
    assert _engine().prepare_models() is not None
    assert _engine().prepare_models().url == "http://localhost:11434/api/tags"  # type: ignore[union-attr]


def test_tools_unsupported_is_a_bad_request_with_ollamas_words() -> None:
    status, headers, body = CAPTURES.response("lcgo-error-400-tools-unsupported.json")
    error = _engine().error(status, headers, body.encode())
    assert isinstance(error, BadRequestError) and not error.retryable
    assert "gemma3:1b does not support tools" in error.message


_COUNT = st.one_of(st.none(), st.integers(-5, 10**9), st.text(max_size=3), st.booleans())


@given(prompt=_COUNT, completion=_COUNT)
def test_usage_counts_left_out_or_invalid_stay_none(prompt: Any, completion: Any) -> None:
    final: dict[str, Any] = {"done": True}
    if prompt is not None:
        final["prompt_eval_count"] = prompt
    if completion is not None:
        final["eval_count"] = completion

    def expected(value: Any) -> int | None:
        return value if type(value) is int and value >= 0 else None

    usage = wire.parse_usage(final)
    assert (usage.input_tokens, usage.output_tokens) == (expected(prompt), expected(completion))
    counted = [c for c in (usage.input_tokens, usage.output_tokens) if c is not None]
    assert usage.total_tokens == (sum(counted) if counted else None)
