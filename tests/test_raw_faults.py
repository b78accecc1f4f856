"""Faults from a raw-socket server of our own (tests/rawserver.py), not the testkit emulator,
for the sync client and the async client on both transports: every answer ends in a result
or a typed aipk error, within the timeouts, with no secret in it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import pytest

import aipk
from aipk.errors import AipkError
from aipk_testkit.fixtures import find_fixtures

from .rawserver import HOLD, RawServer, chunk, head, raw_server, reply

FIXTURES = find_fixtures(__file__)
KEY = "sk-raw-SECRETVALUE-0123456789"
MODES = ("sync", "httpx", "aiohttp")
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5",
          "gemini": "gemini-2.5-flash", "ollama-native": "llama3"}
STREAM_TYPES = {"ollama-native": "application/x-ndjson"}

OPENAI_CHAT = {"id": "c1", "object": "chat.completion", "model": "gpt-4o",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                            "finish_reason": "stop"}]}


def oai_chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "c1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


OPENAI_STREAM = (oai_chunk({"role": "assistant", "content": "Hel"}) + oai_chunk({"content": "lo"})
                 + oai_chunk({}, "stop") + b"data: [DONE]\n\n")


def fixture_stream(provider: str) -> bytes:
    """A real captured stream for ``provider``, ending in a complete last event."""
    name = {"openai": "openai/sdk-chat-stream-text-weather.sse",
            "anthropic": "anthropic/sdk-stream-text-basic.sse",
            "gemini": "google/pai-stream-text.sse",
            "ollama-native": "ollama/olm-chat-stream-llama3.ndjson"}[provider]
    body = (FIXTURES / name).read_bytes()
    if provider != "ollama-native" and not body.endswith(b"\n\n"):
        body = body.rstrip(b"\r\n") + b"\n\n"  # some captures dropped the last blank line
    return body


def streamed(body: bytes, content_type: str = "text/event-stream",
             pieces: Sequence[int] = ()) -> list[Any]:
    cuts = [0, *pieces, len(body)]
    parts = [body[a:b] for a, b in itertools.pairwise(cuts) if b > a]
    return [head(200, [("Content-Type", content_type), ("Transfer-Encoding", "chunked")]),
            *[chunk(p) for p in parts]]


def call(server: RawServer, mode: str, *, provider: str = "openai", stream: bool = False,
         timeout: float = 2.0, **options: Any) -> Any:
    """One chat call (or a whole stream) at ``server``: the response, or the exception."""
    base = server.url + ("/v1" if provider == "openai" else "")
    model = MODELS[provider]
    messages = [aipk.Message.user("hi")]
    options.setdefault("max_retries", 0)
    try:
        if mode == "sync":
            with aipk.Client(provider, base_url=base, api_key=KEY, timeout=timeout,
                             **options) as client:
                if not stream:
                    return client.chat(model=model, messages=messages)
                with client.stream(model=model, messages=messages) as chat_stream:
                    for _ in chat_stream:
                        pass
                    return chat_stream.response

        async def scenario() -> Any:
            from aipk.transports import AiohttpTransport

            transport = AiohttpTransport() if mode == "aiohttp" else None
            try:
                async with aipk.AsyncClient(provider, base_url=base, api_key=KEY,
                                            timeout=timeout, transport=transport,
                                            **options) as client:
                    if not stream:
                        return await client.chat(model=model, messages=messages)
                    async with client.stream(model=model, messages=messages) as chat_stream:
                        async for _ in chat_stream:
                            pass
                        return await chat_stream.get_response()
            finally:
                if transport is not None:
                    await transport.close()

        return asyncio.run(asyncio.wait_for(scenario(), timeout * 4))
    except AipkError as exc:
        return exc


def no_secret(exc: BaseException) -> None:
    """No trace of the key in ``exc`` nor in the errors it was raised from or during."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        texts = (str(current), repr(current), repr(current.args),
                 repr(getattr(current, "__dict__", {})))
        for text in texts:
            assert "SECRETVALUE" not in text, (type(current), text)
        current = current.__cause__ or current.__context__


# -- streams that stay open, or go on, after their terminator ---------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", list(MODELS))
def test_a_stream_ends_at_its_terminator_though_the_server_keeps_the_body_open(
        mode: str, provider: str) -> None:
    body = fixture_stream(provider)
    script = streamed(body, STREAM_TYPES.get(provider, "text/event-stream"))
    ping = chunk(b"\n" if provider == "ollama-native" else b": ping\n\n")
    with raw_server([*script, ping, HOLD]) as server:
        started = time.monotonic()
        result = call(server, mode, provider=provider, stream=True, timeout=3.0)
        took = time.monotonic() - started
    assert isinstance(result, aipk.ChatResponse), result
    assert result.text and result.finish_reason is not None
    assert took < 2.0  # not the 3 s read timeout


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ended", ["with the terminator", "after it"])
def test_streams_that_end_reuse_their_connection(mode: str, ended: str) -> None:
    # the body's end in the terminator's write, or in a write of its own a moment later: read
    # within the grace, so three streams take one connection
    end = [chunk(b"")] if ended == "with the terminator" else [0.02, chunk(b"")]
    script = [*streamed(OPENAI_STREAM), *end]
    messages = [aipk.Message.user("hi")]
    with raw_server(script) as server:
        if mode == "sync":
            with aipk.Client("openai", base_url=server.url + "/v1", api_key=KEY) as client:
                texts = [client.stream(model="m", messages=messages).get_response().text
                         for _ in range(3)]
        else:
            async def scenario() -> list[str]:
                from aipk.transports import AiohttpTransport

                transport = AiohttpTransport() if mode == "aiohttp" else None
                try:
                    async with aipk.AsyncClient("openai", base_url=server.url + "/v1",
                                                api_key=KEY, transport=transport) as client:
                        out = []
                        for _ in range(3):
                            async with client.stream(model="m", messages=messages) as stream:
                                out.append((await stream.get_response()).text)
                        return out
                finally:
                    if transport is not None:
                        await transport.close()

            texts = asyncio.run(scenario())
    assert texts == ["Hello"] * 3
    assert server.connections == 1


@pytest.mark.parametrize("mode", MODES)
def test_data_after_the_terminator_is_not_read(mode: str) -> None:
    garbage = b"data: {not json\n\ndata: " + json.dumps({"error": {"message": "x"}}).encode()
    with raw_server([*streamed(OPENAI_STREAM + garbage + b"\n\n"), chunk(b"")]) as server:
        result = call(server, mode, stream=True)
    assert isinstance(result, aipk.ChatResponse), result
    assert result.text == "Hello"


# -- redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed_and_names_the_location(mode: str, status: int) -> None:
    with RawServer() as other:
        other.queue(reply(200, OPENAI_CHAT))
        target = f"{other.url}/v1/chat/completions?key=hidden"
        with raw_server(reply(status, b"", headers=[("Location", target)])) as server:
            result = call(server, mode)
        assert other.requests == []  # the key went nowhere else
    assert type(result) is aipk.errors.StatusError, result
    assert result.status == status and not result.retryable
    assert other.url in str(result) and "base_url=" in str(result)
    assert "hidden" not in str(result)
    no_secret(result)


# -- stream requests answered with something else -------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("content_type", ["text/html", "text/plain"])
def test_a_stream_answered_with_an_error_page_is_a_retried_response_error(
        mode: str, content_type: str) -> None:
    page = reply(200, "<html><body>502 Bad Gateway</body></html>", content_type=content_type)
    with raw_server(page, page, [*streamed(OPENAI_STREAM), chunk(b"")]) as server:
        result = call(server, mode, stream=True, max_retries=1,
                      retry=aipk.RetryPolicy(max_retries=1, initial_delay=0.01))
        assert len(server.requests) == 2
    assert type(result) is aipk.errors.ResponseError, result
    assert result.retryable and "502 Bad Gateway" in str(result) and content_type in str(result)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("provider", "body"), [
    ("openai", {"error": {"message": "The server had an error", "type": "server_error"}}),
    ("anthropic", {"type": "error", "error": {"type": "overloaded_error",
                                              "message": "Overloaded"}}),
    ("gemini", {"error": {"code": 503, "message": "The model is overloaded.",
                          "status": "UNAVAILABLE"}}),
])
def test_a_stream_answered_with_a_json_error_raises_the_providers_error(
        mode: str, provider: str, body: dict[str, Any]) -> None:
    with raw_server(reply(200, body)) as server:
        result = call(server, mode, provider=provider, stream=True)
    assert type(result) is aipk.errors.StreamError, result
    assert result.retryable
    assert json.dumps(body).split('"message": "')[1].split('"')[0] in str(result)


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_answered_with_a_whole_answer_says_the_server_does_not_stream(
        mode: str) -> None:
    with raw_server(reply(200, OPENAI_CHAT)) as server:
        result = call(server, mode, stream=True)
    assert type(result) is aipk.errors.ResponseError, result
    assert not result.retryable and "does not stream" in str(result)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None])
def test_an_event_stream_under_another_content_type_still_streams(
        mode: str, content_type: str | None) -> None:
    headers = [("Transfer-Encoding", "chunked")]
    if content_type:
        headers.append(("Content-Type", content_type))
    script = [head(200, headers), chunk(OPENAI_STREAM[:2]), chunk(OPENAI_STREAM[2:]), chunk(b"")]
    with raw_server(script) as server:
        result = call(server, mode, stream=True)
    assert isinstance(result, aipk.ChatResponse), result
    assert result.text == "Hello"


# -- secrets echoed in bodies aipk cannot decode --------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("provider", "stream", "script"), [
    ("openai", False, reply(200, f"not JSON: the key {KEY} is wrong")),
    ("openai", False, reply(200, b'{"choices": "' + KEY.encode() + b'\xff"}')),
    ("openai", True, [*streamed(b"data: {" + KEY.encode() + b"\n\n"), chunk(b"")]),
    ("openai", True, [*streamed(b"data: " + KEY.encode() + b"\xff\n\n"), chunk(b"")]),
    ("ollama-native", True,
     [*streamed(b"oops " + KEY.encode() + b"\n", "application/x-ndjson"), chunk(b"")]),
])
def test_a_key_echoed_in_an_undecodable_body_is_masked_in_the_whole_error_chain(
        mode: str, provider: str, stream: bool, script: list[Any]) -> None:
    with raw_server(script) as server:
        result = call(server, mode, provider=provider, stream=stream)
    assert isinstance(result, aipk.errors.ResponseError), result
    no_secret(result)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("provider", "body"), [
    ("openai", {"error": {"message": "Internal error", "type": "server_error"}}),
    ("anthropic", {"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}}),
    ("anthropic", {"error": {"message": "Internal error", "type": "api_error"}}),  # a proxy's
    ("gemini", {"error": {"code": 503, "message": "Busy", "status": "UNAVAILABLE"}}),
])
def test_a_200_chat_answer_carrying_an_error_is_a_typed_stream_error(
        mode: str, provider: str, body: dict[str, Any]) -> None:
    with raw_server(reply(200, body)) as server:
        result = call(server, mode, provider=provider)
    assert type(result) is aipk.errors.StreamError, result
    assert result.retryable


@pytest.mark.parametrize("mode", MODES)
def test_a_key_echoed_in_response_headers_stays_out_of_the_http_libraries_debug_logs(
        mode: str, caplog: pytest.LogCaptureFixture) -> None:
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    script = reply(401, echo, headers=[("x-echo", KEY), ("Location", f"http://x/?key={KEY}")])
    with caplog.at_level(logging.DEBUG), raw_server(script) as server:
        result = call(server, mode)
    assert isinstance(result, aipk.errors.AuthenticationError), result
    no_secret(result)
    assert any(r.name.startswith(("httpcore", "aiohttp", "httpx")) for r in caplog.records) \
        or mode == "aiohttp"
    assert "SECRETVALUE" not in caplog.text


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_keep_alive_comments_and_empty_data_events_between_events_are_skipped(
        mode: str, provider: str) -> None:
    body = fixture_stream(provider).replace(b"\r\n", b"\n")
    with raw_server([*streamed(body), chunk(b"")]) as server:
        expected = call(server, mode, provider=provider, stream=True)
    assert isinstance(expected, aipk.ChatResponse), expected
    padded = b": keep-alive\n\ndata:\n\n" + body.replace(b"\n\n", b"\n\ndata: \n\n: ping\n\n")
    with raw_server([*streamed(padded), chunk(b"")]) as server:
        result = call(server, mode, provider=provider, stream=True)
    assert isinstance(result, aipk.ChatResponse), result
    assert (result.text, result.finish_reason, result.usage) == (
        expected.text, expected.finish_reason, expected.usage)


@pytest.mark.parametrize("mode", MODES)
def test_a_gemini_server_ignoring_alt_sse_streams_its_json_array_all_the_same(mode: str) -> None:
    capture = json.loads((FIXTURES / "google/llmg-stream-array-thinking.json").read_text())
    body = capture["response"]["body"].encode()
    pieces = list(range(7, len(body), 97))
    with raw_server([*streamed(body, "application/json", pieces), chunk(b"")]) as server:
        result = call(server, mode, provider="gemini", stream=True)
        framed = call(server, mode, provider="gemini", stream=True, stream_framing="json-array")
    assert isinstance(result, aipk.ChatResponse), result
    assert isinstance(framed, aipk.ChatResponse), framed
    assert "alt=sse" in server.requests[0][1] and "alt=sse" not in server.requests[1][1]
    assert (result.text, result.finish_reason, result.usage) == (
        framed.text, framed.finish_reason, framed.usage)
    assert result.text and result.finish_reason is not None


@pytest.mark.parametrize("mode", MODES)
def test_a_json_array_stream_answered_with_an_error_object_raises_the_providers_error(
        mode: str) -> None:
    body = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    with raw_server(reply(200, body)) as server:
        result = call(server, mode, provider="gemini", stream=True, stream_framing="json-array")
    assert type(result) is aipk.errors.StreamError, result
    assert result.retryable and "overloaded" in str(result)
