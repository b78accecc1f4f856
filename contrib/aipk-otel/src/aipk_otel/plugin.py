"""The aipk plugin half of aipk-otel (entry point ``otel``): forwards every call record to the
observer `aipk_otel.configure()` set up, by default one on OpenTelemetry's global tracer
and meter providers, created on the first call."""

from __future__ import annotations

import threading

from aipk import hookimpl
from aipk.observability import ObservedEvent

from ._observer import OtelObserver

__all__ = ["aipk_observe", "configure", "current"]

_observer: OtelObserver | None = None
_lock = threading.Lock()


def configure(observer: OtelObserver | None) -> None:
    """Use ``observer`` for every call from now on (None: back to the default)."""
    global _observer
    with _lock:
        _observer = observer


def current() -> OtelObserver:
    """The observer in use (created on the global providers on first use)."""
    global _observer
    observer = _observer
    if observer is None:
        with _lock:
            if _observer is None:
                _observer = OtelObserver()
            observer = _observer
    return observer


@hookimpl
def aipk_observe(event: ObservedEvent) -> None:
    current().aipk_observe(event)
