"""Less common shapes of real chat-completions answers, whole and streamed:

* the deprecated ``function_call`` (one call, no id; ``finish_reason: "function_call"``), from
  the OpenAI API reference's ``ChatCompletionMessage.function_call`` and
  ``ChoiceDelta.function_call`` (openai-python ``types/chat``);
* a custom tool call (``type: "custom"``, ``custom: {name, input}``), openai-python
  ``ChatCompletionMessageCustomToolCall``;
* ``annotations`` (``url_citation``) of the search models;
* audio output, ``message.audio`` / ``delta.audio`` (``id``, ``data``, ``expires_at``,
  ``transcript``; openai-python ``ChatCompletionAudio`` and the streamed audio deltas of the
  audio guide), and OpenRouter's generated images, ``message.images`` / ``delta.images``
  (``[{"type": "image_url", "image_url": {"url": "data:image/png;base64,…"}}]``,
  openrouter.ai/docs image generation);
* Azure OpenAI's first chunk, ``prompt_filter_results`` with ``id: ""`` and ``choices: []``;
* OpenRouter's failed upstream: ``choices[0].error`` with ``finish_reason: "error"``
  (openrouter.ai/docs/api-reference/overview, ``NonStreamingChoice.error``);
* DashScope's moderation refusal, 400 ``{"error": {"code": "data_inspection_failed", …}}``
  (as reported in camel-ai/owl#432), and a flat error object as a 200 body.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aipk_openai.plugin
from aipk import ChatRequest, ChatResponse, FinishReason, Message
from aipk.errors import ContentFilteredError, StreamError
from aipk_openai import OPENAI
from aipk_openai.wire import map_error
from aipk_testkit.fixtures import make_engine, make_provider

REQUEST = ChatRequest(model="gpt-4o", messages=[Message.user("hi")])


def _chat(body: Any) -> ChatResponse:
    engine = make_engine(OPENAI, {"openai": aipk_openai.plugin})
    return engine.chat_response(REQUEST, json.dumps(body).encode(), {}, None)


def _stream(*chunks: Any) -> ChatResponse:
    engine = make_engine(OPENAI, {"openai": aipk_openai.plugin})
    session = engine.open_stream(REQUEST, {}, None)
    frames = [f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in chunks]
    session.feed("".join(frames).encode())
    session.finish()
    return session.response()


def _chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **more}]}


def _body(message: dict[str, Any], finish: str, **more: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", **message},
                         "finish_reason": finish, **more}]}


def test_a_legacy_function_call_is_a_tool_call() -> None:
    response = _chat(_body({"content": None, "function_call": {
        "name": "get_weather", "arguments": '{"city":"Paris"}'}}, "function_call"))
    [call] = response.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_0", "get_weather", '{"city":"Paris"}')
    assert response.finish_reason is FinishReason.TOOL_CALLS


@given(st.text(min_size=1, max_size=40), st.lists(st.integers(0, 40), max_size=5))
def test_a_streamed_legacy_function_call_is_one_tool_call(arguments: str,
                                                          cuts: list[int]) -> None:
    edges = sorted({0, len(arguments), *(min(c, len(arguments)) for c in cuts)})
    pieces = [arguments[a:b] for a, b in pairwise(edges)]
    response = _stream(
        _chunk({"role": "assistant", "content": None,
                "function_call": {"name": "get_weather", "arguments": ""}}),
        *(_chunk({"function_call": {"arguments": piece}}) for piece in pieces),
        _chunk({}, "function_call"), "[DONE]")
    [call] = response.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_0", "get_weather", arguments)
    assert response.finish_reason is FinishReason.TOOL_CALLS


def test_a_custom_tool_call_keeps_its_free_text_input() -> None:
    response = _chat(_body({"content": None, "tool_calls": [
        {"id": "call_9", "type": "custom", "custom": {"name": "grep", "input": "TODO src/"}}]},
        "tool_calls"))
    [call] = response.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_9", "grep", "TODO src/")
    streamed = _stream(
        _chunk({"tool_calls": [{"index": 0, "id": "call_9", "type": "custom",
                                "custom": {"name": "grep", "input": "TODO"}}]}),
        _chunk({"tool_calls": [{"index": 0, "custom": {"input": " src/"}}]}),
        _chunk({}, "tool_calls"), "[DONE]")
    [call] = streamed.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_9", "grep", "TODO src/")


CITATION = {"type": "url_citation", "url_citation": {
    "url": "https://example.org/", "title": "Example", "start_index": 0, "end_index": 5}}


def test_annotations_are_kept_in_extra() -> None:
    response = _chat(_body({"content": "Hello", "refusal": None,
                            "annotations": [CITATION]}, "stop"))
    assert response.text == "Hello" and response.extra["annotations"] == [CITATION]
    streamed = _stream(_chunk({"content": "Hello"}),
                       _chunk({"annotations": [CITATION]}), _chunk({}, "stop"), "[DONE]")
    assert streamed.text == "Hello" and streamed.extra["annotations"] == [CITATION]
    assert "annotations" not in _chat(_body({"content": "x", "annotations": []}, "stop")).extra


AUDIO = {"id": "audio_1", "data": "UklGRiQAAABXQVZF", "expires_at": 1729018505,
         "transcript": "Hello there"}
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def test_audio_output_is_kept_whole_and_streamed_pieces_are_joined() -> None:
    response = _chat(_body({"content": None, "refusal": None, "audio": AUDIO}, "stop"))
    assert response.extra["audio"] == AUDIO
    streamed = _stream(
        _chunk({"role": "assistant", "content": None, "audio": {"id": "audio_1",
                                                                "transcript": "Hello"}}),
        _chunk({"audio": {"transcript": " there"}}),
        _chunk({"audio": {"data": "UklGRiQA"}}), _chunk({"audio": {"data": "AABXQVZF"}}),
        _chunk({"audio": {"expires_at": 1729018505}}), _chunk({}, "stop"), "[DONE]")
    assert streamed.extra["audio"] == AUDIO


def test_generated_images_are_kept() -> None:
    response = _chat(_body({"content": "Here it is", "images": [IMAGE]}, "stop"))
    assert response.text == "Here it is" and response.extra["images"] == [IMAGE]
    streamed = _stream(_chunk({"content": "Here it is"}), _chunk({"images": [IMAGE]}),
                       _chunk({"images": [IMAGE]}), _chunk({}, "stop"), "[DONE]")
    assert streamed.extra["images"] == [IMAGE, IMAGE]
    assert _chat(_body({"content": "x", "images": []}, "stop")).extra == {}


def test_azure_prompt_filter_chunk_does_not_hide_the_id_and_model() -> None:
    response = _stream(
        {"choices": [], "created": 0, "id": "", "model": "", "object": "",
         "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]},
        _chunk({"role": "assistant", "content": "Hi"}), _chunk({}, "stop"), "[DONE]")
    assert (response.id, response.model, response.text) == ("chatcmpl-1", "gpt-4o", "Hi")


UPSTREAM_ERROR = {"code": 502, "message": "Provider returned error",
                  "metadata": {"provider_name": "Chutes", "raw": "upstream connect error"}}


@pytest.mark.parametrize("run", [
    lambda: _chat(_body({"content": ""}, "error", error=UPSTREAM_ERROR)),
    lambda: _stream(_chunk({"content": "par"}),
                    _chunk({"content": ""}, "error", error=UPSTREAM_ERROR), "[DONE]"),
], ids=["body", "stream"])
def test_a_choice_carrying_an_error_is_a_stream_error(run: Callable[[], Any]) -> None:
    with pytest.raises(StreamError) as caught:
        run()
    assert caught.value.message == "Provider returned error"
    assert (caught.value.code, caught.value.retryable) == ("502", True)


def test_finish_reason_error_without_an_error_object_is_a_finish() -> None:
    response = _stream(_chunk({"content": "x"}), _chunk({}, "error"), "[DONE]")
    assert response.finish_reason is FinishReason.ERROR


def test_a_flat_error_as_a_whole_body_is_a_stream_error() -> None:
    body = {"code": "DataInspectionFailed", "message": "Input data may contain inappropriate "
            "content.", "request_id": "r-1"}
    with pytest.raises(StreamError) as caught:
        _chat(body)
    assert caught.value.code == "DataInspectionFailed"
    assert "inappropriate" in caught.value.message


def test_dashscope_moderation_is_a_content_filter() -> None:
    body = {"error": {"code": "data_inspection_failed", "param": None,
                      "message": "Input data may contain inappropriate content.",
                      "type": "data_inspection_failed"},
            "id": "chatcmpl-1", "request_id": "r-1"}
    error = map_error(make_provider(OPENAI), 400, {}, body, "r-1", 0.0)
    assert type(error) is ContentFilteredError
    assert (error.code, error.retryable, error.status) == ("data_inspection_failed", False, 400)
    assert error.message.startswith("Input data may contain inappropriate content.")
    assert "rephrase" in error.message


def test_groq_usage_on_the_finish_chunk() -> None:
    """Groq's last chunk carries the usage in ``x_groq.usage`` (as recorded in vercel/ai's
    groq provider tests), not in a ``usage`` chunk."""
    finish = _chunk({}, "stop")
    finish["x_groq"] = {"id": "req_01", "usage": {
        "queue_time": 0.06, "prompt_tokens": 18, "prompt_time": 0.0002,
        "completion_tokens": 439, "completion_time": 0.79, "total_tokens": 457,
        "total_time": 0.79}}
    response = _stream(_chunk({"role": "assistant", "content": "Hi"}), finish, "[DONE]")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens,
            response.usage.total_tokens) == (18, 439, 457)
    plain = _stream(_chunk({"content": "Hi"}), {**_chunk({}, "stop"), "x_groq": {"id": "r"}},
                    "[DONE]")
    assert plain.usage is None


def _call(index: int, call_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
    fn: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        fn["name"] = name
    call: dict[str, Any] = {"index": index, "function": fn}
    if call_id is not None:
        call.update(id=call_id, type="function")
    return call


def test_calls_sent_at_one_reused_index_stay_apart() -> None:
    """Ollama's OpenAI-compatible API sends each call of a turn whole, every one as index 0
    (vercel/ai#14277): a new id at a used index is a new call, not more arguments."""
    response = _stream(
        _chunk({"role": "assistant", "content": "",
                "tool_calls": [_call(0, "call_a", "read", '{"path":"a"}')]}),
        _chunk({"tool_calls": [_call(0, "call_b", "read", '{"path":"b"}')]}),
        _chunk({}, "tool_calls"), "[DONE]")
    assert [(c.id, c.name, c.arguments) for c in response.message.tool_calls] == [
        ("call_a", "read", '{"path":"a"}'), ("call_b", "read", '{"path":"b"}')]


CALLS = st.lists(st.tuples(st.from_regex(r"[a-z]{1,6}", fullmatch=True),
                           st.dictionaries(st.from_regex(r"[a-z]{1,4}", fullmatch=True),
                                           st.integers(), max_size=3)),
                 min_size=1, max_size=4)


@given(CALLS, st.booleans(), st.booleans(), st.data())
def test_streamed_calls_come_back_whole(calls: list[tuple[str, dict[str, int]]],
                                        reuse_index: bool, repeat_id: bool,
                                        data: st.DataObject) -> None:
    """Calls streamed one after another, each call's arguments cut anywhere, with indexes
    0, 1, 2 … (OpenAI) or all 0 (Ollama), the id on the first fragment only or on every one
    (vLLM): each call is rebuilt with its own id, name and arguments."""
    chunks: list[Any] = []
    for n, (name, arguments) in enumerate(calls):
        text = json.dumps(arguments)
        cuts = sorted(data.draw(st.sets(st.integers(0, len(text)), max_size=3)))
        pieces = [text[a:b] for a, b in pairwise([0, *cuts, len(text)])]
        index = 0 if reuse_index else n
        for k, piece in enumerate(pieces):
            first = k == 0
            call_id = f"call_{n}" if first or repeat_id else None
            chunks.append(_chunk({"tool_calls": [
                _call(index, call_id, name if first else None, piece)]}))
    response = _stream(*chunks, _chunk({}, "tool_calls"), "[DONE]")
    assert [(c.id, c.name, json.loads(c.arguments)) for c in response.message.tool_calls] == [
        (f"call_{n}", name, arguments) for n, (name, arguments) in enumerate(calls)]


def test_stop_after_tool_calls_is_tool_calls_whole_and_streamed() -> None:
    """Gemini's OpenAI-compatible API answers tool calls with ``finish_reason: "stop"``
    (microsoft/autogen#4878), and so does gpt-4o with a forced ``tool_choice``
    (ollama/ollama#7963): that is TOOL_CALLS, the word kept as the raw reason."""
    whole = _chat({"id": None, "object": "chat.completion", "created": 1737330953,
                   "model": "gemini-2.0-flash-exp", "choices": [{
                       "finish_reason": "stop", "index": 0, "logprobs": None, "message": {
                           "content": None, "refusal": None, "role": "assistant",
                           "tool_calls": [{"id": "", "type": "function", "function": {
                               "arguments": '{"query":"AutoGen"}', "name": "web_search"}}]}}],
                   "usage": {"completion_tokens": 6, "prompt_tokens": 50, "total_tokens": 56}})
    assert (whole.finish_reason, whole.raw_finish_reason) == (FinishReason.TOOL_CALLS, "stop")
    assert [(c.name, c.arguments) for c in whole.tool_calls] == [
        ("web_search", '{"query":"AutoGen"}')]
    streamed = _stream(
        _chunk({"role": "assistant", "content": None, "tool_calls": [
            _call(0, "call_1", "web_search", "")]}),
        _chunk({"tool_calls": [_call(0, None, None, '{"query":"AutoGen"}')]}),
        _chunk({}, "stop"), "[DONE]")
    assert (streamed.finish_reason, streamed.raw_finish_reason) == (
        FinishReason.TOOL_CALLS, "stop")
    plain = _stream(_chunk({"content": "Hi"}), _chunk({}, "stop"), "[DONE]")
    assert plain.finish_reason is FinishReason.STOP


def test_stop_after_tool_calls_is_read_per_choice() -> None:
    text = {"role": "assistant", "content": "Hi"}
    called = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    whole = _chat({"id": "x", "object": "chat.completion", "model": "gpt-4o", "choices": [
        {"index": 0, "message": text, "finish_reason": "stop"},
        {"index": 1, "message": called, "finish_reason": "stop"}]})
    assert whole.finish_reason is FinishReason.STOP
    assert whole.more_choices[0].finish_reason is FinishReason.TOOL_CALLS
    both = _stream(
        _chunk({"content": "Hi"}),
        _chunk({"tool_calls": [_call(0, "c1", "f", "{}")]}, index=1),
        _chunk({}, "stop"), _chunk({}, "stop", index=1), "[DONE]")
    assert both.finish_reason is FinishReason.STOP
    assert both.more_choices[0].finish_reason is FinishReason.TOOL_CALLS
