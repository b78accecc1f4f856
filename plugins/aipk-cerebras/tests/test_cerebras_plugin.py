"""The Cerebras spec as installed (entry point), its client settings, requests it builds, and
streamed reasoning through the hooks."""

from __future__ import annotations

import pytest

import aipk_cerebras.plugin
import aipk_openai.plugin
from aipk import (
    ChatRequest,
    Client,
    FinishEvent,
    FinishReason,
    Message,
    ReasoningDelta,
    TextDelta,
)
from aipk._core import Engine
from aipk.registry import Registry
from aipk_cerebras import CEREBRAS
from aipk_testkit.fixtures import make_engine

NOW = 1_700_000_000.0


def _engine() -> Engine:
    return make_engine(CEREBRAS, {"openai": aipk_openai.plugin, "cerebras": aipk_cerebras.plugin},
                       clock=lambda: NOW)


def test_installed_entry_point_declares_cerebras() -> None:
    registry = Registry()
    spec = registry.spec("cerebras")
    assert spec is CEREBRAS
    assert spec.protocol == "openai"
    assert spec.env_vars == ("CEREBRAS_API_KEY",)
    assert spec.default_base_url == "https://api.cerebras.ai/v1"


def test_client_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CEREBRAS_BASE_URL", raising=False)
    with Client("cerebras", api_key="csk-test") as client:
        assert client.timeout.read == 120.0
        assert client.provider.base_url == "https://api.cerebras.ai/v1"
        assert client.capabilities("gpt-oss-120b").context_window == 131_072
        assert client.capabilities("gpt-oss-120b").reasoning
        assert not client.limits.enabled  # Cerebras reports limits in headers instead


def test_models_have_context_windows() -> None:
    assert CEREBRAS.models
    assert all(m.provider == "cerebras" and m.context_window for m in CEREBRAS.models)
    assert CEREBRAS.default_model in {m.id for m in CEREBRAS.models}


def test_request_is_plain_openai_with_max_completion_tokens_and_nothing_injected() -> None:
    request = ChatRequest(model="gpt-oss-120b", messages=[Message.user("hi")], max_tokens=64)
    built, body = _engine().build(request, stream=True)
    assert built.url == "https://api.cerebras.ai/v1/chat/completions"
    assert built.headers["accept"] == "text/event-stream"
    assert built.json == {
        "model": "gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 64, "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert body is not None and b"temperature" not in body and b"system" not in body


STREAM = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-oss-120b",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","reasoning":"Two plus two"}}]}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-oss-120b",'
    b'"choices":[{"index":0,"delta":{"content":"4"}}]}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-oss-120b",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11},'
    b'"time_info":{"queue_time":0.0001,"prompt_time":0.001,"completion_time":0.005,'
    b'"total_time":0.02,"created":1723733419}}\n\n'
    b"data: [DONE]\n\n"
)


def test_streamed_reasoning_field_becomes_reasoning_deltas() -> None:
    """Hand-written in Cerebras' shape (no streamed capture exists): ``delta.reasoning``."""
    session = _engine().open_stream(
        ChatRequest(model="gpt-oss-120b", messages=[Message.user("2+2?")]), {}, None)
    events = [*session.feed(STREAM), *session.finish()]
    assert [e for e in events if type(e) is ReasoningDelta] == [ReasoningDelta(text="Two plus two")]
    assert [e for e in events if type(e) is TextDelta] == [TextDelta(text="4")]
    assert FinishEvent(reason=FinishReason.STOP, raw="stop") in events
    response = session.response()
    assert (response.provider, response.text, response.reasoning) == (
        "cerebras", "4", "Two plus two")
    assert response.usage is not None and response.usage.total_tokens == 11
    # the last chunk's timings, as a whole answer's (the Cerebras SDK's ChatChunkResponse has
    # time_info beside usage)
    assert response.extra["time_info"] == {"queue_time": 0.0001, "prompt_time": 0.001,
                                           "completion_time": 0.005, "total_time": 0.02,
                                           "created": 1723733419}
