"""DeepSeek's ``prompt_cache_hit_tokens``, served over real HTTP (tests/rawserver.py): the
cached-input count (``usage.cache_read_tokens``) when ``prompt_tokens_details`` has none."""

from __future__ import annotations

from typing import Any

import pytest

import aipk

from .rawserver import openai_text_chunk, raw_server, reply, sse_events
from .test_captures_over_http import MODES, call, streamed

USAGE = {"prompt_tokens": 1200, "completion_tokens": 5, "total_tokens": 1205,
         "prompt_cache_hit_tokens": 1024, "prompt_cache_miss_tokens": 176}


def _whole(usage: dict[str, Any]) -> dict[str, Any]:
    return {"id": "c-1", "object": "chat.completion", "model": "deepseek-chat",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Hello"}}],
            "usage": usage}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stream", [False, True])
def test_deepseek_cache_hits_are_cached_input_tokens(mode: str, stream: bool) -> None:
    if stream:
        chunk = {"id": "c-1", "object": "chat.completion.chunk", "model": "m",
                 "choices": [], "usage": USAGE}
        body = sse_events(openai_text_chunk("Hello", "stop"), chunk, "[DONE]")
        answer = streamed(body, "text/event-stream", 1)
    else:
        answer = reply(200, _whole(USAGE))
    with raw_server(answer) as server:
        result = call(server, mode, "openai", stream=stream)
    assert isinstance(result, aipk.ChatResponse), result
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.cache_read_tokens) == (1200, 1024)


@pytest.mark.parametrize("mode", MODES)
def test_cached_tokens_in_the_details_win(mode: str) -> None:
    usage = {**USAGE, "prompt_tokens_details": {"cached_tokens": 512}}
    with raw_server(reply(200, _whole(usage))) as server:
        result = call(server, mode, "openai", stream=False)
    assert isinstance(result, aipk.ChatResponse), result
    assert result.usage is not None and result.usage.cache_read_tokens == 512
