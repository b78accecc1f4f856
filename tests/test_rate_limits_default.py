"""``client.rate_limits(model)`` without a credential id reads the state of the credential
whose response head the client received last, an error's as well as an answer's: a pool
client whose calls have only failed still shows what the provider reported. Over real HTTP
against the emulator, on the sync and async clients, with a two-key pool and a fake clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import aipk
from aipk.errors import BadRequestError, ProviderError
from aipk_testkit.emulator import Emulator, Fault, Reply

from .fake_clock import FakeClock

USER = [aipk.Message.user("hi")]
MODEL = "gpt-4o-mini"
KEY_A, KEY_B = "sk-aaaa-1111", "sk-bbbb-2222"


def spent(limit: int) -> dict[str, str]:
    """A 429's rate-limit headers: ``limit`` requests a minute, none left."""
    return {"x-ratelimit-limit-requests": str(limit), "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "60s"}


def limit_of(state: aipk.RateLimitState | None) -> int | None:
    assert state is not None and state.requests is not None
    return state.requests.limit


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_pool_client_whose_calls_failed_shows_the_latest_heads_limits(emu: Emulator,
                                                                        mode: str) -> None:
    emu.require_api_keys(KEY_A, KEY_B)
    # the first call: key A gets a 429, fails over to key B, which gets one too
    emu.enqueue(Fault.status(429, retry_after=30, headers=spent(10)),
                Fault.status(429, retry_after=30, headers=spent(20)))
    clock = FakeClock()
    common: dict[str, Any] = {"base_url": emu.url("openai"), "api_key": [KEY_A, KEY_B],
                              "clock": clock, "max_retries": 0}

    def check(client: aipk.Client | aipk.AsyncClient) -> None:
        assert [r.headers["authorization"] for r in emu.requests] == [
            f"Bearer {KEY_A}", f"Bearer {KEY_B}"]
        [a, b] = client.credentials.ids  # type: ignore[attr-defined]
        assert limit_of(client.rate_limits(MODEL)) == 20  # key B's head came last
        assert limit_of(client.rate_limits(MODEL, a)) == 10
        assert limit_of(client.rate_limits(MODEL, b)) == 20

    if mode == "sync":
        with aipk.Client("openai", sleep=clock.sleep, **common) as client:
            assert client.rate_limits(MODEL) is None  # nothing received yet
            with pytest.raises(ProviderError):  # no call succeeded
                client.chat(model=MODEL, messages=USER)
            check(client)
        return

    async def scenario() -> None:
        async with aipk.AsyncClient("openai", sleep=clock.asleep, **common) as aclient:
            assert aclient.rate_limits(MODEL) is None
            with pytest.raises(ProviderError):
                await aclient.chat(model=MODEL, messages=USER)
            check(aclient)

    asyncio.run(scenario())


def test_the_default_follows_the_latest_head_after_a_success(emu: Emulator) -> None:
    """An answer from key A, then a call key B signed that failed (a 400: not the key's
    fault, so not failed over) with B's headers: the default moves to B, the latest head,
    rather than staying with the last key that answered."""
    emu.require_api_keys(KEY_A, KEY_B)
    emu.enqueue(Reply(text="ok", headers={**spent(10), "x-ratelimit-remaining-requests": "9"}),
                Fault.status(400, headers={**spent(20), "x-ratelimit-remaining-requests": "5"}))
    clock = FakeClock()
    with aipk.Client("openai", base_url=emu.url("openai"), api_key=[KEY_A, KEY_B],
                     clock=clock, sleep=clock.sleep, max_retries=0) as client:
        client.chat(model=MODEL, messages=USER)  # key A answers
        assert limit_of(client.rate_limits(MODEL)) == 10
        with pytest.raises(BadRequestError):  # key B (round robin)
            client.chat(model=MODEL, messages=USER)
        [a, b] = client.credentials.ids  # type: ignore[attr-defined]
        state = client.rate_limits(MODEL)
        assert state == client.rate_limits(MODEL, b) and limit_of(state) == 20
        assert limit_of(client.rate_limits(MODEL, a)) == 10
