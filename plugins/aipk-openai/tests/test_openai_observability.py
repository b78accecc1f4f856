"""The metrics model and the observer hook end to end: real HTTP against the emulator with
injected faults, an injected clock, and exact counts and percentiles."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest

import aipk
import aipk_openai.plugin
from aipk import Message, RetryPolicy
from aipk._base import key_fingerprint
from aipk.errors import BadRequestError, ResponseError
from aipk.hookspecs import hookimpl
from aipk.observability import (
    CallCancelled,
    CallFailed,
    CallFailedOver,
    CallFinished,
    CallRetried,
    CallStarted,
    FirstToken,
    Metrics,
)
from aipk.registry import Registry
from aipk_testkit.emulator import Emulator, Fault, Reply

KEY = "sk-observed"
HELLO = [Message.user("Hello there")]


class StepClock:
    """Each call reads the clock at its start and its end: the end is ``durations[i]`` after
    the start (binary fractions, so sums are exact)."""

    def __init__(self, durations: list[float]) -> None:
        self.durations = durations
        self.now = 1000.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        if self.reads % 2 == 0:
            self.now += self.durations[(self.reads // 2 - 1) % len(self.durations)]
        return self.now


@pytest.fixture
def registry() -> Registry:
    reg = Registry(entry_points=False)
    reg.register(aipk_openai.plugin, "openai")
    return reg


def _client(emu: Emulator, registry: Registry, metrics: Metrics, **kw: Any) -> aipk.Client:
    kw.setdefault("api_key", KEY)
    return aipk.Client("openai", base_url=emu.url("openai"), registry=registry,
                       metrics=metrics, sleep=lambda s: None,
                       retry=RetryPolicy(max_retries=3, initial_delay=0.01), **kw)


def test_counts_and_percentiles_with_an_injected_clock(aipk_emulator: Emulator,
                                                       registry: Registry) -> None:
    clock = StepClock([0.125] * 9 + [1.0])  # 90 calls of 125 ms, 10 of 1 s
    metrics = Metrics(clock=clock)
    with _client(aipk_emulator, registry, metrics) as client:
        for _ in range(100):
            client.chat(model="gpt-4o-mini", messages=HELLO)
        snap = client.metrics()
    assert (snap.requests, snap.successes, snap.failures, snap.retries) == (100, 100, 0, 0)
    latency = snap.totals.latency
    assert (latency.count, latency.sum, latency.min, latency.max) == (100, 21.25, 0.125, 1.0)
    assert (latency.p50, latency.p95, latency.p99) == (0.125, 1.0, 1.0)
    assert snap.input_tokens > 0 and snap.output_tokens > 0
    (series,) = snap.series
    assert (series.provider, series.model) == ("openai", "gpt-4o-mini")
    assert series.credential_id == key_fingerprint(KEY) and KEY not in snap.to_json()
    assert snap.in_flight == {"openai": 0}


def test_failures_count_what_the_caller_saw(aipk_emulator: Emulator,
                                            registry: Registry) -> None:
    # a malformed body is retried (nothing reached the caller), so it fails only when every
    # attempt (max_retries=3: four) is malformed
    aipk_emulator.enqueue(Fault.status(500), Fault.status(503), Reply(text="ok"),
                          Fault.status(400), *[Fault.malformed_json()] * 4)
    metrics = Metrics()
    outcomes = []
    with _client(aipk_emulator, registry, metrics) as client:
        for _ in range(3):
            try:
                client.chat(model="gpt-4o-mini", messages=HELLO)
                outcomes.append("ok")
            except (BadRequestError, ResponseError) as exc:
                outcomes.append(type(exc).__name__)
    assert outcomes == ["ok", "BadRequestError", "ResponseError"]
    snap = metrics.snapshot()
    assert (snap.requests, snap.successes, snap.failures, snap.retries) == (3, 1, 2, 5)
    assert snap.errors == {"BadRequestError": 1, "ResponseError": 1}
    assert snap.totals.latency.count == 1  # latency of answered calls only


def test_streams_first_token_end_error_and_early_close(aipk_emulator: Emulator,
                                                       registry: Registry) -> None:
    aipk_emulator.enqueue(Reply(text="one two three four", chunk_size=4),
                          Reply(text="a long answer to leave early", chunk_size=2),
                          Fault.reset_mid_stream(after_events=3))
    metrics = Metrics()
    with _client(aipk_emulator, registry, metrics) as client:
        with client.stream(model="gpt-4o-mini", messages=HELLO) as stream:
            assert "".join(stream.text()) == "one two three four"
        with client.stream(model="gpt-4o-mini", messages=HELLO) as stream:
            next(iter(stream))  # leave after the first event
        with pytest.raises(aipk.ProviderError) as failed, \
                client.stream(model="gpt-4o-mini", messages=HELLO) as stream:
            for _ in stream:
                pass
    snap = metrics.snapshot()
    assert (snap.requests, snap.successes, snap.failures, snap.cancelled) == (3, 1, 1, 1)
    assert snap.errors == {type(failed.value).__name__: 1}
    assert snap.totals.time_to_first_token.count == 3  # each stream delivered events
    assert snap.totals.latency.count == 1


def test_pool_failover_is_counted_on_the_failing_credential(aipk_emulator: Emulator,
                                                            registry: Registry) -> None:
    aipk_emulator.require_api_keys("sk-one", "sk-two")
    aipk_emulator.fail_key("sk-one", Fault.status(429, retry_after=30))
    metrics = Metrics()
    with _client(aipk_emulator, registry, metrics, api_key=["sk-one", "sk-two"]) as client:
        for _ in range(2):
            client.chat(model="gpt-4o-mini", messages=HELLO)
    snap = metrics.snapshot()
    one, two = key_fingerprint("sk-one"), key_fingerprint("sk-two")
    assert snap.successes == 2
    assert snap.by(credential_id=two).successes == 2
    assert snap.failovers >= 1 and snap.by(credential_id=one).failovers == snap.failovers


def test_json_form_is_stable_and_documented(aipk_emulator: Emulator,
                                            registry: Registry) -> None:
    metrics = Metrics(clock=StepClock([0.25]))
    with _client(aipk_emulator, registry, metrics) as client:
        usage = client.chat(model="gpt-4o-mini", messages=HELLO).usage
        first = client.metrics().to_json()
        (info,) = [m for m in client.provider.spec.models if m.id == "gpt-4o-mini"]
    assert first == metrics.snapshot().to_json()
    data = json.loads(first)
    assert set(data) == {"totals", "series", "in_flight", "credentials", "targets", "routers"}
    # the client's key records its attempts into the same model
    (key,) = data["credentials"]
    assert (key["provider"], key["id"]) == ("openai", client.credentials.credential.id)
    assert (key["requests"], key["successes"], key["errors"]) == (1, 1, 0)
    assert usage is not None and key["tokens"] == usage.total_tokens
    assert data["targets"] == {} and data["routers"] == {}
    assert set(data["totals"]) == {
        "provider", "model", "credential_id", "requests", "successes", "failures",
        "cancelled", "errors", "retries", "failovers", "input_tokens", "output_tokens",
        "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost", "latency",
        "time_to_first_token"}
    assert data["totals"]["latency"] == {"count": 1, "sum": 0.25, "min": 0.25, "max": 0.25,
                                         "mean": 0.25, "p50": 0.25, "p95": 0.25, "p99": 0.25}
    assert usage is not None and info.input_price and info.output_price
    assert data["totals"]["cost"] == pytest.approx(
        (usage.input_tokens * info.input_price + usage.output_tokens * info.output_price) / 1e6)
    assert data["series"][0]["cost"] == data["totals"]["cost"]


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    @hookimpl
    def aipk_observe(self, event: Any) -> None:
        self.events.append(event)


def test_observer_plugin_receives_every_event(aipk_emulator: Emulator,
                                              registry: Registry) -> None:
    recorder = Recorder()
    registry.register(recorder, "recorder")
    aipk_emulator.enqueue(Fault.status(500), Reply(text="hi"), Fault.status(400),
                          Reply(text="streamed", chunk_size=3))
    with _client(aipk_emulator, registry, Metrics()) as client:
        client.chat(model="gpt-4o-mini", messages=HELLO)
        with pytest.raises(BadRequestError):
            client.chat(model="gpt-4o-mini", messages=HELLO)
        with client.stream(model="gpt-4o-mini", messages=HELLO) as stream:
            stream.get_response()
    kinds = [type(e).__name__ for e in recorder.events]
    assert kinds == ["CallStarted", "CallRetried", "CallFinished", "CallStarted", "CallFailed",
                     "CallStarted", "FirstToken", "CallFinished"]
    started, retried, finished = recorder.events[:3]
    assert isinstance(started, CallStarted) and isinstance(retried, CallRetried)
    assert isinstance(finished, CallFinished)
    assert started.call_id == retried.call_id == finished.call_id
    assert finished.attempts == 2 and finished.response.text == "hi"
    assert retried.error_type == "ServerError" and retried.attempt == 1
    failed = recorder.events[4]
    assert isinstance(failed, CallFailed) and isinstance(failed.error, BadRequestError)
    assert isinstance(recorder.events[6], FirstToken)
    assert recorder.events[7].stream and recorder.events[7].response.text == "streamed"
    assert all(KEY not in repr(e) for e in recorder.events)


def test_failover_and_cancel_events(aipk_emulator: Emulator, registry: Registry) -> None:
    recorder = Recorder()
    registry.register(recorder, "recorder")
    aipk_emulator.require_api_keys("sk-one", "sk-two")
    aipk_emulator.fail_key("sk-one", Fault.status(429, retry_after=30))
    with _client(aipk_emulator, registry, Metrics(), api_key=["sk-one", "sk-two"]) as client:
        client.chat(model="gpt-4o-mini", messages=HELLO)
        stream = client.stream(model="gpt-4o-mini", messages=HELLO)
        stream.close()  # never opened: nothing recorded
        with client.stream(model="gpt-4o-mini", messages=HELLO):
            pass  # opened, never read
    kinds = [type(e) for e in recorder.events]
    assert CallCancelled in kinds
    if CallFailedOver in kinds:  # the pool may have chosen sk-two first
        over = recorder.events[kinds.index(CallFailedOver)]
        assert over.credential_id == key_fingerprint("sk-one")
        assert over.to_credential_id == key_fingerprint("sk-two")


def test_a_failing_observer_never_breaks_a_call(aipk_emulator: Emulator, registry: Registry,
                                                caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        @hookimpl
        def aipk_observe(self, event: Any) -> None:
            raise RuntimeError("observer bug")

    registry.register(Broken(), "broken")
    with _client(aipk_emulator, registry, Metrics()) as client, \
            caplog.at_level(logging.WARNING, logger="aipk.observe"):
        assert client.chat(model="gpt-4o-mini", messages=HELLO).text
    assert "observer bug" in caplog.text or "failed on CallStarted" in caplog.text


def test_no_observer_means_no_event_records(aipk_emulator: Emulator,
                                            registry: Registry) -> None:
    with _client(aipk_emulator, registry, Metrics()) as client:
        client.chat(model="gpt-4o-mini", messages=HELLO)
        assert client._engine.telemetry.observers == ()
        recorder = Recorder()
        registry.register(recorder, "late")
        client.chat(model="gpt-4o-mini", messages=HELLO)  # picked up from the next call
    assert [type(e).__name__ for e in recorder.events] == ["CallStarted", "CallFinished"]


def test_logging_is_structured_and_redacted(aipk_emulator: Emulator, registry: Registry,
                                            caplog: pytest.LogCaptureFixture) -> None:
    aipk_emulator.enqueue(Fault.status(500), Reply(text="ok"), Fault.status(400))
    with _client(aipk_emulator, registry, Metrics()) as client, \
            caplog.at_level(logging.DEBUG, logger="aipk"):
        client.chat(model="gpt-4o-mini", messages=HELLO)
        with pytest.raises(BadRequestError):
            client.chat(model="gpt-4o-mini", messages=HELLO)
    client_records = [r for r in caplog.records if r.name == "aipk.client"]
    levels = [r.levelname for r in client_records]
    assert levels == ["WARNING", "DEBUG", "WARNING"]
    retry, _answered, failed = client_records
    assert retry.aipk_attempt == 1 and retry.aipk_wait > 0  # type: ignore[attr-defined]
    assert retry.aipk_credential_id == key_fingerprint(KEY)  # type: ignore[attr-defined]
    assert failed.aipk_error_type == "BadRequestError"  # type: ignore[attr-defined]
    assert failed.aipk_request_id  # type: ignore[attr-defined]
    assert all(KEY not in r.getMessage() for r in caplog.records)


def test_async_client_records_the_same(aipk_emulator: Emulator, registry: Registry) -> None:
    aipk_emulator.enqueue(Fault.status(500), Reply(text="ok"), Fault.status(400),
                          Reply(text="streamed", chunk_size=3))
    metrics = Metrics()

    async def run() -> None:
        async with aipk.AsyncClient("openai", api_key=KEY, base_url=aipk_emulator.url("openai"),
                                    registry=registry, metrics=metrics,
                                    sleep=lambda s: asyncio.sleep(0)) as client:
            await client.chat(model="gpt-4o-mini", messages=HELLO)
            with pytest.raises(BadRequestError):
                await client.chat(model="gpt-4o-mini", messages=HELLO)
            async with client.stream(model="gpt-4o-mini", messages=HELLO) as stream:
                async for _ in stream:
                    pass

    asyncio.run(run())
    snap = metrics.snapshot()
    assert (snap.requests, snap.successes, snap.failures, snap.retries) == (3, 2, 1, 1)
    assert snap.totals.time_to_first_token.count == 1


def test_a_cancelled_task_counts_as_cancelled(aipk_emulator: Emulator,
                                              registry: Registry) -> None:
    aipk_emulator.enqueue(Fault.slow_first_byte(2.0))
    metrics = Metrics()

    async def run() -> None:
        async with aipk.AsyncClient("openai", api_key=KEY, base_url=aipk_emulator.url("openai"),
                                    registry=registry, metrics=metrics) as client:
            task = asyncio.ensure_future(client.chat(model="gpt-4o-mini", messages=HELLO))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(run())
    snap = metrics.snapshot()
    assert (snap.requests, snap.cancelled, snap.failures) == (1, 1, 0)


class SlowFirstTokenObserver:
    """Logs each event it hears of into ``log`` (shared with the caller), and takes ``delay``
    seconds over ``FirstToken``, as a slow exporter would."""

    def __init__(self, log: list[tuple[str, float]], delay: float) -> None:
        self.log = log
        self.delay = delay
        self.first: list[FirstToken] = []

    @hookimpl
    def aipk_observe(self, event: Any) -> None:
        if isinstance(event, FirstToken):
            self.first.append(event)
            time.sleep(self.delay)
        self.log.append((f"observer {type(event).__name__}", time.perf_counter()))


def test_a_slow_first_token_observer_does_not_delay_the_first_event(
        aipk_emulator: Emulator, registry: Registry) -> None:
    log: list[tuple[str, float]] = []
    observer = SlowFirstTokenObserver(log, delay=0.3)
    registry.register(observer, "slow")
    aipk_emulator.enqueue(Reply(text="one two three four", chunk_size=4),
                          Reply(text="left after the first event", chunk_size=4))
    with _client(aipk_emulator, registry, Metrics(clock=time.perf_counter)) as client:
        opened = time.perf_counter()
        with client.stream(model="gpt-4o-mini", messages=HELLO) as stream:
            for _ in stream:
                log.append(("caller event", time.perf_counter()))
        with client.stream(model="gpt-4o-mini", messages=HELLO) as stream:
            next(iter(stream))
            log.append(("caller event", time.perf_counter()))
    kinds = [kind for kind, _ in log]
    # the caller has the first event before the observer hears of it; then the rest follow
    assert kinds[:3] == ["observer CallStarted", "caller event", "observer FirstToken"]
    assert kinds[-4:] == ["observer CallStarted", "caller event", "observer FirstToken",
                          "observer CallCancelled"]  # told even when the caller leaves first
    first_event_at = log[1][1]
    assert first_event_at - opened < observer.delay  # the observer's 0.3 s came after it
    # the recorded time to first token is the caller's, not the caller's plus the observer's
    assert observer.first[0].time_to_first_token <= first_event_at - opened
    assert len(observer.first) == 2


def test_a_slow_first_token_observer_does_not_delay_the_first_event_async(
        aipk_emulator: Emulator, registry: Registry) -> None:
    log: list[tuple[str, float]] = []
    observer = SlowFirstTokenObserver(log, delay=0.3)
    registry.register(observer, "slow")
    aipk_emulator.enqueue(Reply(text="one two three four", chunk_size=4))

    async def run() -> float:
        async with aipk.AsyncClient("openai", api_key=KEY, base_url=aipk_emulator.url("openai"),
                                    registry=registry,
                                    metrics=Metrics(clock=time.perf_counter)) as client:
            opened = time.perf_counter()
            async with client.stream(model="gpt-4o-mini", messages=HELLO) as stream:
                async for _ in stream:
                    log.append(("caller event", time.perf_counter()))
            return opened

    opened = asyncio.run(run())
    kinds = [kind for kind, _ in log]
    assert kinds[:3] == ["observer CallStarted", "caller event", "observer FirstToken"]
    assert kinds[-1] == "observer CallFinished"
    assert log[1][1] - opened < observer.delay
    assert observer.first[0].time_to_first_token <= log[1][1] - opened
