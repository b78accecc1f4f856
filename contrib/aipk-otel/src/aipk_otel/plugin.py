"""Turning aipk-otel on and off: `instrument()` registers an `OtelObserver` as an
aipk plugin (``aipk_observe``), `uninstrument()` removes it. Nothing is registered until
then, so a process that traces nothing pays nothing per call."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry import metrics, trace

from aipk.errors import ConfigurationError
from aipk.registry import Registry, default_registry

from ._observer import OtelObserver
from ._statistics import HealthSource

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
               capture_content: bool | None = None, models: Iterable[object] | None = None,
               credentials: Sequence[HealthSource] = (),
               health: Callable[[], Iterable[Any]] | None = None) -> OtelObserver:
    """Trace every call of the clients using ``registry`` (default: aipk's default registry,
    the one clients use unless given ``registry=``), from their next call on.

    ``observer``: the one to use; default a new `OtelObserver` on ``tracer_provider``,
    ``meter_provider`` (OpenTelemetry's global ones when None), ``capture_content``,
    ``models`` (metrics models, or clients, routers and key pools, whose counters to export
    with observable instruments: key-pool attempts, router targets, router totals),
    ``credentials`` (pools whose key health to export) and ``health`` (a health checker's
    ``statuses``). Calling it again replaces the observer (the replaced one stops, as
    `uninstrument()` does). Returns the observer in use, exporting."""
    if observer is None:
        observer = OtelObserver(tracer_provider=tracer_provider, meter_provider=meter_provider,
                                capture_content=capture_content, models=models or (),
                                credentials=credentials, health=health)
    elif models is not None or credentials or health is not None:
        raise ConfigurationError(
            "instrument() takes models=, credentials= and health= for the observer it builds: "
            "pass them to OtelObserver(models=..., credentials=..., health=...) instead")
    reg = registry if registry is not None else default_registry()
    with _lock:
        old = current(reg)
        if reg.pm.get_plugin(PLUGIN_NAME) is not None:
            reg.unregister(PLUGIN_NAME)
        reg.register(observer, PLUGIN_NAME)
    if old is not None and old is not observer:
        old.stop()
    observer.start()
    return observer


def uninstrument(registry: Registry | None = None) -> None:
    """Stop tracing ``registry``'s clients and exporting the observer's models (a no-op when
    not instrumented). Spans of calls still in flight end now, marked
    ``aipk.uninstrumented``."""
    reg = registry if registry is not None else default_registry()
    with _lock:
        observer = current(reg)
        if observer is not None:
            reg.unregister(PLUGIN_NAME)
            observer.stop()
