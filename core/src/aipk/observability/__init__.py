"""Observability: the metrics model every call feeds, and the records observers receive.

* :class:`Metrics` — counters and bounded latency histograms by provider, model and credential
  id; ``client.metrics()`` returns its :class:`MetricsSnapshot` (``to_dict()`` / ``to_json()``).
* The ``aipk_observe`` hook (:mod:`aipk.hookspecs`) hands plugins one record per call start
  (:class:`CallStarted`), end (:class:`CallFinished`, :class:`CallFailed`,
  :class:`CallCancelled`), retry (:class:`CallRetried`), failover (:class:`CallFailedOver`) and
  stream first token (:class:`FirstToken`). The exporters aipk-prometheus and aipk-otel are
  such plugins.

See docs/observability.md.
"""

from __future__ import annotations

from ._events import (
    CallCancelled,
    CallFailed,
    CallFailedOver,
    CallFinished,
    CallRetried,
    CallStarted,
    FirstToken,
    ObservedEvent,
)
from ._model import LATENCY_BOUNDS, Distribution, Metrics, MetricsSnapshot, SeriesSnapshot

__all__ = [
    "LATENCY_BOUNDS",
    "CallCancelled",
    "CallFailed",
    "CallFailedOver",
    "CallFinished",
    "CallRetried",
    "CallStarted",
    "Distribution",
    "FirstToken",
    "Metrics",
    "MetricsSnapshot",
    "ObservedEvent",
    "SeriesSnapshot",
]
