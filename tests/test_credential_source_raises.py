"""A credential source that raises while recording a call's outcome never replaces it: over
real HTTP against the emulator, sync and async on both transports.

Two sources that raise: a `KeyPool` whose shared state store is down for writes (its
``update`` raises, so ``report_failure`` does), and a user's own `KeyPool` subclass whose
``report_success``, ``report_failure`` and ``add_tokens`` raise. A failed call raises the
provider's error, with the source's failure attached as a note and logged at WARNING (the key
masked in both) and no failover or retry on a source that cannot record; an answered call
returns its answer; a stream's tokens are offered to the source once.

A source that raises while choosing the credential for another attempt (the failover or the
retry) leaves the failed attempt's error, noted; for the first attempt its own error is
raised; a refresh after a 401 that raises leaves the 401, noted, and the call moves on to the
next key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

import aipk
from aipk.credentials import KeyPool, call_with_failover
from aipk.credentials._single import HasId
from aipk.errors import NetworkError, ProviderError, ServerError
from aipk.state import MemoryStore
from aipk_testkit.emulator import Emulator, Fault, Reply

USER = [aipk.Message.user("hi")]
KEY_A, KEY_B = "sk-aaaa-1111-secret", "sk-bbbb-2222-secret"
MODES = ["sync", "async-httpx", "async-aiohttp"]
ANSWER = Reply(text="an answer sent three characters a chunk", chunk_size=3, usage=(11, 7))
T = TypeVar("T")


class StoreDown(ConnectionError):
    pass


class WritesDownStore(MemoryStore):
    """A shared state store that reads but cannot write (its server went away mid-call)."""

    def update(self, namespace: str, key: str, fn: Callable[[T | None], T | None], *,
               ttl: float | None = None) -> T | None:
        raise StoreDown(f"cannot write {namespace}/{key}: the state server is unreachable")


class BrokenPool(KeyPool):
    """A user's own source whose recording methods raise (each naming the key, which must
    never reach a log line or a note); ``tokens_offered`` counts ``add_tokens`` calls."""

    tokens_offered = 0

    def _fail(self, member: HasId | str) -> RuntimeError:
        cid = member if isinstance(member, str) else member.id
        secret = self.get(cid).secret
        assert secret is not None
        return RuntimeError(f"bookkeeping for {cid} failed (key {secret.reveal()})")

    def report_success(self, member: HasId | str, *, latency: float = 0.0,
                       tokens: int = 0) -> None:
        raise self._fail(member)

    def report_failure(self, member: HasId | str, error: BaseException | int, *,
                       latency: float = 0.0) -> bool:
        raise self._fail(member)

    def add_tokens(self, member: HasId | str, tokens: int) -> None:
        self.tokens_offered += 1
        raise self._fail(member)


@asynccontextmanager
async def client_over(emu: Emulator, mode: str,
                      pool: KeyPool) -> AsyncIterator[aipk.Client | aipk.AsyncClient]:
    emu.require_api_keys(KEY_A, KEY_B)
    common: dict[str, Any] = {"base_url": emu.url("openai"), "credentials": pool,
                              "max_retries": 2, "sleep": None}
    if mode == "sync":
        common["sleep"] = lambda seconds: None
        with aipk.Client("openai", **common) as client:
            yield client
        return
    from aipk.transports import AiohttpTransport

    async def asleep(seconds: float) -> None:
        return None

    common["sleep"] = asleep
    own = AiohttpTransport() if mode == "async-aiohttp" else None
    try:
        async with aipk.AsyncClient("openai", transport=own, **common) as aclient:
            yield aclient
    finally:
        if own is not None:
            await own.close()


async def chat(client: aipk.Client | aipk.AsyncClient) -> aipk.ChatResponse:
    if isinstance(client, aipk.Client):
        return client.chat(model="gpt-4o-mini", messages=USER)
    return await client.chat(model="gpt-4o-mini", messages=USER)


async def stream_text(client: aipk.Client | aipk.AsyncClient) -> str:
    if isinstance(client, aipk.Client):
        with client.stream(model="gpt-4o-mini", messages=USER) as stream:
            return "".join(stream.text())
    async with client.stream(model="gpt-4o-mini", messages=USER) as astream:
        return "".join([piece async for piece in astream.text()])


def notes_of(error: BaseException) -> list[str]:
    return list(getattr(error, "__notes__", []))


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "aipk.credentials" and r.levelno == logging.WARNING]


def no_key_in(*texts: str) -> None:
    for text in texts:
        assert KEY_A not in text and KEY_B not in text and "1111-secret" not in text


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_call_raises_its_own_error_when_the_store_cannot_record_it(
        emu: Emulator, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    """A 500 on a pool whose store is down: the 500 is raised (not the store's error) at
    once, without moving to the other key or retrying, the store's failure noted on it."""
    pool = KeyPool.from_keys("openai", [KEY_A, KEY_B], state=WritesDownStore())

    async def scenario() -> None:
        async with client_over(emu, mode, pool) as client:
            emu.enqueue(Fault.status(500))
            with pytest.raises(ServerError) as caught:
                await chat(client)
            assert caught.value.status == 500 and len(emu.requests) == 1
            [note] = notes_of(caught.value)
            assert note.startswith("the credential source KeyPool could not record the "
                                   f"failure of credential {pool.ids[0]!r}: StoreDown: ")
            [warning] = warnings_of(caplog)
            assert "StoreDown" in warning and pool.ids[0] in warning
            # the store is back: the same failure fails over to the other key as usual
            pool._store._state = MemoryStore()
            emu.requests.clear()
            emu.enqueue(Fault.status(500))
            emu.enqueue(ANSWER)
            assert (await chat(client)).text == ANSWER.text
            assert len(emu.requests) == 2

    with caplog.at_level(logging.WARNING, logger="aipk.credentials"):
        asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_a_broken_stream_raises_its_own_error_when_the_store_cannot_record_it(
        emu: Emulator, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    pool = KeyPool.from_keys("openai", [KEY_A, KEY_B], state=WritesDownStore())

    async def scenario() -> None:
        async with client_over(emu, mode, pool) as client:
            emu.enqueue(Fault.reset_mid_stream(after_events=3, reply=ANSWER))
            with pytest.raises(NetworkError) as caught:
                await stream_text(client)
            [note] = notes_of(caught.value)
            assert "could not record the failure" in note and "StoreDown" in note
            assert len(warnings_of(caplog)) == 1

    with caplog.at_level(logging.WARNING, logger="aipk.credentials"):
        asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_a_source_that_raises_on_success_still_returns_the_answer(
        emu: Emulator, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    """``report_success`` (a chat; a stream, at its first event) and ``add_tokens`` (a
    stream's end) raise: the answers arrive whole, the failures are logged, key masked, and
    the stream's tokens were offered once (a failing ``add_tokens`` is not offered again as
    a broken stream's)."""
    pool = BrokenPool.from_keys("openai", [KEY_A, KEY_B])
    assert isinstance(pool, BrokenPool)

    async def scenario() -> None:
        async with client_over(emu, mode, pool) as client:
            emu.enqueue(ANSWER)
            assert (await chat(client)).text == ANSWER.text
            emu.enqueue(ANSWER)
            assert await stream_text(client) == ANSWER.text
            assert pool.tokens_offered == 1
            assert len(emu.requests) == 2
            warnings = warnings_of(caplog)
            assert len(warnings) == 3  # the chat's success, the stream's, its tokens
            assert sum("could not record the success" in w for w in warnings) == 2
            assert sum("could not record the stream's tokens" in w for w in warnings) == 1
            assert all("RuntimeError: bookkeeping for" in w for w in warnings)
            no_key_in(*warnings)

    with caplog.at_level(logging.WARNING, logger="aipk.credentials"):
        asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_cut_after_its_usage_keeps_its_error_with_both_failures_noted(
        emu: Emulator, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    """Reset after the usage chunk on the user's raising source: the reset's NetworkError,
    noting that neither the failure nor the tokens could be recorded (the key masked)."""
    pool = BrokenPool.from_keys("openai", [KEY_A, KEY_B])
    assert isinstance(pool, BrokenPool)

    async def scenario() -> None:
        async with client_over(emu, mode, pool) as client:
            emu.enqueue(Fault.reset_mid_stream(after_events=1000, reply=ANSWER))
            with pytest.raises(NetworkError) as caught:
                await stream_text(client)
            notes = notes_of(caught.value)
            assert len(notes) == 2
            assert "could not record the failure" in notes[0]
            assert "could not record the stream's tokens" in notes[1]
            assert pool.tokens_offered == 1
            no_key_in(*notes, *warnings_of(caplog), str(caught.value))

    with caplog.at_level(logging.WARNING, logger="aipk.credentials"):
        asyncio.run(scenario())


def test_call_with_failover_keeps_the_calls_outcome_when_the_source_raises(
        emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    """The same rule for `call_with_failover`: a 500 is raised with the note, without moving
    to the next key; an answer is returned."""
    emu.require_api_keys(KEY_A, KEY_B)
    pool = BrokenPool.from_keys("openai", [KEY_A, KEY_B])

    def send(credential: aipk.Credential) -> aipk.ChatResponse:
        with aipk.Client("openai", base_url=emu.url("openai"), credential=credential,
                         max_retries=0) as client:
            return client.chat(model="gpt-4o-mini", messages=USER)

    with caplog.at_level(logging.WARNING, logger="aipk.credentials"):
        emu.enqueue(Fault.status(500))
        with pytest.raises(ProviderError) as caught:
            call_with_failover(pool, send)
        assert len(emu.requests) == 1
        assert "could not record the failure" in notes_of(caught.value)[0]
        emu.enqueue(ANSWER)
        assert call_with_failover(pool, send).text == ANSWER.text
        assert len(warnings_of(caplog)) == 2
        no_key_in(*warnings_of(caplog), *notes_of(caught.value))


# A source that raises while choosing the credential for another attempt (a failover to the
# next key, or a retry) or while refreshing one after a 401.

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
            assert (await chat(client)).text == ANSWER.text

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
            assert (await chat(client)).text == ANSWER.text and len(emu.requests) == 2
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
