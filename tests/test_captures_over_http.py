"""Real captures served over real HTTP (tests/rawserver.py on 127.0.0.1) to the real clients:
the sync client, and the async client on httpx and on aiohttp. Each body goes out in
chunked-encoding chunks cut at several places (whole, 7-byte pieces, random cuts); what the
client returns must be what the capture says, written out by hand below, and errors must come
out as the right typed error.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pytest

import aipk
from aipk.errors import AipkError, RateLimitError, StreamError
from aipk.observability import Metrics
from aipk_testkit.fixtures import Captures, find_fixtures

from .rawserver import RawServer, chunk, head, raw_server, reply

FIXTURES = find_fixtures(__file__)
KEY = "sk-capture-SECRETVALUE-0123456789"
MODES = ("sync", "httpx", "aiohttp")


def pieces_of(body: bytes, seed: int) -> list[bytes]:
    """``body`` whole (seed 0), in 7-byte pieces (seed 1), or cut at random places."""
    if seed == 0:
        return [body]
    if seed == 1:
        return [body[i:i + 7] for i in range(0, len(body), 7)]
    rng = random.Random(seed)
    cuts = sorted({rng.randrange(1, len(body)) for _ in range(rng.randrange(1, 30))})
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


def streamed(body: bytes, content_type: str, seed: int,
             headers: Sequence[tuple[str, str]] = ()) -> list[Any]:
    return [head(200, [("Content-Type", content_type), ("Transfer-Encoding", "chunked"),
                       *headers]),
            *[chunk(p) for p in pieces_of(body, seed)], chunk(b"")]


def call(server: RawServer, mode: str, provider: str, *, stream: bool,
         request_extra: dict[str, Any] | None = None,
         **options: Any) -> aipk.ChatResponse | AipkError:
    """One chat call (or a whole stream) at ``server``: the response, or the aipk error
    (``request_extra``: the request's ``extra``)."""
    messages = [aipk.Message.user("hi")]
    fields: dict[str, Any] = {"extra": request_extra} if request_extra else {}
    options.setdefault("max_retries", 0)
    common: dict[str, Any] = {"base_url": server.url, "api_key": KEY, "timeout": 3.0,
                              **options}
    try:
        if mode == "sync":
            with aipk.Client(provider, **common) as client:
                if not stream:
                    return client.chat(model="m", messages=messages, **fields)
                with client.stream(model="m", messages=messages, **fields) as chat_stream:
                    for _ in chat_stream:
                        pass
                    return chat_stream.response

        async def scenario() -> aipk.ChatResponse:
            from aipk.transports import AiohttpTransport

            transport = AiohttpTransport() if mode == "aiohttp" else None
            try:
                async with aipk.AsyncClient(provider, transport=transport,
                                            **common) as client:
                    if not stream:
                        return await client.chat(model="m", messages=messages, **fields)
                    async with client.stream(model="m", messages=messages, **fields) as chat_stream:
                        async for _ in chat_stream:
                            pass
                        return await chat_stream.get_response()
            finally:
                if transport is not None:
                    await transport.close()

        return asyncio.run(asyncio.wait_for(scenario(), 12.0))
    except AipkError as exc:
        return exc


# -- successful streams and bodies -----------------------------------------------------------


@attrs.frozen
class Case:
    provider: str
    capture: str  # under tests/fixtures
    check: Callable[[aipk.ChatResponse], None]
    stream: bool = True
    content_type: str = "text/event-stream"
    options: dict[str, Any] = attrs.field(factory=dict)


def _redacted_thinking(reply: aipk.ChatResponse) -> None:
    assert reply.id == "msg_018XZkwvj9asBiffg3fXt88s"
    assert reply.text.endswith("a legitimate task or question?") and reply.reasoning is None
    assert [b["type"] for b in reply.extra["thinking_blocks"]] == ["redacted_thinking"] * 2
    assert reply.usage == aipk.Usage(input_tokens=92, output_tokens=189, cache_read_tokens=0,
                                     cache_write_tokens=0)


def _no_message_delta(reply: aipk.ChatResponse) -> None:
    assert (reply.text, reply.finish_reason) == ("", None)
    assert reply.usage == aipk.Usage(input_tokens=11, output_tokens=1)


def _no_input_count(reply: aipk.ChatResponse) -> None:
    assert reply.text == "Hello"
    assert reply.usage == aipk.Usage(output_tokens=6)  # input not reported: None, not 0


def _gemini_call(reply: aipk.ChatResponse) -> None:
    [call_] = reply.tool_calls
    assert (call_.id, call_.name, call_.parsed_arguments()) == (
        "c9bjmkfz", "pelican_name_generator", {"type": "funny"})
    assert reply.finish_reason is aipk.FinishReason.TOOL_CALLS
    assert reply.extra["functionCallSignatures"]["c9bjmkfz"].startswith("EosJCogJAb4")
    assert reply.usage == aipk.Usage(input_tokens=28, output_tokens=267, total_tokens=295,
                                     reasoning_tokens=248)


def _openrouter_reasoning(reply: aipk.ChatResponse) -> None:
    assert (reply.text, reply.reasoning) == (
        "2 + 2 = 4", "This is a simple arithmetic question. 2+2 equals 4.")
    [details] = reply.extra["reasoning_details"]
    assert details["text"] == reply.reasoning and details["signature"].startswith("Et0BCkgI")
    assert reply.extra["native_finish_reason"] == "stop"
    assert reply.cost == 0.000669  # the cost OpenRouter reported on its usage chunk


def _openrouter_padded(reply: aipk.ChatResponse) -> None:
    assert reply.text.startswith("You are a **domestic dog**")
    assert reply.reasoning is not None and reply.reasoning.startswith("Okay, let's see.")
    assert reply.usage == aipk.Usage(input_tokens=19, output_tokens=600, total_tokens=619,
                                     reasoning_tokens=443, cache_read_tokens=0)


def _ollama_cached_prompt(reply: aipk.ChatResponse) -> None:
    assert "Instrument" in reply.text
    assert reply.usage == aipk.Usage(output_tokens=79)


CASES = {
    "anthropic-redacted-thinking": Case(
        "anthropic", "anthropic/pai-stream-redacted-thinking.sse", _redacted_thinking),
    "anthropic-no-message-delta": Case(
        "anthropic", "anthropic/sdk-stream-no-message-delta.sse", _no_message_delta),
    "anthropic-no-input-count": Case(
        "anthropic", "anthropic/sdk-stream-usage-no-input-count.sse", _no_input_count),
    "gemini-json-array-call": Case(
        "gemini", "google/llmg-stream-array-call-with-id.json", _gemini_call,
        content_type="application/json; charset=UTF-8",
        options={"stream_framing": "json-array"}),
    "openrouter-reasoning": Case(
        "openrouter", "openrouter/pai-stream-reasoning.sse", _openrouter_reasoning),
    "openrouter-whitespace-padded-body": Case(
        "openrouter", "openrouter/lcgo-chat-reasoning-whitespace-padded.json",
        _openrouter_padded, stream=False, content_type="application/json"),
    "ollama-cached-prompt": Case(
        "ollama-native", "ollama/olm-chat-nonstream-no-prompt-eval-count.json",
        _ollama_cached_prompt, stream=False, content_type="application/json"),
}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_capture_over_http(name: str, mode: str, seed: int) -> None:
    case = CASES[name]
    folder, file = case.capture.split("/")
    body = Captures(FIXTURES / folder).body(file)
    with raw_server(streamed(body, case.content_type, seed)) as server:
        result = call(server, mode, case.provider, stream=case.stream, **case.options)
    assert isinstance(result, aipk.ChatResponse), result
    case.check(result)


@pytest.mark.parametrize("mode", MODES)
def test_a_streamed_cost_the_provider_reported_reaches_the_metrics(mode: str) -> None:
    body = Captures(FIXTURES / "openrouter").body("pai-stream-reasoning.sse")
    metrics = Metrics()
    with raw_server(streamed(body, "text/event-stream", 0)) as server:
        result = call(server, mode, "openrouter", stream=True, metrics=metrics)
    assert isinstance(result, aipk.ChatResponse), result
    assert result.cost == 0.000669
    assert metrics.snapshot().totals.cost == pytest.approx(0.000669)


# -- errors ----------------------------------------------------------------------------------

#: Cerebras's error body: OpenAI's fields at the top level, no "error" wrapper.
CEREBRAS_429 = {"message": "Requests per minute limit exceeded - too many requests sent.",
                "type": "too_many_requests_error", "param": "quota",
                "code": "request_quota_exceeded"}
CEREBRAS_QUEUE = {"message": "We're experiencing high traffic right now! Please try again soon.",
                  "type": "too_many_requests_error", "param": "queue", "code": "queue_exceeded"}


@pytest.mark.parametrize("mode", MODES)
def test_cerebras_flat_429_keeps_its_message_code_and_wait(mode: str) -> None:
    answer = reply(429, CEREBRAS_429, headers=[("retry-after", "7")])
    with raw_server(answer) as server:
        error = call(server, mode, "cerebras", stream=False)
    assert type(error) is RateLimitError
    assert error.message == CEREBRAS_429["message"]
    assert (error.code, error.retry_after, error.retryable) == (
        "request_quota_exceeded", 7.0, True)
    assert "SECRETVALUE" not in repr(error)


@pytest.mark.parametrize("mode", MODES)
def test_cerebras_flat_error_in_place_of_a_chunk_is_a_stream_error(mode: str) -> None:
    first = {"id": "c1", "object": "chat.completion.chunk", "model": "m",
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    body = (b"data: " + json.dumps(first).encode() + b"\n\ndata: "
            + json.dumps(CEREBRAS_QUEUE).encode() + b"\n\n")
    with raw_server(streamed(body, "text/event-stream", 1)) as server:
        error = call(server, mode, "cerebras", stream=True)
    assert type(error) is StreamError
    assert (error.message, error.code, error.retryable) == (
        CEREBRAS_QUEUE["message"], "queue_exceeded", True)


@pytest.mark.parametrize("mode", MODES)
def test_a_spent_openai_quota_is_not_retried(mode: str) -> None:
    body = {"error": {"message": "You exceeded your current quota, please check your plan and "
                                 "billing details.", "type": "insufficient_quota",
                      "param": None, "code": "insufficient_quota"}}
    with raw_server(reply(429, body, headers=[("retry-after", "0")])) as server:
        error = call(server, mode, "openai", stream=False, max_retries=3)
        sent = len(server.requests)
    assert type(error) is RateLimitError and not error.retryable
    assert "add credits" in error.message
    assert sent == 1  # no retry, though three were allowed and the wait was 0 s
