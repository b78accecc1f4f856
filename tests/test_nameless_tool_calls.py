"""Tool calls that name no tool, served over real HTTP (tests/rawserver.py) as whole answers
and as streams: every plugin answers them with a ResponseError naming the provider, since
`ToolCall.name` is the tool to run and a call without one cannot be acted on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aipk.errors import ResponseError

from .rawserver import raw_server, reply, sse_events
from .test_captures_over_http import MODES, call, streamed


def _openai_whole(function: dict[str, Any]) -> dict[str, Any]:
    return {"id": "c-1", "object": "chat.completion", "model": "m", "choices": [{
        "index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": function}]}}]}


def _openai_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c-1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _openai_stream(first: dict[str, Any]) -> bytes:
    return sse_events(_openai_chunk({"role": "assistant", "tool_calls": [
                    {"index": 0, "id": "call_1", "type": "function", "function": first}]}),
                _openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
                _openai_chunk({}, "tool_calls"), "[DONE]")


def _anthropic_block(name: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_1", "name": name, "input": {}}


def _anthropic_whole(name: Any) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [_anthropic_block(name)], "stop_reason": "tool_use",
            "usage": {"input_tokens": 3, "output_tokens": 4}}


def _anthropic_stream(name: Any) -> bytes:
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
            "usage": {"input_tokens": 3, "output_tokens": 0}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": _anthropic_block(name)}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                           "usage": {"output_tokens": 4}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return "".join(f"event: {kind}\ndata: {json.dumps(data)}\n\n"
                   for kind, data in events).encode()


def _gemini(call_part: dict[str, Any]) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": call_part}]}, "index": 0, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4,
                              "totalTokenCount": 7}, "modelVersion": "m"}


NAMELESS_FUNCTIONS = {"null": {"name": None, "arguments": "{}"}, "missing": {"arguments": "{}"},
                      "empty": {"name": "", "arguments": "{}"}}


def _check(result: Any, provider: str) -> None:
    assert type(result) is ResponseError, result
    assert result.provider == provider
    assert "name" in str(result) and "without saying which" in str(result), str(result)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["openai", "cerebras", "qwen", "openrouter"])
@pytest.mark.parametrize("shape", sorted(NAMELESS_FUNCTIONS))
def test_openai_wire_whole_answer(mode: str, provider: str, shape: str) -> None:
    body = _openai_whole(NAMELESS_FUNCTIONS[shape])
    with raw_server(reply(200, body)) as server:
        result = call(server, mode, provider, stream=False)
    _check(result, provider)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["openai", "qwen"])
@pytest.mark.parametrize("shape", sorted(NAMELESS_FUNCTIONS))
def test_openai_wire_stream(mode: str, provider: str, shape: str) -> None:
    body = _openai_stream(NAMELESS_FUNCTIONS[shape])
    with raw_server(streamed(body, "text/event-stream", 1)) as server:
        result = call(server, mode, provider, stream=True)
    _check(result, provider)


@pytest.mark.parametrize("mode", MODES)
def test_openai_wire_legacy_function_call(mode: str) -> None:
    body = {"id": "c-1", "object": "chat.completion", "model": "m", "choices": [{
        "index": 0, "finish_reason": "function_call", "message": {
            "role": "assistant", "content": None,
            "function_call": {"name": None, "arguments": "{}"}}}]}
    with raw_server(reply(200, body)) as server:
        result = call(server, mode, "openai", stream=False)
    _check(result, "openai")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", [None, ""])
@pytest.mark.parametrize("stream", [False, True])
def test_anthropic(mode: str, name: Any, stream: bool) -> None:
    answer = (streamed(_anthropic_stream(name), "text/event-stream", 1) if stream
              else reply(200, _anthropic_whole(name)))
    with raw_server(answer) as server:
        result = call(server, mode, "anthropic", stream=stream)
    _check(result, "anthropic")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("part", [{"name": None, "args": {}}, {"args": {}}, {"name": ""}],
                         ids=["null", "missing", "empty"])
@pytest.mark.parametrize("stream", [False, True])
def test_gemini(mode: str, part: dict[str, Any], stream: bool) -> None:
    answer = (streamed(sse_events(_gemini(part)), "text/event-stream", 1) if stream
              else reply(200, _gemini(part)))
    with raw_server(answer) as server:
        result = call(server, mode, "gemini", stream=stream)
    _check(result, "gemini")
