"""Less common Messages API shapes (docs.anthropic.com: streaming, web search tool, extended
thinking, stop reasons): a web search turn (``server_tool_use``, ``web_search_tool_result``,
text with ``citations`` / ``citations_delta``), ``pause_turn`` and
``model_context_window_exceeded``, an ``overloaded_error`` event mid-stream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aipk_anthropic.plugin
from aipk import ChatRequest, ChatResponse, FinishReason, Message, TextDelta, UsageEvent
from aipk.errors import StreamError
from aipk_anthropic import ANTHROPIC
from aipk_testkit.fixtures import make_engine

REQUEST = ChatRequest(model="claude-sonnet-4-5", messages=[Message.user("news?")])
CITATION = {"type": "web_search_result_location", "cited_text": "Rain is expected.",
            "url": "https://example.org/weather", "title": "Weather", "encrypted_index": "Eo8B"}
START = ("message_start", {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [], "stop_reason": None, "stop_sequence": None,
    "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 0, "output_tokens": 1}}})


def _ev(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **fields}


def _end(reason: str) -> list[tuple[str, dict[str, Any]]]:
    return [_ev("message_delta", delta={"stop_reason": reason, "stop_sequence": None},
                usage={"output_tokens": 40, "server_tool_use": {"web_search_requests": 1}}),
            _ev("message_stop")]


def _engine() -> Any:
    return make_engine(ANTHROPIC, {"anthropic": aipk_anthropic.plugin})


def _run(events: list[tuple[str, Any]]) -> tuple[list[Any], ChatResponse]:
    session = _engine().open_stream(REQUEST, {}, None)
    raw = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    out = session.feed(raw.encode())
    out += session.finish()
    return out, session.response()


def _search_turn(citation_events: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [
        START,
        _ev("content_block_start", index=0, content_block={
            "type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}),
        _ev("content_block_delta", index=0, delta={
            "type": "input_json_delta", "partial_json": '{"query": "weather"}'}),
        _ev("content_block_stop", index=0),
        _ev("content_block_start", index=1, content_block={
            "type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
                {"type": "web_search_result", "title": "Weather", "url": CITATION["url"],
                 "encrypted_content": "Eq0B", "page_age": None}]}),
        _ev("content_block_stop", index=1),
        _ev("content_block_start", index=2, content_block={
            "type": "text", "text": "", "citations": None}),
        *citation_events,
        _ev("content_block_delta", index=2, delta={"type": "text_delta", "text": "Rain."}),
        _ev("content_block_stop", index=2),
        *_end("end_turn"),
    ]


def test_a_streamed_web_search_turn_keeps_its_citations() -> None:
    events, response = _run(_search_turn([_ev("content_block_delta", index=2, delta={
        "type": "citations_delta", "citation": CITATION})]))
    assert response.text == "Rain." and response.tool_calls == ()
    assert response.extra["citations"] == [CITATION]
    assert response.finish_reason is FinishReason.STOP
    assert [e for e in events if type(e) is TextDelta] == [TextDelta(text="Rain.")]
    # the server tool's call (its streamed input parsed) and its result, kept whole in order
    assert response.extra["other_blocks"] == [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
         "input": {"query": "weather"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
            {"type": "web_search_result", "title": "Weather", "url": CITATION["url"],
             "encrypted_content": "Eq0B", "page_age": None}]}]


def test_a_whole_web_search_answer_keeps_its_citations() -> None:
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
                 "input": {"query": "weather"}},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
                 "content": {"type": "web_search_tool_result_error",
                             "error_code": "max_uses_exceeded"}},
                {"type": "text", "text": "Rain", "citations": [CITATION]},
                {"type": "text", "text": " later.", "citations": None}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 4,
                      "server_tool_use": {"web_search_requests": 1}}}
    response = _engine().chat_response(REQUEST, json.dumps(body).encode(), {}, None)
    assert response.text == "Rain later." and response.tool_calls == ()
    assert response.extra["citations"] == [CITATION]
    assert response.extra["other_blocks"] == body["content"][:2]


@given(st.lists(st.sampled_from([CITATION, {"type": "char_location", "cited_text": "x",
                                            "document_index": 0, "start_char_index": 0,
                                            "end_char_index": 1}]), max_size=4))
def test_citations_are_kept_in_order_and_never_touch_the_text(cited: list[Any]) -> None:
    _events, response = _run(_search_turn([
        _ev("content_block_delta", index=2, delta={"type": "citations_delta", "citation": c})
        for c in cited]))
    assert response.text == "Rain."
    assert response.extra.get("citations", []) == cited


@pytest.mark.parametrize(("raw", "reason"), [
    ("pause_turn", FinishReason.OTHER), ("model_context_window_exceeded", FinishReason.LENGTH),
    ("refusal", FinishReason.REFUSAL)])
def test_newer_stop_reasons(raw: str, reason: FinishReason) -> None:
    _events, response = _run([START, *_end(raw)])
    assert (response.raw_finish_reason, response.finish_reason) == (raw, reason)


def test_overloaded_mid_stream_is_a_retryable_stream_error_after_the_text() -> None:
    session = _engine().open_stream(REQUEST, {}, None)
    raw = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in [
        START, _ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        _ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"}),
        ("error", {"type": "error", "error": {"details": None, "type": "overloaded_error",
                                              "message": "Overloaded"},
                   "request_id": "req_011"})])
    usage, text = session.feed(raw.encode())  # message_start's counts come with the text
    assert type(usage) is UsageEvent and usage.usage.input_tokens is not None
    assert text == TextDelta(text="Hi")
    with pytest.raises(StreamError) as caught:
        session.finish()
    assert (caught.value.code, caught.value.retryable) == ("overloaded_error", True)
