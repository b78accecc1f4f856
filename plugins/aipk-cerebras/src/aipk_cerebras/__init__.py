"""aipk-cerebras: Cerebras Inference (OpenAI-compatible chat completions) for aipk.

Installing the package registers the plugin (entry point ``aipk.plugins: cerebras``); use it
through ``aipk.Client("cerebras")``. Requests, responses, streams and errors are handled by
aipk-openai's wire functions (`CerebrasStreamDecoder` also keeps a stream's ``time_info``);
`aipk_cerebras.limits` parses Cerebras' rate-limit headers.
"""

from __future__ import annotations

from .limits import parse_rate_limits
from .plugin import CEREBRAS, CerebrasStreamDecoder

__all__ = ["CEREBRAS", "CerebrasStreamDecoder", "parse_rate_limits"]
__version__ = "0.1.0"
