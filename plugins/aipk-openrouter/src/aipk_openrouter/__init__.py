"""aipk-openrouter: OpenRouter (an OpenAI-compatible gateway to many models) for aipk.

Installing the package registers the plugin (entry point ``aipk.plugins: openrouter``); use it
through ``aipk.Client("openrouter")``. Modules: `routing` (model lists and
strategies), `models` (``GET /models`` with prices),
`account` (credits from ``GET /key``), `oauth`
(the PKCE login's endpoints and request builders), `limits` (rate-limit
headers) and `wire` (what OpenRouter adds to the OpenAI wire format).
"""

from __future__ import annotations

from .account import KeyInfo, key_request, parse_key
from .limits import parse_rate_limits
from .models import parse_models
from .plugin import OPENROUTER
from .routing import (
    ModelRouter,
    RoundRobin,
    RouterOptions,
    Strategy,
    is_free,
    models_field,
    order_models,
    router_of,
)
from .wire import OpenRouterStreamDecoder

__all__ = [
    "OPENROUTER",
    "KeyInfo",
    "ModelRouter",
    "OpenRouterStreamDecoder",
    "RoundRobin",
    "RouterOptions",
    "Strategy",
    "is_free",
    "key_request",
    "models_field",
    "order_models",
    "parse_key",
    "parse_models",
    "parse_rate_limits",
    "router_of",
]
__version__ = "0.1.0"
