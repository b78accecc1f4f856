"""The aipk hooks for OpenRouter.

OpenRouter is an OpenAI-compatible gateway: its spec says ``protocol="openai"`` and aipk-openai
does the wire work. The ``tryfirst`` hooks here, marked ``hookimpl_for(provider="openrouter")``
(never called for other providers), handle where OpenRouter differs: attribution headers and
model routing in requests (`aipk_openrouter.wire`, `aipk_openrouter.routing`), cost
and upstream provider in responses, upstream error details, epoch-millisecond rate-limit resets
(`aipk_openrouter.limits`) and prices from the model listing
(`aipk_openrouter.models`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

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
from aipk_openai.logprobs import LogprobsStreamDecoder, wants_logprobs

from . import limits, models, wire
from .routing import RouterOptions

if TYPE_CHECKING:
    from aipk.credentials import LoginFlow

__all__ = ["NAME", "OPENROUTER"]

NAME = "openrouter"


def _model(model_id: str, context: int, *, vision: bool = False,
           reasoning: bool = False) -> ModelInfo:
    return ModelInfo(id=model_id, provider=NAME, capabilities=Capabilities(
        vision=vision, json_mode=True, reasoning=reasoning, context_window=context))


#: A few well-known models; ``client.models()`` lists every model live, with prices.
OPENROUTER = ProviderSpec(
    name=NAME,
    protocol="openai",
    display_name="OpenRouter",
    default_base_url="https://openrouter.ai/api/v1",
    base_url_env="OPENROUTER_BASE_URL",
    env_vars=("OPENROUTER_API_KEY",),
    option_env={"referer": "OPENROUTER_REFERER", "title": "OPENROUTER_TITLE"},
    capabilities=Capabilities(streaming=True, tools=True, vision=True, json_mode=True,
                              reasoning=True),
    default_model="openrouter/auto",
    models=(
        ModelInfo(id="openrouter/auto", provider=NAME, display_name="Auto Router"),
        _model("openai/gpt-4o-mini", 128_000, vision=True),
        _model("google/gemini-2.5-flash", 1_048_576, vision=True, reasoning=True),
        _model("qwen/qwen3-coder", 262_144),
        _model("meta-llama/llama-3.3-70b-instruct", 131_072),
    ),
)


@hookimpl
def aipk_providers() -> Sequence[ProviderSpec]:
    return (OPENROUTER,)


#: The provider options a config file may set (``[providers.openrouter.options]``), beyond
#: aipk-openai's; ``router`` is a table (`RouterOptions`), in code a `ModelRouter`.
CONFIG_OPTIONS: Mapping[str, Any] = {"referer": str, "title": str, "router": RouterOptions}


@hookimpl
def aipk_config_options(provider: ProviderSpec) -> Mapping[str, Any] | None:
    return CONFIG_OPTIONS if provider.name == NAME else None


@hookimpl_for(provider=NAME, tryfirst=True)
def aipk_build_request(provider: Provider, request: ChatRequest, stream: bool) -> (
        HttpRequest | None):
    return wire.build_chat_request(provider, request, stream)


@hookimpl_for(provider=NAME, tryfirst=True)
def aipk_parse_rate_limits(provider: Provider, status: int, headers: Mapping[str, str],
                           now: float) -> RateLimitState | None:
    return limits.parse_rate_limits(status, headers, now)


@hookimpl_for(provider=NAME, tryfirst=True)
def aipk_parse_response(provider: Provider, request: ChatRequest, data: Any,
                        headers: Mapping[str, str]) -> ChatResponse | None:
    return wire.parse_chat_response(provider, request, data)


@hookimpl_for(provider=NAME, tryfirst=True)
def aipk_stream_decoder(provider: Provider, request: ChatRequest) -> (
        wire.OpenRouterStreamDecoder | None):
    if request.extra and wants_logprobs(request):
        return _OpenRouterLogprobsDecoder(provider)
    return wire.OpenRouterStreamDecoder(provider)


class _OpenRouterLogprobsDecoder(LogprobsStreamDecoder, wire.OpenRouterStreamDecoder):
    """The OpenRouter decoder, joining the ``logprobs`` a stream asked for."""

    __slots__ = ()


@hookimpl_for(provider=NAME, tryfirst=True)
def aipk_map_error(provider: Provider, status: int, headers: Mapping[str, str], data: Any,
                   request_id: str | None) -> ProviderError | None:
    return wire.map_error(provider, status, headers, data, request_id, time.time())


@hookimpl_for(provider=NAME, tryfirst=True)
def aipk_parse_models(provider: Provider, data: Any) -> Sequence[ModelInfo] | None:
    return models.parse_models(provider, data)


@hookimpl_for(provider=NAME)
def aipk_login_flow(provider: Provider) -> LoginFlow | None:
    from .oauth import login_flow  # lazily: logins are rare, imports are not

    return login_flow()
