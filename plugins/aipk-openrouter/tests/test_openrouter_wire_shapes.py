"""OpenRouter shapes seen in real recordings: the web plugin's ``url_citation`` annotations in
the first deltas and the finish chunk sent twice, the second time with the usage (pydantic-ai
``tests/models/cassettes/test_openrouter/test_openrouter_web_search_annotations_stream.yaml``;
citation ``content`` shortened), and a failed upstream inside a choice."""

from __future__ import annotations

import json
from typing import Any

import pytest

import aipk_openai.plugin
import aipk_openrouter.plugin
from aipk import ChatRequest, ChatResponse, FinishReason, Message, Usage
from aipk.errors import StreamError
from aipk_openrouter import OPENROUTER
from aipk_testkit.fixtures import make_engine

REQUEST = ChatRequest(model="deepseek/deepseek-chat", messages=[Message.user("repo URL?")])
CITATION = {"type": "url_citation", "url_citation": {
    "url": "https://github.com/pydantic/pydantic-ai",
    "title": "pydantic/pydantic-ai: How Python does AI: agents, realtime ...",
    "start_index": 0, "end_index": 0, "content": "# pydantic/pydantic-ai\n\n..."}}


def _chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> dict[str, Any]:
    return {"id": "gen-1787214057-m5qwGsS4Ch5mE2yf3G49", "object": "chat.completion.chunk",
            "created": 1787214057, "model": "deepseek/deepseek-chat", "provider": "Novita",
            "choices": [{"index": 0, "delta": {"role": "assistant", **delta},
                         "finish_reason": finish, "native_finish_reason": finish}], **more}


def _run(*chunks: Any) -> ChatResponse:
    engine = make_engine(OPENROUTER, {"openai": aipk_openai.plugin,
                                      "openrouter": aipk_openrouter.plugin})
    session = engine.open_stream(REQUEST, {}, None)
    body = ": OPENROUTER PROCESSING\n\n" + "".join(
        f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in chunks)
    session.feed(body.encode())
    session.finish()
    return session.response()


def test_web_search_annotations_and_a_repeated_finish_with_usage() -> None:
    usage = {"prompt_tokens": 1854, "completion_tokens": 13, "total_tokens": 1867,
             "cost": 0.0077585, "is_byok": False,
             "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0,
                                       "audio_tokens": 0, "video_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0,
                                           "audio_tokens": 0}}
    response = _run(_chunk({"content": "", "annotations": [CITATION]}),
                    *(_chunk({"content": piece}) for piece in
                      ("https", "://github", ".com/p", "ydantic", "/pyd", "antic-", "ai")),
                    _chunk({"content": ""}, "stop"),
                    _chunk({"content": ""}, "stop", service_tier=None, usage=usage), "[DONE]")
    assert response.text == "https://github.com/pydantic/pydantic-ai"
    assert response.extra["annotations"] == [CITATION]
    assert response.finish_reason is FinishReason.STOP
    assert response.usage == Usage(input_tokens=1854, output_tokens=13, total_tokens=1867,
                                   reasoning_tokens=0, cache_read_tokens=0,
                                   cache_write_tokens=0)
    assert response.extra["cost"] == pytest.approx(0.0077585)


def test_a_failed_upstream_inside_a_choice() -> None:
    error = {"code": 429, "message": "Provider returned error",
             "metadata": {"provider_name": "Chutes", "raw": "rate limited"}}
    with pytest.raises(StreamError) as caught:
        _run(_chunk({"content": "Hi"}),
             _chunk({"content": ""}, "error") | {"choices": [
                 {"index": 0, "delta": {}, "finish_reason": "error", "error": error}]},
             "[DONE]")
    assert (caught.value.code, caught.value.retryable) == ("429", True)
