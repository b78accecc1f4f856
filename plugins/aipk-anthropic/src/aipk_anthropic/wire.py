"""The Anthropic Messages API wire format, as pure functions.

Requests: ``POST {base}/v1/messages`` with ``anthropic-version: 2023-06-01``, built here along
with the credential headers and the models request. Responses are mapped to aipk's records by
`aipk_anthropic.responses` (``Usage.input_tokens`` is the *whole* prompt: uncached + cache read
+ cache write, as OpenAI counts it, with the cache parts also given separately), streams by
`aipk_anthropic.stream`, errors and rate-limit headers by `aipk_anthropic.status`; this module
re-exports their functions, so ``wire`` still names the whole format.

Thinking blocks (with their signatures) are kept under ``extra["thinking_blocks"]`` so they
can be sent back: an assistant [`Message`][aipk.Message] whose ``extra`` has them sends them first.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

import aipk
from aipk import (
    ChatRequest,
    Credential,
    HttpRequest,
    Message,
    Provider,
    ToolCall,
)
from aipk.errors import InvalidRequestError

from .responses import finish_reason, parse_messages_response, parse_models, parse_usage
from .status import map_error, parse_rate_limits

__all__ = [
    "ANTHROPIC_VERSION",
    "CLAUDE_CODE_SYSTEM_PROMPT",
    "DEFAULT_MAX_TOKENS",
    "OAUTH_BETA",
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


def __getattr__(name: str) -> Any:
    """The stream decoder lives in `aipk_anthropic.stream`; ``wire.AnthropicStreamDecoder``
    still finds it."""
    if name == "AnthropicStreamDecoder":
        from .stream import AnthropicStreamDecoder

        return AnthropicStreamDecoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
