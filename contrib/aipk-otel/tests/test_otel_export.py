"""Spans and metrics with the real OpenTelemetry SDK (in-memory span exporter and metric
reader), after real calls against the emulator."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import aipk
import aipk_openai.plugin
import aipk_otel
from aipk import Message, RetryPolicy, Tool
from aipk.errors import BadRequestError
from aipk.observability import Metrics
from aipk.registry import Registry
from aipk_testkit.emulator import Emulator, Fault, Reply, ToolCallSpec

HELLO = [Message.user("Hello there, secret plans inside")]


class Otel:
    def __init__(self, capture_content: bool = False) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[self.reader])
        self.observer = aipk_otel.OtelObserver(tracer_provider=tracer_provider,
                                               meter_provider=meter_provider,
                                               capture_content=capture_content)

    def finished(self) -> list[Any]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [point for rm in data.resource_metrics for sm in rm.scope_metrics
                for metric in sm.metrics if metric.name == name
                for point in metric.data.data_points]


@pytest.fixture
def registry() -> Registry:
    reg = Registry(entry_points=False)
    reg.register(aipk_openai.plugin, "openai")
    return reg


@pytest.fixture
def otel(registry: Registry) -> Iterator[Otel]:
    telemetry = Otel()
    registry.register(telemetry.observer, "otel")
    yield telemetry
    assert telemetry.observer.open_spans() == 0  # every span ended


def _client(emu: Emulator, registry: Registry) -> aipk.Client:
    return aipk.Client("openai", api_key="sk-otel", base_url=emu.url("openai"),
                       registry=registry, metrics=Metrics(), sleep=lambda s: None,
                       retry=RetryPolicy(max_retries=2, initial_delay=0.01))


def test_chat_span_follows_the_genai_conventions(aipk_emulator: Emulator, registry: Registry,
                                                 otel: Otel) -> None:
    aipk_emulator.enqueue(Fault.status(500), Reply(text="hi", usage=(12, 3)))
    with _client(aipk_emulator, registry) as client:
        client.chat(model="gpt-4o-mini", messages=HELLO, temperature=0.5, max_tokens=50)
    (span,) = otel.finished()
    a = dict(span.attributes)
    assert span.name == "chat gpt-4o-mini" and span.kind == SpanKind.CLIENT
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini"
    assert (a["gen_ai.request.temperature"], a["gen_ai.request.max_tokens"]) == (0.5, 50)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (12, 3)
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == aipk_emulator.port
    assert "gen_ai.request.stream" not in a and "gen_ai.input.messages" not in a
    assert a["aipk.attempts"] == 2
    assert [e.name for e in span.events] == ["aipk.retry"]
    assert span.events[0].attributes["error.type"] == "ServerError"
    assert span.status.status_code == StatusCode.UNSET
    assert "secret plans" not in json.dumps(a, default=str)
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.count == 1 and duration.attributes["gen_ai.provider.name"] == "openai"
    assert list(duration.explicit_bounds) == [0.01 * 2 ** n for n in range(14)]
    tokens = {p.attributes["gen_ai.token.type"]: p for p in
              otel.points("gen_ai.client.token.usage")}
    assert (tokens["input"].sum, tokens["output"].sum) == (12, 3)
    assert list(tokens["input"].explicit_bounds)[:3] == [1, 4, 16]


def test_failed_call_sets_error_type_and_status(aipk_emulator: Emulator, registry: Registry,
                                                otel: Otel) -> None:
    aipk_emulator.enqueue(Fault.status(400))
    with _client(aipk_emulator, registry) as client, pytest.raises(BadRequestError):
        client.chat(model="gpt-4o-mini", messages=HELLO)
    (span,) = otel.finished()
    assert span.attributes["error.type"] == "BadRequestError"
    assert span.status.status_code == StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "BadRequestError"


def test_a_cut_stream_records_the_usage_it_reported(aipk_emulator: Emulator,
                                                    registry: Registry, otel: Otel) -> None:
    aipk_emulator.enqueue(Fault.truncate(after_events=1000, reply=Reply(
        text="cut before its terminator", chunk_size=4, usage=(9, 5))))
    with (_client(aipk_emulator, registry) as client, pytest.raises(aipk.IncompleteStreamError),
          client.stream(model="gpt-4o-mini", messages=HELLO) as stream):
        for _ in stream:
            pass
    (span,) = otel.finished()
    assert span.attributes["error.type"] == "IncompleteStreamError"
    assert (span.attributes["gen_ai.usage.input_tokens"],
            span.attributes["gen_ai.usage.output_tokens"]) == (9, 5)


def test_stream_with_tool_calls(aipk_emulator: Emulator, registry: Registry,
                                otel: Otel) -> None:
    aipk_emulator.enqueue(Reply(tool_calls=[ToolCallSpec(name="get_weather",
                                                         arguments={"city": "Paris"})]))
    weather = Tool(name="get_weather", description="Weather in a city",
                   parameters={"type": "object", "properties": {"city": {"type": "string"}}})
    with _client(aipk_emulator, registry) as client, \
            client.stream(model="gpt-4o-mini", messages=HELLO, tools=[weather]) as stream:
        stream.get_response()
    (span,) = otel.finished()
    a = dict(span.attributes)
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert a["gen_ai.response.time_to_first_chunk"] >= 0
    (call,) = [e for e in span.events if e.name == "gen_ai.tool.call"]
    assert call.attributes["gen_ai.tool.name"] == "get_weather"
    assert "gen_ai.tool.call.arguments" not in call.attributes
    assert "gen_ai.tool.definitions" not in a
    assert len(otel.points("gen_ai.client.operation.time_to_first_chunk")) == 1


def test_abandoned_and_closed_streams_end_their_spans(aipk_emulator: Emulator,
                                                      registry: Registry, otel: Otel) -> None:
    aipk_emulator.enqueue(Reply(text="a long answer to leave early", chunk_size=2),
                          Reply(text="another long answer", chunk_size=2))
    with _client(aipk_emulator, registry) as client:
        with client.stream(model="gpt-4o-mini", messages=HELLO) as stream:
            next(iter(stream))
        abandoned = client.stream(model="gpt-4o-mini", messages=HELLO)
        next(iter(abandoned))
        del abandoned
        gc.collect()
    spans = otel.finished()
    assert len(spans) == 2
    assert all(s.attributes["aipk.cancelled"] is True for s in spans)


def test_content_is_recorded_only_when_asked(aipk_emulator: Emulator, registry: Registry,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(aipk_otel.CONTENT_ENV, "true")
    telemetry = Otel(capture_content=None)  # type: ignore[arg-type]
    assert telemetry.observer.capture_content is True
    registry.register(telemetry.observer, "otel")
    aipk_emulator.enqueue(Reply(text="the answer"))
    with _client(aipk_emulator, registry) as client:
        client.chat(model="gpt-4o-mini", messages=HELLO)
    (span,) = telemetry.finished()
    inputs = json.loads(span.attributes["gen_ai.input.messages"])
    assert inputs == [{"role": "user", "parts": [
        {"type": "text", "content": "Hello there, secret plans inside"}]}]
    outputs = json.loads(span.attributes["gen_ai.output.messages"])
    assert outputs[0]["parts"][0]["content"] == "the answer"


def test_instrument_registers_and_uninstrument_removes_the_observer(
        aipk_emulator: Emulator, registry: Registry) -> None:
    telemetry = Otel()
    aipk_emulator.enqueue(Reply(text="untraced"), Reply(text="traced"),
                          Reply(text="a long answer left open", chunk_size=2),
                          Reply(text="untraced again"))
    with _client(aipk_emulator, registry) as client:
        client.chat(model="gpt-4o-mini", messages=HELLO)  # not instrumented: no span
        assert aipk_otel.current(registry) is None
        observer = aipk_otel.instrument(telemetry.observer, registry=registry)
        assert aipk_otel.current(registry) is observer is telemetry.observer
        client.chat(model="gpt-4o-mini", messages=HELLO)
        stream = client.stream(model="gpt-4o-mini", messages=HELLO)
        next(iter(stream))
        assert observer.open_spans() == 1
        aipk_otel.uninstrument(registry)
        assert aipk_otel.current(registry) is None and observer.open_spans() == 0
        stream.close()
        client.chat(model="gpt-4o-mini", messages=HELLO)
    spans = telemetry.finished()
    assert [s.name for s in spans] == ["chat gpt-4o-mini"] * 2
    assert spans[1].attributes["aipk.uninstrumented"] is True


def test_instrument_again_replaces_the_observer(aipk_emulator: Emulator,
                                                registry: Registry) -> None:
    first, second = Otel(), Otel()
    aipk_otel.instrument(first.observer, registry=registry)
    aipk_emulator.enqueue(Reply(text="a long answer left open", chunk_size=2))
    with _client(aipk_emulator, registry) as client:
        stream = client.stream(model="gpt-4o-mini", messages=HELLO)
        next(iter(stream))
        aipk_otel.instrument(second.observer, registry=registry)
        stream.close()
    assert first.observer.open_spans() == 0  # the replaced observer ended its span
    assert [s.attributes["aipk.uninstrumented"] for s in first.finished()] == [True]
    assert aipk_otel.current(registry) is second.observer
    made = aipk_otel.instrument(registry=registry, capture_content=True)
    assert made.capture_content is True and aipk_otel.current(registry) is made
    aipk_otel.uninstrument(registry)
    aipk_otel.uninstrument(registry)  # a no-op when not instrumented


def test_server_attributes_are_parsed_once_per_base_url() -> None:
    from aipk_otel._observer import _server

    _server.cache_clear()
    assert dict(_server("https://api.example.com/v1")) == {
        "server.address": "api.example.com", "server.port": 443}
    assert dict(_server("http://127.0.0.1:8080/x")) == {
        "server.address": "127.0.0.1", "server.port": 8080}
    _server("https://api.example.com/v1")
    assert _server.cache_info().hits == 1
