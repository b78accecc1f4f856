"""aipk-anthropic: Anthropic's Messages API (Claude) for aipk.

Installing the package registers the plugin (entry point ``aipk.plugins: anthropic``); use it
through [`aipk.Client`][aipk.Client]. `aipk_anthropic.wire` holds the reusable wire functions.
"""

from __future__ import annotations

from .plugin import ANTHROPIC, MODELS
from .wire import CLAUDE_CODE_SYSTEM_PROMPT, DEFAULT_MAX_TOKENS, AnthropicStreamDecoder

__all__ = ["ANTHROPIC", "CLAUDE_CODE_SYSTEM_PROMPT", "DEFAULT_MAX_TOKENS", "MODELS",
           "AnthropicStreamDecoder"]
__version__ = "0.1.0"
