"""Observability: the metrics model every call feeds, and the records observers receive.

* `Metrics` — counters and bounded latency histograms by provider, model and credential
  id; ``client.metrics()`` returns its `MetricsSnapshot` (``to_dict()`` / ``to_json()``).
  The same model keeps each credential's attempt counters
  ([`CredentialMetrics`][aipk.observability.CredentialMetrics], read by ``pool.metrics``) and each
  router target's statistics (`TargetMetrics`, read by ``router.metrics()`` and the
  ``lowest_latency`` strategy) and each router's totals by router name (`RouterMetrics`;
  `RouterTotals` in the snapshot).
* `snapshot_models()` reads several models as one and `merge_snapshots()` combines snapshots:
  one rule for what several models add up to (the exporters read their models through it).
* The ``aipk_observe`` hook ([`aipk.hookspecs`][aipk.hookspecs]) hands plugins one record per call
  start (`CallStarted`), end (`CallFinished`, `CallFailed`,
  `CallCancelled`), retry (`CallRetried`), failover (`CallFailedOver`) and
  stream first token (`FirstToken`). The exporters aipk-prometheus and aipk-otel are such
  plugins.

Names load on first use (the records' classes are built only when needed). See
docs/observability.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from ._keys import CredentialMetrics, CredentialSnapshot
    from ._merge import merge_snapshots, snapshot_models
    from ._model import LATENCY_BOUNDS, Metrics
    from ._routers import DEFAULT_ROUTER_NAME, RouterMetrics, RouterTotals
    from ._snapshot import Distribution, MetricsSnapshot, SeriesSnapshot
    from ._targets import TargetMetrics

__all__ = [
    "DEFAULT_ROUTER_NAME",
    "LATENCY_BOUNDS",
    "CallCancelled",
    "CallFailed",
    "CallFailedOver",
    "CallFinished",
    "CallRetried",
    "CallStarted",
    "CredentialMetrics",
    "CredentialSnapshot",
    "Distribution",
    "FirstToken",
    "Metrics",
    "MetricsSnapshot",
    "ObservedEvent",
    "RouterMetrics",
    "RouterTotals",
    "SeriesSnapshot",
    "TargetMetrics",
    "merge_snapshots",
    "snapshot_models",
]

_LAZY = {
    **dict.fromkeys(("CallCancelled", "CallFailed", "CallFailedOver", "CallFinished",
                     "CallRetried", "CallStarted", "FirstToken", "ObservedEvent"), "._events"),
    **dict.fromkeys(("LATENCY_BOUNDS", "Metrics"), "._model"),
    **dict.fromkeys(("Distribution", "MetricsSnapshot", "SeriesSnapshot"), "._snapshot"),
    **dict.fromkeys(("CredentialMetrics", "CredentialSnapshot"), "._keys"),
    "TargetMetrics": "._targets",
    **dict.fromkeys(("merge_snapshots", "snapshot_models"), "._merge"),
    **dict.fromkeys(("DEFAULT_ROUTER_NAME", "RouterMetrics", "RouterTotals"), "._routers"),
}


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aipk.observability' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
