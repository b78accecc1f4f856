"""The aiohttp transport's connection protocol (``aipk._aiohttp_reads``), over real HTTP against
the loopback emulator: the read timeout on one timer per connection, the same bound as
aiohttp's own per-read timer (each wait for bytes, never the whole answer), without scheduling
timers per request; and no resume of a connection that is not paused, while a paused one is
resumed."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from aiohttp.client_proto import ResponseHandler

import aipk
from aipk import Message, Timeout
from aipk._aiohttp_reads import _RESUMES_ON_EVERY_READ, LazyReadTimer
from aipk.errors import RequestTimeout
from aipk.transports import AiohttpTransport, TransportFailure
from aipk_testkit.emulator import Emulator, Fault, Reply

from .rawserver import chunk, gzipped, head, raw_server

USER = [Message.user("Hello there")]
NO_RETRY = aipk.RetryPolicy(max_retries=0)
TEXT = "The quick brown fox jumps over the lazy dog."


def _client(emu: Emulator, transport: AiohttpTransport, read: float) -> aipk.AsyncClient:
    return aipk.AsyncClient("openai", base_url=emu.url("openai"), api_key="sk-test-0123456789",
                            retry=NO_RETRY, timeout=Timeout(read=read), transport=transport)


async def _chat(client: aipk.AsyncClient) -> str:
    return (await client.chat(model="gpt-4o-mini", messages=USER)).text


def test_the_transports_own_session_reads_with_the_lazy_timer(emu: Emulator) -> None:
    async def run() -> Any:
        transport = AiohttpTransport()
        async with _client(emu, transport, 5.0) as client:
            await _chat(client)
            factory = transport._pool.session.connector._factory  # type: ignore[union-attr]
        await transport.close()
        return factory

    assert asyncio.run(run()).func is LazyReadTimer


def test_requests_on_one_connection_schedule_no_timer_each(emu: Emulator) -> None:
    """aiohttp's own protocol schedules two read timers per request (one when the request is
    written, one when the answer's bytes arrive); twenty requests here schedule at most the
    connection's one. (Timers of other parts of aiohttp, such as the per-request connect
    timeout some aiohttp versions schedule, are not counted.)"""
    async def run() -> tuple[int, list[str]]:
        loop = asyncio.get_running_loop()
        transport = AiohttpTransport()
        async with _client(emu, transport, 5.0) as client:
            await _chat(client)  # the connection is open (and its timer armed)
            scheduled = 0
            call_at = loop.call_at

            def counting_call_at(when: float, callback: Any, *args: Any,
                                 **kwargs: Any) -> asyncio.TimerHandle:
                nonlocal scheduled
                if isinstance(getattr(callback, "__self__", None), ResponseHandler):
                    scheduled += 1  # a connection's read timer
                return call_at(when, callback, *args, **kwargs)

            loop.call_at = counting_call_at  # type: ignore[method-assign]
            try:
                texts = [await _chat(client) for _ in range(20)]
            finally:
                del loop.call_at  # type: ignore[method-assign]
        await transport.close()
        return scheduled, texts

    scheduled, texts = asyncio.run(run())
    assert texts == ["echo: Hello there"] * 20
    assert scheduled <= 2


def test_gaps_each_shorter_than_the_read_timeout_are_waited_out_past_its_first_deadline(
        emu: Emulator) -> None:
    """The connection's timer fires at the first request's deadline and finds bytes came
    since: it waits on, so a stream whose silences are each shorter than ``read`` is read to
    the end though it lasts longer than ``read``."""
    async def run() -> str:
        transport = AiohttpTransport()
        async with _client(emu, transport, 0.5) as client:
            await _chat(client)  # arms the connection's timer
            await asyncio.sleep(0.3)  # the idle connection's timer may fire meanwhile
            emu.enqueue(Fault.stall(0.35, after_events=2, reply=Reply(text=TEXT)),
                        Fault.stall(0.35, after_events=1, reply=Reply(text=TEXT)))
            texts = []
            for _ in range(2):
                chat = client.stream(model="gpt-4o-mini", messages=USER)
                async for _event in chat:
                    pass
                texts.append((await chat.get_response()).text)
        await transport.close()
        return " | ".join(texts)

    assert asyncio.run(run()) == f"{TEXT} | {TEXT}"


def test_a_shorter_read_timeout_than_the_armed_timer_fires_on_time(emu: Emulator) -> None:
    """A connection whose timer is armed for a patient client's 5 s serves an impatient
    client's request (0.3 s): the silence times out after 0.3 s, not at the 5 s timer."""
    async def run() -> tuple[float, BaseException | None, str]:
        shared = AiohttpTransport()
        async with _client(emu, shared, 5.0) as patient, \
                _client(emu, shared, 0.3) as impatient:
            await _chat(patient)  # the pooled connection's timer: in 5 s
            emu.enqueue(Fault.stall(1.5))
            started = time.monotonic()
            failed: BaseException | None = None
            try:
                await _chat(impatient)
            except RequestTimeout as exc:
                failed = exc
            took = time.monotonic() - started
            after = await _chat(patient)  # a new connection, as before
        await shared.close()
        return took, failed, after

    took, failed, after = asyncio.run(run())
    assert isinstance(failed, RequestTimeout) and not failed.before_first_byte
    assert took < 1.4
    assert after == "echo: Hello there"


def test_a_slow_head_on_a_reused_connection_times_out(emu: Emulator) -> None:
    async def run() -> BaseException | None:
        transport = AiohttpTransport()
        async with _client(emu, transport, 0.3) as client:
            await _chat(client)
            emu.enqueue(Fault.slow_first_byte(1.5))
            try:
                await _chat(client)
            except RequestTimeout as exc:
                return exc
            finally:
                await transport.close()
        return None

    failed = asyncio.run(run())
    assert isinstance(failed, RequestTimeout) and failed.before_first_byte


LONG_TEXT = "".join(f"{i:07d} " for i in range(3_000))  # 24,000 characters: 6,000 events


async def _stream_text(client: aipk.AsyncClient, pause: float = 0.0) -> str:
    parts: list[str] = []
    async for event in client.stream(model="gpt-4o-mini", messages=USER):
        if type(event) is aipk.TextDelta:
            if not parts and pause:
                await asyncio.sleep(pause)  # the body's buffer fills: aiohttp pauses reading
            parts.append(event.text)
    return "".join(parts)


def test_a_stream_read_without_pauses_resumes_the_connection_for_no_event(
        emu: Emulator, monkeypatch: Any) -> None:
    """aiohttp's stream reader asks the protocol to resume reading for every HTTP chunk it
    hands out (one per event); the lazy protocol skips the resume (an empty read fed to the
    parser, a transport resume) while nothing is paused."""
    if not _RESUMES_ON_EVERY_READ:
        pytest.skip("this aiohttp's protocol does not resume on every read")
    resumes = 0
    data_received = ResponseHandler.data_received

    def counting(self: ResponseHandler, data: bytes) -> None:
        nonlocal resumes
        resumes += not data  # the empty read resume_reading feeds the parser
        data_received(self, data)

    monkeypatch.setattr(ResponseHandler, "data_received", counting)
    emu.enqueue(Reply(text=LONG_TEXT))

    async def run() -> str:
        transport = AiohttpTransport()
        async with _client(emu, transport, 5.0) as client:
            text = await _stream_text(client)
        await transport.close()
        return text

    assert asyncio.run(run()) == LONG_TEXT
    assert resumes < 10  # one per pause at most (aiohttp's own protocol: one per event)


def test_a_stream_whose_reading_was_paused_is_resumed_and_read_to_the_end(
        emu: Emulator, monkeypatch: Any) -> None:
    """A caller slower than the server: the body's buffer fills, aiohttp pauses reading the
    socket, and the reads that empty the buffer resume it; every event arrives."""
    pauses = 0
    pause_reading = ResponseHandler.pause_reading

    def counting(self: ResponseHandler) -> None:
        nonlocal pauses
        pauses += 1
        pause_reading(self)

    monkeypatch.setattr(ResponseHandler, "pause_reading", counting)
    emu.enqueue(Reply(text=LONG_TEXT * 4))

    async def run() -> str:
        transport = AiohttpTransport()
        async with _client(emu, transport, 5.0) as client:
            text = await asyncio.wait_for(_stream_text(client, pause=0.5), 30)
        await transport.close()
        return text

    assert asyncio.run(run()) == LONG_TEXT * 4
    assert pauses > 0


def test_a_compressed_stream_whose_reading_was_paused_is_read_to_the_end() -> None:
    """The same over a gzip body (aiohttp pauses its parser inside a decompressed read and
    resumes it from the bytes it kept): every event arrives."""
    events = [{"id": "c1", "object": "chat.completion.chunk", "model": "m",
               "choices": [{"index": 0, "delta": {"content": LONG_TEXT[i:i + 4]},
                            "finish_reason": None}]} for i in range(0, len(LONG_TEXT), 4)]
    events.append({"id": "c1", "object": "chat.completion.chunk", "model": "m",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = gzipped(b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
                   + b"data: [DONE]\n\n")
    script = [head(200, [("Content-Type", "text/event-stream"), ("Content-Encoding", "gzip"),
                         ("Transfer-Encoding", "chunked")]),
              *[chunk(body[at:at + 4096]) for at in range(0, len(body), 4096)], chunk(b"")]

    async def run(url: str) -> str:
        transport = AiohttpTransport()
        async with aipk.AsyncClient("openai", base_url=url, api_key="sk-test-0123456789",
                                    retry=NO_RETRY, timeout=Timeout(read=5.0),
                                    transport=transport) as client:
            text = await asyncio.wait_for(_stream_text(client, pause=0.5), 30)
        await transport.close()
        return text

    with raw_server(script) as server:
        assert asyncio.run(run(server.url)) == LONG_TEXT


def test_a_transport_without_a_timeout_keeps_its_sessions_own(emu: Emulator) -> None:
    """A transport given no timeout, over a session of yours, sends each request without
    aiohttp's ``timeout=``: the session's own read timeout bounds the silence in the body."""
    async def run() -> TransportFailure | None:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=0.2))
        transport = AiohttpTransport(session)
        request = aipk.HttpRequest(method="POST", url=emu.url("openai") + "/chat/completions",
                                   headers={"authorization": "Bearer sk-test-0123456789",
                                            "content-type": "application/json"})
        body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}'
        emu.enqueue(Fault.stall(1.0))  # half the body, a second's silence, the rest
        failure: TransportFailure | None = None
        try:
            response = await transport.send(request, body)
            await response.read()
        except TransportFailure as exc:
            failure = exc
        await session.close()
        return failure

    failure = asyncio.run(run())
    assert failure is not None and failure.timeout
