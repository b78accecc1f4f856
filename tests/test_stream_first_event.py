"""The first event goes out before the rest of its read is decoded, and nothing else changes.

``StreamSession.first`` decodes a chunk only up to its first events and keeps the rest for
``backlog``: over real captured streams of every protocol, however the body is split into
chunks, priming that way gives exactly the events (and answer) of feeding every chunk whole;
and over real HTTP the first text delta of a short answer is handed out before the later
frames of the same read are decoded.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aipk
from aipk import StreamEvent
from aipk._core import Engine
from aipk._session import StreamSession
from aipk_testkit.emulator import Emulator, Reply
from aipk_testkit.fixtures import Captures

from .test_stream_end_property import CASES, FIXTURES, PROTOCOLS, REQUEST


def _chunks(raw: bytes, splits: list[int]) -> list[bytes]:
    cuts = sorted({*[s for s in splits if 0 < s < len(raw)], len(raw)})
    out, start = [], 0
    for end in cuts:
        out.append(raw[start:end])
        start = end
    return out


def _fed(engine: Engine, chunks: list[bytes]) -> tuple[list[StreamEvent], Any]:
    session = engine.open_stream(REQUEST, {}, None)
    events = [e for chunk in chunks for e in session.feed(chunk)]
    events += session.finish()
    return events, session.response()


def _primed(engine: Engine, chunks: list[bytes]) -> tuple[list[StreamEvent], Any, int]:
    """As the clients read: ``first`` until events, then ``backlog``, then ``feed``; also how
    many events the priming call returned."""
    session: StreamSession = engine.open_stream(REQUEST, {}, None)
    events: list[StreamEvent] = []
    primed = 0
    rest = iter(chunks)
    for chunk in rest:
        events = session.first(chunk)
        if events:
            primed = len(events)
            events += session.backlog()
            break
    for chunk in rest:
        events += session.feed(chunk)
    events += session.finish()
    return events, session.response(), primed


@pytest.mark.parametrize(("folder", "name"), CASES)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_priming_gives_the_same_events_as_feeding_whole_chunks(
        folder: str, name: str, data: st.DataObject) -> None:
    factory, _ = PROTOCOLS[folder]
    raw = Captures(FIXTURES / folder).raw(name)
    splits = data.draw(st.lists(st.integers(1, len(raw)), max_size=6), label="splits")
    chunks = _chunks(raw, splits)
    try:
        expected, whole = _fed(factory(), chunks)
    except aipk.errors.ProviderError as exc:  # the same error, whichever way it is read
        with pytest.raises(type(exc)):
            _primed(factory(), chunks)
        return
    events, response, primed = _primed(factory(), chunks)
    assert events == expected
    assert response == whole
    assert primed <= len(expected)


def test_first_decodes_one_frame_of_a_read_holding_many() -> None:
    factory, _ = PROTOCOLS["openai"]
    raw = Captures(FIXTURES / "openai").raw(next(n for f, n in CASES if f == "openai"))
    expected, _ = _fed(factory(), [raw])
    session = factory().open_stream(REQUEST, {}, None)
    first = session.first(raw)  # the whole stream in one read
    assert first and len(first) < len(expected)
    assert first + session.backlog() + session.finish() == expected
    assert session.backlog() == []  # taken once


def test_the_first_delta_is_out_before_the_rest_of_its_read_is_decoded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Over real HTTP (aiohttp) one read holds the whole short answer: when the caller gets
    the first TextDelta, only the frames up to it have been decoded, not the whole read."""
    decoded = {"frames": 0}
    events_of = StreamSession._events

    def counting(self: StreamSession, sse_events: Any) -> list[StreamEvent]:
        decoded["frames"] += len(sse_events)
        return events_of(self, sse_events)

    monkeypatch.setattr(StreamSession, "_events", counting)
    with Emulator() as emu:
        emu.set_default(Reply(text="abcdefghijklmnop", chunk_size=2))

        async def run() -> tuple[int, int, str]:
            async with aipk.AsyncClient("openai", base_url=emu.url("openai"), api_key="sk-test",
                                        transport=aipk.transports.AiohttpTransport()) as client:
                at_first = -1
                text = []
                async for event in client.stream(model="gpt-4o-mini",
                                                 messages=[aipk.Message.user("Hi")]):
                    if type(event) is aipk.TextDelta:
                        if at_first < 0:
                            at_first = decoded["frames"]
                        text.append(event.text)
                await client._transport.close()
                return at_first, decoded["frames"], "".join(text)

        at_first, total, text = asyncio.run(run())
    assert text == "abcdefghijklmnop"
    assert total >= 10  # eight deltas, the role chunk, the finish chunk (and usage, [DONE])
    assert 1 <= at_first <= 2  # the role chunk and the first delta's frame


@pytest.mark.parametrize(("folder", "name"), CASES)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_reads_of_many_events_give_the_events_of_byte_by_byte_reads(
        folder: str, name: str, data: st.DataObject) -> None:
    """A read holding many whole events is decoded in one pass (one UTF-8 decode, one split);
    a read of one byte never holds a whole event, so it goes line by line. Over real captured
    streams of every protocol, any split into reads gives the events, answer and errors of
    reading the body one byte at a time."""
    factory, _ = PROTOCOLS[folder]
    raw = Captures(FIXTURES / folder).raw(name)
    splits = data.draw(st.lists(st.integers(1, len(raw)), max_size=6), label="splits")

    def outcome(chunks: list[bytes]) -> object:
        try:
            return _fed(factory(), chunks)
        except aipk.errors.ProviderError as exc:
            return type(exc), str(exc)

    assert outcome(_chunks(raw, splits)) == outcome([raw[i:i + 1] for i in range(len(raw))])
