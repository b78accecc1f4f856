"""aipk-ollama: Ollama's native API (``/api/chat``, NDJSON streaming) for aipk.

Installing the package registers the plugin (entry point ``aipk.plugins: ollama-native``); use
it through ``aipk.Client("ollama-native")``. `aipk_ollama.wire` holds the wire functions
and the stream decoder.
"""

from __future__ import annotations

from .plugin import NAME, OLLAMA_NATIVE, PROTOCOL
from .wire import OllamaStreamDecoder

__all__ = ["NAME", "OLLAMA_NATIVE", "PROTOCOL", "OllamaStreamDecoder"]
__version__ = "0.1.0"
