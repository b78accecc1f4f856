"""Prometheus exporter for aipk.

`AipkCollector` turns aipk's metrics models into Prometheus metric families on each
scrape. By default it reads one process-wide model that every call feeds from the moment the
collector is created (`install()` registers the feeding observer; nothing runs per call
before that)::

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
from .plugin import install, installed, uninstall

__all__ = ["DURATION_BUCKETS", "AipkCollector", "HealthSource", "install", "installed",
           "process_metrics", "register", "uninstall"]


def process_metrics() -> Metrics:
    """The model every aipk call in this process feeds once `install()` ran."""
    from .plugin import PROCESS_METRICS

    return PROCESS_METRICS
