"""The aipk hooks for Google Gemini (``protocol="gemini"``).

Authentication is decided in `aipk_apply_credential()`, from the credential actually used:

* an API key goes only in the ``x-goog-api-key`` header (never in the URL, so it cannot leak
  into logs, proxies or error messages);
* an OAuth token goes in ``authorization: Bearer``; with the provider option ``project_id``
  (``GEMINI_PROJECT_ID``) set as well, the request is rewritten for the Code Assist endpoint
  (``cloudcode-pa.googleapis.com/v1internal:generateContent``, body wrapped as
  ``{"model", "project", "request"}``). That switch lives here and not in the request builder
  because only this hook knows the credential; `endpoint_for()` reports the choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

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
from .limits import DEFAULT_REQUESTS_PER_MINUTE

if TYPE_CHECKING:
    from aipk.credentials import LoginFlow

__all__ = ["GEMINI", "PROTOCOL", "Endpoint", "endpoint_for"]

PROTOCOL = "gemini"


def _model(model_id: str, name: str, context: int, output: int, prices: tuple[float, float],
           *, reasoning: bool = True) -> ModelInfo:
    return ModelInfo(
        id=model_id, provider="gemini", display_name=name,
        capabilities=Capabilities(vision=True, json_mode=True, reasoning=reasoning,
                                  context_window=context, max_output_tokens=output),
        input_price=prices[0], output_price=prices[1],
    )


GEMINI = ProviderSpec(
    name="gemini",
    protocol=PROTOCOL,
    display_name="Google Gemini",
    default_base_url="https://generativelanguage.googleapis.com/v1beta",
    base_url_env="GEMINI_BASE_URL",
    auth_kinds=("api_key", "oauth"),
    env_vars=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    option_env={"project_id": "GEMINI_PROJECT_ID"},
    capabilities=Capabilities(streaming=True, tools=True, vision=True, json_mode=True,
                              reasoning=True),
    default_model="gemini-2.5-flash",
    options={"requests_per_minute": DEFAULT_REQUESTS_PER_MINUTE,
             "cloudcode_base_url": wire.CLOUDCODE_BASE_URL},
    models=(
        _model("gemini-3-pro-preview", "Gemini 3 Pro Preview", 1_048_576, 65_536, (2.0, 12.0)),
        _model("gemini-2.5-pro", "Gemini 2.5 Pro", 1_048_576, 65_536, (1.25, 10.0)),
        _model("gemini-2.5-flash", "Gemini 2.5 Flash", 1_048_576, 65_536, (0.3, 2.5)),
        _model("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", 1_048_576, 65_536, (0.1, 0.4)),
        _model("gemini-2.0-flash", "Gemini 2.0 Flash", 1_048_576, 8_192, (0.1, 0.4),
               reasoning=False),
        _model("gemini-2.0-flash-lite", "Gemini 2.0 Flash-Lite", 1_048_576, 8_192,
               (0.075, 0.3), reasoning=False),
    ),
)


@attrs.frozen(kw_only=True)
class Endpoint:
    """Which Gemini endpoint a credential reaches, and how it authenticates (for summaries)."""

    kind: Literal["standard", "cloudcode"]
    base_url: str
    auth: Literal["x-goog-api-key", "bearer", "none"]
    project: str | None = None


def endpoint_for(provider: Provider, credential: Credential) -> Endpoint:
    """The endpoint requests with ``credential`` go to: Code Assist for OAuth plus a
    ``project_id`` option, else the standard API at ``provider.base_url``."""
    if credential.kind == "none" or credential.secret is None:
        return Endpoint(kind="standard", base_url=provider.base_url, auth="none")
    if credential.kind == "api_key":
        return Endpoint(kind="standard", base_url=provider.base_url, auth="x-goog-api-key")
    project = provider.options.get("project_id")
    if project:
        base = str(provider.options.get("cloudcode_base_url") or wire.CLOUDCODE_BASE_URL)
        return Endpoint(kind="cloudcode", base_url=base, auth="bearer", project=str(project))
    return Endpoint(kind="standard", base_url=provider.base_url, auth="bearer")


@hookimpl
def aipk_providers() -> Sequence[ProviderSpec]:
    return (GEMINI,)


#: The provider options a config file may set (``[providers.gemini.options]``).
CONFIG_OPTIONS: Mapping[str, Any] = {
    "project_id": str, "cloudcode_base_url": str, "parameters_json_schema": bool,
    "structured_output": Literal["response_json_schema", "response_schema"],
    "stream_framing": Literal["sse", "json-array"], "burst": float,
}


@hookimpl
def aipk_config_options(provider: ProviderSpec) -> Mapping[str, Any] | None:
    return CONFIG_OPTIONS if provider.protocol == PROTOCOL else None


@hookimpl_for(protocol=PROTOCOL)
def aipk_build_request(provider: Provider, request: ChatRequest, stream: bool) -> (
        HttpRequest | None):
    return wire.build_chat_request(provider, request, stream)


@hookimpl_for(protocol=PROTOCOL)
def aipk_apply_credential(provider: Provider, http_request: HttpRequest,
                          credential: Credential) -> HttpRequest | None:
    endpoint = endpoint_for(provider, credential)
    if endpoint.auth == "none" or credential.secret is None:
        return http_request
    secret = credential.secret.reveal()
    if endpoint.auth == "x-goog-api-key":
        return http_request.merge_headers({"x-goog-api-key": secret})
    signed = http_request.merge_headers({"authorization": f"Bearer {secret}"})
    if endpoint.kind == "cloudcode" and endpoint.project is not None:
        return wire.to_cloudcode(signed, endpoint.project, endpoint.base_url)
    return signed


@hookimpl_for(protocol=PROTOCOL)
def aipk_parse_rate_limits(provider: Provider, status: int, headers: Mapping[str, str],
                           now: float) -> RateLimitState | None:
    return wire.parse_rate_limits(status, headers, now)


@hookimpl_for(protocol=PROTOCOL)
def aipk_parse_response(provider: Provider, request: ChatRequest, data: Any,
                        headers: Mapping[str, str]) -> ChatResponse | None:
    return wire.parse_chat_response(provider, request, data)


@hookimpl_for(protocol=PROTOCOL)
def aipk_stream_decoder(provider: Provider, request: ChatRequest) -> (
        stream.GeminiStreamDecoder | None):
    return stream.GeminiStreamDecoder(provider, stream.candidate_count(request))


@hookimpl_for(protocol=PROTOCOL)
def aipk_map_error(provider: Provider, status: int, headers: Mapping[str, str], data: Any,
                   request_id: str | None) -> ProviderError | None:
    import time

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


@hookimpl_for(provider="gemini")
def aipk_login_flow(provider: Provider) -> LoginFlow | None:
    from .oauth import login_flow  # lazily: logins are rare, imports are not

    return login_flow()
