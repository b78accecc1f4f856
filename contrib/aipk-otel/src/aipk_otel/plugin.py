"""Turning aipk-otel on and off: `instrument()` registers an `OtelObserver` as an
aipk plugin (``aipk_observe``), `uninstrument()` removes it. Nothing is registered until
then, so a process that traces nothing pays nothing per call."""

from __future__ import annotations

import threading

from opentelemetry import metrics, trace

from aipk.registry import Registry, default_registry

from ._observer import OtelObserver

__all__ = ["PLUGIN_NAME", "current", "instrument", "uninstrument"]

#: The name the observer is registered under in an aipk registry.
PLUGIN_NAME = "aipk-otel"
_lock = threading.Lock()


def current(registry: Registry | None = None) -> OtelObserver | None:
    """The observer `instrument()` registered in ``registry`` (default: aipk's default
    registry), or None."""
    reg = registry if registry is not None else default_registry()
    plugin = reg.pm.get_plugin(PLUGIN_NAME)
    return plugin if isinstance(plugin, OtelObserver) else None


def instrument(observer: OtelObserver | None = None, *, registry: Registry | None = None,
               tracer_provider: trace.TracerProvider | None = None,
               meter_provider: metrics.MeterProvider | None = None,
               capture_content: bool | None = None) -> OtelObserver:
    """Trace every call of the clients using ``registry`` (default: aipk's default registry,
    the one clients use unless given ``registry=``), from their next call on.

    ``observer``: the one to use; default a new `OtelObserver` on ``tracer_provider``,
    ``meter_provider`` (OpenTelemetry's global ones when None) and ``capture_content``.
    Calling it again replaces the observer (the replaced one ends the spans of calls still in
    flight, as `uninstrument()` does). Returns the observer in use."""
    if observer is None:
        observer = OtelObserver(tracer_provider=tracer_provider, meter_provider=meter_provider,
                                capture_content=capture_content)
    reg = registry if registry is not None else default_registry()
    with _lock:
        old = current(reg)
        if reg.pm.get_plugin(PLUGIN_NAME) is not None:
            reg.unregister(PLUGIN_NAME)
        reg.register(observer, PLUGIN_NAME)
    if old is not None and old is not observer:
        old.end_open_spans()
    return observer


def uninstrument(registry: Registry | None = None) -> None:
    """Stop tracing ``registry``'s clients (a no-op when not instrumented). Spans of calls
    still in flight end now, marked ``aipk.uninstrumented``."""
    reg = registry if registry is not None else default_registry()
    with _lock:
        observer = current(reg)
        if observer is not None:
            reg.unregister(PLUGIN_NAME)
            observer.end_open_spans()
