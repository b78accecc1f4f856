"""Anthropic's answers as aipk's records: a ``message`` body as a ChatResponse, its ``usage``,
its ``stop_reason`` and the ``/v1/models`` listing, as pure functions.

The ``citations`` of text blocks (web search, documents) are collected, in order, under
``extra["citations"]`` of the response; content blocks of other kinds (``server_tool_use``,
``web_search_tool_result``, ``code_execution_tool_result`` …) are kept whole, in order, under
``extra["other_blocks"]``.
``Usage.input_tokens`` is the *whole* prompt (uncached + cache read + cache write, as OpenAI
counts it), with the cache parts also given separately. Thinking blocks (with their
signatures) are kept under ``extra["thinking_blocks"]`` of the message, so it can be sent back.
`aipk_anthropic.wire` re-exports the public functions; the stream decoder
(`aipk_anthropic.stream`) shares the usage and finish-reason helpers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from aipk import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    ModelInfo,
    Provider,
    ToolCall,
    Usage,
    json_count,
)

from .status import _stream_error

__all__ = ["finish_reason", "parse_messages_response", "parse_models", "parse_usage"]

_FINISH = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.REFUSAL,
}


def finish_reason(raw: str) -> FinishReason:
    """The normalised finish reason for Anthropic's ``stop_reason`` (``pause_turn`` → OTHER)."""
    return _FINISH.get(raw, FinishReason.OTHER)


def _usage(uncached: int | None, output: int | None, cache_read: int | None,
           cache_write: int | None, reasoning: int | None) -> Usage:
    """The whole prompt is uncached + cache reads + cache writes; None when none was sent."""
    whole = (None if uncached is None and cache_read is None and cache_write is None
             else (uncached or 0) + (cache_read or 0) + (cache_write or 0))
    return Usage(input_tokens=whole,
                 output_tokens=output, cache_read_tokens=cache_read,
                 cache_write_tokens=cache_write, reasoning_tokens=reasoning)


def _reasoning_tokens(data: Mapping[str, Any]) -> int | None:
    details = data.get("output_tokens_details")
    return json_count(details.get("thinking_tokens")) if isinstance(details, Mapping) else None


def parse_usage(data: Mapping[str, Any]) -> Usage:
    """Usage from Anthropic's ``usage`` object (``input_tokens`` becomes the whole prompt)."""
    return _usage(json_count(data.get("input_tokens")), json_count(data.get("output_tokens")),
                  json_count(data.get("cache_read_input_tokens")),
                  json_count(data.get("cache_creation_input_tokens")), _reasoning_tokens(data))


def _refusal(stop_details: Any) -> str:
    explanation = stop_details.get("explanation") if isinstance(stop_details, Mapping) else None
    return explanation if isinstance(explanation, str) else ""


def parse_messages_response(provider: Provider, request: ChatRequest, data: Any) -> (
        ChatResponse):
    """A ``message`` body as a ChatResponse; a 200 carrying an error (Anthropic's shape, or
    the ``{"error": …}`` of a proxy in between) raises StreamError."""
    if isinstance(data, Mapping) and (data.get("type") == "error" or (
            data.get("error") and "content" not in data)):
        raise _stream_error(provider, data.get("error"))
    texts: list[str] = []
    reasoning: list[str] = []
    thinking: list[dict[str, Any]] = []
    calls: list[ToolCall] = []
    citations: list[Any] = []
    others: list[Any] = []
    for block in data["content"]:
        kind = block["type"]
        if kind == "text":
            texts.append(block["text"])
            cited = block.get("citations")
            if cited and isinstance(cited, list):
                citations.extend(cited)
        elif kind == "tool_use":
            name = block.get("name")
            if not name or type(name) is not str:
                raise ValueError(f"tool_use block {block.get('id')!r} has no tool name "
                                 f"(name: {name!r}); the answer asks for a tool without "
                                 f"saying which")
            calls.append(ToolCall(id=block["id"], name=name,
                                  arguments=json.dumps(block.get("input") or {},
                                                       ensure_ascii=False)))
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
            thinking.append(dict(block))
        elif kind == "redacted_thinking":
            thinking.append(dict(block))
        else:  # server tools and their results (web search, code execution …)
            others.append(block)
    raw = data.get("stop_reason")
    extra: dict[str, Any] = {}
    if thinking:
        extra["thinking_blocks"] = thinking
    for key in ("stop_sequence", "stop_details"):
        if data.get(key) is not None:
            extra[key] = data[key]
    if citations:
        extra["citations"] = citations
    if others:
        extra["other_blocks"] = others
    text = "".join(texts)
    usage = data.get("usage")
    return ChatResponse(
        provider=provider.name,
        model=data.get("model") or request.model,
        message=Message(role="assistant", content=text if text or not calls else None,
                        tool_calls=calls,
                        extra={"thinking_blocks": thinking} if thinking else {}),
        finish_reason=finish_reason(raw) if raw else None,
        raw_finish_reason=raw,
        usage=parse_usage(usage) if isinstance(usage, Mapping) else None,
        id=data.get("id"),
        refusal=_refusal(data.get("stop_details")) if raw == "refusal" else None,
        reasoning="".join(reasoning) if reasoning else None,
        extra=extra,
    )


def _created(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def parse_models(provider: Provider, data: Any) -> list[ModelInfo]:
    """``{"data": [{"id", "display_name", "created_at", …}]}`` as ModelInfo, enriched from the
    static list (and from ``max_input_tokens``/``max_tokens`` when the listing has them)."""
    known = {info.id: info for info in provider.spec.models}
    out = []
    for item in data.get("data") or ():
        static = known.get(item["id"])
        capabilities = static.capabilities if static else None
        context = json_count(item.get("max_input_tokens"))
        output = json_count(item.get("max_tokens"))
        if context or output:
            base = capabilities or provider.spec.capabilities
            capabilities = attrs.evolve(
                base, context_window=context or base.context_window,
                max_output_tokens=output or base.max_output_tokens)
        out.append(ModelInfo(
            id=item["id"], provider=provider.name,
            display_name=item.get("display_name") or (static.display_name if static else None),
            capabilities=capabilities,
            input_price=static.input_price if static else None,
            output_price=static.output_price if static else None,
            created=_created(item.get("created_at")),
        ))
    return out
