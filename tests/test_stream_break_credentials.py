"""A stream that breaks after its first event reaches the credential source: over real HTTP
against the emulator, with a two-key `KeyPool` on the sync client and the async client on
both transports (a fake clock: backoffs stand still until someone sleeps).

The stream counted as a success of its key once primed; a cut connection or a provider's
error event after that is reported too, so a key whose streams keep breaking is backed off
and the next calls go to the other key. A failure the key is not to blame for is not counted,
and a stream the caller stops (a ``break`` out of its block, its task cancelled) is no failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import aipk
from aipk.credentials import KeyPool
from aipk.errors import NetworkError, ProviderError, StreamError
from aipk_testkit.emulator import Emulator, Fault, Reply

from .fake_clock import FakeClock

USER = [aipk.Message.user("hi")]
KEY_A, KEY_B = "sk-aaaa-1111", "sk-bbbb-2222"
MODES = ["sync", "async-httpx", "async-aiohttp"]
LONG = Reply(text="a long answer, sent three characters a chunk", chunk_size=3)


class Side:
    """One client over a pool of ``KEY_A`` and ``KEY_B``, its calls awaited whatever its mode."""

    def __init__(self, client: aipk.Client | aipk.AsyncClient, model: str) -> None:
        self.client = client
        self.model = model
        pool = client.credentials
        assert isinstance(pool, KeyPool) and len(pool) == 2
        self.pool = pool
        self.ids = dict(zip((KEY_A, KEY_B), pool.ids, strict=True))

    async def stream(self, *, stop_after_first: bool = False) -> tuple[int, ProviderError | None]:
        """Stream one answer (leaving its block after the first event with
        ``stop_after_first``): the events received and the error that ended it, if any."""
        client, got = self.client, 0
        try:
            if isinstance(client, aipk.Client):
                with client.stream(model=self.model, messages=USER) as stream:
                    for _ in stream:
                        got += 1
                        if stop_after_first:
                            break
            else:
                async with client.stream(model=self.model, messages=USER) as astream:
                    async for _ in astream:
                        got += 1
                        if stop_after_first:
                            break
        except ProviderError as exc:
            return got, exc
        return got, None

    async def chat(self) -> None:
        if isinstance(self.client, aipk.Client):
            self.client.chat(model=self.model, messages=USER)
        else:
            await self.client.chat(model=self.model, messages=USER)


@asynccontextmanager
async def pooled(emu: Emulator, mode: str, provider: str = "openai") -> AsyncIterator[Side]:
    emu.require_api_keys(KEY_A, KEY_B)
    clock = FakeClock()
    model = "gpt-4o-mini" if provider == "openai" else "claude-3-5-haiku-latest"
    common: dict[str, Any] = {"base_url": emu.url(provider), "api_key": [KEY_A, KEY_B],
                              "clock": clock, "max_retries": 0}
    if mode == "sync":
        with aipk.Client(provider, sleep=clock.sleep, **common) as client:
            yield Side(client, model)
        return
    from aipk.transports import AiohttpTransport

    own = AiohttpTransport() if mode == "async-aiohttp" else None
    try:
        async with aipk.AsyncClient(provider, sleep=clock.asleep, transport=own,
                                    **common) as aclient:
            yield Side(aclient, model)
    finally:
        if own is not None:  # a transport passed in stays open with its client
            await own.close()


def presented(emu: Emulator) -> list[str]:
    return [r.headers["authorization"].removeprefix("Bearer ") for r in emu.requests]


BREAKS = {
    "reset": (Fault.reset_mid_stream(after_events=3, reply=LONG), NetworkError, None),
    "rate-limit-event": (Fault.inband_error(message="Rate limit reached for requests",
                                            code="rate_limit_exceeded", after_events=3),
                         StreamError, "stream error rate_limit_exceeded"),
    "overloaded-event": (Fault.inband_error(message="Overloaded", code="overloaded",
                                            after_events=3),
                         StreamError, "stream error overloaded"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", list(BREAKS))
def test_a_stream_broken_after_its_first_event_backs_off_its_key(emu: Emulator, mode: str,
                                                                kind: str) -> None:
    fault, error_class, label = BREAKS[kind]

    async def scenario() -> None:
        async with pooled(emu, mode) as side:
            emu.enqueue(fault)
            got, error = await side.stream()
            assert got >= 1 and isinstance(error, error_class)  # it broke after events came
            [served] = presented(emu)
            broken = side.ids[served]
            health = side.pool.health(broken)
            assert health.consecutive_failures == 1 and health.backoff_remaining > 0
            assert health.status == "backoff"
            if label is not None:
                assert health.last_error == label
            counters = side.pool.metrics.snapshot()[broken]
            assert counters.successes == 1 and counters.errors == 1  # the success still counts
            emu.requests.clear()
            await side.chat()
            await side.chat()  # round robin would come back to the broken key: it is skipped
            other = KEY_B if served == KEY_A else KEY_A
            assert presented(emu) == [other, other]

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_error_the_key_is_not_to_blame_for_does_not_count_against_it(
        emu: Emulator, mode: str) -> None:
    """Anthropic's ``invalid_request_error`` event is not retryable: the pool hears of it
    (an error in the key's counters) but the key stays healthy and in the rotation."""

    async def scenario() -> None:
        async with pooled(emu, mode, provider="anthropic") as side:
            emu.enqueue(Fault.inband_error(message="Bad request", code="invalid_request_error",
                                           after_events=6))
            got, error = await side.stream()
            assert got >= 1 and isinstance(error, StreamError) and not error.retryable
            [first, _] = side.pool.ids
            health = side.pool.health(first)
            assert health.consecutive_failures == 0 and health.status == "healthy"
            assert side.pool.metrics.snapshot()[first].errors == 1
            emu.requests.clear()
            await side.chat()
            await side.chat()
            assert [r.headers["x-api-key"] for r in emu.requests] == [KEY_B, KEY_A]

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_the_caller_leaves_after_its_first_event_records_no_failure(
        emu: Emulator, mode: str) -> None:
    async def scenario() -> None:
        async with pooled(emu, mode) as side:
            emu.enqueue(LONG)
            got, error = await side.stream(stop_after_first=True)
            assert got == 1 and error is None
            [first, _] = side.pool.ids
            health = side.pool.health(first)
            assert health.consecutive_failures == 0 and health.status == "healthy"
            counters = side.pool.metrics.snapshot()[first]
            assert counters.successes == 1 and counters.errors == 0
            emu.requests.clear()
            await side.chat()
            await side.chat()
            assert presented(emu) == [KEY_B, KEY_A]  # the first key is still in the rotation

    asyncio.run(scenario())


def test_a_sync_stream_closed_after_its_first_event_records_no_failure(emu: Emulator) -> None:
    emu.require_api_keys(KEY_A, KEY_B)
    emu.enqueue(LONG)
    with aipk.Client("openai", base_url=emu.url("openai"), api_key=[KEY_A, KEY_B],
                     max_retries=0) as client:
        stream = client.stream(model="gpt-4o-mini", messages=USER)
        next(iter(stream))
        stream.close()
        pool = client.credentials
        assert isinstance(pool, KeyPool)
        first = pool.ids[0]
        assert pool.health(first).consecutive_failures == 0
        assert pool.metrics.snapshot()[first].errors == 0


@pytest.mark.parametrize("mode", ["async-httpx", "async-aiohttp"])
def test_an_async_stream_cancelled_after_its_first_event_records_no_failure(
        emu: Emulator, mode: str) -> None:
    async def scenario() -> None:
        async with pooled(emu, mode) as side:
            emu.enqueue(Fault.stall(1.0, after_events=2, reply=LONG))
            first_event = asyncio.Event()
            client = side.client
            assert isinstance(client, aipk.AsyncClient)

            async def read() -> None:
                async for _ in client.stream(model=side.model, messages=USER):
                    first_event.set()

            task = asyncio.ensure_future(read())
            await asyncio.wait_for(first_event.wait(), 5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            [first, _] = side.pool.ids
            assert side.pool.health(first).consecutive_failures == 0
            assert side.pool.metrics.snapshot()[first].errors == 0

    asyncio.run(scenario())
