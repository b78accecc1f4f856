"""Soak: thousands of requests (chat and streams) through one AsyncRouter over three loopback
emulators with randomly injected faults: 429s with retry-after, 500s, 529s, dropped
connections, slow first bytes, streams cut after their first events. Time is a fake clock
(it ticks on every read and jumps on every injected sleep), so cooldowns, breakers and
``max_wait`` all come into play without real waiting.

Afterwards: every call succeeded or raised a typed error; the router's, the targets' and the
servers' counts agree exactly; the state stays bounded; the breakers are consistent and heal
once the faults stop; and traced memory does not grow between the two halves of the run.

``AIPK_SOAK_REQUESTS`` (default 3000) and ``AIPK_SOAK_SEED`` set the size and the fault
sequence; see docs/testing.md.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aipk
from aipk import Message
from aipk.errors import AipkError, AllTargetsFailedError, ProviderError, RateLimitError
from aipk.router import (
    AsyncRouter,
    BreakerPolicy,
    CircuitBreaker,
    CooldownPolicy,
    Target,
    route_of,
)
from aipk.state import MemoryStore
from aipk.transports import AiohttpTransport
from aipk_testkit.emulator import Emulator, Fault, Reply

N = int(os.environ.get("AIPK_SOAK_REQUESTS", "3000"))
SEED = int(os.environ.get("AIPK_SOAK_SEED", "20250611"))
CONCURRENCY = 48
PHASE = 250  # requests per phase; the fault queues are topped up between phases
QUEUE_LEVEL = 120  # scripted items kept queued per emulator
WINDOW = 128  # latency window per target
BREAKER = BreakerPolicy(failure_threshold=3, open_duration=2.0, probe_timeout=5.0)
COOLDOWN = CooldownPolicy(server_error=0.5, network=0.5)  # 429s: their retry-after
MAX_WAIT = 3.0
NAMES = ("a", "b", "c")
# the errors a target may produce under these faults
EXPECTED_ERRORS = {"RateLimitError", "ServerError", "OverloadedError", "NetworkError",
                   "RequestTimeout", "ResponseError", "IncompleteStreamError"}

REPLY = Reply(text="soak reply, soak reply", chunk_size=6)
FAULTS: list[tuple[float, Callable[[random.Random], Reply | Fault]]] = [
    (0.72, lambda r: REPLY),
    (0.07, lambda r: Fault.status(429, retry_after=r.choice((0, 0.5, 1, 3)))),
    (0.01, lambda r: Fault.status(429, retry_after_ms=r.choice((200, 800)))),
    (0.05, lambda r: Fault.status(500)),
    (0.04, lambda r: Fault.status(529)),
    (0.04, lambda r: Fault.reset_mid_stream(after_events=0)),  # a dropped connection
    (0.02, lambda r: Fault.reset_mid_stream(after_events=2)),  # streams: after 2 events
    (0.04, lambda r: Fault.slow_first_byte(r.uniform(0.001, 0.01), then=REPLY)),
    (0.01, lambda r: Fault.truncate(after_events=1)),
]


class FakeTime:
    """The clock of the router and its clients: +1 ms per read, and every injected sleep moves
    it on by the time slept (after yielding to the event loop)."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.router_slept = 0.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)

    async def router_sleep(self, seconds: float) -> None:
        assert 0 < seconds <= MAX_WAIT
        self.router_slept += seconds
        await self.sleep(seconds)


class Tally:
    """What the callers saw, as counters only (nothing that grows with the run)."""

    def __init__(self) -> None:
        self.calls = 0
        self.successes = 0
        self.errors: Counter[str] = Counter()
        self.failures_listed = 0  # target failures named in routes and errors
        self.direct = 0  # errors raised as they came (a stream cut after its first events)
        self.refusals = 0  # client-side rate-limit refusals: never reached a server
        self.unexpected: list[str] = []
        self.served: Counter[str] = Counter()
        self.most_waited = 0.0  # the longest wait an AllTargetsFailedError reported

    def route(self, response: aipk.ChatResponse) -> None:
        info = route_of(response)
        assert info is not None
        self.successes += 1
        self.served[info.served_by] += 1
        self.failures_listed += len(info.failures)
        self.refusals += sum("max_retry_after" in text for _, text in info.failures)

    def error(self, exc: BaseException) -> None:
        if not isinstance(exc, ProviderError):
            if len(self.unexpected) < 5:
                self.unexpected.append(repr(exc))
            self.errors["<untyped>"] += 1
            return
        self.errors[type(exc).__name__] += 1
        if isinstance(exc, AllTargetsFailedError):
            assert exc.retry_after >= 0
            self.most_waited = max(self.most_waited, exc.waited)
            self.failures_listed += len(exc.failures)
            self.refusals += sum(isinstance(e, RateLimitError) and e.status == 0
                                 for _, e in exc.failures)
        else:  # raised at once (a stream cut after its first events): one target failure
            self.failures_listed += 1
            self.direct += 1


class Servers:
    """The three emulators, their fault queues topped up to ``QUEUE_LEVEL`` between phases,
    and how many requests each received (the recorded requests are cleared as counted)."""

    def __init__(self, emus: tuple[Emulator, ...], rng: random.Random) -> None:
        self.emus = emus
        self.rng = rng
        self.queued = [0] * len(emus)
        self.received = [0] * len(emus)
        self.weights = [w for w, _ in FAULTS]
        self.makers = [m for _, m in FAULTS]

    def count(self) -> None:
        for i, emu in enumerate(self.emus):
            got = len(emu.requests)
            emu.requests.clear()
            self.received[i] += got
            self.queued[i] = max(0, self.queued[i] - got)

    def top_up(self) -> None:
        self.count()
        for i, emu in enumerate(self.emus):
            missing = QUEUE_LEVEL - self.queued[i]
            makers = self.rng.choices(self.makers, self.weights, k=missing)
            emu.enqueue(*(make(self.rng) for make in makers))
            self.queued[i] += missing

    def stop_faults(self) -> None:
        self.count()
        for i, emu in enumerate(self.emus):
            emu.reset()  # drops the rest of the queue: plain echo replies from now on
            self.queued[i] = 0


@pytest.fixture
def emus() -> Iterator[tuple[Emulator, ...]]:
    with Emulator() as a, Emulator() as b, Emulator() as c:
        yield a, b, c


async def one_call(router: AsyncRouter, rng: random.Random, tally: Tally) -> None:
    tally.calls += 1
    max_wait = 0.0 if rng.random() < 0.1 else None  # some calls fail fast
    messages = [Message.user(f"soak {tally.calls}")]
    try:
        if rng.random() < 0.3:
            stream = router.stream(messages=messages, max_wait=max_wait)
            async with stream:
                async for _ in stream:
                    pass
                tally.route(await stream.get_response())
        else:
            tally.route(await router.chat(messages=messages, max_wait=max_wait))
    except Exception as exc:  # every one must be typed: checked at the end
        tally.error(exc)


async def run_phase(router: AsyncRouter, rng: random.Random, tally: Tally, count: int) -> None:
    todo = iter(range(count))

    async def worker() -> None:
        for _ in todo:  # shared: each call is taken by exactly one worker
            await one_call(router, rng, tally)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


#: Allocations made in aipk itself (the router, the client, the plugin, attrs-generated code).
# The aiohttp transport's read timers are kept per connection, not per request
# (`aipk._aiohttp_reads`): a closed connection's cancelled timer stays in the event loop's heap
# until asyncio sweeps the cancelled ones (once they are half of it), so their memory rises and
# falls with the faults' connection churn. They are bounded on their own (READ_TIMERS) and left
# out of the per-request check.
_CORE = Path(aipk.__file__).parent
READ_TIMERS = [tracemalloc.Filter(True, str(_CORE / "_aiohttp_reads.py"))]


def own_code() -> list[tracemalloc.Filter]:
    """aipk's own code: the core's and the loaded provider plugins' package directories (not
    a pattern on "aipk", which a checkout's own path, and so its virtualenv's, may contain),
    less the read timers."""
    packages = [_CORE, *(Path(module.__file__).parent for name, module in sys.modules.items()
                         if name.startswith("aipk_") and "." not in name
                         and name != "aipk_testkit" and getattr(module, "__file__", None))]
    return [*(tracemalloc.Filter(True, f"{package}{os.sep}*") for package in packages),
            tracemalloc.Filter(False, str(_CORE / "_aiohttp_reads.py"))]


def traced(snapshot: tracemalloc.Snapshot, filters: list[tracemalloc.Filter] | None = None) -> int:
    if filters is not None:
        snapshot = snapshot.filter_traces(filters)
    return sum(stat.size for stat in snapshot.statistics("filename"))


def growth_by_line(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> list[str]:
    """The five lines of aipk's own code whose live allocations grew most, for the message."""
    own = own_code()
    stats = after.filter_traces(own).compare_to(before.filter_traces(own), "lineno")
    return [str(stat) for stat in stats[:5]]


def live_state(router: AsyncRouter, store: MemoryStore,
               client_store: MemoryStore) -> tuple[int, int, int, int]:
    """What could grow with the run: the router's store (cooldowns, breakers), the clients'
    (rate-limit state), the error-type maps and the latency buffers."""
    states = router._core.states
    return (len(store), len(client_store),
            max(len(s.metrics.error_types) for s in states),
            max(len(s.metrics._samples) + len(s.windows) for s in states))


@pytest.mark.slow
def test_router_soak_with_random_faults(emus: tuple[Emulator, ...]) -> None:
    rng = random.Random(SEED)
    clock = FakeTime()
    servers = Servers(emus, rng)
    tally = Tally()
    store = MemoryStore(clock=clock)
    client_store = MemoryStore(clock=clock)
    memory: list[tracemalloc.Snapshot] = []
    state_sizes: list[tuple[int, int, int, int]] = []

    async def scenario() -> tuple[dict[str, Any], dict[str, str]]:
        transports = [AiohttpTransport() for _ in NAMES]
        clients = {n: aipk.AsyncClient("openai", base_url=e.url("openai"),
                                       api_key=f"sk-soak-{n}-0123456789", max_retries=0,
                                       clock=clock, sleep=clock.sleep, store=client_store,
                                       timeout=aipk.Timeout(read=5.0), transport=t)
                   for n, e, t in zip(NAMES, emus, transports, strict=True)}
        targets = [Target(provider="openai", model="gpt-4o-mini", client=c, name=n)
                   for n, c in clients.items()]
        router = AsyncRouter(targets, strategy="round_robin", clock=clock, store=store,
                             breaker=BREAKER, cooldown=COOLDOWN, max_wait=MAX_WAIT,
                             sleep=clock.router_sleep, latency_window=WINDOW)
        try:
            phases = max(4, N // PHASE)
            for p in range(phases):
                # the first half warms up (connections, caches); then trace the second half
                # and read what it has left allocated after three quarters and at the end
                if p in (phases // 2, phases * 3 // 4):
                    servers.count()
                    gc.collect()
                    if p == phases // 2:
                        tracemalloc.start()
                    else:
                        memory.append(tracemalloc.take_snapshot())
                servers.top_up()
                await run_phase(router, rng, tally, N // phases + (p < N % phases))
                state_sizes.append(live_state(router, store, client_store))
            servers.count()
            gc.collect()
            memory.append(tracemalloc.take_snapshot())
            tracemalloc.stop()
            # the faults stop and the breakers' and cooldowns' time passes: all heal
            servers.stop_faults()
            clock.now += 60.0
            for _ in range(3 * len(NAMES)):
                tally.calls += 1
                tally.route(await router.chat(messages=[Message.user("heal")]))
            servers.count()
            modes = {n: router.breaker.mode(n) for n in NAMES}  # type: ignore[union-attr]
            return router.metrics(), modes
        finally:
            for c in clients.values():
                await c.close()
            for t in transports:  # a transport passed in is the caller's to close
                await t.close()

    started = time.perf_counter()
    # pytest's log capture keeps every record it sees (each failed call logs a WARNING): it
    # would count as aipk's memory, so the calls' records go nowhere during the run (setLevel,
    # not an assignment: it also clears the level cache earlier tests' warnings filled)
    calls_log = logging.getLogger("aipk.client")
    level = calls_log.level
    calls_log.setLevel(logging.ERROR)
    try:
        metrics, modes = asyncio.run(scenario())
    finally:
        tracemalloc.stop()
        calls_log.setLevel(level)
    elapsed = time.perf_counter() - started
    where = f"(seed {SEED}, {N} requests, {elapsed:.1f}s)"
    if os.environ.get("AIPK_SOAK_DEBUG"):
        print(tally.successes, tally.errors, metrics["waits"], metrics["waited"], clock.now,
              {n: (t["requests"], t["error_types"]) for n, t in metrics["targets"].items()})

    # every call succeeded or raised a typed error
    assert tally.unexpected == [], where
    assert tally.calls == N + 3 * len(NAMES)
    assert tally.successes + sum(tally.errors.values()) == tally.calls, where
    assert set(tally.errors) <= {"AllTargetsFailedError", "NetworkError", "ResponseError"}, (
        tally.errors, where)
    assert all(issubclass(getattr(aipk.errors, name), AipkError) for name in tally.errors)
    # the faults really happened and were survived: most calls succeed
    assert tally.successes > 0.8 * N and tally.errors["AllTargetsFailedError"] > 0, (
        tally, where)

    # the router's totals are the callers' view
    assert (metrics["requests"], metrics["successes"], metrics["errors"],
            metrics["cancelled"]) == (tally.calls, tally.successes,
                                      sum(tally.errors.values()), 0), where
    assert metrics["waits"] > 0 and metrics["waited"] == pytest.approx(clock.router_slept)
    assert tally.most_waited <= MAX_WAIT, where  # no call waited beyond its bound
    targets = metrics["targets"]
    # per target: every attempt ended one way; the sums add up to what callers and servers saw
    for name, t in targets.items():
        assert t["requests"] == t["successes"] + t["errors"] + t["cancelled"], (name, where)
        assert t["in_flight"] == 0 and t["cancelled"] == 0, (name, where)
        assert sum(t["error_types"].values()) == t["errors"], (name, where)
        assert set(t["error_types"]) <= EXPECTED_ERRORS, (name, t["error_types"], where)
        assert t["latency_samples"] == min(WINDOW, t["successes"]), (name, where)
        assert t["successes"] == tally.served[name], (name, where)
        assert 0 <= t["p50"] <= t["p95"] <= t["p99"], (name, where)
    assert sum(t["successes"] for t in targets.values()) == tally.successes, where
    # every target failure is named once in a route or an AllTargetsFailedError, except the
    # ones before a stream that was then cut mid-way (that error is raised as it came, without
    # the history): at most one per target and pass, and the passes are few
    hidden = sum(t["errors"] for t in targets.values()) - tally.failures_listed
    assert 0 <= hidden <= 3 * len(NAMES) * tally.direct, (hidden, tally.direct, where)
    attempts = sum(t["requests"] for t in targets.values())
    assert attempts == sum(servers.received) + tally.refusals, (
        "every attempt reached a server, or was refused client-side", where)
    assert attempts > tally.calls  # failover and waiting really happened

    # bounded state, at every phase: at most a cooldown and a breaker per target in the
    # router's store, a rate-limit entry per client in theirs, one entry per error type, and
    # latency buffers that never grow
    if os.environ.get("AIPK_SOAK_DEBUG"):
        print("state sizes per phase:", state_sizes)
    routers, clients, kinds, buffers = (max(x) for x in zip(*state_sizes, strict=True))
    assert routers <= 2 * len(NAMES) and clients <= len(NAMES), (state_sizes, where)
    assert kinds <= len(EXPECTED_ERRORS) and buffers == WINDOW, (state_sizes, where)
    # the breakers are consistent and healed: closed, nothing stored, traffic on every target
    assert modes == {n: "closed" for n in NAMES}, where
    assert all(t["breaker"] == "closed" and t["cooldown_remaining"] == 0.0
               for t in targets.values()), where
    assert all(store.get(CircuitBreaker.NAMESPACE, n) is None for n in NAMES)
    assert set(tally.served) == set(NAMES)

    # memory does not grow: of what the (traced) second half allocated, what is still alive
    # is bounded (connection pools churn, ring buffers refill), and its last quarter adds
    # almost nothing to what its first quarter left: no per-request leak
    mid, end = (traced(s) for s in memory)
    own_mid, own_end = (traced(s, own_code()) for s in memory)
    if os.environ.get("AIPK_SOAK_DEBUG"):
        print(f"traced: {mid / 1024:.0f} KiB, then {end / 1024:.0f} KiB; in aipk's own code "
              f"{own_mid / 1024:.0f} KiB, then {own_end / 1024:.0f} KiB", where)
    assert end < 2 * 1024 * 1024, (f"the second half left {end / 1024:.0f} KiB", where)
    # 48 KiB over the last quarter (750 requests by default): any object kept per request
    # (with the slot holding it) exceeds it; what a loaded machine shifts (work in flight at
    # the snapshot) does not
    assert own_end - own_mid < 48 * 1024, (
        f"aipk's allocations grew {(own_end - own_mid) / 1024:.0f} KiB over the last quarter",
        growth_by_line(*memory), where)
    # at most a live and a cancelled timer (under 1 KiB) per connection of the three pools
    timers = max(traced(s, READ_TIMERS) for s in memory)
    assert timers < 300 * 1024, (f"the read timers hold {timers / 1024:.0f} KiB", where)
