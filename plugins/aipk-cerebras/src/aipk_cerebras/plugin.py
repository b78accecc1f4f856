"""The aipk hooks for Cerebras Inference.

Cerebras speaks OpenAI chat completions, so its spec says ``protocol="openai"`` and the
aipk-openai plugin builds requests, parses responses (the ``reasoning`` field of gpt-oss and GLM
models becomes ``ChatResponse.reasoning`` / ``ReasoningDelta``), decodes streams and maps
errors. This module only overrides what differs, with ``tryfirst`` hooks marked
``hookimpl_for(provider="cerebras")`` (never called for other providers):

* rate limits: Cerebras' own header names and daily windows (`aipk_cerebras.limits`);
* responses: Cerebras' ``time_info`` timings are kept in ``ChatResponse.extra``, of a whole
  answer and of a stream (its last chunk carries them; `CerebrasStreamDecoder`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from aipk import (
    Capabilities,
    ChatRequest,
    ChatResponse,
    ModelInfo,
    Provider,
    ProviderSpec,
    RateLimitState,
    StreamEvent,
    hookimpl,
    hookimpl_for,
)
from aipk.sse import ServerSentEvent
from aipk_openai import wire
from aipk_openai.logprobs import LogprobsStreamDecoder, wants_logprobs

from . import limits

__all__ = ["CEREBRAS", "NAME"]

NAME = "cerebras"


def _model(model_id: str, context: int, *, reasoning: bool = False) -> ModelInfo:
    return ModelInfo(
        id=model_id, provider=NAME,
        capabilities=Capabilities(vision=False, json_mode=True, reasoning=reasoning,
                                  context_window=context),
    )


#: Context windows are the paid tiers'; the free tier allows less (8k-65k). Cerebras retires
#: models often: ``client.models()`` lists what the API serves today.
CEREBRAS = ProviderSpec(
    name=NAME,
    protocol="openai",
    display_name="Cerebras",
    default_base_url="https://api.cerebras.ai/v1",
    base_url_env="CEREBRAS_BASE_URL",
    env_vars=("CEREBRAS_API_KEY",),
    capabilities=Capabilities(streaming=True, tools=True, vision=False, json_mode=True,
                              reasoning=True),
    default_model="gpt-oss-120b",
    read_timeout=120.0,
    options={"max_tokens_field": "max_completion_tokens"},
    models=(
        _model("gpt-oss-120b", 131_072, reasoning=True),
        _model("zai-glm-4.7", 131_072, reasoning=True),
        _model("zai-glm-4.6", 131_072, reasoning=True),
        _model("qwen-3-coder-480b", 131_072),
        _model("qwen-3-235b-a22b-instruct-2507", 131_072),
        _model("qwen-3-235b-a22b-thinking-2507", 131_072, reasoning=True),
        _model("qwen-3-32b", 131_072, reasoning=True),
        _model("llama-3.3-70b", 131_072),
        _model("llama3.1-8b", 32_768),
    ),
)


@hookimpl
def aipk_providers() -> Sequence[ProviderSpec]:
    return (CEREBRAS,)


@hookimpl_for(provider=NAME, tryfirst=True)
def aipk_parse_rate_limits(provider: Provider, status: int, headers: Mapping[str, str],
                           now: float) -> RateLimitState | None:
    return limits.parse_rate_limits(status, headers, now)


class CerebrasStreamDecoder(wire.OpenAIStreamDecoder):
    """The OpenAI decoder, also keeping the ``time_info`` a chunk carries (Cerebras sends it
    with the usage, on the last chunk) in ``extra``; other chunks are not looked at twice."""

    __slots__ = ()

    def feed(self, event: ServerSentEvent) -> Sequence[StreamEvent]:
        events = super().feed(event)
        data = event.data
        if '"time_info"' in data:
            chunk = json.loads(data)
            timings = chunk.get("time_info") if isinstance(chunk, Mapping) else None
            if isinstance(timings, Mapping):
                self.extra["time_info"] = dict(timings)
        return events


@hookimpl_for(provider=NAME, tryfirst=True)
def aipk_stream_decoder(provider: Provider, request: ChatRequest) -> CerebrasStreamDecoder:
    if request.extra and wants_logprobs(request):
        return _CerebrasLogprobsDecoder(provider)
    return CerebrasStreamDecoder(provider)


class _CerebrasLogprobsDecoder(LogprobsStreamDecoder, CerebrasStreamDecoder):
    """The Cerebras decoder, joining the ``logprobs`` a stream asked for."""

    __slots__ = ()


@hookimpl_for(provider=NAME, tryfirst=True)
def aipk_parse_response(provider: Provider, request: ChatRequest, data: Any,
                        headers: Mapping[str, str]) -> ChatResponse | None:
    response = wire.parse_chat_response(provider, request, data)
    timings = data.get("time_info")
    if isinstance(timings, Mapping):
        response = attrs.evolve(response, extra={**response.extra, "time_info": dict(timings)})
    return response
