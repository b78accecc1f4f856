"""aipk-anthropic: Anthropic's Messages API (Claude) for aipk.

Installing the package registers the plugin (entry point ``aipk.plugins: anthropic``); use it
through [`aipk.Client`][aipk.Client]. `aipk_anthropic.wire` holds the request functions (and
re-exports the others), `aipk_anthropic.responses` the response and model-listing parsers,
`aipk_anthropic.stream` the stream decoder, `aipk_anthropic.status` the error and rate-limit
mapping.
"""

from __future__ import annotations

from .plugin import ANTHROPIC, MODELS
from .stream import AnthropicStreamDecoder
from .wire import CLAUDE_CODE_SYSTEM_PROMPT, DEFAULT_MAX_TOKENS

__all__ = ["ANTHROPIC", "CLAUDE_CODE_SYSTEM_PROMPT", "DEFAULT_MAX_TOKENS", "MODELS",
           "AnthropicStreamDecoder"]
__version__ = "0.1.0"
