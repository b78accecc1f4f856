"""docs/serving.md's OpenAI-compatible server (`aipk_openai.serving` and an aipk client), run
over real HTTP: an OpenAI client in front, the emulator's Anthropic API behind."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

import aipk
from aipk import FinishReason, Message, TextDelta, ToolCallDelta
from aipk.errors import BadRequestError, RateLimitError, ServerError, StreamError
from aipk_testkit.emulator import Emulator, Fault, Reply, ToolCallSpec

from .docs_blocks import blocks

DOCS = Path(__file__).resolve().parents[1] / "docs"

KEY = "sk-test-0123456789abcdef"
ASK = [Message.user("Hello")]


def _server_module(tmp: Path) -> ModuleType:
    """docs/serving.md's ``openai_server.py``, written out and imported."""
    path = tmp / "openai_server.py"
    block = next(b for b in blocks(DOCS / "serving.md") if b.title == "openai_server.py")
    path.write_text(block.body, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("openai_server_from_docs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def gateway(aipk_emulator: Emulator, tmp_path: Path) -> Iterator[str]:
    upstream = aipk.Client("anthropic", base_url=aipk_emulator.url("anthropic"), api_key=KEY,
                           max_retries=0)
    handler = _server_module(tmp_path).make_handler(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        upstream.close()


def _client(url: str) -> aipk.Client:
    return aipk.Client("openai", base_url=url, api_key="sk-gateway-caller", max_retries=0)


def test_chat_and_stream_through_the_server(aipk_emulator: Emulator, gateway: str) -> None:
    aipk_emulator.enqueue(Reply(text="Hi there, friend", usage=(7, 4)),
                          Reply(text="Streamed hello", usage=(7, 3)))
    with _client(gateway) as client:
        reply = client.chat(model="claude-sonnet-4-5", messages=ASK, max_tokens=50)
        assert reply.text == "Hi there, friend"
        assert (reply.usage.input_tokens, reply.usage.output_tokens) == (7, 4)  # type: ignore[union-attr]
        assert reply.finish_reason is FinishReason.STOP
        with client.stream(model="claude-sonnet-4-5", messages=ASK, max_tokens=50) as stream:
            texts = [e.text for e in stream if isinstance(e, TextDelta)]
        assert "".join(texts) == "Streamed hello" and len(texts) > 1
        assert stream.response.usage.output_tokens == 3  # type: ignore[union-attr]
    sent = json.loads(aipk_emulator.requests[0].body)
    assert sent["messages"] == [{"role": "user", "content": "Hello"}]
    assert sent["max_tokens"] == 50


def test_tool_calls_stream_through_the_server(aipk_emulator: Emulator, gateway: str) -> None:
    aipk_emulator.enqueue(Reply(tool_calls=[ToolCallSpec(name="get_weather",
                                                         arguments={"city": "Oslo"})]))
    weather = aipk.Tool(name="get_weather", description="Weather",
                        parameters={"type": "object", "properties": {"city": {"type": "string"}}})
    with _client(gateway) as client, client.stream(
            model="claude-sonnet-4-5", messages=ASK, tools=[weather], max_tokens=50) as stream:
        deltas = [e for e in stream if isinstance(e, ToolCallDelta)]
    call = stream.response.tool_calls[0]
    assert deltas and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Oslo"}
    assert stream.response.finish_reason is FinishReason.TOOL_CALLS
    assert json.loads(aipk_emulator.requests[0].body)["tools"][0]["name"] == "get_weather"


def test_upstream_failures_reach_the_caller_as_openai_errors(aipk_emulator: Emulator,
                                                             gateway: str) -> None:
    aipk_emulator.enqueue(Fault.status(429, retry_after=3), Fault.status(500))
    with _client(gateway) as client:
        with pytest.raises(RateLimitError) as limited:
            client.chat(model="claude-sonnet-4-5", messages=ASK, max_tokens=5)
        assert limited.value.retry_after == 3
        with pytest.raises(ServerError) as failed:
            client.chat(model="claude-sonnet-4-5", messages=ASK, max_tokens=5)
        assert failed.value.status == 502
        with pytest.raises(BadRequestError) as bad:
            client.chat(model="claude-sonnet-4-5", messages=ASK, max_tokens=5,
                        extra_body={"stream": "yes"})
        assert "stream: must be true or false" in str(bad.value)


def test_the_model_list_comes_from_the_upstream(gateway: str) -> None:
    with _client(gateway) as client:
        models = client.models()
    assert models and all(info.id for info in models)


def test_a_stream_cut_upstream_ends_with_an_in_band_error(aipk_emulator: Emulator,
                                                          gateway: str) -> None:
    aipk_emulator.enqueue(Fault.reset_mid_stream(after_events=4,
                                                 reply=Reply(text="a long answer " * 20)))
    with _client(gateway) as client, client.stream(model="claude-sonnet-4-5", messages=ASK,
                                                   max_tokens=50) as stream:
        texts = []
        with pytest.raises(StreamError) as cut:
            for event in stream:
                if isinstance(event, TextDelta):
                    texts.append(event.text)
    assert texts  # what arrived before the cut was delivered
    assert "the anthropic provider behind this server failed (NetworkError)" in str(cut.value)
    assert aipk_emulator.url("anthropic") not in str(cut.value)
