"""An ``aipk_observe`` implementation that turns aipk's call records into OpenTelemetry GenAI
spans and metrics."""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from aipk import hookimpl
from aipk.observability import (
    CallCancelled,
    CallFailed,
    CallFailedOver,
    CallFinished,
    CallRetried,
    CallStarted,
    FirstToken,
    Metrics,
    ObservedEvent,
)

from . import _semconv as sc
from ._statistics import HealthSource, Instruments, ModelExport, instruments_for

__all__ = ["CONTENT_ENV", "OtelObserver"]

#: The environment variable (OpenTelemetry's GenAI one) that turns message capture on.
CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CONTENT_ON = {"true", "1", "span_only", "span_and_event"}


def _content_from_env() -> bool:
    return os.environ.get(CONTENT_ENV, "").strip().lower() in _CONTENT_ON


@functools.lru_cache(maxsize=256)
def _server(base_url: str) -> tuple[tuple[str, Any], ...]:
    """``server.address`` and ``server.port`` of ``base_url`` (parsed once per base URL)."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        return ()
    return ((sc.SERVER_ADDRESS, parts.hostname),
            (sc.SERVER_PORT, parts.port or (443 if parts.scheme == "https" else 80)))


def _messages(messages: Any) -> str:
    out = []
    for m in messages:
        parts: list[dict[str, Any]] = []
        if getattr(m, "content", None):
            content = m.content
            parts.append({"type": "text", "content": content if isinstance(content, str)
                          else str(content)})
        for call in getattr(m, "tool_calls", None) or ():
            parts.append({"type": "tool_call", "id": call.id, "name": call.name,
                          "arguments": call.arguments})
        out.append({"role": str(getattr(m, "role", "")), "parts": parts})
    return json.dumps(out)


def _usage_attributes(usage: Any) -> dict[str, Any]:
    """The ``gen_ai.usage.*`` attributes of ``usage`` (the counts the provider sent)."""
    if usage is None:
        return {}
    pairs = ((sc.USAGE_INPUT_TOKENS, usage.input_tokens),
             (sc.USAGE_OUTPUT_TOKENS, usage.output_tokens),
             (sc.USAGE_CACHE_READ_INPUT_TOKENS, usage.cache_read_tokens),
             (sc.USAGE_CACHE_CREATION_INPUT_TOKENS, usage.cache_write_tokens),
             (sc.USAGE_REASONING_OUTPUT_TOKENS, usage.reasoning_tokens))
    return {name: value for name, value in pairs if value is not None}


class OtelObserver:
    """Spans (``chat {model}``, kind CLIENT) and the GenAI client metrics for every aipk call
    (an ``aipk_observe`` plugin: `aipk_otel.instrument()` registers one).

    ``tracer_provider`` / ``meter_provider`` default to OpenTelemetry's global ones.
    ``capture_content`` records message contents and tool definitions and arguments (off by
    default; the environment variable ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``
    turns it on when not given).

    ``models`` (`aipk.observability.Metrics`, or clients, routers and key pools: their
    ``metrics_model``), ``credentials`` (key pools or OAuth managers whose health to show) and
    ``health`` (a function returning a health checker's statuses, e.g. ``checker.statuses``)
    are read by observable instruments when a metric reader collects, between `start()` and
    `stop()` (`aipk_otel.instrument()` and `uninstrument()` call them); nothing of them runs
    per call. See docs/observability.md for the instruments.
    """

    def __init__(self, *, tracer_provider: trace.TracerProvider | None = None,
                 meter_provider: metrics.MeterProvider | None = None,
                 capture_content: bool | None = None, models: Iterable[object] = (),
                 credentials: Sequence[HealthSource] = (),
                 health: Callable[[], Iterable[Any]] | None = None) -> None:
        self.capture_content = (_content_from_env() if capture_content is None
                                else capture_content)
        self._meter_provider = meter_provider
        self._export = ModelExport(models, credentials=credentials, health=health)
        self._instruments: Instruments | None = None
        self._tracer = trace.get_tracer("aipk", tracer_provider=tracer_provider)
        meter = metrics.get_meter("aipk", meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            sc.DURATION, unit="s", description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS)
        self._tokens = meter.create_histogram(
            sc.TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=sc.TOKEN_BUCKETS)
        self._first_chunk = meter.create_histogram(
            sc.TIME_TO_FIRST_CHUNK, unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS)
        self._open: dict[int, tuple[Span, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    @hookimpl
    def aipk_observe(self, event: ObservedEvent) -> None:
        if isinstance(event, CallStarted):
            self._started(event)
        elif isinstance(event, CallFinished):
            self._finished(event)
        elif isinstance(event, CallFailed):
            self._failed(event)
        elif isinstance(event, CallCancelled):
            self._cancelled(event)
        elif isinstance(event, FirstToken):
            self._first_token(event)
        elif isinstance(event, (CallRetried, CallFailedOver)):
            self._attempt(event)

    @property
    def models(self) -> tuple[Metrics, ...]:
        """The metrics models this observer exports (each once, in the order given)."""
        return self._export.models

    def start(self) -> None:
        """Export the models', credentials' and health checker's statistics from the next
        collection on (a no-op without any), on the meter provider given, else on the
        global one of this moment."""
        if self._export and self._instruments is None:
            self._instruments = instruments_for(self._meter_provider)
            self._instruments.start(self._export)

    def stop(self) -> None:
        """Stop exporting them (their instruments observe nothing from now on; OpenTelemetry
        cannot remove an instrument) and end the spans of calls still in flight, as
        `end_open_spans()`."""
        instruments, self._instruments = self._instruments, None
        if instruments is not None:
            instruments.stop(self._export)
        self.end_open_spans()

    def exporting(self) -> bool:
        """Whether the statistics are exported (between `start()` and `stop()`)."""
        return self._instruments is not None and self._instruments.exporting(self._export)

    def open_spans(self) -> int:
        """Spans started and not yet ended (0 once every call has ended)."""
        with self._lock:
            return len(self._open)

    def end_open_spans(self) -> None:
        """End the spans of calls still in flight, marked ``aipk.uninstrumented`` (when the
        observer is removed: their end would never reach it)."""
        with self._lock:
            entries = list(self._open.values())
            self._open.clear()
        for span, _common in entries:
            span.set_attribute("aipk.uninstrumented", True)
            span.end()

    # -- lifecycle ---------------------------------------------------------------------------

    def _started(self, event: CallStarted) -> None:
        provider = sc.PROVIDER_NAMES.get(event.provider, event.provider)
        common: dict[str, Any] = {sc.OPERATION_NAME: sc.OPERATION_CHAT,
                                  sc.PROVIDER_NAME: provider, sc.REQUEST_MODEL: event.model}
        common.update(_server(event.base_url))
        attributes = dict(common)
        request = event.request
        if event.stream:
            attributes[sc.REQUEST_STREAM] = True
        for name, value in ((sc.REQUEST_TEMPERATURE, request.temperature),
                            (sc.REQUEST_TOP_P, request.top_p),
                            (sc.REQUEST_MAX_TOKENS, request.max_tokens),
                            (sc.REQUEST_SEED, getattr(request, "seed", None)),
                            (sc.REQUEST_FREQUENCY_PENALTY,
                             getattr(request, "frequency_penalty", None)),
                            (sc.REQUEST_PRESENCE_PENALTY,
                             getattr(request, "presence_penalty", None))):
            if value is not None:
                attributes[name] = value
        if request.stop:
            attributes[sc.REQUEST_STOP_SEQUENCES] = list(request.stop)
        if self.capture_content:
            attributes[sc.INPUT_MESSAGES] = _messages(request.messages)
            if request.tools:
                attributes[sc.TOOL_DEFINITIONS] = json.dumps(
                    [{"type": "function", "name": t.name, "description": t.description,
                      "parameters": t.parameters} for t in request.tools])
        span = self._tracer.start_span(f"{sc.OPERATION_CHAT} {event.model}", kind=SpanKind.CLIENT,
                                       attributes=attributes)
        with self._lock:
            self._open[event.call_id] = (span, common)

    def _take(self, call_id: int) -> tuple[Span, dict[str, Any]] | None:
        with self._lock:
            return self._open.pop(call_id, None)

    def _first_token(self, event: FirstToken) -> None:
        with self._lock:
            entry = self._open.get(event.call_id)
        if entry is None:
            return
        span, common = entry
        span.set_attribute(sc.RESPONSE_TIME_TO_FIRST_CHUNK, event.time_to_first_token)
        self._first_chunk.record(event.time_to_first_token, common)

    def _attempt(self, event: CallRetried | CallFailedOver) -> None:
        with self._lock:
            entry = self._open.get(event.call_id)
        if entry is None:
            return
        attributes: dict[str, Any] = {sc.ERROR_TYPE: event.error_type,
                                      "aipk.credential.id": event.credential_id}
        if isinstance(event, CallRetried):
            attributes.update({"aipk.attempt": event.attempt, "aipk.retry.wait": event.wait})
            entry[0].add_event("aipk.retry", attributes)
        else:
            attributes["aipk.failover.to"] = event.to_credential_id
            entry[0].add_event("aipk.failover", attributes)

    def _finished(self, event: CallFinished) -> None:
        entry = self._take(event.call_id)
        if entry is None:
            return
        span, common = entry
        response = event.response
        measured = dict(common)
        if response.model:
            measured[sc.RESPONSE_MODEL] = response.model
        attributes: dict[str, Any] = {**measured, "aipk.attempts": event.attempts,
                                      "aipk.credential.id": event.credential_id}
        if response.id:
            attributes[sc.RESPONSE_ID] = response.id
        reason = response.raw_finish_reason or (
            str(response.finish_reason) if response.finish_reason is not None else None)
        if reason:
            attributes[sc.RESPONSE_FINISH_REASONS] = [reason]
        usage = event.usage
        attributes.update(_usage_attributes(usage))
        if event.cost is not None:
            attributes["aipk.cost.usd"] = event.cost
        if self.capture_content:
            attributes[sc.OUTPUT_MESSAGES] = _messages([response.message])
        span.set_attributes(attributes)
        for call in response.message.tool_calls or ():
            call_attributes: dict[str, Any] = {sc.TOOL_NAME: call.name}
            if call.id:
                call_attributes[sc.TOOL_CALL_ID] = call.id
            if self.capture_content:
                call_attributes[sc.TOOL_CALL_ARGUMENTS] = call.arguments
            span.add_event("gen_ai.tool.call", call_attributes)
        span.end()
        self._duration.record(event.latency, measured)
        if usage is not None:
            for kind, count in (("input", usage.input_tokens), ("output", usage.output_tokens)):
                if count is not None:  # a count the provider did not send is not recorded
                    self._tokens.record(count, {**measured, sc.TOKEN_TYPE: kind})

    def _failed(self, event: CallFailed) -> None:
        entry = self._take(event.call_id)
        if entry is None:
            return
        span, common = entry
        span.set_attributes({sc.ERROR_TYPE: event.error_type, "aipk.attempts": event.attempts,
                             "aipk.credential.id": event.credential_id,
                             **_usage_attributes(event.usage)})
        span.record_exception(event.error)
        span.set_status(Status(StatusCode.ERROR, event.error_type))
        span.end()
        self._duration.record(event.latency, {**common, sc.ERROR_TYPE: event.error_type})

    def _cancelled(self, event: CallCancelled) -> None:
        entry = self._take(event.call_id)
        if entry is None:
            return
        span, _common = entry
        span.set_attributes({"aipk.cancelled": True, "aipk.attempts": event.attempts,
                             **_usage_attributes(event.usage)})
        span.end()


def attributes_of(span: Any) -> Mapping[str, Any]:
    """A finished SDK span's attributes (a helper for tests and examples)."""
    return dict(span.attributes or {})
