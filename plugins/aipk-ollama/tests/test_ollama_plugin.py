"""The native Ollama plugin over real HTTP against the emulator's Ollama protocol, and its
request rules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import aipk
from aipk.errors import BadRequestError, InvalidRequestError, ResponseError, StreamError
from aipk_ollama import OLLAMA_NATIVE
from aipk_ollama.wire import OllamaStreamDecoder, build_chat_body
from aipk_testkit.emulator import Emulator, Fault, Reply, ToolCallSpec
from aipk_testkit.fixtures import make_provider

USER = [aipk.Message.user("Hello")]


@pytest.fixture
def client(aipk_emulator: Emulator) -> Iterator[aipk.Client]:
    with aipk.Client("ollama-native", base_url=aipk_emulator.url("ollama"),
                     sleep=lambda s: None) as client:
        yield client


def test_provider_is_distinct_from_the_openai_compatible_preset() -> None:
    registry = aipk.registry.default_registry()
    assert registry.spec("ollama-native").protocol == "ollama"
    assert registry.spec("ollama").protocol == "openai"  # aipk-openai's preset is untouched
    assert OLLAMA_NATIVE.default_base_url == "http://localhost:11434"
    assert OllamaStreamDecoder.framing == "ndjson"


def test_chat_sends_the_native_body_and_needs_no_key(aipk_emulator: Emulator,
                                                     client: aipk.Client) -> None:
    aipk_emulator.enqueue(Reply(text='{"answer": 4}'))
    reply = client.chat(model="gemma3:1b", messages=USER, max_tokens=20, stop=["\n\n"],
                        extra={"format": "json", "keep_alive": "5m",
                               "options": {"num_ctx": 4096}})
    assert reply.text == '{"answer": 4}'
    sent = aipk_emulator.requests[-1]
    assert sent.path == "/ollama/api/chat" and "authorization" not in sent.headers
    assert sent.json() == {"model": "gemma3:1b", "messages": [{"role": "user",
                                                               "content": "Hello"}],
                           "stream": False, "format": "json", "keep_alive": "5m",
                           "options": {"num_predict": 20, "stop": ["\n\n"], "num_ctx": 4096}}


def test_stream_is_ndjson_over_http(aipk_emulator: Emulator, client: aipk.Client) -> None:
    aipk_emulator.enqueue(Reply(text="one two three", chunk_size=3, finish_reason="length",
                                usage=(5, 3)))
    with client.stream(model="gemma3:1b", messages=USER) as stream:
        events = list(stream)
    assert aipk_emulator.requests[-1].json()["stream"] is True
    assert aipk_emulator.requests[-1].headers["accept"] == "application/x-ndjson"
    assert "".join(e.text for e in events if isinstance(e, aipk.TextDelta)) == "one two three"
    assert stream.response.finish_reason is aipk.FinishReason.LENGTH
    assert stream.response.usage is not None and stream.response.usage.total_tokens == 8


def test_api_key_is_a_bearer_token_for_ollama_cloud(aipk_emulator: Emulator) -> None:
    aipk_emulator.require_api_key("ollama-cloud-key")
    with aipk.Client("ollama-native", base_url=aipk_emulator.url("ollama"),
                     api_key="ollama-cloud-key") as client:
        assert client.chat(model="gpt-oss:120b", messages=USER).text == "echo: Hello"
    assert aipk_emulator.requests[-1].headers["authorization"] == "Bearer ollama-cloud-key"


def test_model_not_found_is_a_bad_request_with_ollamas_words(aipk_emulator: Emulator,
                                                             client: aipk.Client) -> None:
    aipk_emulator.enqueue(Fault.status(404, message="model 'nope' not found"))
    with pytest.raises(BadRequestError, match="model 'nope' not found") as info:
        client.chat(model="nope", messages=USER)
    assert info.value.status == 404


def test_malformed_line_and_in_band_error(aipk_emulator: Emulator, client: aipk.Client) -> None:
    aipk_emulator.enqueue(Fault.malformed_json())
    with pytest.raises(ResponseError, match="could not be decoded"):
        list(client.stream(model="gemma3:1b", messages=USER))
    aipk_emulator.enqueue(Fault.inband_error(message="llama runner process has terminated"))
    with pytest.raises(StreamError, match="llama runner"):
        list(client.stream(model="gemma3:1b", messages=USER))
    aipk_emulator.enqueue(Fault.invalid_utf8())
    with pytest.raises(ResponseError, match="UTF-8"):
        list(client.stream(model="gemma3:1b", messages=USER))


def test_stream_tool_calls_arrive_whole(aipk_emulator: Emulator, client: aipk.Client) -> None:
    aipk_emulator.enqueue(Reply(tool_calls=[ToolCallSpec("lookup", {"q": "x"}, id="call_a")]))
    tool = aipk.Tool(name="lookup")
    with client.stream(model="llama3.1:8b", messages=USER, tools=[tool]) as stream:
        deltas = [e for e in stream if isinstance(e, aipk.ToolCallDelta)]
    assert [(d.index, d.id, d.name, d.arguments) for d in deltas] == [
        (0, "call_a", "lookup", '{"q": "x"}')]
    assert stream.response.finish_reason is aipk.FinishReason.TOOL_CALLS
    sent = aipk_emulator.requests[-1].json()
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "lookup", "parameters": {"type": "object", "properties": {}}}}]


def test_request_rules() -> None:
    provider = make_provider(OLLAMA_NATIVE)
    with pytest.raises(InvalidRequestError, match="tool_choice") as info:
        build_chat_body(provider, aipk.ChatRequest(
            model="m", messages=USER, tools=[aipk.Tool(name="t")], tool_choice="required"),
            stream=False)
    assert info.value.field == "tool_choice"
    no_tools = build_chat_body(provider, aipk.ChatRequest(
        model="m", messages=USER, tools=[aipk.Tool(name="t")], tool_choice="none"), stream=False)
    assert "tools" not in no_tools
    with pytest.raises(InvalidRequestError, match="Image\\(data=...\\)"):
        build_chat_body(provider, aipk.ChatRequest(model="m", messages=[aipk.Message(
            role="user", content="see", images=[aipk.Image(url="https://x.test/a.png")])]),
            stream=False)
    body = build_chat_body(provider, aipk.ChatRequest(model="m", messages=[aipk.Message(
        role="user", content="see", images=[aipk.Image(data=b"\x89PNG", media_type="image/png")
                                            ])]), stream=False)
    assert body["messages"][0]["images"] == ["iVBORw=="]
    with pytest.raises(InvalidRequestError, match="not JSON"):
        build_chat_body(provider, aipk.ChatRequest(model="m", messages=[aipk.Message(
            role="assistant", tool_calls=[aipk.ToolCall(id="c", name="t", arguments="{")])]),
            stream=False)
