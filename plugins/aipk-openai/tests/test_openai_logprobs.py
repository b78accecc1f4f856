"""Token log probabilities: ``choices[0].logprobs`` of a whole answer kept in
``extra["logprobs"]`` as sent, and a stream's per-chunk ``logprobs`` joined into one object of
the same shape (openai-python ``ChoiceLogprobs``: ``content`` and ``refusal`` lists of
``ChatCompletionTokenLogprob``), on the captured streams of openai-python's live tests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import aipk_openai.plugin
from aipk import ChatRequest, ChatResponse, Message
from aipk_openai import OPENAI
from aipk_openai.logprobs import join_logprobs
from aipk_testkit.fixtures import Captures, find_fixtures, make_engine

CAPTURES = Captures(find_fixtures(__file__) / "openai")
ASKED = ChatRequest(model="gpt-4o", messages=[Message.user("hi")], extra={"logprobs": True})
PLAIN = ChatRequest(model="gpt-4o", messages=[Message.user("hi")])


def _token(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()),
            "top_logprobs": []}


def _stream(body: bytes, request: ChatRequest = ASKED) -> ChatResponse:
    session = make_engine(OPENAI, {"openai": aipk_openai.plugin}).open_stream(request, {}, None)
    session.feed(body)
    session.finish()
    return session.response()


def test_a_captured_stream_joins_its_content_logprobs() -> None:
    response = _stream(CAPTURES.raw("sdk-chat-stream-content-logprobs.sse"))
    assert response.text == "Foo!"
    assert response.extra["logprobs"] == {
        "content": [_token("Foo", -0.0025094282), _token("!", -0.26638845)], "refusal": None}


def test_a_captured_refusal_joins_its_refusal_logprobs() -> None:
    response = _stream(CAPTURES.raw("sdk-chat-stream-refusal-logprobs.sse"))
    joined = response.extra["logprobs"]
    assert "".join(t["token"] for t in joined["refusal"]) == response.refusal == (
        "I'm very sorry, but I can't assist with that.")
    assert len(joined["refusal"]) == 11 and not joined["content"]


def test_a_stream_that_did_not_ask_keeps_none() -> None:
    response = _stream(CAPTURES.raw("sdk-chat-stream-content-logprobs.sse"), PLAIN)
    assert response.text == "Foo!" and "logprobs" not in response.extra


def test_a_whole_answer_keeps_its_logprobs_as_sent() -> None:
    logprobs = {"content": [_token("Hi", -0.01)], "refusal": None}
    body = {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"},
                         "logprobs": logprobs, "finish_reason": "stop"}]}
    engine = make_engine(OPENAI, {"openai": aipk_openai.plugin})
    response = engine.chat_response(PLAIN, json.dumps(body).encode(), {}, None)
    assert response.extra["logprobs"] == logprobs
    body["choices"][0]["logprobs"] = None
    assert "logprobs" not in engine.chat_response(PLAIN, json.dumps(body).encode(), {},
                                                  None).extra


TOKENS = st.lists(st.tuples(st.text(min_size=1, max_size=4),
                            st.floats(max_value=0, allow_nan=False)), max_size=12)


@given(TOKENS, st.data())
def test_any_split_of_the_tokens_joins_back_in_order(tokens: list[tuple[str, float]],
                                                     data: st.DataObject) -> None:
    """However the tokens are spread over chunks (several a chunk, chunks with none, chunks
    with ``logprobs: null``), the stream's text and joined list are the tokens in order."""
    chunks = [{"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": ""},
         "logprobs": {"content": [], "refusal": None}, "finish_reason": None}]}]
    rest = list(tokens)
    while rest:
        take = data.draw(st.integers(0, len(rest)))
        piece, rest = rest[:take], rest[take:]
        chunks.append({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o",
                       "choices": [{"index": 0, "delta": {"content": "".join(t for t, _ in piece)},
                                    "logprobs": ({"content": [_token(*t) for t in piece],
                                                  "refusal": None}
                                                 if piece or data.draw(st.booleans()) else None),
                                    "finish_reason": None}]})
    chunks.append({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o",
                   "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                "finish_reason": "stop"}]})
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    response = _stream(body.encode())
    assert response.text == "".join(t for t, _ in tokens)
    assert response.extra["logprobs"] == {"content": [_token(*t) for t in tokens],
                                          "refusal": None}


@given(st.lists(st.dictionaries(st.sampled_from(["content", "refusal", "x"]),
                                st.one_of(st.none(), st.lists(st.integers(), max_size=3))),
                max_size=6))
def test_join_logprobs_concatenates_each_list(pieces: list[dict[str, Any]]) -> None:
    joined: dict[str, Any] = {}
    for piece in pieces:
        join_logprobs(joined, piece)
    for key in ("content", "refusal", "x"):
        lists = [p[key] for p in pieces if isinstance(p.get(key), list)]
        if lists:
            assert joined[key] == [item for part in lists for item in part]
        elif any(key in p for p in pieces):
            assert joined[key] is None
        else:
            assert key not in joined
