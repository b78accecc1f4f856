"""Rarer real answer shapes served over real HTTP (tests/rawserver.py) to the sync client and
the async client on httpx and aiohttp, cut into chunked-encoding pieces at several places:
Gemini's numeric enums (``enum-encoding=int``) and code-execution parts, OpenRouter's failed
upstream inside a choice, the deprecated OpenAI ``function_call``, DashScope's moderation 400
and an Ollama error line after some text. Each plugin's own tests check the shapes sans-IO;
these check that nothing between the socket and the decoder changes the outcome."""

from __future__ import annotations

import json
from typing import Any

import pytest

import aipk
from aipk.errors import (
    ContentFilteredError,
    ContextWindowExceededError,
    RateLimitError,
    StreamError,
)
from aipk_testkit.fixtures import Captures

from .rawserver import raw_server, reply, sse_events
from .test_captures_over_http import FIXTURES, MODES, call, streamed


def _gemini(parts: list[Any], finish: Any = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate],
            "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 9,
                              "totalTokenCount": 16},
            "modelVersion": "gemini-2.0-flash", "responseId": "r-1"}


CODE = {"executableCode": {"language": "PYTHON", "code": "print(2 + 2)"}}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", MODES)
def test_gemini_numeric_finish_reason_and_code_parts(mode: str, seed: int) -> None:
    body = sse_events(_gemini([{"text": "Running. "}, CODE]),
                _gemini([{"text": "Done"}], finish=10), crlf=True)
    with raw_server(streamed(body, "text/event-stream", seed)) as server:
        result = call(server, mode, "gemini", stream=True)
    assert isinstance(result, aipk.ChatResponse), result
    assert result.text == "Running. Done"
    assert (result.raw_finish_reason, result.finish_reason) == (
        "MALFORMED_FUNCTION_CALL", aipk.FinishReason.ERROR)
    assert result.extra["other_parts"] == [CODE]


@pytest.mark.parametrize("mode", MODES)
def test_gemini_numeric_finish_reason_in_a_whole_body(mode: str) -> None:
    with raw_server(reply(200, _gemini([{"text": '["red"]'}], finish=1))) as server:
        result = call(server, mode, "gemini", stream=False)
    assert isinstance(result, aipk.ChatResponse), result
    assert (result.raw_finish_reason, result.finish_reason) == ("STOP", aipk.FinishReason.STOP)


UPSTREAM = {"code": 502, "message": "Provider returned error",
            "metadata": {"provider_name": "Chutes", "raw": "upstream connect error"}}


def _openrouter_chunk(delta: dict[str, Any], finish: str | None = None,
                      **more: Any) -> dict[str, Any]:
    return {"id": "gen-1", "provider": "Chutes", "model": "m", "object": "chat.completion.chunk",
            "created": 1, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                       "native_finish_reason": finish, **more}]}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", MODES)
def test_openrouter_error_inside_a_choice_is_a_stream_error(mode: str, seed: int) -> None:
    body = b": OPENROUTER PROCESSING\n\n" + sse_events(
        _openrouter_chunk({"role": "assistant", "content": "par"}),
        _openrouter_chunk({"content": ""}, "error", error=UPSTREAM), "[DONE]")
    with raw_server(streamed(body, "text/event-stream", seed)) as server:
        result = call(server, mode, "openrouter", stream=True)
    assert type(result) is StreamError, result
    assert result.message.startswith("Provider returned error") and result.code == "502"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", MODES)
def test_a_streamed_legacy_function_call(mode: str, seed: int) -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    body = sse_events(chunk({"role": "assistant", "content": None,
                       "function_call": {"name": "get_weather", "arguments": ""}}),
                chunk({"function_call": {"arguments": '{"city":'}}),
                chunk({"function_call": {"arguments": '"Paris"}'}}),
                chunk({}, "function_call"), "[DONE]")
    with raw_server(streamed(body, "text/event-stream", seed)) as server:
        result = call(server, mode, "openai", stream=True)
    assert isinstance(result, aipk.ChatResponse), result
    [tool_call] = result.tool_calls
    assert (tool_call.id, tool_call.name, tool_call.parsed_arguments()) == (
        "call_0", "get_weather", {"city": "Paris"})
    assert result.finish_reason is aipk.FinishReason.TOOL_CALLS


@pytest.mark.parametrize("mode", MODES)
def test_dashscope_moderation_is_a_content_filter(mode: str) -> None:
    body = {"error": {"code": "data_inspection_failed", "param": None,
                      "message": "Input data may contain inappropriate content.",
                      "type": "data_inspection_failed"},
            "id": "chatcmpl-1", "request_id": "r-1"}
    with raw_server(reply(400, body)) as server:
        result = call(server, mode, "dashscope", stream=False)
    assert type(result) is ContentFilteredError, result
    assert (result.code, result.retryable) == ("data_inspection_failed", False)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", MODES)
def test_an_ollama_error_line_after_text(mode: str, seed: int) -> None:
    lines = [{"model": "qwen3", "created_at": "2025-06-01T10:00:00Z",
              "message": {"role": "assistant", "content": "Hel"}, "done": False},
             {"error": "an error was encountered while running the model: unexpected EOF"}]
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    with raw_server(streamed(body, "application/x-ndjson", seed)) as server:
        result = call(server, mode, "ollama-native", stream=True)
    assert type(result) is StreamError, result
    assert result.message == lines[1]["error"]


def _token(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()),
            "top_logprobs": []}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["openai", "cerebras", "openrouter", "qwen"])
def test_streamed_logprobs_asked_for_are_joined(provider: str, mode: str, seed: int) -> None:
    """openai-python's live capture of a stream with ``logprobs=True``: each chunk's token
    logprobs joined into ``extra["logprobs"]`` by every OpenAI-compatible plugin."""
    body = Captures(FIXTURES / "openai").body("sdk-chat-stream-content-logprobs.sse")
    with raw_server(streamed(body, "text/event-stream", seed)) as server:
        result = call(server, mode, provider, stream=True, request_extra={"logprobs": True})
    assert isinstance(result, aipk.ChatResponse), result
    assert result.text == "Foo!"
    assert result.extra["logprobs"] == {
        "content": [_token("Foo", -0.0025094282), _token("!", -0.26638845)], "refusal": None}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", MODES)
def test_ollama_compatible_calls_at_one_reused_index_stay_apart(mode: str, seed: int) -> None:
    """Ollama's OpenAI-compatible API sends each tool call whole and every one as index 0."""
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-7", "object": "chat.completion.chunk", "model": "qwen3",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def tool(call_id: str, path: str) -> dict[str, Any]:
        return {"tool_calls": [{"id": call_id, "index": 0, "type": "function", "function": {
            "name": "read", "arguments": json.dumps({"path": path})}}]}

    body = sse_events(chunk({"role": "assistant", "content": "", **tool("call_a", "a")}),
                chunk({"role": "assistant", "content": "", **tool("call_b", "b")}),
                chunk({"role": "assistant", "content": ""}, "tool_calls"), "[DONE]")
    with raw_server(streamed(body, "text/event-stream", seed)) as server:
        result = call(server, mode, "ollama", stream=True)
    assert isinstance(result, aipk.ChatResponse), result
    assert [(c.id, json.loads(c.arguments)) for c in result.message.tool_calls] == [
        ("call_a", {"path": "a"}), ("call_b", {"path": "b"})]
    assert result.finish_reason is aipk.FinishReason.TOOL_CALLS


TOO_LONG = [
    ("anthropic", {"type": "error", "error": {
        "type": "invalid_request_error",
        "message": "input length and `max_tokens` exceed context limit: 178959 + 64000 > "
                   "200000, decrease input length or `max_tokens` and try again"},
        "request_id": "req_011CUB2XUHWkFnQzxcKBbjpF"}),
    ("dashscope", {"error": {
        "code": "invalid_parameter_error", "param": None, "type": "invalid_request_error",
        "message": "<400> InternalError.Algo.InvalidParameter: Range of input length should be "
                   "[1, 983616]"}, "request_id": "81a373d6-28bd-9968-8335-e22a2127c41b"}),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("provider", "body"), TOO_LONG, ids=[p for p, _ in TOO_LONG])
def test_a_prompt_that_does_not_fit_is_a_context_window_error(provider: str, body: Any,
                                                              mode: str) -> None:
    """Real 400 bodies whose code is generic and whose wording says the prompt (with
    ``max_tokens``) does not fit: Anthropic's "exceed context limit" and DashScope's "Range of
    input length" (reported in docker/docker-agent#569 and agentscope-ai/QwenPaw#6255)."""
    with raw_server(reply(400, body)) as server:
        result = call(server, mode, provider, stream=False)
    assert isinstance(result, ContextWindowExceededError), result
    assert not result.retryable


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["openai", "groq"])
def test_a_429_names_its_wait_in_the_message_only(provider: str, mode: str) -> None:
    """OpenAI's and Groq's 429 bodies say how long to wait ("Please try again in 1m4.2s.");
    without a ``retry-after`` header that becomes the error's ``retry_after``."""
    body = {"error": {"message": "Rate limit reached for gpt-4o in organization org-REDACTED "
                                 "on tokens per min (TPM): Limit 30000, Used 29790, Requested "
                                 "2170. Please try again in 1m4.2s. Visit "
                                 "https://platform.openai.com/account/rate-limits to learn more.",
                      "type": "tokens", "param": None, "code": "rate_limit_exceeded"}}
    with raw_server(reply(429, body)) as server:
        result = call(server, mode, provider, stream=False)
    assert isinstance(result, RateLimitError), result
    assert result.retry_after == pytest.approx(64.2)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", MODES)
def test_stop_after_streamed_tool_calls_is_tool_calls(mode: str, seed: int) -> None:
    """gpt-4o with a forced ``tool_choice`` ends its tool calls with ``finish_reason: "stop"``
    (ollama/ollama#7963); Gemini's and older Ollama's OpenAI-compatible APIs do too."""
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-B0C3qSaM6azMY3YXJOEuEl38PXzCu", "object":
                "chat.completion.chunk", "created": 1739386062, "model": "gpt-4o-2024-08-06",
                "system_fingerprint": "fp_523b9b6e5f", "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    body = sse_events(
        chunk({"role": "assistant", "content": None, "tool_calls": [{
            "index": 0, "id": "call_9", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}], "refusal": None}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chunk({}, "stop"), "[DONE]")
    with raw_server(streamed(body, "text/event-stream", seed)) as server:
        result = call(server, mode, "openai", stream=True)
    assert isinstance(result, aipk.ChatResponse), result
    assert (result.finish_reason, result.raw_finish_reason) == (
        aipk.FinishReason.TOOL_CALLS, "stop")
    assert [(c.id, c.arguments) for c in result.message.tool_calls] == [
        ("call_9", '{"city":"Paris"}')]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", MODES)
def test_gemini_grounding_of_a_streamed_answer_is_kept(mode: str, seed: int) -> None:
    """Google Search grounding (ai.google.dev/gemini-api/docs/google-search): the last chunk's
    ``groundingMetadata`` reaches ``extra`` as a whole answer has it."""
    grounding = {"webSearchQueries": ["who won euro 2024"],
                 "groundingChunks": [{"web": {"uri": "https://vertexaisearch.cloud.google.com/"
                                                     "g/1", "title": "uefa.com"}}],
                 "groundingSupports": [{"segment": {"startIndex": 0, "endIndex": 19,
                                                    "text": "Spain won Euro 2024"},
                                        "groundingChunkIndices": [0]}]}
    last = _gemini([{"text": "."}], finish="STOP")
    last["candidates"][0]["groundingMetadata"] = grounding
    body = sse_events(_gemini([{"text": "Spain won Euro 2024"}]), last, crlf=True)
    with raw_server(streamed(body, "text/event-stream", seed)) as server:
        result = call(server, mode, "gemini", stream=True)
    assert isinstance(result, aipk.ChatResponse), result
    assert result.text == "Spain won Euro 2024."
    assert result.extra["groundingMetadata"] == grounding
