"""aipk-openai: OpenAI chat completions, and OpenAI-compatible services, for aipk.

Installing the package registers the plugin (entry point ``aipk.plugins: openai``); use it
through [`aipk.Client`][aipk.Client]. `aipk_openai.wire` holds the reusable wire functions
(the stream decoder from `aipk_openai.stream`, the error mapping and rate-limit parsing from
`aipk_openai.status`, re-exported);
`aipk_openai.serving` speaks the same API from the server's side (read requests, write
answers, chunks and errors), for OpenAI-compatible servers.
"""

from __future__ import annotations

from .plugin import OPENAI
from .presets import GROQ, LMSTUDIO, OLLAMA, PRESETS
from .stream import OpenAIStreamDecoder

__all__ = ["GROQ", "LMSTUDIO", "OLLAMA", "OPENAI", "PRESETS", "OpenAIStreamDecoder"]
__version__ = "0.1.0"
