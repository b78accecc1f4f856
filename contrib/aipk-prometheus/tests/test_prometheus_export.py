"""The collector scraped over a real prometheus_client HTTP endpoint after real calls against
the emulator, parsed with prometheus_client's own parser."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

import aipk
import aipk_openai.plugin
import aipk_prometheus
from aipk import Message, RetryPolicy
from aipk._base import key_fingerprint
from aipk.errors import BadRequestError
from aipk.observability import Metrics
from aipk.registry import Registry
from aipk_testkit.emulator import Emulator, Fault, Reply

HELLO = [Message.user("Hello there")]


class HalfSecond:
    """Every call takes 0.5 s: the clock moves by 0.25 s per read (start, first token, end)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now


@pytest.fixture
def registry() -> Registry:
    reg = Registry(entry_points=False)
    reg.register(aipk_openai.plugin, "openai")
    return reg


@pytest.fixture
def scrape() -> Iterator[Any]:
    servers: list[Any] = []

    def run(collector: aipk_prometheus.AipkCollector) -> dict[str, Any]:
        prom = CollectorRegistry()
        prom.register(collector)
        server, thread = start_http_server(0, addr="127.0.0.1", registry=prom)
        servers.append((server, thread))
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics",
                                    timeout=5) as response:
            text = response.read().decode()
        return {f.name: f for f in text_string_to_metric_families(text)}

    yield run
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _value(family: Any, suffix: str = "", **labels: str) -> float:
    found = [s.value for s in family.samples
             if s.name == family.name + suffix
             and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (family.name, suffix, labels, family.samples)
    return float(found[0])


def _calls(emu: Emulator, registry: Registry, metrics: Metrics | None = None,
           **kw: Any) -> aipk.Client:
    emu.enqueue(Fault.status(500), Reply(text="ok"), Fault.status(400),
                Reply(text="streamed", chunk_size=3))
    client = aipk.Client("openai", api_key="sk-prom", base_url=emu.url("openai"),
                         registry=registry, metrics=metrics, sleep=lambda s: None,
                         retry=RetryPolicy(max_retries=2, initial_delay=0.01), **kw)
    client.chat(model="gpt-4o-mini", messages=HELLO)
    with pytest.raises(BadRequestError):
        client.chat(model="gpt-4o-mini", messages=HELLO)
    with client.stream(model="gpt-4o-mini", messages=HELLO) as stream:
        stream.get_response()
    return client


def test_scrape_after_real_calls(aipk_emulator: Emulator, registry: Registry,
                                 scrape: Any) -> None:
    metrics = Metrics(clock=HalfSecond())
    with _calls(aipk_emulator, registry, metrics) as client:
        families = scrape(aipk_prometheus.AipkCollector([client],
                                                        credentials=[client.credentials]))
    cid = key_fingerprint("sk-prom")
    series = {"provider": "openai", "model": "gpt-4o-mini", "credential": cid}
    requests = families["aipk_requests"]
    assert requests.type == "counter"
    assert _value(requests, "_total", outcome="success", **series) == 2
    assert _value(requests, "_total", outcome="failure", **series) == 1
    assert _value(families["aipk_errors"], "_total", error="BadRequestError", **series) == 1
    assert _value(families["aipk_retries"], "_total", **series) == 1
    assert _value(families["aipk_failovers"], "_total", **series) == 0
    tokens = families["aipk_tokens"]
    assert _value(tokens, "_total", direction="input", **series) > 0
    assert _value(tokens, "_total", direction="output", **series) > 0
    assert _value(families["aipk_cost_dollars"], "_total", **series) > 0
    duration = families["aipk_request_duration_seconds"]
    assert duration.type == "histogram"
    # chat: start + end = 0.25 s; stream: start + first token + end = 0.5 s
    assert _value(duration, "_count", **series) == 2
    assert _value(duration, "_sum", **series) == 0.75
    assert _value(duration, "_bucket", le="0.16", **series) == 0
    assert _value(duration, "_bucket", le="0.32", **series) == 1
    assert _value(duration, "_bucket", le="0.64", **series) == 2
    assert _value(duration, "_bucket", le="+Inf", **series) == 2
    first = families["aipk_time_to_first_token_seconds"]
    assert _value(first, "_count", **series) == 1 and _value(first, "_sum", **series) == 0.25
    assert _value(families["aipk_requests_in_flight"], provider="openai") == 0
    assert "aipk_credential_healthy" not in families  # one fixed key has no health state
    assert "sk-prom" not in repr(families)


def test_credential_health_gauges_of_a_pool(aipk_emulator: Emulator, registry: Registry,
                                            scrape: Any) -> None:
    aipk_emulator.require_api_keys("sk-one", "sk-two")
    aipk_emulator.fail_key("sk-one", Fault.status(401))
    with aipk.Client("openai", api_key=["sk-one", "sk-two"], base_url=aipk_emulator.url("openai"),
                     registry=registry, metrics=Metrics()) as client:
        for _ in range(3):
            client.chat(model="gpt-4o-mini", messages=HELLO)
        families = scrape(aipk_prometheus.AipkCollector([client],
                                                        credentials=[client.credentials]))
    one, two = key_fingerprint("sk-one"), key_fingerprint("sk-two")
    healthy = families["aipk_credential_healthy"]
    assert _value(healthy, provider="openai", credential=two) == 1
    assert _value(families["aipk_credential_consecutive_failures"], credential=one) >= 1
    assert _value(families["aipk_credential_available"], credential=one) == 0  # in backoff
    assert _value(families["aipk_failovers"], "_total", credential=one) == 1
    assert _value(families["aipk_requests"], "_total", outcome="success", credential=two) == 3
    # the key pool's attempt counters, from the same model
    attempts = families["aipk_credential_attempts"]
    assert _value(attempts, "_total", credential=one, outcome="error") == 1
    assert _value(attempts, "_total", credential=one, outcome="success") == 0
    assert _value(attempts, "_total", provider="openai", credential=two, outcome="success") == 3
    assert _value(families["aipk_credential_attempt_seconds"], "_total", credential=two) > 0


def test_router_target_statistics(aipk_emulator: Emulator, registry: Registry,
                                  scrape: Any) -> None:
    from aipk.router import Router, Target

    aipk_emulator.enqueue(Fault.status(400))
    target = Target(provider="openai", model="gpt-4o-mini", api_key="sk-prom",
                    base_url=aipk_emulator.url("openai"), name="main")
    with Router([target], registry=registry) as router:
        with pytest.raises(BadRequestError):
            router.chat(messages=HELLO)
        router.chat(messages=HELLO)
        families = scrape(aipk_prometheus.AipkCollector([router.metrics_model]))
        ewma = router.metrics()["targets"]["main"]["ewma_latency"]
    calls = families["aipk_router_target_calls"]
    assert _value(calls, "_total", target="main", outcome="success") == 1
    assert _value(calls, "_total", target="main", outcome="error") == 1
    assert _value(calls, "_total", target="main", outcome="cancelled") == 0
    assert _value(families["aipk_router_target_latency_ewma_seconds"], target="main") == ewma
    # the router's totals, under its default name
    totals = families["aipk_router_requests"]
    assert _value(totals, "_total", router="router", outcome="success") == 1
    assert _value(totals, "_total", router="router", outcome="error") == 1
    # the router's clients recorded their calls into the same model
    assert _value(families["aipk_requests"], "_total", outcome="success", model="gpt-4o-mini") == 1


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_router_totals_by_router_name(aipk_emulator: Emulator, registry: Registry,
                                      scrape: Any) -> None:
    from aipk.router import Router, Target

    aipk_emulator.reset()
    clock, slept = _Clock(), []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    target = Target(provider="openai", model="gpt-4o-mini", api_key="sk-prom",
                    base_url=aipk_emulator.url("openai"), name="main")
    shared, other = Metrics(), Metrics()
    options = {"clock": clock, "sleep": lambda s: None}
    with Router([target], registry=registry, metrics=shared, name="chat", clock=clock,
                sleep=sleep, max_wait=5.0, client_options=options) as chat, \
            Router([target], registry=registry, metrics=shared, name="batch") as batch, \
            Router([target], registry=registry, metrics=other, name="chat") as elsewhere:
        aipk_emulator.enqueue(Fault.status(429, retry_after=2))
        chat.chat(messages=HELLO)  # waits 2 s for its one target, then succeeds
        aipk_emulator.enqueue(Fault.status(400))
        with pytest.raises(BadRequestError):
            chat.chat(messages=HELLO)
        with chat.stream(messages=HELLO) as stream:  # closed before its end
            next(iter(stream))
        batch.chat(messages=HELLO)
        elsewhere.chat(messages=HELLO)  # another model, same name: the scrape adds them up
        families = scrape(aipk_prometheus.AipkCollector([shared, other]))
    assert slept == [pytest.approx(2.0)]
    requests = families["aipk_router_requests"]
    assert _value(requests, "_total", router="chat", outcome="success") == 2
    assert _value(requests, "_total", router="chat", outcome="error") == 1
    assert _value(requests, "_total", router="chat", outcome="cancelled") == 1
    assert _value(requests, "_total", router="batch", outcome="success") == 1
    assert _value(requests, "_total", router="batch", outcome="error") == 0
    assert _value(families["aipk_router_requests_in_flight"], router="chat") == 0
    assert _value(families["aipk_router_waits"], "_total", router="chat") == 1
    assert _value(families["aipk_router_waits"], "_total", router="batch") == 0
    assert _value(families["aipk_router_wait_seconds"], "_total",
                  router="chat") == pytest.approx(2.0)
    assert families["aipk_router_requests"].type == "counter"
    assert families["aipk_router_requests_in_flight"].type == "gauge"


def test_the_installed_feed_fills_the_process_model(aipk_emulator: Emulator,
                                                   registry: Registry, scrape: Any) -> None:
    aipk_prometheus.process_metrics().reset()
    with _calls(aipk_emulator, registry):  # before install(): nothing observes the calls
        pass
    assert aipk_prometheus.process_metrics().snapshot().requests == 0
    assert not aipk_prometheus.installed(registry)
    assert aipk_prometheus.install(registry) is aipk_prometheus.process_metrics()
    aipk_prometheus.install(registry)  # idempotent
    try:
        with _calls(aipk_emulator, registry):
            pass
        families = scrape(aipk_prometheus.AipkCollector([aipk_prometheus.process_metrics()]))
    finally:
        aipk_prometheus.uninstall(registry)
    requests = families["aipk_requests"]
    assert _value(requests, "_total", outcome="success", provider="openai") == 2
    assert _value(requests, "_total", outcome="failure", provider="openai") == 1
    assert _value(families["aipk_retries"], "_total", provider="openai") == 1
    assert not aipk_prometheus.installed(registry)
    with _calls(aipk_emulator, registry):  # uninstalled: counted no more
        pass
    assert aipk_prometheus.process_metrics().snapshot().requests == 3


def test_the_default_collector_installs_the_feed_on_the_default_registry(
        aipk_emulator: Emulator, scrape: Any) -> None:
    with aipk.registry.isolated_registry([aipk_openai.plugin]) as default:
        aipk_prometheus.process_metrics().reset()
        collector = aipk_prometheus.AipkCollector()
        assert aipk_prometheus.installed(default)
        aipk_emulator.enqueue(Reply(text="ok"))
        with aipk.Client("openai", api_key="sk-prom", base_url=aipk_emulator.url("openai"),
                         metrics=Metrics()) as client:
            client.chat(model="gpt-4o-mini", messages=HELLO)
        families = scrape(collector)
    assert _value(families["aipk_requests"], "_total", outcome="success",
                  provider="openai") == 1


def test_register_uses_a_private_registry_and_names_follow_conventions() -> None:
    prom = CollectorRegistry()
    collector = aipk_prometheus.register(prom, [Metrics()])
    assert isinstance(collector, aipk_prometheus.AipkCollector)
    names = {m.name for m in prom.collect()}
    assert {"aipk_requests", "aipk_request_duration_seconds", "aipk_tokens"} <= names
    assert all(n.startswith("aipk_") for n in names)
    with pytest.raises(TypeError, match="metrics_model"):
        aipk_prometheus.AipkCollector([object()])


def test_health_gauges(scrape: Any) -> None:
    class Status:
        def __init__(self, target: str, state: str, latency: float | None) -> None:
            self.provider, self.target, self.state, self.latency = (
                "openai", target, state, latency)

    families = scrape(aipk_prometheus.AipkCollector(
        [Metrics()], health=lambda: [Status("a", "healthy", 0.5), Status("b", "unhealthy",
                                                                         None)]))
    assert _value(families["aipk_target_up"], target="a") == 1
    assert _value(families["aipk_target_up"], target="b") == 0
    assert _value(families["aipk_health_check_latency_seconds"], target="a") == 0.5


def test_models_sharing_series_add_up_into_one_sample(aipk_emulator: Emulator,
                                                       registry: Registry,
                                                       scrape: Any) -> None:
    # two clients with their own models, the same key and model: the same series in both
    first, second = Metrics(), Metrics()
    _calls(aipk_emulator, registry, metrics=first)
    _calls(aipk_emulator, registry, metrics=second)
    families = scrape(aipk_prometheus.AipkCollector([first, second, first]))  # first twice
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    requests = families["aipk_requests"]
    assert _value(requests, "_total", outcome="success", **labels) == 4
    assert _value(requests, "_total", outcome="failure", **labels) == 2
    assert _value(families["aipk_retries"], "_total", **labels) == 2
    assert _value(families["aipk_request_duration_seconds"], "_count", **labels) == 4
    attempts = families["aipk_credential_attempts"]
    assert _value(attempts, "_total", outcome="success", provider="openai") == 4
    assert _value(attempts, "_total", outcome="error", provider="openai") == 4
    # every sample's label set appears once per family
    for family in families.values():
        keys = [(s.name, tuple(sorted(s.labels.items()))) for s in family.samples]
        assert len(keys) == len(set(keys)), family.name


def test_a_cost_unknown_in_one_model_is_left_out(scrape: Any) -> None:
    priced, unpriced = Metrics(), Metrics()
    priced.finished("openai", "m", "k", latency=0.1, cost=0.5)
    unpriced.finished("openai", "m", "k", latency=0.1, cost=None)
    families = scrape(aipk_prometheus.AipkCollector([priced, unpriced]))
    assert not families["aipk_cost_dollars"].samples
    assert _value(families["aipk_requests"], "_total", outcome="success", model="m") == 2
    alone = scrape(aipk_prometheus.AipkCollector([priced]))
    assert _value(alone["aipk_cost_dollars"], "_total", model="m") == 0.5


def test_targets_and_gauges_listed_twice_give_one_sample(scrape: Any) -> None:
    first, second = Metrics(), Metrics()
    for model, latency in ((first, 0.2), (second, 0.4)):
        target = model.target("primary")
        target.started()
        target.succeeded(latency, None)

    class Status:
        def __init__(self, state: str) -> None:
            self.provider, self.target, self.state, self.latency = (
                "openai", "a", state, None)

    families = scrape(aipk_prometheus.AipkCollector(
        [first, second], health=lambda: [Status("unhealthy"), Status("healthy")]))
    assert _value(families["aipk_router_target_calls"], "_total", target="primary",
                  outcome="success") == 2
    assert _value(families["aipk_router_target_latency_ewma_seconds"], target="primary") > 0
    assert _value(families["aipk_target_up"], target="a") == 1  # the last status


def test_a_series_that_priced_nothing_in_one_model_shows_the_others_cost(
        aipk_emulator: Emulator, registry: Registry, scrape: Any) -> None:
    # the same key and model in two clients' models: one saw only a failure (nothing to
    # price, its cost is None), the other a priced answer
    refused, answered = Metrics(), Metrics()
    aipk_emulator.enqueue(Fault.status(400), Reply(text="ok"))
    clients = [aipk.Client("openai", api_key="sk-prom", base_url=aipk_emulator.url("openai"),
                           registry=registry, metrics=metrics) for metrics in (refused, answered)]
    with pytest.raises(BadRequestError):
        clients[0].chat(model="gpt-4o-mini", messages=HELLO)
    clients[1].chat(model="gpt-4o-mini", messages=HELLO)
    for client in clients:
        client.close()
    cost = answered.snapshot().cost
    assert refused.snapshot().cost is None and cost is not None and cost > 0
    families = scrape(aipk_prometheus.AipkCollector([refused, answered]))
    assert _value(families["aipk_cost_dollars"], "_total", model="gpt-4o-mini") == cost
    assert _value(families["aipk_requests"], "_total", outcome="failure",
                  model="gpt-4o-mini") == 1
