"""A loopback provider emulator: a real HTTP/1.1 server on 127.0.0.1 that speaks the wire
protocols of AI model providers, scripted from tests.

    with Emulator() as emu:
        emu.enqueue(Reply(text="Hello there", chunk_size=4))
        emu.enqueue(Fault.status(429, retry_after=1.5))
        client = SomeClient(base_url=emu.url("openai"))   # http://127.0.0.1:PORT/v1
        ...
        assert emu.requests[-1].json()["model"] == "gpt-4o-mini"

Design, one module per concern (each small, standard library only):

* ``_types``: the scripting vocabulary (`Reply`, `ToolCallSpec`,
  `Fault`, `RecordedRequest`), protocol-neutral.
* ``_http``: HTTP/1.1 on a raw `asyncio.Protocol` (hand-written parsing, keep-alive,
  ``Content-Length`` responses for JSON, ``Transfer-Encoding: chunked`` with one chunk per
  stream event for streams).
* ``_app``: dispatch: mount routing, auth, rate limits, the FIFO reply queue, faults, and the
  cache of precomputed response bytes.
* ``_protocol``: the `ProtocolHandler` contract and registry. A wire protocol is one
  module that subclasses it and registers itself with `register()`; third-party
  protocols register the same way.
* ``_openai``: OpenAI chat completions (mount ``/v1``); ``_anthropic``: Anthropic Messages
  (``/anthropic``); ``_gemini``: Gemini ``generateContent`` (``/gemini``); ``_ollama``:
  Ollama's native API with NDJSON streams (``/ollama``); ``_oauth``: the OAuth servers.
* ``_server``: `Emulator`, the thread/loop owner and scripting API.
* ``__main__``: ``python -m aipk_testkit.emulator --port 0 [--stream-chunks N]`` for a
  separate-process server (benchmarks): prints ``READY <base_url>`` and serves until SIGTERM.
"""

from . import _anthropic, _gemini, _oauth, _ollama, _openai  # noqa: F401  (importing registers the protocols)
from ._oauth import OAuthHandler, oauth_server
from ._protocol import (
    ChatCall,
    ProtocolHandler,
    Rendered,
    RequestError,
    emulated_token_count,
    register,
    registered,
)
from ._ratelimit import RateLimitSnapshot
from ._server import Emulator
from ._types import Fault, RecordedRequest, Reply, ToolCallSpec

__all__ = [
    "ChatCall",
    "Emulator",
    "Fault",
    "OAuthHandler",
    "ProtocolHandler",
    "RateLimitSnapshot",
    "RecordedRequest",
    "Rendered",
    "Reply",
    "RequestError",
    "ToolCallSpec",
    "emulated_token_count",
    "oauth_server",
    "register",
    "registered",
]
