"""aipk-gemini: Google Gemini (``generateContent``) for aipk.

Installing the package registers the plugin (entry point ``aipk.plugins: gemini``); use it
through ``aipk.Client("gemini")``. `aipk_gemini.wire` holds the request and response
functions, `aipk_gemini.stream` the stream decoder, `aipk_gemini.status` the error and
rate-limit mapping, `aipk_gemini.schema` the tool-schema conversion, `aipk_gemini.limits`
the default client-side request rate (and the deprecated stand-alone limiter).
"""

from __future__ import annotations

from .limits import DEFAULT_REQUESTS_PER_MINUTE, TokenBucket, limiter_for
from .plugin import GEMINI, Endpoint, endpoint_for
from .status import DAILY_QUOTA_CODE
from .stream import GeminiStreamDecoder
from .wire import CLOUDCODE_BASE_URL

__all__ = [
    "CLOUDCODE_BASE_URL",
    "DAILY_QUOTA_CODE",
    "DEFAULT_REQUESTS_PER_MINUTE",
    "GEMINI",
    "Endpoint",
    "GeminiStreamDecoder",
    "TokenBucket",
    "endpoint_for",
    "limiter_for",
]
__version__ = "0.1.0"
