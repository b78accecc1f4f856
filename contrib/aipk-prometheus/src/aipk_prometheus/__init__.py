"""Prometheus exporter for aipk.

Installing this package registers an aipk plugin (entry point ``prometheus``) that feeds every
call into one process-wide model; `AipkCollector` turns it (or the models you name) into
Prometheus metric families on each scrape::

    from prometheus_client import CollectorRegistry, start_http_server
    import aipk_prometheus

    registry = CollectorRegistry()
    registry.register(aipk_prometheus.AipkCollector())
    start_http_server(9464, registry=registry)

See docs/observability.md for the metric names and labels.
"""

from __future__ import annotations

from aipk.observability import Metrics

from ._collector import DURATION_BUCKETS, AipkCollector, HealthSource, register

__all__ = ["DURATION_BUCKETS", "AipkCollector", "HealthSource", "process_metrics", "register"]


def process_metrics() -> Metrics:
    """The model every aipk call in this process feeds (through the plugin)."""
    from .plugin import PROCESS_METRICS

    return PROCESS_METRICS
