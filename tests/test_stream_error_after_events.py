"""Events a provider sent before an in-band error (or an undecodable frame) in the same read
reach the caller before the error does: nothing that arrived is lost. Over the session itself
and over real HTTP on every client."""

from __future__ import annotations

import asyncio
import json

import pytest

import aipk
import aipk_openai.plugin
from aipk import Message, TextDelta
from aipk.errors import ResponseError, StreamError
from aipk_openai import OPENAI
from aipk_testkit.emulator import Emulator, Fault
from aipk_testkit.fixtures import make_engine, make_provider

KEY = "sk-test-0123456789abcdef"
ASK = [Message.user("Hi")]


def _chunk(text: str) -> bytes:
    return b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "model": "m",
                                   "choices": [{"index": 0, "delta": {"content": text},
                                                "finish_reason": None}]}).encode() + b"\n\n"


ERROR = b'data: {"error": {"message": "Overloaded", "code": "server_error"}}\n\n'


@pytest.mark.parametrize("bad", [ERROR, b"data: {not json\n\n"], ids=["in-band", "garbled"])
@pytest.mark.parametrize("primed", [True, False])
def test_events_before_a_failing_frame_of_the_same_read_come_first(bad: bytes,
                                                                   primed: bool) -> None:
    engine = make_engine(make_provider(OPENAI), {"openai": aipk_openai.plugin})
    session = engine.open_stream(aipk.ChatRequest(model="m", messages=ASK), {}, None)
    read = _chunk("a") + _chunk("b") + _chunk("c") + bad + _chunk("never")
    if primed:  # as the clients read: the first events, then the rest of the read
        events = session.first(read)
        assert [e.text for e in events] == ["a"]  # type: ignore[union-attr]
        events += session.backlog()
    else:
        events = session.feed(read)
    assert [e.text for e in events if type(e) is TextDelta] == ["a", "b", "c"]
    expected = StreamError if bad is ERROR else ResponseError
    with pytest.raises(expected):
        session.finish()
    with pytest.raises(expected):  # and again: the stream does not go on after its error
        session.feed(_chunk("later"))
    assert session.response().text == "abc"


@pytest.mark.parametrize("transport", ["sync", "httpx", "aiohttp"])
def test_every_client_hands_out_the_events_before_an_in_band_error(aipk_emulator: Emulator,
                                                                   transport: str) -> None:
    aipk_emulator.enqueue(Fault.inband_error(message="Overloaded", after_events=4))
    url = aipk_emulator.url("openai")
    texts: list[str] = []
    if transport == "sync":
        with aipk.Client("openai", base_url=url, api_key=KEY, max_retries=0) as client, \
                pytest.raises(StreamError):
            for event in client.stream(model="gpt-4o-mini", messages=ASK):
                if type(event) is TextDelta:
                    texts.append(event.text)
    else:
        async def main() -> None:
            from aipk.transports import AiohttpTransport

            own = AiohttpTransport() if transport == "aiohttp" else None
            try:
                async with aipk.AsyncClient("openai", base_url=url, api_key=KEY,
                                            max_retries=0, transport=own) as client:
                    async for event in client.stream(model="gpt-4o-mini", messages=ASK):
                        if type(event) is TextDelta:
                            texts.append(event.text)
            finally:
                if own is not None:  # a transport passed in stays open with its client
                    await own.close()

        with pytest.raises(StreamError):
            asyncio.run(main())
    assert len(aipk_emulator.requests) == 1
    # the emulator's default answer, four characters an event, after its role-only event
    assert texts == ["This", " res", "pons"], "events before the error were lost"
