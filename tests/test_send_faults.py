"""Answers that break before the caller gets any of them, and waits on keys under concurrency,
over real HTTP against the emulator, for the sync client and the async client on both
transports.

* A non-streamed answer cut after its head (reset, truncated or invalid JSON) is failed over
  and retried like a failure before the first byte, and counts against its key.
* A stream cut before its first event (or ending without one) likewise; a stream that has
  produced events raises instead of starting again.
* A key's wait only extends; a success clears only what was known when its request was sent;
  a key the provider rejected is parked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import aipk
from aipk.credentials import KeyPool
from aipk.errors import NetworkError, ResponseError
from aipk_testkit.emulator import Emulator, Fault, Reply

from .fake_clock import FakeClock

USER = [aipk.Message.user("hi")]
KEY_A, KEY_B, KEY_C = "sk-aaaa-1111", "sk-bbbb-2222", "sk-cccc-3333"

#: Every way a 200 answer can break after its head, before the caller has any of it.
BODY_CUTS = {
    "reset after the head": Fault.reset_after_headers(),
    "reset mid-body": Fault.reset_mid_stream(),
    "truncated JSON": Fault.truncate(),
    "invalid JSON": Fault.malformed_json(),
}
#: Every way a stream can break before its first event.
STREAM_CUTS = {
    "reset after the head": Fault.reset_after_headers(),
    "reset before the first event": Fault.reset_mid_stream(after_events=0),
    "ended with no event": Fault.truncate(after_events=0),
}


def presented(emu: Emulator) -> list[str]:
    return [r.headers["authorization"].removeprefix("Bearer ") for r in emu.requests]


Call = Callable[[aipk.AsyncClient], Awaitable[Any]]


def run_async(emu: Emulator, transport: str, keys: list[str] | str, clock: Any,
              call: Call, **kwargs: Any) -> Any:
    """``call(client)`` with an AsyncClient on ``transport`` ("httpx" or "aiohttp")."""
    from aipk.transports import AiohttpTransport

    async def scenario() -> Any:
        chosen = AiohttpTransport() if transport == "aiohttp" else None
        try:
            async with aipk.AsyncClient("openai", base_url=emu.url("openai"), api_key=keys,
                                        clock=clock, sleep=clock.asleep, transport=chosen,
                                        **kwargs) as client:
                return await call(client)
        finally:  # a transport passed in is the caller's to close
            if chosen is not None:
                await chosen.close()

    return asyncio.run(scenario())


TRANSPORTS = ["sync", "httpx", "aiohttp"]


def chat(emu: Emulator, how: str, keys: list[str] | str, clock: FakeClock,
         **kwargs: Any) -> tuple[aipk.ChatResponse | aipk.ProviderError, dict[str, Any], Any]:
    """One chat call the way ``how`` says: the answer (or the error it raised), the client's
    metrics and its credentials."""
    if how == "sync":
        with aipk.Client("openai", base_url=emu.url("openai"), api_key=keys, clock=clock,
                         sleep=clock.sleep, **kwargs) as client:
            try:
                answer: aipk.ChatResponse | aipk.ProviderError = client.chat(
                    model="m", messages=USER)
            except aipk.ProviderError as exc:
                answer = exc
            return answer, client.metrics(), client.credentials

    async def call(client: aipk.AsyncClient) -> Any:
        try:
            answer: aipk.ChatResponse | aipk.ProviderError = await client.chat(
                model="m", messages=USER)
        except aipk.ProviderError as exc:
            answer = exc
        return answer, client.metrics(), client.credentials

    result: tuple[aipk.ChatResponse | aipk.ProviderError, dict[str, Any], Any] = run_async(
        emu, how, keys, clock, call, **kwargs)
    return result


def stream_text(emu: Emulator, how: str, keys: list[str] | str, clock: FakeClock,
                **kwargs: Any) -> tuple[str, list[aipk.StreamEvent]]:
    """Stream one answer; its text, or raise, with the events delivered before the error
    appended to the returned list (the list is also attached to the error)."""
    got: list[aipk.StreamEvent] = []
    try:
        if how == "sync":
            with aipk.Client("openai", base_url=emu.url("openai"), api_key=keys, clock=clock,
                             sleep=clock.sleep, **kwargs) as client, \
                    client.stream(model="m", messages=USER) as stream:
                got.extend(stream)
                return stream.response.text or "", got

        async def call(client: aipk.AsyncClient) -> str:
            async with client.stream(model="m", messages=USER) as stream:
                async for event in stream:
                    got.append(event)
                return (await stream.get_response()).text or ""

        return run_async(emu, how, keys, clock, call, **kwargs), got
    except aipk.ProviderError as exc:
        exc.delivered = got  # type: ignore[attr-defined]
        raise


# -- non-streamed answers cut after the head -------------------------------------------------


@pytest.mark.parametrize("how", TRANSPORTS)
@pytest.mark.parametrize("cut", list(BODY_CUTS))
def test_a_body_cut_after_the_head_is_retried(aipk_emulator: Emulator, how: str,
                                              cut: str) -> None:
    emu, clock = aipk_emulator, FakeClock()
    emu.enqueue(BODY_CUTS[cut], Reply(text="whole"))
    answer, metrics, _ = chat(emu, how, KEY_A, clock)
    assert answer.text == "whole" and len(emu.requests) == 2
    assert len(clock.sleeps) == 1  # one retry, after the policy's backoff
    assert (metrics["successes"], metrics["errors"], metrics["retries"]) == (1, 0, 1)


@pytest.mark.parametrize("how", TRANSPORTS)
@pytest.mark.parametrize("cut", list(BODY_CUTS))
def test_a_body_cut_fails_over_to_the_next_key_and_counts_against_its_own(
        aipk_emulator: Emulator, how: str, cut: str) -> None:
    emu, clock = aipk_emulator, FakeClock()
    emu.fail_key(KEY_A, BODY_CUTS[cut])
    answer, metrics, pool = chat(emu, how, [KEY_A, KEY_B], clock)
    assert answer.text == "echo: hi" and presented(emu) == [KEY_A, KEY_B]
    assert clock.sleeps == [] and metrics["failovers"] == 1  # at once, not a retry
    a, b = pool.ids
    assert pool.health(a).consecutive_failures == 1 and not pool.health(a).available
    snapshot = pool.metrics.snapshot()
    assert (snapshot[a].errors, snapshot[a].successes, snapshot[b].successes) == (1, 0, 1)


@pytest.mark.parametrize("how", TRANSPORTS)
def test_a_body_cut_that_persists_is_a_failure_in_the_metrics(aipk_emulator: Emulator,
                                                              how: str) -> None:
    emu, clock = aipk_emulator, FakeClock()
    emu.enqueue(Fault.reset_after_headers(), Fault.truncate())
    error, metrics, _ = chat(emu, how, KEY_A, clock, max_retries=1)
    assert isinstance(error, ResponseError) and error.retryable
    assert len(emu.requests) == 2
    assert (metrics["successes"], metrics["errors"], metrics["retries"]) == (0, 1, 1)


# -- streams cut before their first event ----------------------------------------------------


@pytest.mark.parametrize("how", TRANSPORTS)
@pytest.mark.parametrize("cut", list(STREAM_CUTS))
def test_a_stream_cut_before_its_first_event_is_retried(aipk_emulator: Emulator, how: str,
                                                        cut: str) -> None:
    emu, clock = aipk_emulator, FakeClock()
    emu.enqueue(STREAM_CUTS[cut], Reply(text="streamed whole", chunk_size=3))
    text, events = stream_text(emu, how, KEY_A, clock)
    assert text == "streamed whole" and len(emu.requests) == 2 and len(clock.sleeps) == 1
    assert "".join(e.text for e in events if isinstance(e, aipk.TextDelta)) == text


@pytest.mark.parametrize("how", TRANSPORTS)
def test_a_stream_cut_before_its_first_event_fails_over(aipk_emulator: Emulator,
                                                        how: str) -> None:
    emu, clock = aipk_emulator, FakeClock()
    emu.fail_key(KEY_A, Fault.reset_after_headers())
    text, _ = stream_text(emu, how, [KEY_A, KEY_B], clock)
    assert text == "echo: hi" and presented(emu) == [KEY_A, KEY_B] and clock.sleeps == []


@pytest.mark.parametrize("how", TRANSPORTS)
def test_a_stream_that_delivered_events_is_never_restarted(aipk_emulator: Emulator,
                                                           how: str) -> None:
    emu, clock = aipk_emulator, FakeClock()
    emu.enqueue(Fault.reset_mid_stream(after_events=4), Reply(text="must not be used"))
    with pytest.raises(NetworkError) as info:
        stream_text(emu, how, [KEY_A, KEY_B], clock)
    assert info.value.delivered  # type: ignore[attr-defined]
    assert not info.value.retryable and len(emu.requests) == 1 and clock.sleeps == []


# -- one healthy key is enough ---------------------------------------------------------------


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
@pytest.mark.parametrize("kind", ["chat", "stream"])
def test_one_healthy_key_serves_every_call_while_the_others_break(
        aipk_emulator: Emulator, transport: str, kind: str) -> None:
    """Three keys, two of which break 30 % of their answers in every way a retry can save
    (5xx, 429, resets before and after the head, truncated and invalid bodies, streams cut
    before their first event); 400 calls, 50 at a time: at least 99.9 % succeed (here:
    all)."""
    emu, clock, n = aipk_emulator, FakeClock(), 400
    cuts = BODY_CUTS if kind == "chat" else STREAM_CUTS
    faults = [Fault.status(503), Fault.status(429, retry_after_ms=50), *cuts.values()]
    emu.fail_key(KEY_A, faults, rate=0.3, seed=1)
    emu.fail_key(KEY_B, faults, rate=0.3, seed=2)

    async def call(client: aipk.AsyncClient) -> list[object]:
        gate = asyncio.Semaphore(50)

        async def one(i: int) -> str | None:
            async with gate:
                messages = [aipk.Message.user(f"n{i}")]
                if kind == "chat":
                    return (await client.chat(model="m", messages=messages)).text
                async with client.stream(model="m", messages=messages) as stream:
                    return (await stream.get_response()).text

        return await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)

    results = run_async(emu, transport, [KEY_A, KEY_B, KEY_C], clock, call)
    ok = [r for i, r in enumerate(results) if r == f"echo: n{i}"]
    assert len(ok) / n >= 0.999, [r for r in results if not isinstance(r, str)][:3]
    assert len(ok) == n
    assert len(emu.requests) > n  # faults happened and were absorbed


# -- waits on one key under concurrency ------------------------------------------------------


def test_concurrent_429s_keep_the_longest_wait(aipk_emulator: Emulator) -> None:
    """Two requests on key A at once: one gets ``retry-after: 2``, the other, answered later,
    ``retry-after-ms: 100``. A stays out for the 2 s: a call 300 ms later goes to B."""
    emu = aipk_emulator
    emu.enqueue_for_key(KEY_A, Fault.status(429, retry_after=2),
                        Fault.slow_first_byte(0.1, Fault.status(429, retry_after_ms=100)))

    async def call(client: aipk.AsyncClient) -> tuple[list[str], float]:
        async def ask() -> str | None:
            return (await client.chat(model="m", messages=USER)).text

        # round robin: A, B, A; both A requests fail over to B at once
        await asyncio.gather(ask(), ask(), ask())
        await asyncio.sleep(0.3)
        emu.requests.clear()
        await ask()
        await ask()  # whichever key round robin offers first, A is skipped
        pool = client.credentials
        assert isinstance(pool, KeyPool)
        return presented(emu), pool.health(pool.ids[0]).backoff_remaining

    keys, remaining = run_async(emu, "aiohttp", [KEY_A, KEY_B], RealClock(), call)
    assert keys == [KEY_B, KEY_B]
    assert 1.0 < remaining < 1.8  # what is left of the 2 s, not of the 100 ms


def test_a_success_sent_before_a_429_does_not_clear_it(aipk_emulator: Emulator) -> None:
    """Request 1 on key A is slow and succeeds after request 3 on A got ``retry-after: 2``:
    A stays out; a call 300 ms later goes to B."""
    emu = aipk_emulator
    emu.enqueue_for_key(KEY_A, Fault.slow_first_byte(0.3, Reply(text="late")),
                        Fault.status(429, retry_after=2))

    async def call(client: aipk.AsyncClient) -> tuple[list[str], float, list[str | None]]:
        async def ask() -> str | None:
            return (await client.chat(model="m", messages=USER)).text

        slow = asyncio.ensure_future(ask())  # A (slow)
        await asyncio.sleep(0.05)
        await ask()  # B
        await ask()  # A: 429, fails over to B
        texts = [await slow]  # A's late success arrives after the 429
        await asyncio.sleep(0.3)
        emu.requests.clear()
        texts.append(await ask())
        texts.append(await ask())  # whichever key round robin offers first, A is skipped
        pool = client.credentials
        assert isinstance(pool, KeyPool)
        return presented(emu), pool.health(pool.ids[0]).backoff_remaining, texts

    keys, remaining, texts = run_async(emu, "httpx", [KEY_A, KEY_B], RealClock(), call)
    assert texts[0] == "late" and keys == [KEY_B, KEY_B]
    assert 0.8 < remaining < 1.7


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_is_parked_not_retried_every_few_seconds(aipk_emulator: Emulator,
                                                                status: int) -> None:
    emu, clock = aipk_emulator, FakeClock()
    emu.require_api_keys(KEY_A, KEY_B, KEY_C, "sk-aaaa-fixed")
    emu.fail_key(KEY_A, Fault.status(status))
    with aipk.Client("openai", base_url=emu.url("openai"), api_key=[KEY_A, KEY_B, KEY_C],
                     clock=clock, sleep=clock.sleep) as client:
        for _ in range(30):  # 30 calls over 29 minutes
            assert client.chat(model="m", messages=USER).text
            clock.now += 60
        pool = client.credentials
        assert isinstance(pool, KeyPool)
        a = pool.ids[0]
        assert presented(emu).count(KEY_A) == 1
        info = pool.health(a)
        assert (info.status, info.parked_reason) == ("parked", f"HTTP {status}")
        assert '"status": "parked"' in pool.export_json()
        # The key changes (same id): it is used again at once.
        pool.replace(aipk.Credential(kind="api_key", secret=aipk.Secret("sk-aaaa-fixed"), id=a))
        emu.requests.clear()
        for _ in range(3):
            client.chat(model="m", messages=USER)
        assert "sk-aaaa-fixed" in presented(emu)
        assert pool.health(a).status == "healthy"


class RealClock:
    """The wall clock, with real sleeps (for the concurrency tests, which need real time)."""

    sleeps: list[float]

    def __init__(self) -> None:
        self.sleeps = []

    def __call__(self) -> float:
        return time.time()

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(seconds)


def test_news_that_arrives_during_a_wait_is_heeded_before_sending(
        aipk_emulator: Emulator) -> None:
    """Both keys report a spent window (A for 1 s, B for 2 s): the call waits for A. While it
    waits, A gets a 429 (another request's): after the wait the call does not send with A,
    it takes B once B's window has reset."""
    emu, clock = aipk_emulator, FakeClock()
    spent = {"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "0"}
    emu.enqueue(Reply(text="a", headers={**spent, "x-ratelimit-reset-requests": "1s"}),
                Reply(text="b", headers={**spent, "x-ratelimit-reset-requests": "2s"}))
    with aipk.Client("openai", base_url=emu.url("openai"), api_key=[KEY_A, KEY_B],
                     clock=clock, sleep=clock.sleep) as client:
        client.chat(model="m", messages=USER)  # A
        client.chat(model="m", messages=USER)  # B
        pool = client.credentials
        assert isinstance(pool, KeyPool)
        a = pool.ids[0]
        news = aipk.RateLimitError("slow down", provider="openai", retry_after=30, status=429)

        def sleep(seconds: float) -> None:
            clock.sleep(seconds)
            if len(clock.sleeps) == 1:  # during the first wait: another request's 429 on A
                client._engine.error(429, {"retry-after": "30"}, b"", "m", a)
                pool.report_failure(a, news, latency=0.01)

        client._sleep = sleep
        emu.requests.clear()
        assert client.chat(model="m", messages=USER).text == "echo: hi"
    assert presented(emu) == [KEY_B]
    assert clock.sleeps == [pytest.approx(1.0), pytest.approx(1.0)]  # A's window, then B's


def test_a_rejected_key_waits_for_another_in_short_backoff_instead_of_failing(
        aipk_emulator: Emulator) -> None:
    emu, clock = aipk_emulator, FakeClock()
    emu.fail_key(KEY_A, Fault.status(401))
    with aipk.Client("openai", base_url=emu.url("openai"), api_key=[KEY_A, KEY_B],
                     clock=clock, sleep=clock.sleep) as client:
        pool = client.credentials
        assert isinstance(pool, KeyPool)
        pool.report_failure(pool.ids[1], aipk.ServerError("x", provider="openai", status=503))
        assert client.chat(model="m", messages=USER).text == "echo: hi"
        assert pool.health(pool.ids[0]).status == "parked"
    assert presented(emu) == [KEY_A, KEY_B]
    assert len(clock.sleeps) == 1 and 0.8 < clock.sleeps[0] <= 1.0  # B's backoff, not a retry
