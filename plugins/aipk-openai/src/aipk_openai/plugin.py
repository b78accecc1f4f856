"""The aipk hooks for OpenAI and OpenAI-compatible providers.

Serves every provider whose spec has ``protocol="openai"``: OpenAI itself and the presets in
`aipk_openai.presets` (Groq, LM Studio, Ollama), and any endpoint reached with
``Client("openai", base_url=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from aipk import (
    Capabilities,
    ChatRequest,
    ChatResponse,
    HttpRequest,
    ModelInfo,
    Provider,
    ProviderSpec,
    hookimpl,
    hookimpl_for,
)
from aipk.errors import ProviderError

from . import wire
from .logprobs import LogprobsStreamDecoder, wants_logprobs
from .presets import PRESETS

if TYPE_CHECKING:
    from aipk.credentials import LoginFlow

PROTOCOL = "openai"


def _model(model_id: str, context: int, output: int, *, vision: bool = True,
           reasoning: bool = False, prices: tuple[float, float] | None = None) -> ModelInfo:
    return ModelInfo(
        id=model_id, provider="openai",
        capabilities=Capabilities(vision=vision, json_mode=True, reasoning=reasoning,
                                  context_window=context, max_output_tokens=output),
        input_price=prices[0] if prices else None,
        output_price=prices[1] if prices else None,
    )


OPENAI = ProviderSpec(
    name="openai",
    protocol=PROTOCOL,
    display_name="OpenAI",
    default_base_url="https://api.openai.com/v1",
    base_url_env="OPENAI_BASE_URL",
    env_vars=("OPENAI_API_KEY",),
    option_env={"organization": "OPENAI_ORG_ID", "project": "OPENAI_PROJECT_ID"},
    capabilities=Capabilities(streaming=True, tools=True, vision=True, json_mode=True),
    default_model="gpt-4o-mini",
    options={"max_tokens_field": "max_completion_tokens"},
    models=(
        _model("gpt-4o", 128_000, 16_384, prices=(2.5, 10.0)),
        _model("gpt-4o-mini", 128_000, 16_384, prices=(0.15, 0.6)),
        _model("gpt-4.1", 1_047_576, 32_768, prices=(2.0, 8.0)),
        _model("gpt-4.1-mini", 1_047_576, 32_768, prices=(0.4, 1.6)),
        _model("o3-mini", 200_000, 100_000, vision=False, reasoning=True, prices=(1.1, 4.4)),
    ),
)


@hookimpl
def aipk_providers() -> Sequence[ProviderSpec]:
    return (OPENAI, *PRESETS)


#: ``aipk_build_request(provider, request, stream)``: the wire builder itself is the hook
#: (the same arguments), so a request costs no call of a forwarding function
aipk_build_request = hookimpl_for(protocol=PROTOCOL)(wire.build_chat_request)


#: ``aipk_parse_rate_limits(provider, status, headers, now)``: the wire parser itself is the
#: hook, as for ``aipk_build_request``
aipk_parse_rate_limits = hookimpl_for(protocol=PROTOCOL)(wire.provider_rate_limits)


@hookimpl_for(protocol=PROTOCOL)
def aipk_parse_response(provider: Provider, request: ChatRequest, data: Any,
                        headers: Mapping[str, str]) -> ChatResponse | None:
    return wire.parse_chat_response(provider, request, data)


@hookimpl_for(protocol=PROTOCOL)
def aipk_stream_decoder(provider: Provider, request: ChatRequest) -> (
        wire.OpenAIStreamDecoder | None):
    if request.extra and wants_logprobs(request):
        return LogprobsStreamDecoder(provider)
    return wire.OpenAIStreamDecoder(provider)


@hookimpl_for(protocol=PROTOCOL)
def aipk_map_error(provider: Provider, status: int, headers: Mapping[str, str], data: Any,
                   request_id: str | None) -> ProviderError | None:
    import time

    return wire.map_error(provider, status, headers, data, request_id, time.time())


@hookimpl_for(protocol=PROTOCOL)
def aipk_models_request(provider: Provider) -> HttpRequest | None:
    return wire.build_models_request(provider)


@hookimpl_for(protocol=PROTOCOL)
def aipk_parse_models(provider: Provider, data: Any) -> Sequence[ModelInfo] | None:
    return wire.parse_models(provider, data)


#: The provider options a config file may set (``[providers.openai.options]``).
CONFIG_OPTIONS: Mapping[str, Any] = {
    "organization": str, "project": str, "max_tokens_field": str, "stream_usage": bool,
    "structured_output": Literal["json_schema", "json_object"],
}


@hookimpl
def aipk_config_options(provider: ProviderSpec) -> Mapping[str, Any] | None:
    return CONFIG_OPTIONS if provider.protocol == PROTOCOL else None


@hookimpl_for(provider="openai")
def aipk_login_flow(provider: Provider) -> LoginFlow | None:
    from .oauth import login_flow  # lazily: logins are rare, imports are not

    return login_flow()
