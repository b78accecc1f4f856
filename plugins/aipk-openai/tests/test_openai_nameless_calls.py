"""Tool calls that never name their tool, fed to the stream decoder as bytes through a stream
session: the stream ends in a ResponseError naming the provider, however the fragments are
split or ordered, and a call named on any of its fragments is kept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aipk_openai.plugin
from aipk import ChatRequest, Message, ToolCallDelta
from aipk.errors import ResponseError
from aipk_openai import OPENAI
from aipk_testkit.fixtures import make_engine, make_provider


def _chunk(calls: list[dict[str, Any]]) -> bytes:
    body = {"id": "c-1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _run(raw: bytes, cut: int) -> Any:
    engine = make_engine(make_provider(OPENAI, None), {"openai": aipk_openai.plugin},
                         clock=lambda: 0.0)
    session = engine.open_stream(ChatRequest(model="m", messages=[Message.user("hi")]), {},
                                 None)
    events: list[Any] = []
    try:
        events.extend(session.feed(raw[:cut]))
        events.extend(session.feed(raw[cut:]))
        events.extend(session.finish())
    except ResponseError as exc:
        return exc
    return events


#: one fragment of call ``index``: its name (None, absent or a string) and a piece of arguments
_FRAGMENT = st.tuples(st.integers(0, 2), st.sampled_from([None, "absent", "", "lookup"]),
                      st.text(alphabet="{}:\"a1 ", max_size=6))


@settings(max_examples=150, deadline=None)
@given(fragments=st.lists(_FRAGMENT, min_size=1, max_size=8), cut=st.integers(0, 4000))
def test_a_call_no_fragment_names_is_a_response_error(
        fragments: list[tuple[int, Any, str]], cut: int) -> None:
    raw = b""
    for index, name, args in fragments:
        fn: dict[str, Any] = {"arguments": args}
        if name != "absent":
            fn["name"] = name
        raw += _chunk([{"index": index, "function": fn}])
    raw += b"data: [DONE]\n\n"
    result = _run(raw, min(cut, len(raw)))
    named = {index for index, name, _ in fragments if name == "lookup"}
    if named == {index for index, _, _ in fragments}:
        assert isinstance(result, list), result
        calls = {e.index: e.name for e in result if isinstance(e, ToolCallDelta) and e.name}
        assert set(calls) == named
    else:
        assert type(result) is ResponseError, result
        assert result.provider == "openai"
        assert "without a tool name" in str(result)


@pytest.mark.parametrize("name", [None, ""])
def test_a_nameless_legacy_function_call_stream_is_a_response_error(name: Any) -> None:
    body = {"id": "c-1", "object": "chat.completion.chunk", "model": "m", "choices": [
        {"index": 0, "delta": {"function_call": {"name": name, "arguments": "{}"}},
         "finish_reason": "function_call"}]}
    raw = b"data: " + json.dumps(body).encode() + b"\n\ndata: [DONE]\n\n"
    result = _run(raw, len(raw))
    assert type(result) is ResponseError, result
