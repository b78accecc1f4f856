"""Function-call arguments streamed as ``partialArgs`` (Vertex AI with
``streamFunctionCallArguments``). The chunks below follow real captures kept by vercel/ai,
``packages/google/src/__fixtures__/google-stream-tool-call-arguments.chunks.txt`` (two
``getWeather`` calls, gemini-3.1-pro-preview) and
``google-vertex-stream-tool-call-arguments-nested.1.chunks.txt`` (a nested ``$.recipe.
ingredients[n].name`` path); only the opaque ``thoughtSignature`` is shortened."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aipk_gemini.plugin
from aipk import ChatRequest, ChatResponse, FinishReason, Message, ToolCallDelta
from aipk.errors import ResponseError
from aipk_gemini import GEMINI
from aipk_gemini.parts import PartialArguments
from aipk_testkit.fixtures import make_engine

REQUEST = ChatRequest(model="gemini-3.1-pro-preview", messages=[Message.user("weather?")])
SIGNATURE = "CiMBjz1rX25KieIB4d4AwFn8/WbsHTRNHBXso88PtemwfsSfRAp6AY89a1"
META = {"usageMetadata": {"trafficType": "ON_DEMAND"}, "modelVersion": "gemini-3.1-pro-preview",
        "createTime": "2026-04-02T17:03:50.399550Z", "responseId": "dqHOab6xGLzWodAPkPuViA4"}
FINAL_USAGE = {"promptTokenCount": 26, "candidatesTokenCount": 23, "totalTokenCount": 181,
               "trafficType": "ON_DEMAND", "thoughtsTokenCount": 132}


def _call_chunk(call: dict[str, Any], finish: str | None = None,
                **part: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [
        {"functionCall": call, **part}]}}
    if finish:
        candidate["finishReason"] = finish
    chunk = {"candidates": [candidate], **META}
    if finish:
        chunk["usageMetadata"] = FINAL_USAGE
    return chunk


def _arg(path: str, value: str, more: bool) -> dict[str, Any]:
    fragment: dict[str, Any] = {"jsonPath": path, "stringValue": value}
    if more:
        fragment["willContinue"] = True
    return {"partialArgs": [fragment], "willContinue": True}


WEATHER = [
    _call_chunk({"name": "getWeather", "willContinue": True}, thoughtSignature=SIGNATURE),
    _call_chunk(_arg("$.location", "Boston", True)),
    _call_chunk(_arg("$.location", "", False)),
    _call_chunk({}),
    _call_chunk({"name": "getWeather", "willContinue": True}),
    _call_chunk(_arg("$.location", "San Francisco", True)),
    _call_chunk(_arg("$.location", "", False)),
    _call_chunk({}, finish="STOP"),
]


def _run(chunks: list[Any]) -> tuple[list[Any], ChatResponse]:
    session = make_engine(GEMINI, {"gemini": aipk_gemini.plugin}).open_stream(REQUEST, {}, None)
    events = session.feed("".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks).encode())
    events += session.finish()
    return events, session.response()


def test_two_calls_with_streamed_arguments() -> None:
    events, response = _run(WEATHER)
    assert [(c.id, c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("call_0", "getWeather", {"location": "Boston"}),
        ("call_1", "getWeather", {"location": "San Francisco"})]
    assert response.finish_reason is FinishReason.TOOL_CALLS
    assert response.extra["functionCallSignatures"] == {"call_0": SIGNATURE}
    assert [e for e in events if type(e) is ToolCallDelta][:2] == [
        ToolCallDelta(index=0, id="call_0", name="getWeather"),
        ToolCallDelta(index=0, arguments='{"location":"Boston"}')]
    assert response.usage is not None and response.usage.reasoning_tokens == 132


def test_nested_paths_and_separators() -> None:
    chunks = [_call_chunk({"name": "cookRecipe", "willContinue": True})]
    for n, (amount, name) in enumerate([("16 oz", "Lasagna noodles"), ("1 lb", "Ground beef")]):
        chunks += [_call_chunk(_arg(f"$.recipe.ingredients[{n}].amount", amount, True)),
                   _call_chunk(_arg(f"$.recipe.ingredients[{n}].amount", "", False)),
                   _call_chunk(_arg(f"$.recipe.ingredients[{n}].name", name, True)),
                   _call_chunk(_arg(f"$.recipe.ingredients[{n}].name", "", False)),
                   _call_chunk({"willContinue": True})]
    chunks.append(_call_chunk({}, finish="STOP"))
    _events, response = _run(chunks)
    [call] = response.tool_calls
    assert call.parsed_arguments() == {"recipe": {"ingredients": [
        {"amount": "16 oz", "name": "Lasagna noodles"},
        {"amount": "1 lb", "name": "Ground beef"}]}}


def test_other_value_kinds() -> None:
    arguments = PartialArguments()
    arguments.add([{"jsonPath": "$.n", "numberValue": 3.5}, {"jsonPath": "$.ok",
                                                             "boolValue": True},
                   {"jsonPath": "$.none", "nullValue": "NULL_VALUE"},
                   {"jsonPath": "$['odd key'][1]", "stringValue": "x"}])
    assert json.loads(arguments.json()) == {"n": 3.5, "ok": True, "none": None,
                                            "odd key": [None, "x"]}


@pytest.mark.parametrize("chunks", [
    [_call_chunk(_arg("$.location", "Boston", False)), _call_chunk({}, finish="STOP")],
    [_call_chunk({"name": "a", "willContinue": True}),
     _call_chunk({"name": "b", "willContinue": True}), _call_chunk({}, finish="STOP")],
    [_call_chunk({"name": "a", "willContinue": True}),
     _call_chunk({"partialArgs": [{"jsonPath": "location", "stringValue": "x"}]}, "STOP")],
], ids=["no-open-call", "opened-twice", "bad-path"])
def test_broken_sequences_are_response_errors(chunks: list[Any]) -> None:
    with pytest.raises(ResponseError):
        _run(chunks)


@given(st.text(max_size=30), st.lists(st.integers(0, 30), max_size=4))
def test_a_string_in_any_pieces_is_rebuilt(value: str, cuts: list[int]) -> None:
    edges = sorted({0, len(value), *(min(c, len(value)) for c in cuts)})
    pieces = [value[a:b] for a, b in pairwise(edges)] or [""]
    chunks = [_call_chunk({"name": "echo", "willContinue": True}),
              *(_call_chunk(_arg("$.text", p, True)) for p in pieces),
              _call_chunk(_arg("$.text", "", False)), _call_chunk({}, finish="STOP")]
    _events, response = _run(chunks)
    [call] = response.tool_calls
    assert call.parsed_arguments() == {"text": value}


def test_the_last_fragment_or_the_finish_closes_the_call() -> None:
    """vercel/ai ``google-stream-tool-call-array-arguments-missing-terminal-function-call``:
    no closing ``{}``; the last ``partialArgs`` part has no ``willContinue``, then the finish
    chunk carries an empty text part. A finish while a call is open closes it too."""
    def last(path: str, number: float) -> dict[str, Any]:
        return _call_chunk({"partialArgs": [{"jsonPath": path, "numberValue": number}]})

    text_finish = {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]},
                                   "finishReason": "STOP"}], **META,
                   "usageMetadata": FINAL_USAGE}
    opened = [_call_chunk({"name": "writeItems", "willContinue": True}),
              _call_chunk(_arg("$.operations[0].action", "add", True)),
              _call_chunk(_arg("$.operations[0].action", "", False))]
    for chunks in ([*opened, last("$.operations[0].price", 0.5), text_finish],
                   [*opened, text_finish]):
        _events, response = _run(chunks)
        [call] = response.tool_calls
        operation = call.parsed_arguments()["operations"][0]
        assert operation["action"] == "add"
        assert response.finish_reason is FinishReason.TOOL_CALLS
