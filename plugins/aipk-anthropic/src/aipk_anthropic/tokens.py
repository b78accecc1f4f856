"""Counting tokens with ``POST /v1/messages/count_tokens`` (sans-IO: build and parse)."""

from __future__ import annotations

from typing import Any

from aipk import ChatRequest, HttpRequest, Provider, TokenCountCall

from .wire import _headers, build_messages_body

__all__ = ["build_count_tokens_request", "count_tokens_call", "parse_token_count"]

#: The Messages body fields the count endpoint accepts (sampling settings are refused).
_COUNTED = ("model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers")


def build_count_tokens_request(provider: Provider, request: ChatRequest) -> HttpRequest:
    """``POST {base_url}/v1/messages/count_tokens`` with the request's messages, system prompt
    and tools (``cache_control`` and all), as the Messages call would send them."""
    body = build_messages_body(provider, request, False)
    return HttpRequest(method="POST", url=provider.url("v1/messages/count_tokens"),
                       headers=_headers(provider, "application/json"),
                       json={k: body[k] for k in _COUNTED if k in body})


def parse_token_count(data: Any) -> int:
    """``{"input_tokens": N}`` -> N (KeyError/TypeError/ValueError for another shape)."""
    value = data["input_tokens"]
    if type(value) is not int or value < 0:
        raise ValueError(f"input_tokens is {value!r}, not a count")
    return value


def count_tokens_call(provider: Provider, request: ChatRequest) -> TokenCountCall:
    """The request and parser the ``aipk_count_tokens_request`` hook returns."""
    return TokenCountCall(request=build_count_tokens_request(provider, request),
                          parse=parse_token_count)
