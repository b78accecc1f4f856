"""Client-side limits and proactive waits, end to end against the emulator (sleeps recorded)."""

from __future__ import annotations

import asyncio

import pytest

import aipk
from aipk.limits import ClientLimits
from aipk_testkit.emulator import Emulator, Fault, Reply

USER = [aipk.Message.user("hi")]


def test_requests_per_minute_spaces_calls(emu: Emulator) -> None:
    sleeps: list[float] = []
    with aipk.Client("openai", base_url=emu.url("openai"), api_key="sk-x", sleep=sleeps.append,
                     limits=ClientLimits(requests_per_minute=2)) as client:
        for _ in range(3):
            client.chat(model="m", messages=USER)
        assert len(sleeps) == 1
        assert 59.0 < sleeps[0] <= 60.0  # the third waits until the first is a minute old
        client.set_limits(ClientLimits(requests_per_minute=600))
        client.chat(model="m", messages=USER)
        assert client.limits.requests_per_minute == 600
        # the recorded sleep let no time pass: the fourth queues behind the third's booking
        # (a new limit applies to what was booked, in arrival order), but not a minute more
        assert len(sleeps) == 2 and 58.0 < sleeps[1] <= sleeps[0]
    assert len(emu.requests) == 4


def test_a_wait_beyond_the_cap_fails_fast(emu: Emulator) -> None:
    sleeps: list[float] = []
    with aipk.Client("openai", base_url=emu.url("openai"), api_key="sk-x", sleep=sleeps.append,
                     limits=ClientLimits(requests_per_day=1)) as client:
        client.chat(model="m", messages=USER)
        with pytest.raises(aipk.RateLimitError, match="client-side limits") as info:
            client.chat(model="m", messages=USER)
    assert info.value.retry_after is not None and info.value.retry_after > 3600
    assert sleeps == [] and len(emu.requests) == 1  # nothing sent, nothing slept


def test_provider_retry_after_delays_the_next_call(emu: Emulator) -> None:
    sleeps: list[float] = []
    emu.enqueue(Fault.status(429, retry_after=5))
    with aipk.Client("openai", base_url=emu.url("openai"), api_key="sk-x", sleep=sleeps.append,
                     max_retries=0) as client:
        with pytest.raises(aipk.RateLimitError):
            client.chat(model="m", messages=USER)
        emu.enqueue(Reply(text="later"))
        assert client.chat(model="m", messages=USER).text == "later"
    assert len(sleeps) == 1 and 4.0 < sleeps[0] <= 5.0  # waited for not_before first


def test_exhausted_window_reported_by_headers_is_waited_for(emu: Emulator) -> None:
    sleeps: list[float] = []
    emu.set_rate_limit(requests=1, tokens=100_000, window=20.0)
    with aipk.Client("openai", base_url=emu.url("openai"), api_key="sk-x",
                     sleep=sleeps.append) as client:
        client.chat(model="m", messages=USER)  # remaining now 0, reset in ~20 s
        state = client.rate_limits("m")
        assert state is not None and state.requests is not None
        assert state.requests.remaining == 0
        with pytest.raises(aipk.RateLimitError):  # we recorded the wait without sleeping,
            client.chat(model="m", messages=USER)  # so the emulator still says 429
    assert sleeps and 15.0 < sleeps[0] <= 20.0


def test_gemini_default_limits_come_from_the_plugin(emu: Emulator) -> None:
    with aipk.Client("gemini", base_url=emu.url("gemini"), api_key="k") as client:
        assert client.limits.requests_per_minute == 15


def test_async_limits_wait_with_the_async_sleep(emu: Emulator) -> None:
    sleeps: list[float] = []

    async def asleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def scenario() -> None:
        async with aipk.AsyncClient("openai", base_url=emu.url("openai"), api_key="sk-x",
                                    sleep=asleep,
                                    limits=ClientLimits(requests_per_minute=3)) as client:
            await asyncio.gather(*(client.chat(model="m", messages=USER) for _ in range(5)))

    asyncio.run(scenario())
    # 3 per minute: two of five wait until the first three are a minute old
    assert sorted(sleeps) == pytest.approx([60.0, 60.0], abs=0.5)


def test_clients_sharing_a_store_share_rate_limit_state(emu: Emulator) -> None:
    store = aipk.MemoryStore()
    emu.set_rate_limit(requests=7, tokens=100_000, window=60.0)
    with aipk.Client("openai", base_url=emu.url("openai"), api_key="sk-x", store=store) as one:
        one.chat(model="m", messages=USER)
    with aipk.Client("openai", base_url=emu.url("openai"), api_key="sk-x", store=store) as two, \
            aipk.Client("openai", base_url=emu.url("openai"), api_key="sk-y") as other:
        state = two.rate_limits("m")
        assert state is not None and state.requests is not None
        assert state.requests.remaining == 6  # seen by the first client, same key
        assert other.rate_limits("m") is None  # a private store, and another key
