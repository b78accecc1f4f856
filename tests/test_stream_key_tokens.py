"""The tokens a stream reported count on its key whichever way it ended, exactly once: over
real HTTP against the emulator, with a two-key `KeyPool` on the sync client and the async
client on both transports.

A provider bills the usage it reported, so the key's counters (``pool.metrics``) hold it for a
stream that ran to its end, one whose connection was reset or whose body ended early after the
usage chunk, one the caller left after the usage event, and one whose task was cancelled
there. A stream that ends and is then closed counts its usage once, not twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import aipk
from aipk import FinishEvent, UsageEvent
from aipk.credentials import KeyPool
from aipk.errors import ProviderError
from aipk_testkit.emulator import Emulator, Fault, Reply

USER = [aipk.Message.user("hi")]
KEY_A, KEY_B = "sk-aaaa-1111", "sk-bbbb-2222"
MODES = ["sync", "async-httpx", "async-aiohttp"]
ANSWER = Reply(text="an answer sent three characters a chunk", chunk_size=3, usage=(11, 7))
SHORT = Reply(text="abcdefghi", chunk_size=3, usage=(11, 7))
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest"}


@asynccontextmanager
async def pooled(emu: Emulator, mode: str,
                 provider: str = "openai") -> AsyncIterator[aipk.Client | aipk.AsyncClient]:
    emu.require_api_keys(KEY_A, KEY_B)
    common: dict[str, Any] = {"base_url": emu.url(provider), "api_key": [KEY_A, KEY_B],
                              "max_retries": 0}
    if mode == "sync":
        with aipk.Client(provider, **common) as client:
            yield client
        return
    from aipk.transports import AiohttpTransport

    own = AiohttpTransport() if mode == "async-aiohttp" else None
    try:
        async with aipk.AsyncClient(provider, transport=own, **common) as aclient:
            yield aclient
    finally:
        if own is not None:
            await own.close()


async def read(client: aipk.Client | aipk.AsyncClient, provider: str, *,
               until_usage: bool = False, read_nothing: bool = False) -> ProviderError | None:
    """Stream one answer inside its block (leaving it at the `UsageEvent` after its
    `FinishEvent` with ``until_usage``, at once with ``read_nothing``); the error that ended
    it, if any."""
    model = MODELS[provider]
    finished = False
    try:
        if isinstance(client, aipk.Client):
            with client.stream(model=model, messages=USER) as stream:
                if not read_nothing:
                    for event in stream:
                        finished = finished or isinstance(event, FinishEvent)
                        if until_usage and finished and isinstance(event, UsageEvent):
                            break
        else:
            async with client.stream(model=model, messages=USER) as astream:
                if not read_nothing:
                    async for event in astream:
                        finished = finished or isinstance(event, FinishEvent)
                        if until_usage and finished and isinstance(event, UsageEvent):
                            break
    except ProviderError as exc:
        return exc
    return None


def key_counters(client: aipk.Client | aipk.AsyncClient) -> tuple[int, int, int]:
    """(tokens, successes, errors) of the pool's first key, the one every test's stream used."""
    pool = client.credentials
    assert isinstance(pool, KeyPool)
    counters = pool.metrics.snapshot()[pool.ids[0]]
    return counters.tokens, counters.successes, counters.errors


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cut", ["reset", "truncate"])
def test_a_stream_cut_after_its_usage_chunk_counts_the_tokens_on_its_key(
        emu: Emulator, mode: str, cut: str) -> None:
    """Every event, the usage chunk included, then the connection reset or the body ended
    without ``[DONE]``: the key spent the 18 tokens, counted once, beside the break."""
    fault = (Fault.reset_mid_stream if cut == "reset" else Fault.truncate)(
        after_events=1000, reply=ANSWER)

    async def scenario() -> None:
        async with pooled(emu, mode) as client:
            emu.enqueue(fault)
            error = await read(client, "openai")
            assert error is not None  # NetworkError, IncompleteStreamError
            assert key_counters(client) == (18, 1, 1)

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_cut_before_its_usage_counts_no_tokens(emu: Emulator, mode: str) -> None:
    async def scenario() -> None:
        async with pooled(emu, mode) as client:
            emu.enqueue(Fault.reset_mid_stream(after_events=3, reply=ANSWER))
            assert await read(client, "openai") is not None
            assert key_counters(client) == (0, 1, 1)

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_that_ends_counts_its_tokens_once(emu: Emulator, mode: str) -> None:
    """Run to its end, then closed by its block and read again for its response: once."""

    async def scenario() -> None:
        async with pooled(emu, mode) as client:
            emu.enqueue(ANSWER)
            assert await read(client, "openai") is None
            assert key_counters(client) == (18, 1, 0)
            emu.enqueue(ANSWER)
            if isinstance(client, aipk.Client):
                stream = client.stream(model=MODELS["openai"], messages=USER)
                assert stream.get_response().usage is not None
                stream.close()
                stream.close()
            else:
                astream = client.stream(model=MODELS["openai"], messages=USER)
                assert (await astream.get_response()).usage is not None
                await astream.close()
                await astream.close()
            assert key_counters(client)[0] == 18  # the second call went to the other key
            pool = client.credentials
            assert isinstance(pool, KeyPool)
            assert pool.metrics.snapshot()[pool.ids[1]].tokens == 18

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_the_caller_leaves_after_its_usage_counts_the_tokens(emu: Emulator,
                                                                     mode: str) -> None:
    """Anthropic's usage comes in ``message_delta``, before ``message_stop``: the caller
    leaves there, the answer unfinished but billed."""

    async def scenario() -> None:
        async with pooled(emu, mode, "anthropic") as client:
            emu.enqueue(ANSWER)
            assert await read(client, "anthropic", until_usage=True) is None
            assert key_counters(client) == (18, 1, 0)

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", ["async-httpx", "async-aiohttp"])
def test_a_stream_cancelled_after_its_usage_counts_the_tokens(emu: Emulator,
                                                              mode: str) -> None:
    """The task reading it is cancelled while the provider is silent after the usage event
    (``message_start``, ``content_block_start``, ``ping``, three text deltas,
    ``content_block_stop`` and ``message_delta``, then a stall before ``message_stop``)."""

    async def scenario() -> None:
        async with pooled(emu, mode, "anthropic") as client:
            assert isinstance(client, aipk.AsyncClient)
            emu.enqueue(Fault.stall(5.0, after_events=8, reply=SHORT))
            usage_seen = asyncio.Event()

            async def reader() -> None:
                finished = False
                async for event in client.stream(model=MODELS["anthropic"], messages=USER):
                    finished = finished or isinstance(event, FinishEvent)
                    if finished and isinstance(event, UsageEvent):  # message_delta's
                        usage_seen.set()

            task = asyncio.ensure_future(reader())
            await asyncio.wait_for(usage_seen.wait(), 5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert key_counters(client) == (18, 1, 0)

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_an_anthropic_stream_cut_after_its_first_text_counts_its_prompt(
        emu: Emulator, mode: str) -> None:
    """Anthropic reports the prompt's tokens in ``message_start``: a stream cut after its
    first text, before ``message_delta``, still counts them on its key (the input was
    billed), with the output ``message_start`` reported."""
    async def scenario() -> None:
        async with pooled(emu, mode, "anthropic") as client:
            emu.enqueue(Fault.reset_mid_stream(after_events=4, reply=ANSWER))
            assert await read(client, "anthropic") is not None
            tokens, successes, errors = key_counters(client)
            assert (successes, errors) == (1, 1)
            assert 11 <= tokens < 11 + 7  # the prompt's 11, not yet the whole answer's 7

    asyncio.run(scenario())
