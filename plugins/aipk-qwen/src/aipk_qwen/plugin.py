"""The aipk hooks for Qwen: the OAuth portal (``qwen``) and Alibaba DashScope (``dashscope``).

Both speak OpenAI chat completions, so their specs say ``protocol="openai"`` and aipk-openai
does the wire work (``reasoning_content`` from thinking models included). This module overrides
only what differs, with hooks marked ``hookimpl_for`` these two names (never called for others):

* ``qwen`` requests go to the token's ``resource_url`` host when the provider option
  ``resource_url`` is set (and ``base_url`` was left at its default);
* ``qwen`` has no model-listing endpoint: ``client.models()`` gives the static list;
* rate-limit headers: the OpenAI family, then ``qwen-`` / ``dashscope-`` spellings.

Client-side limits: the portal's free tier allows 60 requests a minute and 2,000 a day, so the
``qwen`` spec declares ``requests_per_minute=60`` and ``requests_per_day=2000`` in its options;
the core's limiter applies them (override with ``Client("qwen", requests_per_minute=...)`` or
``limits=aipk.limits.ClientLimits(...)``).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from aipk import (
    Capabilities,
    ChatRequest,
    HttpRequest,
    ModelInfo,
    Provider,
    ProviderSpec,
    RateLimitState,
    hookimpl,
    hookimpl_for,
)
from aipk_openai import wire

from . import limits
from .oauth import base_url_for_resource

if TYPE_CHECKING:
    from aipk.credentials import LoginFlow

__all__ = ["DASHSCOPE", "QWEN", "effective_base_url"]

#: The portal free tier's limits (qwen-code's documented quota).
DEFAULT_REQUESTS_PER_MINUTE = 60
DEFAULT_REQUESTS_PER_DAY = 2000


def _model(provider: str, model_id: str, context: int, output: int, *,
           reasoning: bool = False) -> ModelInfo:
    return ModelInfo(
        id=model_id, provider=provider,
        capabilities=Capabilities(vision=False, json_mode=True, reasoning=reasoning,
                                  context_window=context, max_output_tokens=output),
    )


def _coders(provider: str) -> tuple[ModelInfo, ...]:
    return (_model(provider, "qwen3-coder-plus", 1_048_576, 65_536),
            _model(provider, "qwen3-coder-flash", 1_048_576, 65_536))


QWEN = ProviderSpec(
    name="qwen",
    protocol="openai",
    display_name="Qwen (portal.qwen.ai)",
    default_base_url="https://portal.qwen.ai/v1",
    base_url_env="QWEN_BASE_URL",
    auth_kinds=("oauth", "api_key"),
    option_env={"resource_url": "QWEN_RESOURCE_URL"},
    capabilities=Capabilities(streaming=True, tools=True, vision=False, json_mode=True),
    default_model="qwen3-coder-plus",
    options={"requests_per_minute": DEFAULT_REQUESTS_PER_MINUTE,
             "requests_per_day": DEFAULT_REQUESTS_PER_DAY,
             "structured_output": "json_object"},
    models=_coders("qwen"),
)

DASHSCOPE = ProviderSpec(
    name="dashscope",
    protocol="openai",
    display_name="Alibaba Cloud DashScope (Model Studio)",
    default_base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
    base_url_env="DASHSCOPE_BASE_URL",  # e.g. https://dashscope-intl.aliyuncs.com/compatible-mode/v1
    env_vars=("DASHSCOPE_API_KEY",),
    capabilities=Capabilities(streaming=True, tools=True, vision=False, json_mode=True,
                              reasoning=True),
    default_model="qwen-plus",
    models=(
        *_coders("dashscope"),
        _model("dashscope", "qwen3-coder-480b-a35b-instruct", 262_144, 65_536),
        _model("dashscope", "qwen3-coder-30b-a3b-instruct", 262_144, 65_536),
        _model("dashscope", "qwen3-max", 262_144, 65_536),
        _model("dashscope", "qwen-max", 32_768, 8_192),
        _model("dashscope", "qwen-plus", 131_072, 8_192, reasoning=True),
        _model("dashscope", "qwen-turbo", 1_000_000, 8_192, reasoning=True),
    ),
)

_NAMES = frozenset({QWEN.name, DASHSCOPE.name})


def effective_base_url(provider: Provider) -> str:
    """Where ``qwen`` requests go: ``https://<resource_url>/v1`` when the ``resource_url``
    option is set and ``base_url`` is the default; otherwise ``provider.base_url``."""
    resource_url = provider.options.get("resource_url")
    if (provider.name == QWEN.name and isinstance(resource_url, str) and resource_url.strip()
            and provider.base_url.rstrip("/") == QWEN.default_base_url):
        return base_url_for_resource(resource_url)
    return provider.base_url


@hookimpl
def aipk_providers() -> Sequence[ProviderSpec]:
    return (QWEN, DASHSCOPE)


#: The provider options a config file may set for ``qwen`` (``[providers.qwen.options]``),
#: beyond aipk-openai's.
CONFIG_OPTIONS: Mapping[str, Any] = {"resource_url": str}


@hookimpl
def aipk_config_options(provider: ProviderSpec) -> Mapping[str, Any] | None:
    return CONFIG_OPTIONS if provider.name == QWEN.name else None


@hookimpl_for(provider=QWEN.name, tryfirst=True)
def aipk_build_request(provider: Provider, request: ChatRequest, stream: bool) -> (
        HttpRequest | None):
    base_url = effective_base_url(provider)
    if base_url != provider.base_url:
        provider = attrs.evolve(provider, base_url=base_url)
    return wire.build_chat_request(provider, request, stream)


@hookimpl_for(provider=QWEN.name, wrapper=True)
def aipk_models_request(provider: Provider) -> Generator[None, HttpRequest | None,
                                                         HttpRequest | None]:
    yield  # the portal has no listing endpoint, whatever aipk-openai built
    return None


@hookimpl_for(provider=_NAMES, tryfirst=True)
def aipk_parse_rate_limits(provider: Provider, status: int, headers: Mapping[str, str],
                           now: float) -> RateLimitState | None:
    return limits.parse_rate_limits(status, headers, now)


@hookimpl_for(provider=QWEN.name)
def aipk_login_flow(provider: Provider) -> LoginFlow | None:
    from .oauth import login_flow  # lazily: logins are rare, imports are not

    return login_flow()
