"""Counting tokens with ``POST models/{model}:countTokens`` (sans-IO: build and parse)."""

from __future__ import annotations

from typing import Any

from aipk import ChatRequest, HttpRequest, Provider, TokenCountCall

from .wire import _model_path, build_chat_body

__all__ = ["build_count_tokens_request", "count_tokens_call", "parse_token_count"]


def build_count_tokens_request(provider: Provider, request: ChatRequest) -> HttpRequest:
    """``POST {base}/models/{model}:countTokens`` with the whole ``generateContentRequest``
    (contents, system instruction and tools), so everything the call would send is counted."""
    path = _model_path(request.model)
    return HttpRequest(method="POST", url=provider.url(f"{path}:countTokens"),
                       headers={"content-type": "application/json",
                                "accept": "application/json"},
                       json={"generateContentRequest": {
                           "model": path, **build_chat_body(provider, request)}})


def parse_token_count(data: Any) -> int:
    """``{"totalTokens": N, ...}`` -> N (KeyError/TypeError/ValueError for another shape)."""
    value = data["totalTokens"]
    if type(value) is not int or value < 0:
        raise ValueError(f"totalTokens is {value!r}, not a count")
    return value


def count_tokens_call(provider: Provider, request: ChatRequest) -> TokenCountCall:
    """The request and parser the ``aipk_count_tokens_request`` hook returns."""
    return TokenCountCall(request=build_count_tokens_request(provider, request),
                          parse=parse_token_count)
