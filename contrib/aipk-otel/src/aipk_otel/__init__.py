"""OpenTelemetry for aipk: a span per call following the GenAI semantic conventions, and the
GenAI client metrics (``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``,
``gen_ai.client.operation.time_to_first_chunk``).

Installing the package registers an aipk plugin (entry point ``otel``) that uses
OpenTelemetry's global providers; `configure()` sets explicit ones::

    import aipk_otel
    aipk_otel.configure(aipk_otel.OtelObserver(tracer_provider=tp, meter_provider=mp))

Message contents are not recorded unless ``capture_content=True`` (or
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``). See docs/observability.md.
"""

from __future__ import annotations

from ._observer import CONTENT_ENV, OtelObserver
from .plugin import configure, current

__all__ = ["CONTENT_ENV", "OtelObserver", "configure", "current"]
