"""The aipk plugin half of aipk-prometheus: once `install()` registered it, every call's
records feed one process-wide `Metrics`
(`aipk_prometheus.process_metrics()`), which `AipkCollector` reads
by default. Nothing is registered until then, so a process that exports nothing pays nothing."""

from __future__ import annotations

import threading

from aipk import hookimpl
from aipk.observability import Metrics, ObservedEvent
from aipk.registry import Registry, default_registry

__all__ = ["PLUGIN_NAME", "PROCESS_METRICS", "install", "installed", "uninstall"]

#: What every client in this process recorded since `install()`, fed through the
#: ``aipk_observe`` hook.
PROCESS_METRICS = Metrics()
#: The name the feed is registered under in an aipk registry.
PLUGIN_NAME = "aipk-prometheus"
_lock = threading.Lock()


class _Feed:
    """The ``aipk_observe`` implementation: each record into `PROCESS_METRICS`."""

    @hookimpl
    def aipk_observe(self, event: ObservedEvent) -> None:
        PROCESS_METRICS.observe(event)


_FEED = _Feed()


def installed(registry: Registry | None = None) -> bool:
    """Whether the feed is registered in ``registry`` (default: aipk's default registry)."""
    reg = registry if registry is not None else default_registry()
    return reg.pm.get_plugin(PLUGIN_NAME) is not None


def install(registry: Registry | None = None) -> Metrics:
    """Feed every call of the clients using ``registry`` (default: aipk's default registry,
    the one clients use unless given ``registry=``) into `PROCESS_METRICS`, from their
    next call on. Idempotent; returns the model."""
    reg = registry if registry is not None else default_registry()
    with _lock:
        if not installed(reg):
            reg.register(_FEED, PLUGIN_NAME)
    return PROCESS_METRICS


def uninstall(registry: Registry | None = None) -> None:
    """Stop feeding the process model from ``registry``'s clients (a no-op when not
    installed); what was recorded stays."""
    reg = registry if registry is not None else default_registry()
    with _lock:
        if installed(reg):
            reg.unregister(PLUGIN_NAME)
