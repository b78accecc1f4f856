"""The router over real HTTP: one loopback emulator per target (each has its own reply queue),
the OpenAI plugin, an injected clock and no sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import aipk
from aipk import Message
from aipk.errors import BadRequestError, NetworkError
from aipk.router import (
    AllTargetsFailedError,
    AsyncRouter,
    BreakerPolicy,
    Router,
    Target,
    route_of,
)
from aipk_testkit.emulator import Emulator, Fault, Reply

from .passed_in import PassedIn

KEY = "sk-test-0123456789abcdef"
USER = [Message.user("Hello there")]
CONTEXT_MESSAGE = ("This model's maximum context length is 128000 tokens. However, your "
                   "messages resulted in 130000 tokens. Please reduce the length of the messages.")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Emulator, Emulator, Emulator]]:
    with Emulator() as a, Emulator() as b, Emulator() as c:
        yield a, b, c


@pytest.fixture
def emus(servers: tuple[Emulator, Emulator, Emulator]) -> tuple[Emulator, Emulator, Emulator]:
    for emu in servers:
        emu.reset()
    return servers


def targets(emus: tuple[Emulator, ...], *models: str) -> list[Target]:
    return [Target(provider="openai", model=model, base_url=emu.url("openai"), api_key=KEY,
                   name=name)
            for emu, model, name in zip(emus, models, "abc", strict=False)]


def counts(emus: tuple[Emulator, ...]) -> list[int]:
    return [len(e.requests) for e in emus]


def make_router(emus: tuple[Emulator, ...], *models: str, clock: Clock, sleeps: Sleeps,
                **kw: Any) -> Router:
    return Router(targets(emus, *models), clock=clock,
                  client_options={"clock": clock, "sleep": sleeps}, **kw)


# -- chat ----------------------------------------------------------------------------------------


def test_failover_creates_one_client_per_target_without_inner_retries(emus: Any) -> None:
    a = emus[0]
    clock, sleeps = Clock(), Sleeps()
    a.enqueue(Fault.status(503))
    with make_router(emus, "gpt-4o-mini", "gpt-4o-mini", clock=clock, sleeps=sleeps) as r:
        reply = r.chat(messages=USER)
        assert reply.text == "echo: Hello there"
        info = route_of(reply)
        assert info is not None and info.tried == ("a", "b") and info.served_by == "b"
        assert "ServerError" in info.failures[0][1]
        assert counts(emus) == [1, 1, 0] and sleeps == []  # max_retries=0 inside a target
        created = [s.client for s in r._core.states]
        clock.now += 2.0  # a's cooldown is over
        r.chat(messages=USER)
        assert [s.client for s in r._core.states] == created  # reused, one per target
        assert counts(emus) == [2, 1, 0]
        m = r.metrics()
        assert m["targets"]["b"]["input_tokens"] > 0 and m["successes"] == 2
    assert all(s.client is None for s in r._core.states)  # closed and dropped on exit


def test_429_cooldown_honours_retry_after(emus: Any) -> None:
    a = emus[0]
    clock, sleeps = Clock(), Sleeps()
    a.enqueue(Fault.status(429, retry_after=30))
    with make_router(emus, "gpt-4o-mini", "gpt-4o-mini", clock=clock, sleeps=sleeps) as r:
        r.chat(messages=USER)
        clock.now += 29.0
        assert route_of(r.chat(messages=USER)).tried == ("b",)  # type: ignore[union-attr]
        clock.now += 1.0
        assert route_of(r.chat(messages=USER)).served_by == "a"  # type: ignore[union-attr]
    assert counts(emus)[:2] == [2, 2] and sleeps == []


def test_round_robin_spreads_over_three_emulators(emus: Any) -> None:
    clock, sleeps = Clock(), Sleeps()
    with make_router(emus, "gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini", clock=clock,
                     sleeps=sleeps, strategy="round_robin") as r:
        served = [route_of(r.chat(messages=USER)).served_by  # type: ignore[union-attr]
                  for _ in range(6)]
    assert served == ["a", "b", "c", "a", "b", "c"] and counts(emus) == [2, 2, 2]


def test_cheapest_first_uses_the_plugins_static_prices(emus: Any) -> None:
    clock, sleeps = Clock(), Sleeps()
    with make_router(emus, "gpt-4o", "gpt-4.1", "gpt-4o-mini", clock=clock, sleeps=sleeps,
                     strategy="cheapest_first") as r:
        reply = r.chat(messages=USER)
    assert route_of(reply).served_by == "c"  # type: ignore[union-attr]
    assert emus[2].requests[-1].json()["model"] == "gpt-4o-mini" and counts(emus) == [0, 0, 1]


def test_lowest_latency_prefers_the_faster_after_observing_both(emus: Any) -> None:
    a, _, _ = emus
    sleeps = Sleeps()
    a.enqueue(Fault.slow_first_byte(0.2))
    r = Router(targets(emus, "gpt-4o-mini", "gpt-4o-mini"), strategy="lowest_latency",
               client_options={"sleep": sleeps})
    with r:
        served = [route_of(r.chat(messages=USER)).served_by  # type: ignore[union-attr]
                  for _ in range(4)]
        t = r.metrics()["targets"]
    assert served == ["a", "b", "b", "b"]
    assert t["a"]["p50"] >= 0.2 > t["b"]["p95"]


def test_bad_credential_fails_over_and_cools_down_long(emus: Any) -> None:
    a, _, _ = emus
    clock, sleeps = Clock(), Sleeps()
    a.require_api_key("sk-some-other-key-0000")
    with make_router(emus, "gpt-4o-mini", "gpt-4o-mini", clock=clock, sleeps=sleeps) as r:
        assert route_of(r.chat(messages=USER)).served_by == "b"  # type: ignore[union-attr]
        cooling = r.metrics()["targets"]["a"]["cooldown_remaining"]
        assert cooling == pytest.approx(300.0)
        assert r.metrics()["targets"]["a"]["error_types"] == {"AuthenticationError": 1}
    assert counts(emus)[:2] == [1, 1]


def test_bad_request_does_not_fail_over(emus: Any) -> None:
    a, _, _ = emus
    clock, sleeps = Clock(), Sleeps()
    a.enqueue(Fault.status(400, message="Unrecognized request argument supplied: foo"))
    with make_router(emus, "gpt-4o-mini", "gpt-4o-mini", clock=clock, sleeps=sleeps) as r, \
            pytest.raises(BadRequestError, match="Unrecognized request argument"):
        r.chat(messages=USER)
    assert counts(emus) == [1, 0, 0]


def test_context_window_falls_over_to_the_configured_larger_model(emus: Any) -> None:
    a, _, _ = emus
    clock, sleeps = Clock(), Sleeps()
    a.enqueue(Fault.status(400, message=CONTEXT_MESSAGE))
    with make_router(emus, "gpt-4o-mini", "gpt-4o-mini", clock=clock, sleeps=sleeps,
                     fallback_on_context_window={"gpt-4o-mini": "gpt-4.1-mini"}) as r:
        reply = r.chat(messages=USER)
    assert [q.json()["model"] for q in a.requests] == ["gpt-4o-mini", "gpt-4.1-mini"]
    info = route_of(reply)
    assert info is not None and (info.served_by, info.model) == ("a", "gpt-4.1-mini")
    assert counts(emus)[1] == 0


def test_context_window_true_skips_targets_no_larger_than_the_failed_one(emus: Any) -> None:
    a, _, c = emus
    clock, sleeps = Clock(), Sleeps()
    a.enqueue(Fault.status(400, message=CONTEXT_MESSAGE))
    # gpt-4o-mini and gpt-4o both have 128k windows; gpt-4.1 has about 1M
    with make_router(emus, "gpt-4o-mini", "gpt-4o", "gpt-4.1", clock=clock, sleeps=sleeps,
                     fallback_on_context_window=True) as r:
        reply = r.chat(messages=USER)
    assert route_of(reply).tried == ("a", "c")  # type: ignore[union-attr]
    assert counts(emus) == [1, 0, 1] and c.requests[0].json()["model"] == "gpt-4.1"


def test_all_targets_failed_over_http(emus: Any) -> None:
    a, b, c = emus
    clock, sleeps = Clock(), Sleeps()
    a.enqueue(Fault.status(503))
    b.enqueue(Fault.status(429, retry_after=9))
    c.require_api_key("sk-some-other-key-0000")
    with make_router(emus, "gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini", clock=clock,
                     sleeps=sleeps) as r, pytest.raises(AllTargetsFailedError) as info:
        r.chat(messages=USER)
    err = info.value
    kinds = [(t.name, type(e).__name__) for t, e in err.failures]
    assert kinds == [("a", "ServerError"), ("b", "RateLimitError"),
                     ("c", "AuthenticationError")]
    assert err.failures[1][1].retry_after == 9  # type: ignore[attr-defined]
    assert err.retry_after == pytest.approx(2.0)  # a's 503 cooldown is the shortest
    assert KEY not in str(err) and counts(emus) == [1, 1, 1]


# -- streams -------------------------------------------------------------------------------------


def test_stream_fails_over_before_the_first_event(emus: Any) -> None:
    a, b, c = emus
    clock, sleeps = Clock(), Sleeps()
    a.enqueue(Fault.status(503))
    b.enqueue(Fault.reset_mid_stream(after_events=0))  # headers, then the socket drops
    c.enqueue(Reply(text="streamed from c", chunk_size=5))
    with make_router(emus, "gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini", clock=clock,
                     sleeps=sleeps) as r:
        stream = r.stream(messages=USER)
        assert "".join(stream.text()) == "streamed from c"
        assert stream.route is not None and stream.route.tried == ("a", "b", "c")
        errors = r.metrics()["targets"]["b"]["error_types"]
    assert errors == {"NetworkError": 1} and counts(emus) == [1, 1, 1]


def test_stream_in_band_error_before_any_event_fails_over(emus: Any) -> None:
    a, b, _ = emus
    clock, sleeps = Clock(), Sleeps()
    a.enqueue(Fault.inband_error(message="Overloaded", after_events=0))
    b.enqueue(Reply(text="fine"))
    with make_router(emus, "gpt-4o-mini", "gpt-4o-mini", clock=clock, sleeps=sleeps) as r:
        stream = r.stream(messages=USER)
        assert "".join(stream.text()) == "fine"
        assert stream.response.extra["router"]["tried"] == ["a", "b"]


def test_stream_is_never_restarted_after_events(emus: Any) -> None:
    a = emus[0]
    clock, sleeps = Clock(), Sleeps()
    a.enqueue(Fault.reset_mid_stream(after_events=4))
    got: list[str] = []
    with make_router(emus, "gpt-4o-mini", "gpt-4o-mini", clock=clock, sleeps=sleeps) as r:
        with pytest.raises(NetworkError):
            for text in r.stream(messages=USER).text():
                got.append(text)
        m = r.metrics()
    assert got and counts(emus)[:2] == [1, 0]
    assert (m["requests"], m["errors"], m["targets"]["a"]["errors"]) == (1, 1, 1)


# -- async ---------------------------------------------------------------------------------------

TRANSPORTS = ("httpx", "aiohttp")


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_async_router_chat_and_stream(emus: Any, transport: str) -> None:
    a, b, _ = emus
    clock, sleeps = Clock(), Sleeps()

    made = PassedIn(transport)

    async def scenario() -> None:
        clients = [aipk.AsyncClient("openai", base_url=e.url("openai"), api_key=KEY,
                                    max_retries=0, clock=clock, sleep=sleeps.asleep,
                                    transport=made()) for e in (a, b)]
        ts = [Target(provider="openai", model="gpt-4o-mini", client=cl, name=n)
              for cl, n in zip(clients, "ab", strict=True)]
        async with AsyncRouter(ts, clock=clock) as r:
            a.enqueue(Fault.status(429, retry_after=5))
            reply = await r.chat(messages=USER)
            assert route_of(reply).tried == ("a", "b")  # type: ignore[union-attr]
            b.enqueue(Fault.status(503))
            with pytest.raises(AllTargetsFailedError) as info:
                await r.chat(messages=USER)  # a cools down, b fails
            assert [t.name for t, _ in info.value.failures] == ["b"]
            assert info.value.retry_after == pytest.approx(2.0)
            clock.now += 5.0
            b.enqueue(Reply(text="from b"))
            a.enqueue(Fault.status(503))
            stream = r.stream(messages=USER)
            assert "".join([t async for t in stream.text()]) == "from b"
            assert stream.route is not None and stream.route.tried == ("a", "b")
            clock.now += 2.0  # a's 503 cooldown is over
            a.enqueue(Fault.reset_mid_stream(after_events=4))
            with pytest.raises(NetworkError):
                async for _ in r.stream(messages=USER):
                    pass
            m = r.metrics()
            assert (m["requests"], m["successes"], m["errors"]) == (4, 2, 2)
        for cl in clients:  # clients passed in stay open: their owner closes them
            await cl.close()
        await made.close()  # and so do transports

    asyncio.run(scenario())
    assert sleeps == []


def test_async_router_creates_its_own_clients_lazily(emus: Any) -> None:
    a, b, _ = emus

    async def scenario() -> None:
        async with AsyncRouter(targets(emus, "gpt-4o-mini", "gpt-4o-mini")) as r:
            assert all(s.client is None for s in r._core.states)
            a.enqueue(Fault.status(500))
            replies = await asyncio.gather(*(r.chat(messages=USER) for _ in range(5)))
            assert all(x.text == "echo: Hello there" for x in replies)
            states = r._core.states
            assert isinstance(states[0].client, aipk.AsyncClient) and states[0].owned
        assert all(s.client is None for s in r._core.states)

    asyncio.run(scenario())
    assert len(a.requests) == 5 and len(b.requests) == 1


def test_sync_and_async_routers_refuse_the_wrong_client_kind(emus: Any) -> None:
    a = emus[0]
    with aipk.Client("openai", base_url=a.url("openai"), api_key=KEY) as sync_client, \
            pytest.raises(aipk.ConfigurationError, match="use aipk.router.Router"):
        AsyncRouter([Target(provider="openai", model="m", client=sync_client)])
    async_client = aipk.AsyncClient("openai", base_url=a.url("openai"), api_key=KEY)
    with pytest.raises(aipk.ConfigurationError, match="use aipk.router.AsyncRouter"):
        Router([Target(provider="openai", model="m", client=async_client)])
    asyncio.run(async_client.close())


# -- max_wait: waiting for the earliest target over HTTP -----------------------------------------


class Waits(list[float]):
    """The router's injected sleep: records each wait and moves the shared fake clock on."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.clock.now += seconds

    async def asleep(self, seconds: float) -> None:
        self(seconds)
        await asyncio.sleep(0)


def test_max_wait_waits_out_a_429_retry_after(emus: Any) -> None:
    a, b, _ = emus
    clock, sleeps = Clock(), Sleeps()
    waits = Waits(clock)
    a.enqueue(Fault.status(429, retry_after=4))
    b.enqueue(Fault.status(429, retry_after=6))
    with make_router(emus, "gpt-4o-mini", "gpt-4o-mini", clock=clock, sleeps=sleeps,
                     max_wait=5.0, sleep=waits) as r:
        reply = r.chat(messages=USER)
        assert reply.text == "echo: Hello there"
        assert route_of(reply).tried == ("a", "b", "a")  # type: ignore[union-attr]
        assert waits == [pytest.approx(4.0)] and counts(emus) == [2, 1, 0]
        a.enqueue(Fault.status(429, retry_after=30))
        with pytest.raises(AllTargetsFailedError) as info:
            r.chat(messages=USER, max_wait=1.0)  # b is free in 2 s: over this call's budget
        assert info.value.retry_after == pytest.approx(2.0) and len(waits) == 1
        assert [t.name for t, _ in info.value.skipped] == ["b"]
        reply = r.chat(messages=USER)  # the router's 5 s: waits 2 s for b
        assert route_of(reply).tried == ("b",)  # type: ignore[union-attr]
        assert waits == [pytest.approx(4.0), pytest.approx(2.0)]
        m = r.metrics()
        assert (m["requests"], m["successes"], m["errors"], m["waits"]) == (3, 2, 1, 2)
    assert counts(emus) == [3, 2, 0] and sleeps == []  # the clients themselves never slept


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_async_max_wait_through_an_open_then_half_open_breaker(emus: Any,
                                                               transport: str) -> None:
    a, b, _ = emus
    clock, sleeps = Clock(), Sleeps()
    waits = Waits(clock)
    a.enqueue(Fault.status(503), Fault.status(529))
    b.enqueue(Fault.status(429, retry_after=20))

    made = PassedIn(transport)

    async def scenario() -> None:
        clients = [aipk.AsyncClient("openai", base_url=e.url("openai"), api_key=KEY,
                                    max_retries=0, clock=clock, sleep=sleeps.asleep,
                                    transport=made()) for e in (a, b)]
        ts = [Target(provider="openai", model="gpt-4o-mini", client=cl, name=n)
              for cl, n in zip(clients, "ab", strict=True)]
        r = AsyncRouter(ts, clock=clock, max_wait=8.0, sleep=waits.asleep,
                        breaker=BreakerPolicy(failure_threshold=2, open_duration=5.0))
        async with r:
            # a 503 (cooldown 2 s), b 429 (20 s); wait 2: a 529 opens its breaker for 5 s;
            # wait 5: half-open, the probe goes to a and closes the breaker
            reply = await r.chat(messages=USER)
            assert reply.text == "echo: Hello there"
            assert route_of(reply).tried == ("a", "b", "a", "a")  # type: ignore[union-attr]
            assert waits == pytest.approx([2.0, 5.0])
            m = r.metrics()
            ta = m["targets"]["a"]
            assert ta["breaker"] == "closed"
            assert ta["error_types"] == {"ServerError": 1, "OverloadedError": 1}
            assert (m["waits"], m["waited"]) == (2, pytest.approx(7.0))
        for cl in clients:
            await cl.close()
        await made.close()

    asyncio.run(scenario())
    assert counts(emus) == [3, 1, 0] and sleeps == []
