"""Under load: 1,000 concurrent requests through one AsyncRouter over two emulators (aiohttp,
one shared client per target), one target injecting 429s and 503s. Every request ends in an
answer or a typed error, the counts add up exactly, and the state stays bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

import aipk
from aipk import Message
from aipk.errors import ProviderError
from aipk.router import AllTargetsFailedError, AsyncRouter, Target, route_of
from aipk.transports import AiohttpTransport
from aipk_testkit.emulator import Emulator, Fault

KEY = "sk-test-0123456789abcdef"
N = 1_000
FAULTS_A = 300  # 150 x 429 (retry-after 0), 150 x 503
FAULTS_B = 20  # 503s


class TickClock:
    """Fake time that moves 1 ms each time it is read: cooldowns expire during the run
    without any real waiting, and runs are repeatable."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


@pytest.fixture
def pair() -> Iterator[tuple[Emulator, Emulator]]:
    with Emulator() as a, Emulator() as b:
        yield a, b


def test_thousand_concurrent_requests_through_one_router(pair: tuple[Emulator, Emulator]) -> None:
    a, b = pair
    for _ in range(FAULTS_A // 2):
        a.enqueue(Fault.status(429, retry_after=0), Fault.status(503))
    for _ in range(FAULTS_B):
        b.enqueue(Fault.status(503))
    clock = TickClock()
    slept: list[float] = []

    async def no_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def scenario() -> tuple[list[object], dict[str, object], int]:
        transports = [AiohttpTransport(), AiohttpTransport()]
        clients = [aipk.AsyncClient("openai", base_url=e.url("openai"), api_key=KEY,
                                    sleep=no_sleep, transport=t)
                   for e, t in zip((a, b), transports, strict=True)]
        targets = [Target(provider="openai", model="gpt-4o-mini", client=c, name=n)
                   for c, n in zip(clients, "ab", strict=True)]
        router = AsyncRouter(targets, strategy="round_robin", clock=clock, latency_window=256)
        try:
            results = await asyncio.gather(
                *(router.chat(messages=[Message.user(f"n{i}")]) for i in range(N)),
                return_exceptions=True)
            return results, router.metrics(), len(router.store)
        finally:
            for c in clients:
                await c.close()
            for t in transports:  # a transport passed in is the caller's to close
                await t.close()

    started = time.perf_counter()
    results, m, store_size = asyncio.run(scenario())
    elapsed = time.perf_counter() - started

    answers = [r for r in results if isinstance(r, aipk.ChatResponse)]
    errors = [r for r in results if isinstance(r, ProviderError)]
    assert len(answers) + len(errors) == N, "every request got an answer or a typed error"
    assert all(isinstance(e, AllTargetsFailedError) for e in errors)
    # every answer is the echo of its own prompt, served by the target it says
    for i, r in enumerate(results):
        if isinstance(r, aipk.ChatResponse):
            assert r.text == f"echo: n{i}"
            assert route_of(r).served_by in ("a", "b")  # type: ignore[union-attr]

    assert (m["requests"], m["successes"], m["errors"], m["cancelled"]) == (
        N, len(answers), len(errors), 0)
    ta, tb = m["targets"]["a"], m["targets"]["b"]  # type: ignore[index]
    assert ta["successes"] + tb["successes"] == len(answers)
    for t, emu in ((ta, a), (tb, b)):
        assert t["requests"] == t["successes"] + t["errors"] and t["in_flight"] == 0
        assert t["requests"] == len(emu.requests)  # the router's count is what the server saw
        assert t["latency_samples"] <= 256
    assert ta["errors"] == FAULTS_A  # round robin sends a at least 500 first attempts
    assert ta["error_types"] == {"RateLimitError": FAULTS_A // 2, "ServerError": FAULTS_A // 2}
    assert tb["errors"] == FAULTS_B
    served_by_b = sum(1 for r in answers if route_of(r).served_by == "b")  # type: ignore[union-attr]
    assert served_by_b == tb["successes"]
    # every target failure is listed exactly once: in an error's failures or a route's
    total_failures_seen = sum(len(e.failures) for e in errors) + sum(  # type: ignore[attr-defined]
        len(route_of(r).failures) for r in answers)  # type: ignore[union-attr]
    assert total_failures_seen == ta["errors"] + tb["errors"]
    assert store_size <= 4  # at most a cooldown and a breaker per target
    assert slept == []  # 429s with retry-after 0 and the injected clock: nothing waits
    assert elapsed < 30, f"took {elapsed:.1f}s"
