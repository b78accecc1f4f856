"""Enums sent as numbers (a request with ``$alt=json;enum-encoding=int``, as langchaingo
records them): ``finishReason`` and ``promptFeedback.blockReason`` are read with the numbers of
the ``google.ai.generativelanguage.v1beta`` enums (Candidate.FinishReason, where OTHER is 5 and
LANGUAGE 6; PromptFeedback.BlockReason), in whole bodies and in streams; a number newer than
the table still finishes the answer (its digits are the raw reason)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aipk_gemini.plugin
from aipk import ChatRequest, ChatResponse, FinishReason, Message
from aipk.errors import ContentFilteredError
from aipk_gemini import GEMINI
from aipk_gemini.wire import raw_finish_reason
from aipk_testkit.fixtures import make_engine

REQUEST = ChatRequest(model="gemini-2.0-flash", messages=[Message.user("hi")])
FILTERED, ERROR, OTHER = (FinishReason.CONTENT_FILTER, FinishReason.ERROR,
                          FinishReason.OTHER)

#: number -> (name, normalised reason), from generativelanguage v1beta Candidate.FinishReason
NUMBERS = {1: ("STOP", FinishReason.STOP), 2: ("MAX_TOKENS", FinishReason.LENGTH),
           3: ("SAFETY", FILTERED), 4: ("RECITATION", FILTERED), 5: ("OTHER", OTHER),
           6: ("LANGUAGE", OTHER), 7: ("BLOCKLIST", FILTERED),
           8: ("PROHIBITED_CONTENT", FILTERED), 9: ("SPII", FILTERED),
           10: ("MALFORMED_FUNCTION_CALL", ERROR), 11: ("IMAGE_SAFETY", FILTERED),
           12: ("UNEXPECTED_TOOL_CALL", ERROR)}


def _engine() -> Any:
    return make_engine(GEMINI, {"gemini": aipk_gemini.plugin})


def _body(finish: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"parts": [{"text": "x"}], "role": "model"},
                            "finishReason": finish, "index": 0}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1,
                              "totalTokenCount": 4},
            "modelVersion": "gemini-2.0-flash", "responseId": "r1"}


def _chat(body: Any) -> ChatResponse:
    return _engine().chat_response(REQUEST, json.dumps(body).encode(), {}, None)


def _stream(*chunks: Any) -> ChatResponse:
    session = _engine().open_stream(REQUEST, {}, None)
    session.feed("".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks).encode())
    session.finish()
    return session.response()


@pytest.mark.parametrize("number", sorted(NUMBERS))
def test_numbered_finish_reasons_in_a_body_and_a_stream(number: int) -> None:
    name, reason = NUMBERS[number]
    for response in (_chat(_body(number)), _stream(_body(number))):
        assert (response.raw_finish_reason, response.finish_reason) == (name, reason)
        assert response.text == "x"


def test_a_number_newer_than_the_table_still_ends_the_stream() -> None:
    for response in (_chat(_body(17)), _stream(_body(17))):
        assert (response.raw_finish_reason, response.finish_reason) == ("17", OTHER)


def test_unspecified_is_no_reason() -> None:
    response = _chat(_body(0))
    assert (response.raw_finish_reason, response.finish_reason) == (None, None)


@pytest.mark.parametrize("name", ["TOO_MANY_TOOL_CALLS", "MISSING_THOUGHT_SIGNATURE"])
def test_newer_tool_failures_are_errors(name: str) -> None:
    assert _chat(_body(name)).finish_reason is ERROR


@pytest.mark.parametrize(("number", "name"), [(1, "SAFETY"), (3, "BLOCKLIST"),
                                              (4, "PROHIBITED_CONTENT")])
def test_a_numbered_block_reason_is_a_blocked_prompt(number: int, name: str) -> None:
    blocked = {"promptFeedback": {"blockReason": number},
               "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
               "modelVersion": "gemini-2.0-flash"}
    for run in (_chat, _stream):
        with pytest.raises(ContentFilteredError) as caught:
            run(blocked)
        assert caught.value.code == name and name in caught.value.message


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.floats()))
def test_raw_finish_reason_is_a_word_or_none(value: Any) -> None:
    raw = raw_finish_reason(value)
    assert raw is None or (isinstance(raw, str) and raw)
    if type(value) is int and value > 0:
        assert raw is not None  # any positive number finishes the answer


@given(st.integers(min_value=1, max_value=10**6))
def test_any_positive_number_ends_a_stream(number: int) -> None:
    response = _stream(_body(number))
    assert response.raw_finish_reason and response.finish_reason is not None


def test_the_finish_message_is_kept_streamed_or_not() -> None:
    body = _body("MALFORMED_FUNCTION_CALL")
    body["candidates"][0]["finishMessage"] = "Malformed function call: print(default_api.f(x=))"
    for response in (_chat(body), _stream(body)):
        assert response.finish_reason is ERROR
        assert response.extra["finishMessage"].startswith("Malformed function call")
