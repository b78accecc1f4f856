"""A credential source that raises while choosing the credential for another attempt (a
failover to the next key, or a retry) never replaces the call's own error: over real HTTP
against the emulator, sync and async on both transports. The call raises the failed
attempt's error with the source's failure noted on it (and as its context), logged at
WARNING, no key in either; a source that raises for the first attempt raises its own error;
a refresh after a 401 that raises leaves the 401, noted, and the call moves to the next key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

import pytest

import aipk
from aipk.credentials import KeyPool
from aipk.errors import ServerError
from aipk_testkit.emulator import Emulator, Fault, Reply

USER = [aipk.Message.user("hi")]
KEY_A, KEY_B = "sk-aaaa-1111-secret", "sk-bbbb-2222-secret"
MODES = ["sync", "async-httpx", "async-aiohttp"]
ANSWER = Reply(text="answered")


class StoreDown(ConnectionError):
    pass


class FlakyPool(KeyPool):
    """A source whose ``acquire`` works ``working`` times, then raises (naming a key, which
    must reach no note or log line)."""

    working = 1
    acquired = 0

    def acquire(self, *, exclude: Collection[str] = ()) -> aipk.Credential:
        self.acquired += 1
        if self.acquired > self.working:
            raise StoreDown(f"the key store is unreachable (last key {KEY_A})")
        return super().acquire(exclude=exclude)


@asynccontextmanager
async def client_over(emu: Emulator, mode: str, pool: KeyPool,
                      ) -> AsyncIterator[aipk.Client | aipk.AsyncClient]:
    emu.require_api_keys(KEY_A, KEY_B)
    common: dict[str, Any] = {"base_url": emu.url("openai"), "credentials": pool,
                              "max_retries": 2}
    if mode == "sync":
        with aipk.Client("openai", sleep=lambda seconds: None, **common) as client:
            yield client
        return
    from aipk.transports import AiohttpTransport

    async def asleep(seconds: float) -> None:
        return None

    own = AiohttpTransport() if mode == "async-aiohttp" else None
    try:
        async with aipk.AsyncClient("openai", transport=own, sleep=asleep,
                                    **common) as aclient:
            yield aclient
    finally:
        if own is not None:
            await own.close()


async def chat(client: aipk.Client | aipk.AsyncClient) -> aipk.ChatResponse:
    if isinstance(client, aipk.Client):
        return client.chat(model="gpt-4o-mini", messages=USER)
    return await client.chat(model="gpt-4o-mini", messages=USER)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "aipk.credentials" and r.levelno == logging.WARNING]


def no_key_in(*texts: str) -> None:
    for text in texts:
        assert KEY_A not in text and KEY_B not in text and "1111-secret" not in text


@pytest.mark.parametrize("keys", [[KEY_A, KEY_B], [KEY_A]], ids=["failover", "retry"])
@pytest.mark.parametrize("mode", MODES)
def test_the_failed_attempt_error_is_raised_with_the_source_failure_noted(
        emu: Emulator, mode: str, keys: list[str], caplog: pytest.LogCaptureFixture) -> None:
    """A 500, then the source fails choosing the next key (two keys: the failover; one key:
    the retry): the 500 is raised, not the source's error."""
    pool = FlakyPool.from_keys("openai", keys)

    async def scenario() -> None:
        async with client_over(emu, mode, pool) as client:
            emu.enqueue(Fault.status(500))
            with pytest.raises(ServerError) as caught:
                await chat(client)
            assert caught.value.status == 500 and len(emu.requests) == 1
            [note] = getattr(caught.value, "__notes__", [])
            assert note.startswith("the credential source FlakyPool failed choosing a "
                                   "credential for another attempt: StoreDown: ")
            assert isinstance(caught.value.__context__, StoreDown)
            [warning] = warnings_of(caplog)
            assert "StoreDown" in warning
            no_key_in(note, warning)

    with caplog.at_level(logging.WARNING, logger="aipk.credentials"):
        asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_a_source_failing_for_the_first_attempt_raises_its_own_error(
        emu: Emulator, mode: str) -> None:
    pool = FlakyPool.from_keys("openai", [KEY_A, KEY_B])
    assert isinstance(pool, FlakyPool)
    pool.working = 0

    async def scenario() -> None:
        async with client_over(emu, mode, pool) as client:
            with pytest.raises(StoreDown):
                await chat(client)
            assert emu.requests == []
            pool.working = 10  # back: the call goes through
            emu.enqueue(ANSWER)
            assert (await chat(client)).text == "answered"

    asyncio.run(scenario())


class BrokenRefreshPool(KeyPool):
    """A source whose refresh after a 401 raises (its token endpoint's client has a bug)."""

    def recover(self, credential: aipk.Credential,
                error: BaseException) -> aipk.Credential | None:
        raise StoreDown(f"the token store is unreachable (key {KEY_A})")

    async def arecover(self, credential: aipk.Credential,
                       error: BaseException) -> aipk.Credential | None:
        return self.recover(credential, error)


@pytest.mark.parametrize("mode", MODES)
def test_a_refresh_that_raises_leaves_the_401_and_moves_to_the_next_key(
        emu: Emulator, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    """Two keys: the 401's refresh raises, the call goes on to the other key and is answered;
    one key: the 401 is raised, the refresh's failure noted on it."""
    async def scenario() -> None:
        async with client_over(emu, mode, BrokenRefreshPool.from_keys(
                "openai", [KEY_A, KEY_B])) as client:
            emu.enqueue(Fault.status(401))
            emu.enqueue(ANSWER)
            assert (await chat(client)).text == "answered" and len(emu.requests) == 2
        emu.requests.clear()
        async with client_over(emu, mode, BrokenRefreshPool.from_keys(
                "openai", [KEY_A])) as client:
            emu.enqueue(Fault.status(401))
            with pytest.raises(aipk.AuthenticationError) as caught:
                await chat(client)
            assert caught.value.status == 401 and len(emu.requests) == 1
            [note] = getattr(caught.value, "__notes__", [])
            assert note.startswith("the credential source BrokenRefreshPool failed refreshing "
                                   "the credential after a 401: StoreDown: ")
            no_key_in(note, *warnings_of(caplog))
        assert len([w for w in warnings_of(caplog) if "failed refreshing" in w]) == 2

    with caplog.at_level(logging.WARNING, logger="aipk.credentials"):
        asyncio.run(scenario())
