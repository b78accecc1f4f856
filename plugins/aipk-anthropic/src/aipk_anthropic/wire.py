"""The Anthropic Messages API wire format, as pure functions and one stream decoder.

Requests: ``POST {base}/v1/messages`` with ``anthropic-version: 2023-06-01``. Responses and
streams are mapped to aipk's records; ``Usage.input_tokens`` is the *whole* prompt (uncached +
cache read + cache write, as OpenAI counts it), with the cache parts also given separately.

Thinking blocks (with their signatures) are kept under ``extra["thinking_blocks"]`` so they
can be sent back: an assistant [`Message`][aipk.Message] whose ``extra`` has them sends them first.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

import aipk
from aipk import (
    ChatRequest,
    ChatResponse,
    Credential,
    FinishEvent,
    FinishReason,
    HttpRequest,
    Message,
    ModelInfo,
    Provider,
    RateLimitState,
    RateLimitWindow,
    ReasoningDelta,
    RefusalDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageEvent,
)
from aipk.errors import InvalidRequestError, ProviderError, StreamError
from aipk.framing import parse_json
from aipk.sse import ServerSentEvent

__all__ = [
    "ANTHROPIC_VERSION",
    "CLAUDE_CODE_SYSTEM_PROMPT",
    "DEFAULT_MAX_TOKENS",
    "OAUTH_BETA",
    "AnthropicStreamDecoder",
    "apply_credential",
    "build_messages_body",
    "build_messages_request",
    "build_models_request",
    "encode_messages",
    "finish_reason",
    "map_error",
    "parse_messages_response",
    "parse_models",
    "parse_rate_limits",
    "parse_usage",
]

ANTHROPIC_VERSION = "2023-06-01"
#: Sent when the request leaves ``max_tokens`` unset (the API requires it); override per
#: client with the provider option ``default_max_tokens``.
DEFAULT_MAX_TOKENS = 4096
#: The beta flag Anthropic requires on every request authenticated with an OAuth token.
OAUTH_BETA = "oauth-2025-04-20"
#: The identity line Claude Code subscriptions (OAuth) expect first in the system prompt.
CLAUDE_CODE_SYSTEM_PROMPT = "You are Claude Code, Anthropic's official CLI for Claude."

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


def _flag(value: Any) -> bool:
    """A provider option as a boolean (options read from the environment are strings)."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


# -- requests --------------------------------------------------------------------------------


def _invalid(provider: Provider, message: str, field: str) -> InvalidRequestError:
    return InvalidRequestError(message, provider=provider.name, field=field)


def _image_block(provider: Provider, image: aipk.Image, where: str) -> dict[str, Any]:
    if image.data is not None:
        data = base64.b64encode(image.data).decode("ascii")
        return {"type": "image",
                "source": {"type": "base64", "media_type": image.media_type, "data": data}}
    url = image.url or ""
    if url.startswith("data:"):
        header, sep, payload = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise _invalid(provider, f"{where}: a data: image URL must look like "
                           f"'data:image/png;base64,...'", "image")
        return {"type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": payload}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _check_vision(provider: Provider, request: ChatRequest) -> None:
    if not any(m.images for m in request.messages):
        return
    for info in provider.spec.models:
        if info.id == request.model and info.capabilities and not info.capabilities.vision:
            raise _invalid(provider, f"model {request.model!r} does not accept images; remove "
                           f"them or use a vision model", "messages")


def _tool_use(provider: Provider, call: ToolCall, where: str) -> dict[str, Any]:
    arguments = call.parsed_arguments()
    if not isinstance(arguments, dict):
        raise _invalid(provider, f"{where}: tool call {call.id!r} has arguments that are not a "
                       f"JSON object; Anthropic tool inputs must be objects", "arguments")
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments}


def _thinking_blocks(provider: Provider, message: Message, where: str) -> list[dict[str, Any]]:
    blocks = message.extra.get("thinking_blocks")
    if not blocks:
        return []
    if not isinstance(blocks, Sequence) or isinstance(blocks, str) or not all(
            isinstance(b, Mapping) and b.get("type") in ("thinking", "redacted_thinking")
            for b in blocks):
        raise _invalid(provider, f"{where}: extra['thinking_blocks'] must be the list of "
                       f"thinking blocks a response returned", "messages")
    return [dict(b) for b in blocks]


class _Turn:
    """One Anthropic message being assembled from one or more aipk messages."""

    __slots__ = ("blocks", "first", "role", "tool_ids")

    def __init__(self, role: str, first: int) -> None:
        self.role = role
        self.first = first  # index in request.messages of the first message folded in
        self.blocks: list[dict[str, Any]] = []
        self.tool_ids: list[str] = []  # assistant: the tool_use ids it asks for

    def encode(self) -> dict[str, Any]:
        blocks = self.blocks
        if len(blocks) == 1 and blocks[0]["type"] == "text" and len(blocks[0]) == 2:
            return {"role": self.role, "content": blocks[0]["text"]}
        return {"role": self.role, "content": blocks}


#: Anthropic's prompt-caching marker, put on the last block of what ``cache=True`` marks.
EPHEMERAL = {"type": "ephemeral"}


def _mark_cached(blocks: list[dict[str, Any]]) -> None:
    """Put ``cache_control`` on the last block (a copy: blocks may come from ``extra``)."""
    if blocks:
        blocks[-1] = {**blocks[-1], "cache_control": dict(EPHEMERAL)}


def encode_messages(provider: Provider, messages: Sequence[Message]) -> (
        tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]):
    """The top-level ``system`` (text, or one cached text block when a system message has
    ``cache=True``) and the ``messages`` list, checked against the order rules the API
    enforces (InvalidRequestError naming the message to change). ``Message.cache`` puts
    ``cache_control`` on the message's last block."""
    system: list[str] = []
    cache_system = False
    turns: list[_Turn] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}] ({message.role})"
        role = message.role
        if role == "system":
            if message.images:
                raise _invalid(provider, f"{where}: Anthropic system prompts cannot hold "
                               f"images; move them to a user message", "messages")
            if message.content:
                system.append(message.content)
            cache_system = cache_system or message.cache
            continue
        last = turns[-1] if turns else None
        if role == "tool":
            if last is None or not (
                    last.role == "assistant" or (last.role == "user" and last.blocks
                                                 and last.blocks[-1]["type"] == "tool_result")):
                raise _invalid(provider, f"{where} answers tool call {message.tool_call_id!r}, "
                               f"but it does not follow the assistant message that made the "
                               f"call; put tool results right after it", "messages")
            if last.role == "assistant":
                if message.tool_call_id not in last.tool_ids:
                    raise _invalid(provider, f"{where}: tool_call_id {message.tool_call_id!r} "
                                   f"matches no tool call of the assistant message before it "
                                   f"(ids: {', '.join(last.tool_ids) or 'none'})", "tool_call_id")
                last = _Turn("user", i)
                turns.append(last)
            elif message.tool_call_id not in turns[-2].tool_ids:
                raise _invalid(provider, f"{where}: tool_call_id {message.tool_call_id!r} "
                               f"matches no tool call of the assistant message before it "
                               f"(ids: {', '.join(turns[-2].tool_ids) or 'none'})",
                               "tool_call_id")
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
            if message.images:
                parts: list[dict[str, Any]] = []
                if message.content:
                    parts.append({"type": "text", "text": message.content})
                parts.extend(_image_block(provider, img, where) for img in message.images)
                block["content"] = parts
            elif message.content:
                block["content"] = message.content
            if message.extra.get("is_error"):
                block["is_error"] = True
            last.blocks.append(block)
            if message.cache:
                _mark_cached(last.blocks)
            continue
        if role == "user" and last is not None and last.role == "user" and last.blocks and \
                last.blocks[-1]["type"] == "tool_result":
            turn = last  # text after tool results belongs in the same user turn
        else:
            if last is not None and last.role == role:
                raise _invalid(provider, f"messages[{last.first}] and messages[{i}] are both "
                               f"{role} turns; Anthropic needs user and assistant turns to "
                               f"alternate: merge them into one message", "messages")
            if last is None and role != "user":
                raise _invalid(provider, f"{where}: the first non-system message must be a user "
                               f"message; Anthropic conversations start with a user turn",
                               "messages")
            turn = _Turn(role, i)
            turns.append(turn)
        if role == "assistant":
            if message.images:
                raise _invalid(provider, f"{where}: assistant messages cannot hold images",
                               "messages")
            turn.blocks.extend(_thinking_blocks(provider, message, where))
            if message.content:
                turn.blocks.append({"type": "text", "text": message.content})
            for call in message.tool_calls:
                turn.blocks.append(_tool_use(provider, call, where))
                turn.tool_ids.append(call.id)
        else:
            turn.blocks.extend(_image_block(provider, img, where) for img in message.images)
            if message.content:
                turn.blocks.append({"type": "text", "text": message.content})
        if message.cache:
            _mark_cached(turn.blocks)
    _check_turns(provider, turns)
    if not system:
        return None, [t.encode() for t in turns]
    text = "\n\n".join(system)
    if cache_system:
        return ([{"type": "text", "text": text, "cache_control": dict(EPHEMERAL)}],
                [t.encode() for t in turns])
    return text, [t.encode() for t in turns]


def _check_turns(provider: Provider, turns: Sequence[_Turn]) -> None:
    if not turns:
        raise _invalid(provider, "messages= has only system messages; Anthropic needs at least "
                       "one user message", "messages")
    for n, turn in enumerate(turns):
        if not turn.blocks and not (turn.role == "assistant" and n == len(turns) - 1):
            raise _invalid(provider, f"messages[{turn.first}] ({turn.role}) is empty; Anthropic "
                           f"rejects messages without content", "messages")
        if turn.role == "assistant" and turn.tool_ids and n + 1 < len(turns):
            answered = {b.get("tool_use_id") for b in turns[n + 1].blocks
                        if b["type"] == "tool_result"}
            missing = [t for t in turn.tool_ids if t not in answered]
            if missing:
                raise _invalid(provider, f"messages[{turn.first}] calls tools "
                               f"{', '.join(missing)} but no tool message answers them next; "
                               f"add Message.tool(id, result) for each", "messages")


def _tool(provider: Provider, tool: aipk.Tool) -> dict[str, Any]:
    schema = tool.parameters
    if schema.get("type") != "object":
        raise _invalid(provider, f"tool {tool.name!r}: Anthropic needs parameters to be a JSON "
                       f"Schema with \"type\": \"object\" at the top level", "tools")
    out: dict[str, Any] = {"name": tool.name}
    if tool.description:
        out["description"] = tool.description
    out["input_schema"] = dict(schema)
    if tool.strict is not None:
        out["strict"] = tool.strict
    if tool.cache:
        out["cache_control"] = dict(EPHEMERAL)
    return out


def _tool_choice(provider: Provider, request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    serial = request.parallel_tool_calls is False
    if not request.tools:
        if choice is not None and choice.mode == "required":
            raise _invalid(provider, "tool_choice='required' needs tools=", "tool_choice")
        return None
    if choice is None:
        return {"type": "auto", "disable_parallel_tool_use": True} if serial else None
    if choice.mode == "none":
        return {"type": "none"}
    if choice.mode == "function":
        out: dict[str, Any] = {"type": "tool", "name": choice.name}
    else:
        out = {"type": "any" if choice.mode == "required" else "auto"}
    if serial:
        out["disable_parallel_tool_use"] = True
    return out


#: Keywords Anthropic's structured output does not enforce: moved into the description.
_UNSUPPORTED = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
                "maxLength", "pattern", "minItems", "maxItems")
#: The tool forced when a model has no native structured output (``structured_output="tool"``).
FORCED_TOOL = "final_result"


def output_schema(schema: Any) -> Any:
    """``schema`` as Anthropic's ``output_config`` takes it: ``oneOf`` becomes ``anyOf``, every
    object gets ``additionalProperties: false``, unsupported constraints go into the
    description (aipk still checks them on the answer)."""
    if isinstance(schema, list):
        return [output_schema(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    notes = []
    for key, value in schema.items():
        if key in _UNSUPPORTED:
            notes.append(f"{key}: {value}")
        elif key == "oneOf":
            out["anyOf"] = output_schema(value)
        elif key in ("properties", "$defs", "definitions") and isinstance(value, Mapping):
            out[key] = {name: output_schema(sub) for name, sub in value.items()}
        else:
            out[key] = output_schema(value)
    if out.get("type") == "object" and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if notes:
        described = str(out.get("description", ""))
        out["description"] = (described + " " if described else "") + f"({', '.join(notes)})"
    return out


def add_response_format(provider: Provider, fmt: aipk.ResponseFormat,
                        body: dict[str, Any]) -> None:
    """Ask for JSON in ``body``: ``output_config.format`` json_schema (the default), or a
    forced ``final_result`` tool (option ``structured_output="tool"``, for models without
    structured output); plain JSON mode is a system instruction."""
    if fmt.schema is None:
        _add_system(body, "Answer with one JSON object only: no prose, no code fences.")
        return
    if provider.options.get("structured_output", "output_config") == "tool":
        tool = {"name": FORCED_TOOL, "description": "Give the final answer.",
                "input_schema": dict(fmt.schema)}
        body["tools"] = [*body.get("tools", ()), tool]
        body["tool_choice"] = {"type": "tool", "name": FORCED_TOOL}
        return
    body["output_config"] = {**body.get("output_config", {}), "format": {
        "type": "json_schema", "schema": output_schema(fmt.schema)}}


def _add_system(body: dict[str, Any], text: str) -> None:
    system = body.get("system")
    if system is None:
        body["system"] = text
    elif isinstance(system, str):
        body["system"] = f"{system}\n\n{text}"
    else:
        body["system"] = [*system, {"type": "text", "text": text}]


def _default_max_tokens(provider: Provider) -> int:
    value = provider.options.get("default_max_tokens")
    if value is None:
        return DEFAULT_MAX_TOKENS
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number <= 0:
        raise _invalid(provider, f"option default_max_tokens={value!r} must be a positive "
                       f"integer", "default_max_tokens")
    return number


def build_messages_body(provider: Provider, request: ChatRequest, stream: bool) -> (
        dict[str, Any]):
    """The JSON body for ``POST /v1/messages``; unset optional fields are left out."""
    _check_vision(provider, request)
    system, messages = encode_messages(provider, request.messages)
    max_tokens = request.max_tokens
    if max_tokens is None:
        max_tokens = _default_max_tokens(provider)
    body: dict[str, Any] = {"model": request.model, "max_tokens": max_tokens}
    if system is not None:
        body["system"] = system
    body["messages"] = messages
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop is not None:
        body["stop_sequences"] = list(request.stop)
    if request.tools:
        body["tools"] = [_tool(provider, tool) for tool in request.tools]
    choice = _tool_choice(provider, request)
    if choice is not None:
        body["tool_choice"] = choice
    if request.response_format is not None:
        add_response_format(provider, request.response_format, body)
    if stream:
        body["stream"] = True
    if request.extra:
        body.update(request.extra)
    return body


def _headers(provider: Provider, accept: str) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": accept,
               "anthropic-version": ANTHROPIC_VERSION}
    beta = provider.options.get("beta")
    if beta:
        headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
    return headers


def build_messages_request(provider: Provider, request: ChatRequest, stream: bool) -> (
        HttpRequest):
    """``POST {base_url}/v1/messages``."""
    return HttpRequest(
        method="POST",
        url=provider.url("v1/messages"),
        headers=_headers(provider, "text/event-stream" if stream else "application/json"),
        json=build_messages_body(provider, request, stream),
    )


def build_models_request(provider: Provider) -> HttpRequest:
    """``GET {base_url}/v1/models?limit=1000`` (one page holds every model)."""
    return HttpRequest(method="GET", url=provider.url("v1/models?limit=1000"),
                       headers=_headers(provider, "application/json"))


# -- credentials -----------------------------------------------------------------------------


def _with_claude_code_prompt(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` whose system prompt starts with the Claude Code line, exactly once."""
    identity = {"type": "text", "text": CLAUDE_CODE_SYSTEM_PROMPT}
    system = body.get("system")
    out = dict(body)
    if system is None or system == "":
        out["system"] = [identity]
    elif isinstance(system, str):
        if not system.lstrip().startswith(CLAUDE_CODE_SYSTEM_PROMPT):
            out["system"] = [identity, {"type": "text", "text": system}]
    elif isinstance(system, Sequence) and not any(
            isinstance(b, Mapping) and isinstance(b.get("text"), str)
            and b["text"].lstrip().startswith(CLAUDE_CODE_SYSTEM_PROMPT) for b in system):
        out["system"] = [identity, *system]
    return out


def apply_credential(provider: Provider, http_request: HttpRequest,
                     credential: Credential) -> HttpRequest:
    """Authenticate as the credential actually used demands.

    * ``api_key``: ``x-api-key``; nothing else changes (never the Claude Code prompt).
    * ``oauth``: ``authorization: Bearer`` plus the ``oauth-2025-04-20`` beta flag; with the
      provider option ``claude_code=True`` the Claude Code identity line is put first in the
      system prompt (once). That edit is made here, on the JSON body, and not in
      ``build_request``, because only this hook knows which credential a request goes out with
      (build_request is credential-free, and the credential can change between attempts).
    * ``none``: unchanged.
    """
    if credential.kind == "none" or credential.secret is None:
        return http_request
    secret = credential.secret.reveal()
    if credential.kind != "oauth":
        return http_request.merge_headers({"x-api-key": secret})
    betas = [b.strip() for b in http_request.headers.get("anthropic-beta", "").split(",")
             if b.strip()]
    if OAUTH_BETA not in betas:
        betas.append(OAUTH_BETA)
    signed = http_request.merge_headers({"authorization": f"Bearer {secret}",
                                         "anthropic-beta": ",".join(betas)})
    if _flag(provider.options.get("claude_code")) and isinstance(signed.json, Mapping) \
            and "messages" in signed.json:
        signed = attrs.evolve(signed, json=_with_claude_code_prompt(signed.json))
    return signed


# -- responses -------------------------------------------------------------------------------


def _count(value: Any) -> int | None:
    """A token count: a non-negative whole number, else None (never a string or a bool)."""
    if type(value) is int:
        return value if value >= 0 else None
    if type(value) is float and value.is_integer() and value >= 0:
        return int(value)
    return None


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
    return _count(details.get("thinking_tokens")) if isinstance(details, Mapping) else None


def parse_usage(data: Mapping[str, Any]) -> Usage:
    """Usage from Anthropic's ``usage`` object (``input_tokens`` becomes the whole prompt)."""
    return _usage(_count(data.get("input_tokens")), _count(data.get("output_tokens")),
                  _count(data.get("cache_read_input_tokens")),
                  _count(data.get("cache_creation_input_tokens")), _reasoning_tokens(data))


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
    for block in data["content"]:
        kind = block["type"]
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            calls.append(ToolCall(id=block["id"], name=block["name"],
                                  arguments=json.dumps(block.get("input") or {},
                                                       ensure_ascii=False)))
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
            thinking.append(dict(block))
        elif kind == "redacted_thinking":
            thinking.append(dict(block))
    raw = data.get("stop_reason")
    extra: dict[str, Any] = {}
    if thinking:
        extra["thinking_blocks"] = thinking
    for key in ("stop_sequence", "stop_details"):
        if data.get(key) is not None:
            extra[key] = data[key]
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
        context, output = _count(item.get("max_input_tokens")), _count(item.get("max_tokens"))
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


# -- errors and rate limits ------------------------------------------------------------------

#: In-band error types worth retrying (Anthropic's own advice: overloaded, internal, rate).
_RETRYABLE_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error",
                              "timeout_error"})


def _stream_error(provider: Provider, error: Any) -> StreamError:
    if isinstance(error, Mapping):
        message = error.get("message")
        code = error.get("type")
    else:
        message, code = error, None
    code = None if code is None else str(code)
    return StreamError(str(message or "the provider reported an error mid-stream"),
                       provider=provider.name, code=code, retryable=code in _RETRYABLE_TYPES,
                       body=error)


def map_error(provider: Provider, status: int, headers: Mapping[str, str], data: Any,
              request_id: str | None, now: float) -> ProviderError:
    """``{"type": "error", "error": {"type", "message"}, "request_id"}`` as a typed error."""
    message: str | None = None
    code: str | None = None
    if isinstance(data, Mapping):
        error = data.get("error")
        if isinstance(error, Mapping):
            raw_message, raw_code = error.get("message"), error.get("type")
            message = None if raw_message is None else str(raw_message)
            code = None if raw_code is None else str(raw_code)
        elif isinstance(error, str):
            message = error
        body_id = data.get("request_id")
        if request_id is None and isinstance(body_id, str) and body_id:
            request_id = body_id
    elif isinstance(data, str) and data:
        message = data
    return aipk.error_for_status(provider=provider.name, status=status, headers=headers,
                                 body=data, message=message, code=code, request_id=request_id,
                                 now=now)


_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


def _window(headers: Mapping[str, str], name: str, now: float) -> RateLimitWindow | None:
    prefix = "anthropic-ratelimit-" + name
    return RateLimitWindow.from_values(
        headers.get(prefix + "-limit"),
        headers.get(prefix + "-remaining"),
        aipk.parse_reset(headers.get(prefix + "-reset"), now),
    )


def parse_rate_limits(status: int, headers: Mapping[str, str], now: float) -> (
        RateLimitState | None):
    """``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,
    reset}`` (RFC 3339 resets) and ``retry-after``."""
    requests, tokens, input_tokens, output_tokens = (
        _window(headers, name, now) for name in _LIMITS)
    retry_after = aipk.parse_retry_after(headers, now)
    if retry_after is None and requests is None and tokens is None and input_tokens is None \
            and output_tokens is None:
        return None
    return RateLimitState(
        requests=requests, tokens=tokens, input_tokens=input_tokens,
        output_tokens=output_tokens,
        not_before=now + retry_after if retry_after is not None else None,
        observed_at=now,
    )


# -- streaming -------------------------------------------------------------------------------


class AnthropicStreamDecoder:
    """Messages API events to stream events; ``message_stop`` ends the stream.

    ``tool_use`` blocks are numbered 0, 1, 2… in order (text, thinking and server-tool blocks
    in between do not count), and their ``input_json_delta`` fragments become
    [`ToolCallDelta`][aipk.ToolCallDelta] arguments. Usage is cumulative: the one UsageEvent, at
    ``message_delta``, merges it with the input counts of ``message_start`` (whose counts alone
    make the UsageEvent at ``message_stop`` when no ``message_delta`` came). ``ping`` and
    unknown events are ignored; ``error`` raises StreamError. ``message_stop`` is the
    terminator: a body that ends before it was cut short.
    """

    terminator = "message_stop"

    __slots__ = ("_blocks", "_cache_read", "_cache_write", "_handlers", "_input", "_loads",
                 "_output", "_provider", "_reasoning", "_start_inputs", "_thinking", "_tools",
                 "_usage_sent", "done", "extra", "model", "response_id")

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self._loads = parse_json  # json.loads, minus its Python layers
        self._tools: dict[Any, int] = {}  # content block index -> tool-call ordinal
        #: a tool_use block's non-empty input given at its start, until a delta replaces it
        self._start_inputs: dict[Any, str] = {}
        self._blocks: dict[Any, str] = {}  # content block index -> block type
        self._thinking: dict[Any, tuple[dict[str, Any], list[str]]] = {}
        self._input: int | None = None
        self._output: int | None = None
        self._cache_read: int | None = None
        self._cache_write: int | None = None
        self._reasoning: int | None = None
        self._usage_sent = False
        self.done = False
        self.response_id: str | None = None
        self.model: str | None = None
        self.extra: dict[str, Any] = {}
        self._handlers = {
            "content_block_delta": self._block_delta,
            "content_block_start": self._block_start,
            "content_block_stop": self._block_stop,
            "message_start": self._message_start,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "error": self._error,
        }

    def feed(self, event: ServerSentEvent) -> Sequence[StreamEvent]:
        name = event.event
        if name is not None and name not in self._handlers:
            return ()  # ping, and event types newer than this plugin
        if name == "error":
            try:
                data = self._loads(event.data)
            except ValueError:
                data = {"error": event.data}
            raise _stream_error(self._provider, data.get("error") if type(data) is dict
                                else data)
        data = self._loads(event.data)
        if type(data) is not dict:
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        handler = self._handlers.get(name or data.get("type"))  # type: ignore[arg-type]
        return () if handler is None else handler(data)

    def _message_start(self, data: dict[str, Any]) -> Sequence[StreamEvent]:
        message = data["message"]
        self.response_id = message.get("id")
        self.model = message.get("model")
        usage = message.get("usage")
        if usage:
            self._take_usage(usage)
        return ()

    def _take_usage(self, usage: Mapping[str, Any]) -> None:
        """Usage fields are cumulative: each one present overwrites the last."""
        value = _count(usage.get("input_tokens"))
        if value is not None:
            self._input = value
        value = _count(usage.get("output_tokens"))
        if value is not None:
            self._output = value
        value = _count(usage.get("cache_read_input_tokens"))
        if value is not None:
            self._cache_read = value
        value = _count(usage.get("cache_creation_input_tokens"))
        if value is not None:
            self._cache_write = value
        value = _reasoning_tokens(usage)
        if value is not None:
            self._reasoning = value

    def _block_start(self, data: dict[str, Any]) -> Sequence[StreamEvent]:
        index = data["index"]
        block = data["content_block"]
        kind = block["type"]
        self._blocks[index] = kind
        if kind == "text":
            text = block.get("text")
            return (TextDelta(text=text),) if text and type(text) is str else ()
        if kind == "tool_use":
            ordinal = self._tools[index] = len(self._tools)
            call_id, name = block["id"], block["name"]
            if type(call_id) is not str or type(name) is not str:
                raise ValueError("tool_use block without a string id and name")
            given = block.get("input")
            if given:  # the API sends {} and then deltas; a whole input here stands alone
                self._start_inputs[index] = json.dumps(given, ensure_ascii=False)
            return (ToolCallDelta(index=ordinal, id=call_id, name=name),)
        if kind == "thinking":
            text = block.get("thinking") or ""
            entry = {"type": "thinking", "thinking": text, "signature": block.get("signature")
                     or ""}
            self.extra.setdefault("thinking_blocks", []).append(entry)
            self._thinking[index] = (entry, [text] if type(text) is str else [])
            return (ReasoningDelta(text=text),) if text and type(text) is str else ()
        if kind == "redacted_thinking":
            self.extra.setdefault("thinking_blocks", []).append(dict(block))
        return ()

    def _block_delta(self, data: dict[str, Any]) -> Sequence[StreamEvent]:
        delta = data["delta"]
        kind = delta["type"]
        if kind == "text_delta":
            text = delta["text"]
            if type(text) is not str:
                raise ValueError("text_delta without text")
            return (TextDelta(text=text),) if text else ()
        if kind == "input_json_delta":
            index = data["index"]
            ordinal = self._tools.get(index)
            if ordinal is None:
                if index in self._blocks:
                    return ()  # input of a server tool (web search…): run by Anthropic
                raise ValueError(f"input_json_delta for content block {index!r} before its "
                                 f"content_block_start")
            fragment = delta["partial_json"]
            if type(fragment) is not str:
                raise ValueError("input_json_delta without partial_json")
            if self._start_inputs and fragment:
                self._start_inputs.pop(index, None)  # the deltas carry the input
            return (ToolCallDelta(index=ordinal, arguments=fragment),) if fragment else ()
        if kind == "thinking_delta":
            text = delta["thinking"]
            if type(text) is not str:
                raise ValueError("thinking_delta without thinking")
            pending = self._thinking.get(data["index"])
            if pending is not None:
                pending[1].append(text)
            return (ReasoningDelta(text=text),) if text else ()
        if kind == "signature_delta":
            pending = self._thinking.get(data["index"])
            if pending is not None:
                pending[0]["signature"] = delta["signature"]
        return ()  # citations_delta and newer delta types

    def _block_stop(self, data: dict[str, Any]) -> Sequence[StreamEvent]:
        index = data["index"]
        pending = self._thinking.pop(index, None)
        if pending is not None:
            pending[0]["thinking"] = "".join(pending[1])
        if self._start_inputs:
            given = self._start_inputs.pop(index, None)
            if given is not None:
                return (ToolCallDelta(index=self._tools[index], arguments=given),)
        return ()

    def _message_delta(self, data: dict[str, Any]) -> Sequence[StreamEvent]:
        usage = data.get("usage")
        if usage:
            self._take_usage(usage)
        out: list[StreamEvent] = []
        delta = data.get("delta") or {}
        raw = delta.get("stop_reason")
        if raw is not None:
            if type(raw) is not str:
                raise ValueError(f"stop_reason {raw!r} is not a string")
            if delta.get("stop_sequence") is not None:
                self.extra["stop_sequence"] = delta["stop_sequence"]
            details = delta.get("stop_details")
            if details is not None:
                self.extra["stop_details"] = details
            if raw == "refusal":
                out.append(RefusalDelta(text=_refusal(details)))
            out.append(FinishEvent(reason=finish_reason(raw), raw=raw))
        out.append(self._usage_event())
        return out

    def _usage_event(self) -> UsageEvent:
        self._usage_sent = True
        return UsageEvent(usage=_usage(self._input, self._output, self._cache_read,
                                       self._cache_write, self._reasoning))

    def _message_stop(self, data: dict[str, Any]) -> Sequence[StreamEvent]:
        for entry, parts in self._thinking.values():
            entry["thinking"] = "".join(parts)
        self._thinking.clear()
        self.done = True
        if not self._usage_sent and (self._input is not None or self._output is not None):
            return (self._usage_event(),)  # no message_delta came: message_start's counts
        return ()

    def _error(self, data: dict[str, Any]) -> Sequence[StreamEvent]:
        raise _stream_error(self._provider, data.get("error"))

    def close(self) -> Sequence[StreamEvent]:
        return ()
