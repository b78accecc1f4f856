"""A stream cut short (IncompleteStreamError, a reset connection) or closed by the caller still
counts the usage it reported, and its time to first token: real HTTP against the emulator with
injected faults, an injected clock."""

from __future__ import annotations

from typing import Any

import pytest

import aipk
import aipk_anthropic.plugin
import aipk_openai.plugin
from aipk import FinishEvent, IncompleteStreamError, Message, UsageEvent
from aipk.errors import NetworkError
from aipk.hookspecs import hookimpl
from aipk.observability import CallCancelled, CallFailed, Metrics
from aipk.registry import Registry
from aipk_testkit.emulator import Emulator, Fault, Reply

HELLO = [Message.user("Hello there")]
ANSWER = Reply(text="a fairly long answer, cut short", chunk_size=3, usage=(11, 7))


class Ticks:
    """Every clock read is 0.125 s after the last (start, first token, end)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.125
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    @hookimpl
    def aipk_observe(self, event: Any) -> None:
        self.events.append(event)


@pytest.fixture
def registry() -> Registry:
    reg = Registry(entry_points=False)
    reg.register(aipk_openai.plugin, "openai")
    reg.register(aipk_anthropic.plugin, "anthropic")
    return reg


def _client(emu: Emulator, registry: Registry, provider: str, metrics: Metrics) -> aipk.Client:
    return aipk.Client(provider, api_key="sk-partial", base_url=emu.url(provider),
                       registry=registry, metrics=metrics, max_retries=0)


def _price(client: aipk.Client, model: str) -> tuple[float, float]:
    (info,) = [m for m in client.provider.spec.models if m.id == model]
    assert info.input_price is not None and info.output_price is not None
    return info.input_price, info.output_price


def test_a_stream_cut_before_its_terminator_counts_its_usage(aipk_emulator: Emulator,
                                                             registry: Registry) -> None:
    recorder = Recorder()
    registry.register(recorder, "recorder")
    # every event, the usage chunk included, but no [DONE]
    aipk_emulator.enqueue(Fault.truncate(after_events=1000, reply=ANSWER))
    metrics = Metrics(clock=Ticks())
    with _client(aipk_emulator, registry, "openai", metrics) as client:
        price = _price(client, "gpt-4o-mini")
        with (pytest.raises(IncompleteStreamError) as caught,
              client.stream(model="gpt-4o-mini", messages=HELLO) as stream):
            for _ in stream:
                pass
    assert caught.value.partial.usage is not None
    snap = metrics.snapshot()
    assert (snap.failures, snap.errors) == (1, {"IncompleteStreamError": 1})
    assert (snap.input_tokens, snap.output_tokens) == (11, 7)
    assert snap.totals.cost == pytest.approx((11 * price[0] + 7 * price[1]) / 1e6)
    assert snap.totals.time_to_first_token.count == 1
    assert snap.totals.time_to_first_token.sum == 0.125
    assert snap.totals.latency.count == 0  # latency is for answered calls
    # the key's counters: it answered (a success), its stream then broke (an error the key's
    # source hears of, see docs/credentials.md), and it spent the tokens
    (key,) = snap.credentials
    assert (key.requests, key.successes, key.errors, key.tokens) == (2, 1, 1, 18)
    (failed,) = [e for e in recorder.events if isinstance(e, CallFailed)]
    assert failed.usage is not None and failed.usage.output_tokens == 7
    # the records carry it to observers' own models (the exporters' process model)
    copy = Metrics()
    for event in recorder.events:
        copy.observe(event)
    assert (copy.snapshot().input_tokens, copy.snapshot().output_tokens) == (11, 7)


def test_a_reset_connection_after_the_usage_counts_it(aipk_emulator: Emulator,
                                                      registry: Registry) -> None:
    aipk_emulator.enqueue(Fault.reset_mid_stream(after_events=1000, reply=ANSWER))
    metrics = Metrics(clock=Ticks())
    with (_client(aipk_emulator, registry, "openai", metrics) as client,
          pytest.raises(NetworkError),
          client.stream(model="gpt-4o-mini", messages=HELLO) as stream):
        for _ in stream:
            pass
    snap = metrics.snapshot()
    assert snap.failures == 1
    assert (snap.input_tokens, snap.output_tokens) == (11, 7)


def test_a_stream_the_caller_closes_after_the_usage_counts_it(aipk_emulator: Emulator,
                                                              registry: Registry) -> None:
    recorder = Recorder()
    registry.register(recorder, "recorder")
    aipk_emulator.enqueue(ANSWER)
    metrics = Metrics(clock=Ticks())
    with (_client(aipk_emulator, registry, "anthropic", metrics) as client,
          client.stream(model="claude-3-5-haiku-latest", messages=HELLO) as stream):
        finished = False
        for event in stream:
            finished = finished or isinstance(event, FinishEvent)
            if finished and isinstance(event, UsageEvent):  # message_delta's: before message_stop
                break
    snap = metrics.snapshot()
    assert (snap.cancelled, snap.successes, snap.failures) == (1, 0, 0)
    assert (snap.input_tokens, snap.output_tokens) == (11, 7)
    assert snap.totals.time_to_first_token.count == 1
    (key,) = snap.credentials
    assert (key.successes, key.tokens) == (1, 18)  # the attempt succeeded; the caller left
    (cancelled,) = [e for e in recorder.events if isinstance(e, CallCancelled)]
    assert cancelled.usage is not None and cancelled.usage.input_tokens == 11


def test_a_stream_closed_before_any_usage_counts_no_tokens(aipk_emulator: Emulator,
                                                           registry: Registry) -> None:
    aipk_emulator.enqueue(ANSWER)
    metrics = Metrics(clock=Ticks())
    with (_client(aipk_emulator, registry, "openai", metrics) as client,
          client.stream(model="gpt-4o-mini", messages=HELLO) as stream):
        next(iter(stream))
    snap = metrics.snapshot()
    assert snap.cancelled == 1 and (snap.input_tokens, snap.output_tokens) == (0, 0)
    assert snap.totals.time_to_first_token.count == 1


def test_an_async_stream_cut_counts_its_usage(aipk_emulator: Emulator,
                                              registry: Registry) -> None:
    import asyncio

    aipk_emulator.enqueue(Fault.truncate(after_events=1000, reply=ANSWER))
    metrics = Metrics(clock=Ticks())

    async def run() -> None:
        async with aipk.AsyncClient("openai", api_key="sk-partial", registry=registry,
                                    base_url=aipk_emulator.url("openai"), metrics=metrics,
                                    max_retries=0) as client:
            stream = client.stream(model="gpt-4o-mini", messages=HELLO)
            with pytest.raises(IncompleteStreamError):
                async with stream:
                    async for _ in stream:
                        pass

    asyncio.run(asyncio.wait_for(run(), 10))
    snap = metrics.snapshot()
    assert snap.failures == 1 and (snap.input_tokens, snap.output_tokens) == (11, 7)
    assert snap.totals.time_to_first_token.count == 1
