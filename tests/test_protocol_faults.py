"""HTTP/1.1 faults from a raw-socket server (tests/rawserver.py), for the sync client and the
async client on both transports and for three providers' wire formats: a malformed or
oversized response head, a lying Content-Length, broken chunked framing, a head cut or reset,
informational 1xx heads, a head trickled a byte at a time under ``Timeout(total=...)``, and a
``Content-Encoding`` the HTTP library cannot decode. Each ends in an answer or a typed aipk
error, within the timeouts, without the key, and the client's next call on the same pool is
answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

import aipk
from aipk.errors import AipkError, NetworkError, RequestTimeout, ResponseError
from aipk_testkit.fixtures import find_fixtures

from .rawserver import CLOSE, RESET, chunk, head, raw_server, reply

FIXTURES = find_fixtures(__file__)
KEY = "sk-proto-SECRETVALUE-0123456789"
MODES = ("sync", "httpx", "aiohttp")
PROVIDERS = ("openai", "anthropic", "gemini")
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5",
          "gemini": "gemini-2.5-flash"}
ANSWERS: dict[str, Any] = {
    "openai": {"id": "c1", "object": "chat.completion", "model": "gpt-4o",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                            "finish_reason": "stop"}]},
    "anthropic": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                  "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                  "usage": {"input_tokens": 1, "output_tokens": 1}},
    "gemini": {"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]},
                               "finishReason": "STOP"}]},
}
STREAMS = {"openai": "openai/sdk-chat-stream-text-weather.sse",
           "anthropic": "anthropic/sdk-stream-text-basic.sse",
           "gemini": "google/pai-stream-text.sse"}


def answer(provider: str, stream: bool) -> list[Any]:
    """A whole good answer: a chat body, or a captured event stream."""
    if not stream:
        return reply(200, ANSWERS[provider])
    body = (FIXTURES / STREAMS[provider]).read_bytes().rstrip(b"\r\n") + b"\n\n"
    return [head(200, [("Content-Type", "text/event-stream"),
                       ("Content-Length", str(len(body)))]) + body]


def calls(scripts: Sequence[Any], mode: str, provider: str, *, stream: bool,
          timeout: float | aipk.Timeout = 2.0) -> list[tuple[Any, float]]:
    """One call per script on one client (a chat, or a whole stream): each one's text, or the
    aipk error it raised, and how long it took. Anything but an aipk error escapes."""
    model, messages = MODELS[provider], [aipk.Message.user("hi")]
    outcomes: list[tuple[Any, float]] = []
    with raw_server(*scripts) as server:
        options: dict[str, Any] = {
            "base_url": server.url + ("/v1" if provider == "openai" else ""),
            "api_key": KEY, "timeout": timeout, "max_retries": 0}
        if mode == "sync":
            with aipk.Client(provider, **options) as client:
                for _ in scripts:
                    started = time.monotonic()
                    try:
                        if stream:
                            text = client.stream(model=model, messages=messages) \
                                .get_response().text
                        else:
                            text = client.chat(model=model, messages=messages).text
                        outcomes.append((text, time.monotonic() - started))
                    except AipkError as exc:
                        outcomes.append((exc, time.monotonic() - started))
            return outcomes

        async def scenario() -> None:
            from aipk.transports import AiohttpTransport

            transport = AiohttpTransport() if mode == "aiohttp" else None
            try:
                async with aipk.AsyncClient(provider, transport=transport, **options) as client:
                    for _ in scripts:
                        started = time.monotonic()
                        try:
                            if stream:
                                async with client.stream(model=model,
                                                         messages=messages) as events:
                                    text = (await events.get_response()).text
                            else:
                                text = (await client.chat(model=model, messages=messages)).text
                            outcomes.append((text, time.monotonic() - started))
                        except AipkError as exc:
                            outcomes.append((exc, time.monotonic() - started))
            finally:
                if transport is not None:
                    await transport.close()

        asyncio.run(asyncio.wait_for(scenario(), 30))
    return outcomes


def no_secret(exc: BaseException) -> None:
    current: BaseException | None = exc
    while current is not None:
        for text in (str(current), repr(current), repr(current.args)):
            assert "SECRETVALUE" not in text, text
        current = current.__cause__ or current.__context__


JSON = ("Content-Type", "application/json")
#: a fault, and the error class it ends in on every client
HEAD_FAULTS: dict[str, tuple[list[Any], type[AipkError]]] = {
    "malformed status line": ([b"HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\n{}", CLOSE],
                              NetworkError),
    "not HTTP at all": ([b"hello world\n", CLOSE], NetworkError),
    "header line without a colon": (
        [b"HTTP/1.1 200 OK\r\nContent-Type application/json\r\nContent-Length: 2\r\n\r\n{}",
         CLOSE], NetworkError),
    "a 200 kB header": ([head(200, [JSON, ("X-Big", "a" * 200_000), ("Content-Length", "2")])
                         + b"{}"], NetworkError),
    "Content-Length not a number": ([head(200, [JSON, ("Content-Length", "abc")]) + b"{}",
                                     CLOSE], NetworkError),
    "two Content-Lengths": ([head(200, [JSON, ("Content-Length", "2"),
                                        ("Content-Length", "3")]) + b"{}", CLOSE], NetworkError),
    "Content-Length past the body's end": (
        [head(200, [JSON, ("Content-Length", "500")]) + b'{"id":', CLOSE], NetworkError),
    "chunk size not hex": ([head(200, [JSON, ("Transfer-Encoding", "chunked")])
                            + b"zz\r\n{}\r\n0\r\n\r\n", CLOSE], NetworkError),
    "chunk cut short": ([head(200, [JSON, ("Transfer-Encoding", "chunked")]) + b"100\r\n{",
                         CLOSE], NetworkError),
    "reset in the head": ([b"HTTP/1.1 200 OK\r\nContent-Ty", RESET], NetworkError),
    "closed in the head": ([b"HTTP/1.1 200 OK\r\nContent-Ty", CLOSE], NetworkError),
    "reset in the body": ([head(200, [JSON, ("Content-Length", "500")]) + b'{"id":', 0.02,
                           RESET], NetworkError),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("fault", list(HEAD_FAULTS))
def test_a_broken_http_exchange_is_a_typed_error_and_the_next_call_is_answered(
        mode: str, provider: str, fault: str) -> None:
    script, expected = HEAD_FAULTS[fault]
    for stream in (False, True):
        (broken, took), (text, _) = calls([script, answer(provider, stream)], mode, provider,
                                          stream=stream)
        assert type(broken) is expected, (stream, broken)
        assert "127.0.0.1" in str(broken)  # names the base_url to check
        no_secret(broken)
        assert took < 1.5
        assert isinstance(text, str) and text, (stream, text)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_informational_heads_before_the_answer_are_skipped(mode: str, provider: str) -> None:
    for stream in (False, True):
        script = [b"HTTP/1.1 100 Continue\r\n\r\n",
                  b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n", *answer(provider, stream)]
        (text, _), = calls([script], mode, provider, stream=stream)
        assert isinstance(text, str) and text, (stream, text)


# -- a head trickled a byte at a time, under the call's total ---------------------------------

TOTAL = 0.6
#: How late a call may end past its total on this loaded machine (timers, scheduling).
SLACK = 1.0


def trickled(data: bytes, gap: float) -> list[Any]:
    steps: list[Any] = []
    for i in range(len(data)):
        steps += [data[i:i + 1], gap]
    return steps


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_a_head_trickled_under_the_read_timeout_fails_at_the_total(
        mode: str, provider: str, stream: bool) -> None:
    # a byte every 0.2 s: never silent for the 1 s read timeout, ~10 s for the whole head
    whole = answer(provider, stream)[0]
    status_and_headers, _, body = whole.partition(b"\r\n\r\n")
    slow = [*trickled(status_and_headers + b"\r\n\r\n", 0.2), body]
    outcomes = calls([slow, answer(provider, stream)], mode, provider, stream=stream,
                     timeout=aipk.Timeout(read=1.0, total=TOTAL))
    (late, took), (text, _) = outcomes
    assert type(late) is RequestTimeout, late
    assert f"aipk.Timeout(total={TOTAL:g})" in str(late)
    assert TOTAL - 0.05 <= took <= TOTAL + SLACK, took
    assert isinstance(text, str) and text


# -- a Content-Encoding the HTTP library cannot decode ----------------------------------------


def encoded_as(encoding: str, stream: bool) -> list[Any]:
    garbage = b"\x1b\x00not-really-compressed" * 8
    if not stream:
        return reply(200, garbage, headers=[("Content-Encoding", encoding)])
    return [head(200, [("Content-Type", "text/event-stream"), ("Content-Encoding", encoding),
                       ("Transfer-Encoding", "chunked")]), chunk(garbage), chunk(b"")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("encoding", ["br", "x-unknown", "gzip, zstd-x"])
def test_a_body_in_an_encoding_that_cannot_be_decoded_is_a_response_error_not_retried(
        mode: str, provider: str, encoding: str) -> None:
    for stream in (False, True):
        (broken, _), (text, _) = calls([encoded_as(encoding, stream), answer(provider, stream)],
                                       mode, provider, stream=stream)
        assert type(broken) is ResponseError, (stream, broken)
        assert not broken.retryable
        assert "Content-Encoding" in str(broken) and "Accept-Encoding" in str(broken)
        assert isinstance(text, str) and text

