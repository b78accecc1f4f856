"""The observable instruments over aipk's metrics models, with the real OpenTelemetry SDK
(an in-memory metric reader), after real HTTP calls against the emulator: a key pool failing
over, a router with two targets."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, InMemoryMetricReader, Sum

import aipk
import aipk_openai.plugin
import aipk_otel
from aipk import Message
from aipk.credentials import KeyPool
from aipk.errors import BadRequestError, ConfigurationError
from aipk.health import TargetHealth
from aipk.observability import Metrics, MetricsSnapshot
from aipk.registry import Registry
from aipk.router import Router, Target
from aipk_otel._statistics import ModelExport, Readings, read
from aipk_testkit.emulator import Emulator, Fault

HELLO = [Message.user("Hello there")]
KEYS = ("sk-one-secret-0000000000", "sk-two-secret-0000000000")
TARGET_KEY = "sk-target-secret-000000"
NAMES = {name for name, *_ in aipk_otel.INSTRUMENTS}


class CountingMetrics(Metrics):
    """A metrics model that counts how often it is read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def snapshot(self) -> MetricsSnapshot:
        self.reads += 1
        return super().snapshot()


class Reader:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def collect(self) -> dict[str, Any]:
        """The aipk model instruments collected now, by name (the metric records)."""
        data = self.reader.get_metrics_data()
        if data is None:
            return {}
        return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics
                for m in sm.metrics if m.name in NAMES and m.data.data_points}


def points(metric: Any) -> dict[tuple[tuple[str, Any], ...], Any]:
    return {tuple(sorted(p.attributes.items())): p.value for p in metric.data.data_points}


def key(**attributes: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((f"aipk.{name}", value) for name, value in attributes.items()))


@pytest.fixture
def registry() -> Registry:
    reg = Registry(entry_points=False)
    reg.register(aipk_openai.plugin, "openai")
    return reg


@pytest.fixture(scope="module")
def two() -> Iterator[tuple[Emulator, Emulator]]:
    with Emulator() as a, Emulator() as b:
        yield a, b


def _targets(emus: tuple[Emulator, Emulator]) -> list[Target]:
    return [Target(provider="openai", model="gpt-4o-mini", base_url=emu.url("openai"),
                   api_key=TARGET_KEY, name=name) for emu, name in zip(emus, "ab", strict=True)]


def _pool_calls(emu: Emulator, pool: KeyPool, registry: Registry, n: int) -> None:
    with aipk.Client("openai", credentials=pool, base_url=emu.url("openai"),
                     registry=registry) as client:
        for _ in range(n):
            client.chat(model="gpt-4o-mini", messages=HELLO)


def _router_calls(router: Router, emus: tuple[Emulator, Emulator]) -> None:
    emus[0].enqueue(Fault.status(400))  # wrong everywhere: the call raises at once
    with pytest.raises(BadRequestError):
        router.chat(messages=HELLO)
    router.chat(messages=HELLO)
    with router.stream(messages=HELLO) as stream:  # closed before its end: cancelled
        next(iter(stream))
    router.chat(messages=HELLO)


def _expected(snaps: list[MetricsSnapshot]) -> dict[str, dict[Any, Any]]:
    """What each instrument must show, computed from the snapshots the plain way."""
    out: dict[str, dict[Any, Any]] = {name: {} for name in NAMES}

    def add(name: str, k: Any, value: Any) -> None:
        out[name][k] = out[name].get(k, 0) + value

    for snap in snaps:
        for provider, n in snap.in_flight.items():
            add("aipk.requests.in_flight", key(provider=provider), n)
        for s in snap.series:
            labels = {"provider": s.provider, "model": s.model, "credential": s.credential_id}
            for outcome, n in (("success", s.successes), ("failure", s.failures),
                               ("cancelled", s.cancelled)):
                add("aipk.requests", key(**labels, outcome=outcome), n)
            for error, n in s.errors.items():
                add("aipk.errors", tuple(sorted((*key(**labels), ("error.type", error)))), n)
            add("aipk.retries", key(**labels), s.retries)
            add("aipk.failovers", key(**labels), s.failovers)
            for kind in ("input", "output", "cache_read", "cache_write", "reasoning"):
                add("aipk.tokens", tuple(sorted((*key(**labels), ("aipk.token.type", kind)))),
                    getattr(s, f"{kind}_tokens"))
            if s.cost is not None:
                add("aipk.cost", key(**labels), s.cost)
        for c in snap.credentials:
            for outcome, n in (("success", c.successes), ("error", c.errors)):
                add("aipk.credential.attempts",
                    key(provider=c.provider, credential=c.id, outcome=outcome), n)
            for outcome, n in (("success", c.refreshes), ("error", c.refresh_errors)):
                add("aipk.credential.refreshes",
                    key(provider=c.provider, credential=c.id, outcome=outcome), n)
            add("aipk.credential.attempt.time", key(provider=c.provider, credential=c.id),
                c.latency_total)
        for name, t in snap.targets.items():
            for outcome in ("success", "error", "cancelled"):
                field = {"success": "successes", "error": "errors"}.get(outcome, outcome)
                add("aipk.router.target.calls", key(target=name, outcome=outcome), t[field])
            add("aipk.router.target.calls.in_flight", key(target=name), t["in_flight"])
            if t["ewma_latency"] is not None:
                out["aipk.router.target.latency.ewma"][key(target=name)] = t["ewma_latency"]
        for name, r in snap.routers.items():
            for outcome, n in (("success", r.successes), ("error", r.errors),
                               ("cancelled", r.cancelled)):
                add("aipk.router.requests", key(router=name, outcome=outcome), n)
            add("aipk.router.requests.in_flight", key(router=name),
                r.requests - r.successes - r.errors - r.cancelled)
            add("aipk.router.waits", key(router=name), r.waits)
            add("aipk.router.wait.time", key(router=name), r.waited)
    return {name: rows for name, rows in out.items() if rows}


def test_the_models_statistics_are_exported_exactly_from_instrument_to_uninstrument(
        aipk_emulator: Emulator, two: tuple[Emulator, Emulator], registry: Registry) -> None:
    for emu in two:
        emu.reset()
    aipk_emulator.require_api_keys(*KEYS)
    aipk_emulator.fail_key(KEYS[0], Fault.status(401))
    otel = Reader()
    pool_model, router_model = CountingMetrics(), CountingMetrics()
    pool = KeyPool.from_keys("openai", list(KEYS), metrics=pool_model)
    with Router(_targets(two), metrics=router_model, name="chat",
                client_options={"sleep": lambda s: None}) as router:
        _pool_calls(aipk_emulator, pool, registry, 2)
        _router_calls(router, two)
        assert otel.collect() == {}  # nothing exported before instrument()
        observer = aipk_otel.instrument(
            registry=registry, meter_provider=otel.provider,
            models=[router, pool, pool.metrics_model, router_model])  # each model once
        assert observer.models == (router_model, pool_model) and observer.exporting()
        assert (pool_model.reads, router_model.reads) == (0, 0)
        _pool_calls(aipk_emulator, pool, registry, 1)
        _router_calls(router, two)
        assert (pool_model.reads, router_model.reads) == (0, 0)  # nothing read per call
        collected = otel.collect()
        assert (pool_model.reads, router_model.reads) == (1, 1)  # one read per collection
        snaps = [pool_model.snapshot(), router_model.snapshot()]
        expected = _expected(snaps)
        assert {name: points(m) for name, m in collected.items()} == expected
        # the values the scenario produced, as the snapshots hold them
        attempts = points(collected["aipk.credential.attempts"])
        assert attempts[key(provider="openai", credential="key-1", outcome="error")] == 1
        assert attempts[key(provider="openai", credential="key-2", outcome="success")] == 3
        assert points(collected["aipk.failovers"])[
            key(provider="openai", model="gpt-4o-mini", credential="key-1")] == 1
        assert points(collected["aipk.router.requests"]) == {
            key(router="chat", outcome="success"): 4, key(router="chat", outcome="error"): 2,
            key(router="chat", outcome="cancelled"): 2}
        calls = points(collected["aipk.router.target.calls"])
        assert calls[key(target="a", outcome="error")] == 2
        assert sum(calls.values()) == 8
        assert points(collected["aipk.router.target.latency.ewma"])[key(target="a")] == (
            snaps[1].targets["a"]["ewma_latency"]) > 0
        # counters are monotonic sums, in-flight counts up-down sums, the EWMA a gauge
        for name, kind, unit, _ in aipk_otel.INSTRUMENTS:
            if name not in collected:
                continue
            metric = collected[name]
            assert metric.unit == unit
            if kind == "gauge":
                assert isinstance(metric.data, Gauge)
            else:
                assert isinstance(metric.data, Sum)
                assert metric.data.is_monotonic is (kind == "counter")
        # no key text in any attribute: keys appear by their id
        text = json.dumps([p for m in collected.values() for p in points(m)])
        assert not any(k in text for k in (*KEYS, TARGET_KEY))
        # read at collection time: later calls show in the next collection
        _pool_calls(aipk_emulator, pool, registry, 2)
        again = otel.collect()
        assert points(again["aipk.credential.attempts"])[
            key(provider="openai", credential="key-2", outcome="success")] == 5
        assert {name: points(m) for name, m in again.items()} == _expected(
            [pool_model.snapshot(), router_model.snapshot()])
        aipk_otel.uninstrument(registry)
        assert not observer.exporting()
        reads = (pool_model.reads, router_model.reads)
        _pool_calls(aipk_emulator, pool, registry, 1)
        assert otel.collect() == {}  # nothing exported after uninstrument()
        assert (pool_model.reads, router_model.reads) == reads  # and nothing read


def test_instrument_again_on_the_same_meter_provider_exports_again(
        two: tuple[Emulator, Emulator], registry: Registry) -> None:
    for emu in two:
        emu.reset()
    otel = Reader()
    first, second = Metrics(), Metrics()
    with Router(_targets(two), metrics=first, name="first") as r1, \
            Router(_targets(two), metrics=second, name="second") as r2:
        r1.chat(messages=HELLO)
        r2.chat(messages=HELLO)
        r2.chat(messages=HELLO)
        aipk_otel.instrument(registry=registry, meter_provider=otel.provider, models=[first])
        assert points(otel.collect()["aipk.router.requests"]) == {
            key(router="first", outcome=o): n
            for o, n in (("success", 1), ("error", 0), ("cancelled", 0))}
        # replacing the observer stops the old one's export and starts the new one's
        aipk_otel.instrument(registry=registry, meter_provider=otel.provider, models=[second])
        assert points(otel.collect()["aipk.router.requests"])[
            key(router="second", outcome="success")] == 2
        assert key(router="first", outcome="success") not in points(
            otel.collect()["aipk.router.requests"])
        aipk_otel.uninstrument(registry)
        assert otel.collect() == {}
        aipk_otel.instrument(registry=registry, meter_provider=otel.provider,
                             models=[first, second])
        assert points(otel.collect()["aipk.router.requests"])[
            key(router="second", outcome="success")] == 2
        aipk_otel.uninstrument(registry)


def test_the_same_router_name_in_two_models_adds_up(two: tuple[Emulator, Emulator],
                                                    registry: Registry) -> None:
    for emu in two:
        emu.reset()
    otel = Reader()
    first, second = Metrics(), Metrics()
    with Router(_targets(two), metrics=first) as r1, Router(_targets(two), metrics=second) as r2:
        r1.chat(messages=HELLO)
        r2.chat(messages=HELLO)
    aipk_otel.instrument(registry=registry, meter_provider=otel.provider, models=[first, second])
    try:
        collected = otel.collect()
    finally:
        aipk_otel.uninstrument(registry)
    assert points(collected["aipk.router.requests"])[
        key(router="router", outcome="success")] == 2
    assert sum(points(collected["aipk.router.target.calls"]).values()) == 2


def test_a_series_cost_follows_the_merge_rule_across_models(aipk_emulator: Emulator,
                                                            registry: Registry) -> None:
    # the same key and model in two clients' models: one saw only a failure (nothing priced),
    # the other a priced answer; a third model answered the same series without a price
    refused, answered, unpriced = Metrics(), Metrics(), Metrics()
    aipk_emulator.enqueue(Fault.status(400))
    clients = [aipk.Client("openai", api_key=KEYS[0], base_url=aipk_emulator.url("openai"),
                           registry=registry, metrics=metrics) for metrics in (refused, answered)]
    with pytest.raises(BadRequestError):
        clients[0].chat(model="gpt-4o-mini", messages=HELLO)
    clients[1].chat(model="gpt-4o-mini", messages=HELLO)
    for client in clients:
        client.close()
    series = answered.snapshot().series[0]
    assert refused.snapshot().cost is None and series.cost is not None and series.cost > 0
    cost_key = key(provider="openai", model="gpt-4o-mini", credential=series.credential_id)
    otel = Reader()
    aipk_otel.instrument(registry=registry, meter_provider=otel.provider,
                         models=[refused, answered])
    try:
        assert points(otel.collect()["aipk.cost"]) == {cost_key: series.cost}
        unpriced.finished("openai", "gpt-4o-mini", series.credential_id, latency=0.1)
        aipk_otel.instrument(registry=registry, meter_provider=otel.provider,
                             models=[refused, answered, unpriced])
        collected = otel.collect()
    finally:
        aipk_otel.uninstrument(registry)
    assert "aipk.cost" not in collected  # unknown in one model: left out
    assert points(collected["aipk.requests"])[
        key(provider="openai", model="gpt-4o-mini", credential=series.credential_id,
            outcome="success")] == 2


def test_key_health_and_health_checks_are_gauges(aipk_emulator: Emulator,
                                                 registry: Registry) -> None:
    aipk_emulator.require_api_keys(*KEYS)
    aipk_emulator.fail_key(KEYS[0], Fault.status(401))
    otel = Reader()
    pool = KeyPool.from_keys("openai", list(KEYS))
    _pool_calls(aipk_emulator, pool, registry, 1)
    statuses = [TargetHealth(target="primary", provider="openai", state="degraded",
                             latency=0.25),
                TargetHealth(target="backup", provider="anthropic")]
    aipk_otel.instrument(registry=registry, meter_provider=otel.provider, credentials=[pool],
                         health=lambda: statuses)
    try:
        collected = otel.collect()
    finally:
        aipk_otel.uninstrument(registry)
    health = pool.health_all()
    for name, field in (("aipk.credential.healthy", "healthy"),
                        ("aipk.credential.available", "available"),
                        ("aipk.credential.consecutive_failures", "consecutive_failures"),
                        ("aipk.credential.backoff.remaining", "backoff_remaining")):
        assert isinstance(collected[name].data, Gauge)
        got = points(collected[name])
        assert got == {key(provider="openai", credential=cid): pytest.approx(
            float(getattr(info, field)), abs=1.0)  # the backoff's seconds run on
            for cid, info in health.items()}, name
    assert points(collected["aipk.credential.healthy"])[
        key(provider="openai", credential="key-1")] == 0.0  # its key was refused
    assert points(collected["aipk.credential.backoff.remaining"])[
        key(provider="openai", credential="key-1")] > 3500  # parked for an hour
    assert points(collected["aipk.target.up"]) == {
        key(provider="openai", target="primary"): 0.5,
        key(provider="anthropic", target="backup"): 0.0}
    assert points(collected["aipk.health_check.latency"]) == {
        key(provider="openai", target="primary"): 0.25}
    assert "aipk.credential.attempts" not in collected  # no model given: no model instruments


def test_without_models_the_observer_reads_nothing(registry: Registry) -> None:
    otel = Reader()
    observer = aipk_otel.instrument(registry=registry, meter_provider=otel.provider)
    try:
        assert observer.models == () and not observer.exporting()
        assert otel.collect() == {}
    finally:
        aipk_otel.uninstrument(registry)


def test_bad_models_name_the_fix(registry: Registry) -> None:
    with pytest.raises(ConfigurationError, match=r"models=.*metrics_model"):
        aipk_otel.instrument(registry=registry, models=["not a model"])
    with pytest.raises(ConfigurationError, match=r"OtelObserver\(models="):
        aipk_otel.instrument(aipk_otel.OtelObserver(), registry=registry, models=[Metrics()])
    assert aipk_otel.current(registry) is None


def test_every_instrument_is_documented() -> None:
    docs = (Path(__file__).parents[3] / "docs" / "observability.md").read_text()
    missing = [name for name in NAMES if f"`{name}`" not in docs]
    assert missing == []


# -- property: what read() reports is the models' totals, and counters never go down ------------

_NAMES = st.sampled_from(["a", "b"])
_SECONDS = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
_OPS = st.lists(st.tuples(st.integers(0, 1), st.sampled_from(
    ["call_ok", "call_failed", "call_cancelled", "retried", "failed_over", "attempt",
     "refresh", "target", "router", "wait"]), _NAMES, st.booleans(), _SECONDS), max_size=40)


def _apply(models: list[Metrics], ops: list[tuple[int, str, str, bool, float]]) -> None:
    for index, op, name, flag, seconds in ops:
        m = models[index]
        if op.startswith("call_"):
            m.started(name)
            if op == "call_ok":
                m.finished(name, "m", "key-1", latency=seconds, cost=seconds if flag else None)
            elif op == "call_failed":
                m.failed(name, "m", "key-1", error_type="ServerError")
            else:
                m.cancelled(name, "m", "key-1")
        elif op == "retried":
            m.retried(name, "m", "key-2")
        elif op == "failed_over":
            m.failed_over(name, "m", "key-2")
        elif op == "attempt":
            m.credential("openai", name).record(ok=flag, now=0.0, latency=seconds)
        elif op == "refresh":
            m.credential("openai", name).record_refresh(ok=flag, now=0.0)
        elif op == "target":
            target = m.target(name)
            target.started()
            if flag:
                target.succeeded(seconds, None)
            else:
                target.failed(RuntimeError("boom"))
        elif op == "router":
            router = m.router(name)
            router.started()
            if flag:
                router.succeeded()
            else:
                router.was_cancelled()
        else:
            m.router(name).wait(seconds)


def _total(readings: Readings, name: str) -> float:
    return sum(readings.get(name, {}).values())


@settings(max_examples=40, deadline=None)
@given(first=_OPS, then=_OPS)
@example(first=[(0, "call_ok", "a", True, 1.0), (1, "call_ok", "a", True, 0.0)],
         then=[(0, "call_ok", "a", False, 0.0)])  # one model's part of a cost goes unknown
def test_read_reports_the_models_totals_and_counters_never_go_down(
        first: list[tuple[int, str, str, bool, float]],
        then: list[tuple[int, str, str, bool, float]]) -> None:
    models = [Metrics(), Metrics()]
    export = ModelExport([models[0], models[1], models[0]])
    _apply(models, first)
    before = read([export])
    _apply(models, then)
    after = read([export])
    counters = [name for name, kind, *_ in aipk_otel.INSTRUMENTS if kind == "counter"]
    for name in counters:
        for pairs, value in before.get(name, {}).items():
            if name == "aipk.cost" and pairs not in after.get(name, {}):
                continue  # an unpriced answer makes the series' cost unknown: it is left out
            assert after[name][pairs] >= value, (name, pairs)
    snaps = [m.snapshot() for m in models]
    assert _total(after, "aipk.requests") == sum(s.requests for snap in snaps
                                                 for s in snap.series)
    assert _total(after, "aipk.retries") + _total(after, "aipk.failovers") == sum(
        s.retries + s.failovers for snap in snaps for s in snap.series)
    assert _total(after, "aipk.credential.attempts") == sum(
        c.requests for snap in snaps for c in snap.credentials)
    assert _total(after, "aipk.router.requests") + _total(
        after, "aipk.router.requests.in_flight") == sum(
        r.requests for snap in snaps for r in snap.routers.values())
    assert _total(after, "aipk.router.target.calls") == sum(
        t["successes"] + t["errors"] + t["cancelled"] for snap in snaps
        for t in snap.targets.values())
    assert _total(after, "aipk.router.wait.time") == pytest.approx(sum(
        r.waited for snap in snaps for r in snap.routers.values()))


def test_a_failing_health_function_is_logged_and_shows_no_stale_values(
        registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    otel = Reader()
    model = Metrics()
    model.router("chat").started()
    failing = [True]

    def statuses() -> list[TargetHealth]:
        if failing[0]:
            raise RuntimeError("the checker is gone")
        return []

    aipk_otel.instrument(registry=registry, meter_provider=otel.provider, models=[model],
                         health=statuses)
    try:
        failing[0] = False
        assert points(otel.collect()["aipk.router.requests.in_flight"]) == {key(router="chat"): 1}
        failing[0] = True
        model.router("chat").succeeded()
        assert otel.collect() == {}  # not the previous collection's values
        assert "Callback failed for instrument aipk.requests" in caplog.text
        assert "the checker is gone" in caplog.text
        failing[0] = False
        assert points(otel.collect()["aipk.router.requests.in_flight"]) == {key(router="chat"): 0}
    finally:
        aipk_otel.uninstrument(registry)


GLOBAL_PROVIDER_SCRIPT = """
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import aipk_otel
from aipk.observability import Metrics
from aipk.registry import Registry

def routers(reader):
    data = reader.get_metrics_data()
    if data is None:
        return []
    return sorted((dict(p.attributes)["aipk.router"], p.value) for rm in data.resource_metrics
                  for sm in rm.scope_metrics for m in sm.metrics
                  if m.name == "aipk.router.waits" for p in m.data.data_points)

registry = Registry(entry_points=False)
model = Metrics()
model.router("chat").wait(1.0)
aipk_otel.instrument(registry=registry, models=[model])  # before the application sets one
reader = InMemoryMetricReader()
provider = MeterProvider(metric_readers=[reader])
metrics.set_meter_provider(provider)
print(routers(reader))
aipk_otel.uninstrument(registry)
print(routers(reader))
model.router("other").wait(2.0)
aipk_otel.instrument(registry=registry, models=[model])  # the global provider, set now
print(routers(reader))
aipk_otel.instrument(registry=registry, models=[model], meter_provider=provider)  # the same one
print(routers(reader))
"""


def test_the_global_meter_provider_set_after_instrument_gets_the_statistics() -> None:
    # a process of its own: OpenTelemetry's global meter provider can be set once
    done = subprocess.run([sys.executable, "-c", GLOBAL_PROVIDER_SCRIPT], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    both = "[('chat', 1), ('other', 1)]"
    assert done.stdout.splitlines() == ["[('chat', 1)]", "[]", both, both]
