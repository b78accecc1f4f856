"""Parts aipk has no field for (the code-execution tool's ``executableCode`` and
``codeExecutionResult``, generated ``inlineData`` images; ai.google.dev/api/caching#Part) are
kept, in order, in ``ChatResponse.extra["other_parts"]``, streamed or not; the text parts
around them still make the answer."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import aipk_gemini.plugin
from aipk import ChatRequest, ChatResponse, Message
from aipk_gemini import GEMINI
from aipk_testkit.fixtures import make_engine

REQUEST = ChatRequest(model="gemini-2.5-flash", messages=[Message.user("what is 2+2?")])
CODE = {"executableCode": {"language": "PYTHON", "code": "print(2 + 2)"}}
RESULT = {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "4\n"}}
IMAGE = {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
USAGE = {"promptTokenCount": 9, "candidatesTokenCount": 30, "totalTokenCount": 39}


def _engine() -> Any:
    return make_engine(GEMINI, {"gemini": aipk_gemini.plugin})


def _chunk(parts: list[Any], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": USAGE,
            "modelVersion": "gemini-2.5-flash", "responseId": "r1"}


def _chat(body: Any) -> ChatResponse:
    return _engine().chat_response(REQUEST, json.dumps(body).encode(), {}, None)


def _stream(*chunks: Any) -> ChatResponse:
    session = _engine().open_stream(REQUEST, {}, None)
    session.feed("".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks).encode())
    session.finish()
    return session.response()


def test_code_execution_parts_are_kept_in_order() -> None:
    parts = [{"text": "Let me run it. "}, CODE, RESULT, {"text": "It is 4."}]
    whole = _chat(_chunk(parts, "STOP"))
    streamed = _stream(_chunk(parts[:1]), _chunk([CODE]), _chunk([RESULT]),
                       _chunk(parts[3:], "STOP"))
    for response in (whole, streamed):
        assert response.text == "Let me run it. It is 4."
        assert response.extra["other_parts"] == [CODE, RESULT]


def test_a_generated_image_is_kept() -> None:
    response = _chat(_chunk([{"text": "Here it is."}, IMAGE], "STOP"))
    assert response.text == "Here it is." and response.extra["other_parts"] == [IMAGE]


def test_a_text_only_answer_has_no_other_parts() -> None:
    for response in (_chat(_chunk([{"text": "4"}], "STOP")),
                     _stream(_chunk([{"text": "4"}], "STOP"))):
        assert "other_parts" not in response.extra


@given(st.lists(st.sampled_from([CODE, RESULT, IMAGE, {"text": "a"}, {"text": ""}]),
                max_size=8))
def test_every_kept_part_is_one_that_was_sent(parts: list[Any]) -> None:
    response = _stream(*(_chunk([p]) for p in parts), _chunk([], "STOP"))
    kept = response.extra.get("other_parts", [])
    assert kept == [p for p in parts if "text" not in p]
    assert response.text == "a" * sum(p == {"text": "a"} for p in parts)
