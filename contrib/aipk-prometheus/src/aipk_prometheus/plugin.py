"""The aipk plugin half of aipk-prometheus: every call's records feed one process-wide
`Metrics` (`aipk_prometheus.process_metrics()`), which
`AipkCollector` reads by default."""

from __future__ import annotations

from aipk import hookimpl
from aipk.observability import Metrics, ObservedEvent

__all__ = ["PROCESS_METRICS", "aipk_observe"]

#: What every client in this process recorded, fed through the ``aipk_observe`` hook.
PROCESS_METRICS = Metrics()


@hookimpl
def aipk_observe(event: ObservedEvent) -> None:
    PROCESS_METRICS.observe(event)
