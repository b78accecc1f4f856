"""Key-pool counters, router target statistics and router totals live in the one metrics
model the clients record into: real HTTP against the emulator, with injected faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

import aipk
from aipk import Message
from aipk._base import key_fingerprint
from aipk.credentials import KeyPool
from aipk.observability import DEFAULT_ROUTER_NAME, Metrics, RouterTotals
from aipk.router import AsyncRouter, Router, Target, route_of
from aipk_testkit.emulator import Emulator, Fault, Reply

HELLO = [Message.user("Hello there")]
KEY = "sk-test-0123456789abcdef"


@pytest.fixture(scope="module")
def two() -> Iterator[tuple[Emulator, Emulator]]:
    with Emulator() as a, Emulator() as b:
        yield a, b


def test_a_pool_records_its_attempts_into_the_clients_model(aipk_emulator: Emulator) -> None:
    aipk_emulator.require_api_keys("sk-one-0000000000", "sk-two-0000000000")
    aipk_emulator.fail_key("sk-one-0000000000", Fault.status(401))
    shared = Metrics()
    pool = KeyPool.from_keys("openai", ["sk-one-0000000000", "sk-two-0000000000"],
                             metrics=shared)
    assert pool.metrics_model is shared
    with aipk.Client("openai", credentials=pool, base_url=aipk_emulator.url("openai")) as client:
        assert client.metrics_model is shared  # the pool's model, unless metrics= is given
        for _ in range(3):
            client.chat(model="gpt-4o-mini", messages=HELLO)
    snap = shared.snapshot()
    # the calls, as the caller saw them: three answers, one failover off key-1
    assert (snap.requests, snap.successes, snap.failovers) == (3, 3, 1)
    assert snap.by(credential_id="key-1").failovers == 1
    # the attempts, as each key saw them: the same model, read through pool.metrics
    attempts = {c.id: (c.requests, c.successes, c.errors) for c in snap.credentials}
    assert attempts == {"key-1": (1, 0, 1), "key-2": (3, 3, 0)}
    assert {c.provider for c in snap.credentials} == {"openai"}
    view = pool.metrics.snapshot()
    assert {cid: (s.requests, s.successes, s.errors) for cid, s in view.items()} == attempts
    assert view["key-2"].tokens == snap.input_tokens + snap.output_tokens
    assert 'aipk_credential_errors_total{provider="openai",credential="key-1"} 1' in (
        pool.export_prometheus())
    pool.remove("key-1")
    assert [c.id for c in shared.snapshot().credentials] == ["key-2"]


def test_a_clients_own_keys_share_its_model(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Fault.status(500), Reply(text="ok"))
    with aipk.Client("openai", api_key=["sk-a-00000000000", "sk-b-00000000000"],
                     base_url=aipk_emulator.url("openai"), sleep=lambda s: None) as client:
        client.chat(model="gpt-4o-mini", messages=HELLO)
        assert client.credentials.metrics_model is client.metrics_model  # type: ignore[attr-defined]
        snap = client.metrics()
    assert snap.requests == 1 and snap.failovers + snap.retries == 1
    assert sum(c.requests for c in snap.credentials) == 2
    assert sum(c.errors for c in snap.credentials) == 1
    assert {c.id for c in snap.credentials} <= {key_fingerprint("sk-a-00000000000"),
                                                 key_fingerprint("sk-b-00000000000")}


def _targets(emus: tuple[Emulator, Emulator]) -> list[Target]:
    return [Target(provider="openai", model="gpt-4o-mini", base_url=emu.url("openai"),
                   api_key=KEY, name=name) for emu, name in zip(emus, "ab", strict=True)]


def test_router_statistics_live_in_the_model_its_clients_record_into(
        two: tuple[Emulator, Emulator]) -> None:
    a, b = two
    a.reset()
    b.reset()
    a.enqueue(Fault.status(400))
    shared = Metrics()
    with Router(_targets(two), metrics=shared, client_options={"sleep": lambda s: None}) as r:
        assert r.metrics_model is shared
        with pytest.raises(aipk.errors.BadRequestError):
            r.chat(messages=HELLO)
        r.chat(messages=HELLO)
        r.chat(messages=HELLO)
        stats = r.metrics()["targets"]
    snap = shared.snapshot()
    for name in ("a", "b"):
        for field in ("requests", "successes", "errors", "input_tokens", "ewma_latency"):
            assert snap.targets[name][field] == stats[name][field]
    assert (stats["a"]["successes"], stats["a"]["errors"]) == (2, 1)
    # the target clients the router built recorded their calls into the same model
    assert (snap.requests, snap.successes, snap.failures) == (3, 2, 1)
    assert snap.errors == {"BadRequestError": 1}
    assert sum(c.requests for c in snap.credentials) == 3


def test_lowest_latency_ranks_by_the_statistics_in_the_model(
        two: tuple[Emulator, Emulator]) -> None:
    for emu in two:
        emu.reset()
    shared = Metrics()
    shared.target("a").succeeded(5.0, None)  # a was slow, as this model remembers
    shared.target("b").succeeded(0.01, None)
    with Router(_targets(two), strategy="lowest_latency", metrics=shared) as r:
        served = route_of(r.chat(messages=HELLO)).served_by  # type: ignore[union-attr]
    assert served == "b"
    assert shared.snapshot().targets["b"]["successes"] == 2


def test_client_options_metrics_is_the_routers_model(two: tuple[Emulator, Emulator]) -> None:
    shared = Metrics()
    with Router(_targets(two), client_options={"metrics": shared}) as r:
        assert r.metrics_model is shared


# -- router totals, by router name -------------------------------------------------------------


def test_router_totals_live_in_the_model_by_router_name(two: tuple[Emulator, Emulator]) -> None:
    a, b = two
    a.reset()
    b.reset()
    a.enqueue(Fault.status(400))  # a 400 is wrong everywhere: the call raises at once
    shared = Metrics()
    with Router(_targets(two), metrics=shared, name="chat") as chat, \
            Router(_targets(two), metrics=shared, name="batch") as batch:
        assert (chat.name, batch.name) == ("chat", "batch")
        with pytest.raises(aipk.errors.BadRequestError):
            chat.chat(messages=HELLO)
        chat.chat(messages=HELLO)
        with chat.stream(messages=HELLO) as stream:  # closed before its end: cancelled
            next(iter(stream))
        for _ in range(2):
            batch.chat(messages=HELLO)
        chat_view, batch_view = chat.metrics(), batch.metrics()
    totals = shared.snapshot().routers
    assert set(totals) == {"chat", "batch"}
    assert totals["chat"] == RouterTotals(name="chat", requests=3, successes=1, errors=1,
                                          cancelled=1)
    assert totals["batch"] == RouterTotals(name="batch", requests=2, successes=2)
    # router.metrics() keeps its shape and reads its own totals from the model
    for view, name in ((chat_view, "chat"), (batch_view, "batch")):
        t = totals[name]
        assert {k: view[k] for k in ("requests", "successes", "errors", "cancelled", "waits",
                                     "waited")} == {
            "requests": t.requests, "successes": t.successes, "errors": t.errors,
            "cancelled": t.cancelled, "waits": 0, "waited": 0.0}
        assert set(view["targets"]) == {"a", "b"}
    record = json.loads(shared.snapshot().to_json())["routers"]
    assert record["chat"] == {"name": "chat", "requests": 3, "successes": 1, "errors": 1,
                              "cancelled": 1, "waits": 0, "waited": 0.0}
    assert record["batch"]["successes"] == 2
    # the calls through both routers, as their target clients recorded them
    assert shared.snapshot().requests == 5


def test_routers_with_the_same_name_add_up(two: tuple[Emulator, Emulator]) -> None:
    for emu in two:
        emu.reset()
    shared = Metrics()
    with Router(_targets(two), metrics=shared) as first, \
            Router(_targets(two), metrics=shared) as second:
        assert first.name == second.name == DEFAULT_ROUTER_NAME == "router"
        first.chat(messages=HELLO)
        second.chat(messages=HELLO)
        second.chat(messages=HELLO)
        assert first.metrics()["requests"] == second.metrics()["requests"] == 3
    assert shared.snapshot().routers["router"] == RouterTotals(name="router", requests=3,
                                                                successes=3)
    assert shared.router("router") is shared.router("router")


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_router_waits_are_counted_in_the_model(two: tuple[Emulator, Emulator]) -> None:
    a, b = two
    a.reset()
    b.reset()
    a.enqueue(Fault.status(429, retry_after=3))
    b.enqueue(Fault.status(429, retry_after=5))
    clock, slept = _Clock(), []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    shared = Metrics()
    with Router(_targets(two), metrics=shared, name="waiting", clock=clock, sleep=sleep,
                max_wait=10.0, client_options={"clock": clock, "sleep": lambda s: None}) as r:
        assert r.chat(messages=HELLO).text == "echo: Hello there"
        view = r.metrics()
    assert slept == [pytest.approx(3.0)]
    totals = shared.snapshot().routers["waiting"]
    assert (totals.requests, totals.successes, totals.errors, totals.waits) == (1, 1, 0, 1)
    assert totals.waited == pytest.approx(3.0) == view["waited"]
    assert view["waits"] == 1


async def _async_calls(emus: tuple[Emulator, Emulator], shared: Metrics) -> None:
    async with AsyncRouter(_targets(emus), metrics=shared, name="async") as r:
        await r.chat(messages=HELLO)
        emus[0].enqueue(Fault.status(400))
        with pytest.raises(aipk.errors.BadRequestError):
            await r.chat(messages=HELLO)


def test_async_router_totals(two: tuple[Emulator, Emulator]) -> None:
    for emu in two:
        emu.reset()
    shared = Metrics()
    asyncio.run(_async_calls(two, shared))
    assert shared.snapshot().routers == {
        "async": RouterTotals(name="async", requests=2, successes=1, errors=1)}


@pytest.mark.parametrize("bad", ["", " chat", "chat\n", "a" * 201, 7, ["chat"]])
def test_a_bad_router_name_names_the_fix(two: tuple[Emulator, Emulator], bad: object) -> None:
    with pytest.raises(aipk.ConfigurationError, match=r"name="):
        Router(_targets(two), name=bad)  # type: ignore[arg-type]
    with pytest.raises(aipk.ConfigurationError, match=r"name="):
        Metrics().router(bad)  # type: ignore[arg-type]
