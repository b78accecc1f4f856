"""Less common ``/api/chat`` shapes (docs.ollama.com/api/chat and ollama/ollama's api/types.go):
``done_reason: "load"`` (an empty request that only loaded the model), ``thinking`` next to
tool calls, and errors in a 200 body or in the middle of a stream, as a string (Ollama's own)
or an object (a proxy's)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aipk_ollama.plugin
from aipk import ChatRequest, ChatResponse, FinishReason, Message, TextDelta
from aipk.errors import StreamError
from aipk_ollama import OLLAMA_NATIVE
from aipk_testkit.fixtures import make_engine

REQUEST = ChatRequest(model="qwen3", messages=[Message.user("hi")])


def _engine() -> Any:
    return make_engine(OLLAMA_NATIVE, {"ollama-native": aipk_ollama.plugin})


def _chat(body: Any) -> ChatResponse:
    return _engine().chat_response(REQUEST, json.dumps(body).encode(), {}, None)


def _line(**fields: Any) -> str:
    return json.dumps({"model": "qwen3", "created_at": "2025-06-01T10:00:00Z", **fields}) + "\n"


def test_done_reason_load_is_other_with_no_counts() -> None:
    response = _chat({"model": "qwen3", "created_at": "2025-06-01T10:00:00Z",
                      "message": {"role": "assistant", "content": ""},
                      "done_reason": "load", "done": True})
    assert (response.finish_reason, response.raw_finish_reason) == (FinishReason.OTHER, "load")
    assert response.text == "" and response.usage is not None
    assert response.usage.input_tokens is None and response.usage.output_tokens is None


def test_thinking_next_to_a_streamed_tool_call() -> None:
    session = _engine().open_stream(REQUEST, {}, None)
    session.feed((
        _line(message={"role": "assistant", "content": "", "thinking": "Weather: call it."},
              done=False)
        + _line(message={"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_a1", "function": {"index": 0, "name": "get_weather",
                                           "arguments": {"city": "Paris"}}}]}, done=False)
        + _line(message={"role": "assistant", "content": ""}, done=True, done_reason="stop",
                prompt_eval_count=12, eval_count=30)).encode())
    session.finish()
    response = session.response()
    assert response.reasoning == "Weather: call it."
    [call] = response.tool_calls
    assert (call.id, call.name, call.parsed_arguments()) == (
        "call_a1", "get_weather", {"city": "Paris"})
    assert response.finish_reason is FinishReason.TOOL_CALLS


@pytest.mark.parametrize(("error", "message"), [
    ("an error was encountered while running the model: unexpected EOF",
     "an error was encountered while running the model: unexpected EOF"),
    ({"message": "model is overloaded", "type": "server_error"}, "model is overloaded"),
    ({"code": 500}, '{"code": 500}'),
])
def test_an_error_mid_stream_comes_after_the_text_before_it(error: Any, message: str) -> None:
    session = _engine().open_stream(REQUEST, {}, None)
    events = session.feed((_line(message={"role": "assistant", "content": "Hel"}, done=False)
                           + json.dumps({"error": error}) + "\n").encode())
    assert events == [TextDelta(text="Hel")]
    with pytest.raises(StreamError) as caught:
        session.finish()
    assert caught.value.message == message
    with pytest.raises(StreamError) as whole:
        _chat({"error": error})
    assert whole.value.message == message


@given(st.one_of(st.none(), st.text(), st.integers(),
                 st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)))
def test_any_in_band_error_is_a_stream_error_with_a_message(error: Any) -> None:
    with pytest.raises(StreamError) as caught:
        _chat({"error": error})
    assert caught.value.message
