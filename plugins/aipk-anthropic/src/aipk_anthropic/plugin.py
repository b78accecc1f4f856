"""The aipk hooks for Anthropic's Messages API.

Serves every provider whose spec has ``protocol="anthropic"``: Anthropic itself, and any
compatible endpoint reached with ``Client("anthropic", base_url=...)``.

Provider options (``Client("anthropic", claude_code=True, ...)``):

* ``claude_code``: with an OAuth credential, put the Claude Code identity line first in the
  system prompt (required by Claude subscription tokens); ignored for API keys.
* ``default_max_tokens``: ``max_tokens`` sent when a request leaves it unset (default 4096).
* ``beta``: ``anthropic-beta`` flags to send, a string or a list of strings.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from aipk import (
    Capabilities,
    ChatRequest,
    ChatResponse,
    Credential,
    HttpRequest,
    ModelInfo,
    Provider,
    ProviderSpec,
    RateLimitState,
    TokenCountCall,
    hookimpl,
    hookimpl_for,
)
from aipk.errors import ProviderError

from . import stream, tokens, wire

if TYPE_CHECKING:
    from aipk.credentials import LoginFlow

PROTOCOL = "anthropic"


def _model(model_id: str, name: str, context: int, output: int, prices: tuple[float, float],
           *, reasoning: bool = True) -> ModelInfo:
    return ModelInfo(
        id=model_id, provider="anthropic", display_name=name,
        capabilities=Capabilities(vision=True, json_mode=True, reasoning=reasoning,
                                  context_window=context, max_output_tokens=output),
        input_price=prices[0], output_price=prices[1],
    )


#: Current Claude models (the anthropic SDK's model list), used when the listing is unavailable.
MODELS: tuple[ModelInfo, ...] = (
    _model("claude-opus-4-7", "Claude Opus 4.7", 1_000_000, 128_000, (5.0, 25.0)),
    _model("claude-opus-4-6", "Claude Opus 4.6", 1_000_000, 128_000, (5.0, 25.0)),
    _model("claude-sonnet-4-6", "Claude Sonnet 4.6", 1_000_000, 64_000, (3.0, 15.0)),
    _model("claude-haiku-4-5", "Claude Haiku 4.5", 200_000, 64_000, (1.0, 5.0)),
    _model("claude-haiku-4-5-20251001", "Claude Haiku 4.5", 200_000, 64_000, (1.0, 5.0)),
    _model("claude-opus-4-5", "Claude Opus 4.5", 200_000, 64_000, (5.0, 25.0)),
    _model("claude-opus-4-5-20251101", "Claude Opus 4.5", 200_000, 64_000, (5.0, 25.0)),
    _model("claude-sonnet-4-5", "Claude Sonnet 4.5", 200_000, 64_000, (3.0, 15.0)),
    _model("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", 200_000, 64_000, (3.0, 15.0)),
    _model("claude-opus-4-1", "Claude Opus 4.1", 200_000, 32_000, (15.0, 75.0)),
    _model("claude-opus-4-1-20250805", "Claude Opus 4.1", 200_000, 32_000, (15.0, 75.0)),
    _model("claude-opus-4-0", "Claude Opus 4", 200_000, 32_000, (15.0, 75.0)),
    _model("claude-opus-4-20250514", "Claude Opus 4", 200_000, 32_000, (15.0, 75.0)),
    _model("claude-sonnet-4-0", "Claude Sonnet 4", 200_000, 64_000, (3.0, 15.0)),
    _model("claude-sonnet-4-20250514", "Claude Sonnet 4", 200_000, 64_000, (3.0, 15.0)),
    _model("claude-3-haiku-20240307", "Claude Haiku 3", 200_000, 4_096, (0.25, 1.25),
           reasoning=False),
)

ANTHROPIC = ProviderSpec(
    name="anthropic",
    protocol=PROTOCOL,
    display_name="Anthropic",
    default_base_url="https://api.anthropic.com",
    base_url_env="ANTHROPIC_BASE_URL",
    auth_kinds=("api_key", "oauth"),
    env_vars=("ANTHROPIC_API_KEY",),
    capabilities=Capabilities(streaming=True, tools=True, vision=True, json_mode=True,
                              reasoning=True),
    default_model="claude-sonnet-4-5",
    models=MODELS,
)


@hookimpl
def aipk_providers() -> Sequence[ProviderSpec]:
    return (ANTHROPIC,)


#: The provider options a config file may set (``[providers.anthropic.options]``).
CONFIG_OPTIONS: Mapping[str, Any] = {
    "claude_code": bool, "default_max_tokens": int, "beta": str | list[str],
    "structured_output": Literal["output_config", "tool"],
}


@hookimpl
def aipk_config_options(provider: ProviderSpec) -> Mapping[str, Any] | None:
    return CONFIG_OPTIONS if provider.protocol == PROTOCOL else None


@hookimpl_for(protocol=PROTOCOL)
def aipk_build_request(provider: Provider, request: ChatRequest, stream: bool) -> (
        HttpRequest | None):
    return wire.build_messages_request(provider, request, stream)


@hookimpl_for(protocol=PROTOCOL)
def aipk_apply_credential(provider: Provider, http_request: HttpRequest,
                          credential: Credential) -> HttpRequest | None:
    return wire.apply_credential(provider, http_request, credential)


@hookimpl_for(protocol=PROTOCOL)
def aipk_parse_rate_limits(provider: Provider, status: int, headers: Mapping[str, str],
                           now: float) -> RateLimitState | None:
    return wire.parse_rate_limits(status, headers, now)


@hookimpl_for(protocol=PROTOCOL)
def aipk_parse_response(provider: Provider, request: ChatRequest, data: Any,
                        headers: Mapping[str, str]) -> ChatResponse | None:
    return wire.parse_messages_response(provider, request, data)


@hookimpl_for(protocol=PROTOCOL)
def aipk_stream_decoder(provider: Provider, request: ChatRequest) -> (
        stream.AnthropicStreamDecoder | None):
    return stream.AnthropicStreamDecoder(provider)


@hookimpl_for(protocol=PROTOCOL)
def aipk_map_error(provider: Provider, status: int, headers: Mapping[str, str], data: Any,
                   request_id: str | None) -> ProviderError | None:
    return wire.map_error(provider, status, headers, data, request_id, time.time())


@hookimpl_for(protocol=PROTOCOL)
def aipk_count_tokens_request(provider: Provider,
                              request: ChatRequest) -> TokenCountCall | None:
    return tokens.count_tokens_call(provider, request)


@hookimpl_for(protocol=PROTOCOL)
def aipk_models_request(provider: Provider) -> HttpRequest | None:
    return wire.build_models_request(provider)


@hookimpl_for(protocol=PROTOCOL)
def aipk_parse_models(provider: Provider, data: Any) -> Sequence[ModelInfo] | None:
    return wire.parse_models(provider, data)


@hookimpl_for(provider="anthropic")
def aipk_login_flow(provider: Provider) -> LoginFlow | None:
    from .oauth import login_flow  # lazily: logins are rare, imports are not

    return login_flow()
