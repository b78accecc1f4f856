"""OpenTelemetry for aipk: a span per call following the GenAI semantic conventions, and the
GenAI client metrics (``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``,
``gen_ai.client.operation.time_to_first_chunk``), and observable instruments over aipk's
metrics models (calls, key-pool attempts, router targets, router totals, key health) read
when a metric reader collects.

Nothing is traced (and nothing runs per call) until `instrument()` registers the
observer; by default it uses OpenTelemetry's global providers::

    import aipk_otel
    aipk_otel.instrument()                                    # global providers
    aipk_otel.instrument(tracer_provider=tp, meter_provider=mp)  # or explicit ones
    aipk_otel.instrument(models=[router.metrics_model, pool.metrics_model],
                         credentials=[pool])   # also export those models' statistics
    aipk_otel.uninstrument()

Message contents are not recorded unless ``capture_content=True`` (or
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``). See docs/observability.md.
"""

from __future__ import annotations

from ._observer import CONTENT_ENV, OtelObserver
from ._statistics import INSTRUMENTS, HealthSource
from .plugin import current, instrument, uninstrument

__all__ = ["CONTENT_ENV", "INSTRUMENTS", "HealthSource", "OtelObserver", "current", "instrument",
           "uninstrument"]
