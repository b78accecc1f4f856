"""The aipk hooks for Ollama's native API (provider ``ollama-native``, ``protocol="ollama"``).

Every hook is marked ``@aipk.hookimpl_for(protocol="ollama")``, so it is called only for
providers of the ``ollama`` protocol. The OpenAI-compatible endpoint of the same server
(``<host>/v1``) is the ``ollama`` provider of aipk-openai; this one speaks ``/api/chat``
(NDJSON streams, ``thinking``, ``format``) and lists models with ``/api/tags``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aipk import (
    Capabilities,
    ChatRequest,
    ChatResponse,
    HttpRequest,
    ModelInfo,
    Provider,
    ProviderSpec,
    RateLimitState,
    hookimpl,
    hookimpl_for,
)
from aipk.errors import ProviderError

from . import wire

__all__ = ["NAME", "OLLAMA_NATIVE", "PROTOCOL"]

NAME = "ollama-native"
PROTOCOL = "ollama"

OLLAMA_NATIVE = ProviderSpec(
    name=NAME,
    protocol=PROTOCOL,
    display_name="Ollama (native API)",
    default_base_url="http://localhost:11434",
    base_url_env="OLLAMA_NATIVE_BASE_URL",
    env_vars=("OLLAMA_API_KEY",),
    key_optional=True,
    auth_kinds=("none", "api_key"),
    capabilities=Capabilities(streaming=True, tools=True, vision=True, json_mode=True,
                              reasoning=True),
    read_timeout=300.0,
)

_serves = hookimpl_for(protocol=PROTOCOL)


@hookimpl
def aipk_providers() -> Sequence[ProviderSpec]:
    return (OLLAMA_NATIVE,)


@_serves
def aipk_build_request(provider: Provider, request: ChatRequest, stream: bool) -> HttpRequest:
    return wire.build_chat_request(provider, request, stream)


@_serves
def aipk_parse_rate_limits(provider: Provider, status: int, headers: Mapping[str, str],
                           now: float) -> RateLimitState | None:
    return wire.parse_rate_limits(headers, now)


@_serves
def aipk_parse_response(provider: Provider, request: ChatRequest, data: Any,
                        headers: Mapping[str, str]) -> ChatResponse:
    return wire.parse_chat_response(provider, request, data)


@_serves
def aipk_stream_decoder(provider: Provider, request: ChatRequest) -> wire.OllamaStreamDecoder:
    return wire.OllamaStreamDecoder(provider)


@_serves
def aipk_map_error(provider: Provider, status: int, headers: Mapping[str, str], data: Any,
                   request_id: str | None) -> ProviderError:
    import time

    return wire.map_error(provider, status, headers, data, request_id, time.time())


@_serves
def aipk_models_request(provider: Provider) -> HttpRequest:
    return wire.build_models_request(provider)


@_serves
def aipk_parse_models(provider: Provider, data: Any) -> Sequence[ModelInfo]:
    return wire.parse_models(provider, data)
