"""The OpenAI chat-completions API from the server's side: read its requests, write its answers.

Sans-IO pieces for an OpenAI-compatible server in front of any aipk client or router (the
inverse of `aipk_openai.wire`, which speaks the API as a client):

* `read_chat_request()`: a ``POST /v1/chat/completions`` body as an
  [`InboundChat`][aipk_openai.serving.InboundChat] (an [`aipk.ChatRequest`][aipk.ChatRequest],
  whether to stream, and the fields aipk does not model), or an
  [`InvalidRequestError`][aipk.errors.InvalidRequestError] naming the field;
* `chat_completion()`: a [`ChatResponse`][aipk.ChatResponse] as a ``chat.completion`` object;
* [`ChunkWriter`][aipk_openai.serving.ChunkWriter]: stream events as ``chat.completion.chunk``
  server-sent events, ending with ``data: [DONE]``;
* `error_response()`: any aipk error as an HTTP status, headers and OpenAI's error object;
* `model_list()`: [`ModelInfo`][aipk.ModelInfo] records as a ``GET /v1/models`` body.

Nothing here does I/O: feed it bytes or records, send what it returns.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from aipk import (
    ChatRequest,
    ChatResponse,
    FinishEvent,
    FinishReason,
    Message,
    ModelInfo,
    ReasoningDelta,
    RefusalDelta,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
)
from aipk.errors import (
    AipkError,
    AllTargetsFailedError,
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    ProviderError,
    RateLimitError,
    RequestTimeout,
)

__all__ = ["MODELLED", "ChunkWriter", "InboundChat", "chat_completion", "error_response",
           "finish_word", "model_list", "read_chat_request", "usage_object"]

#: Request fields `read_chat_request()` turns into `ChatRequest` fields (or the stream flag).
MODELLED = frozenset({"model", "messages", "temperature", "top_p", "max_tokens",
                      "max_completion_tokens", "stop", "tools", "tool_choice",
                      "parallel_tool_calls", "response_format", "stream", "stream_options"})


@attrs.frozen(kw_only=True)
class InboundChat:
    """A chat-completions request as a server receives it.

    Attributes:
        request: The request, provider-neutral.
        stream: True when the client asked for server-sent events (``"stream": true``).
        include_usage: True when the client asked for a final usage chunk
            (``"stream_options": {"include_usage": true}``).
        other: The body's fields aipk does not model (``n``, ``seed``, ``user``,
            ``logprobs`` …), as sent; pass them on as ``extra_body=`` to an OpenAI-compatible
            provider, or drop them for others.
    """

    request: ChatRequest
    stream: bool = False
    include_usage: bool = False
    other: Mapping[str, Any] = attrs.field(factory=dict)


def _invalid(field: str, problem: str) -> InvalidRequestError:
    return InvalidRequestError(f"{field}: {problem}", field=field)


def _body(body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise InvalidRequestError(
            f"the request body is not valid JSON ({exc}); send a JSON object with model and "
            f"messages", field="body") from None
    if not isinstance(data, dict):
        raise InvalidRequestError(
            f"the request body is a JSON {type(data).__name__}, not an object with model and "
            f"messages", field="body")
    return data


def _flag(data: Mapping[str, Any], name: str, where: str | None = None) -> bool:
    value = data.get(name, False)
    if value is None:
        return False
    if type(value) is not bool:
        raise _invalid(where or name, f"must be true or false, not {value!r}")
    return value


def _messages(value: Any) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise _invalid("messages", "must be a non-empty array of messages")
    out = []
    for index, item in enumerate(value):
        try:
            out.append(Message.coerce(item))
        except InvalidRequestError as exc:
            where = f"messages[{index}]" + (f".{exc.field}" if exc.field != "messages" else "")
            raise _invalid(where, str(exc)) from None
    return tuple(out)


def _tools(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        raise _invalid("tools", "must be an array of tools")
    for index, tool in enumerate(value):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function" or (
                not isinstance(function, Mapping)):
            raise _invalid(f"tools[{index}]",
                           'must be {"type": "function", "function": {"name": ..., '
                           '"parameters": {...}}}')
    return value


def _response_format(value: Any) -> ResponseFormat | str | None:
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise _invalid("response_format.json_schema.schema", "must be a JSON Schema object")
        name = spec.get("name") or "response"
        strict = spec.get("strict")
        return ResponseFormat(schema=dict(schema), name=str(name),
                              strict=strict if type(strict) is bool else None)
    raise _invalid("response_format",
                   f'type {kind!r} is not "text", "json_object" or "json_schema"')


def read_chat_request(body: bytes | str | Mapping[str, Any]) -> InboundChat:
    """A ``POST /v1/chat/completions`` body (bytes, text or decoded JSON) as an
    [`InboundChat`][aipk_openai.serving.InboundChat]; InvalidRequestError naming the field
    (``messages[2].content[1]``) when it is not a request aipk can send."""
    data = _body(body)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("model", "is required: the model to answer, e.g. \"gpt-4o-mini\"")
    fields: dict[str, Any] = {"model": model, "messages": _messages(data.get("messages"))}
    for name in ("temperature", "top_p", "stop", "parallel_tool_calls"):
        if data.get(name) is not None:
            fields[name] = data[name]
    limit = data.get("max_completion_tokens")
    if limit is None:
        limit = data.get("max_tokens")
    if limit is not None:
        fields["max_tokens"] = limit
    if data.get("tools"):
        fields["tools"] = _tools(data["tools"])
    if data.get("tool_choice") is not None:
        fields["tool_choice"] = data["tool_choice"]
    if data.get("response_format") is not None:
        fields["response_format"] = _response_format(data["response_format"])
    try:
        request = ChatRequest(**fields)
    except InvalidRequestError as exc:
        raise _invalid(exc.field or "body", str(exc)) from None
    stream = _flag(data, "stream")
    options = data.get("stream_options")
    if options is not None and not isinstance(options, Mapping):
        raise _invalid("stream_options", "must be an object such as {\"include_usage\": true}")
    include_usage = stream and options is not None and _flag(
        options, "include_usage", "stream_options.include_usage")
    other = {key: value for key, value in data.items() if key not in MODELLED}
    return InboundChat(request=request, stream=stream, include_usage=include_usage,
                       other=other)


# -- answers ---------------------------------------------------------------------------------

_FINISH = {FinishReason.STOP: "stop", FinishReason.LENGTH: "length",
           FinishReason.TOOL_CALLS: "tool_calls", FinishReason.CONTENT_FILTER: "content_filter",
           FinishReason.REFUSAL: "stop", FinishReason.ERROR: "error",
           FinishReason.OTHER: "stop"}


def finish_word(reason: FinishReason | None) -> str | None:
    """OpenAI's ``finish_reason`` for ``reason`` (a refusal and unknown reasons are "stop")."""
    return None if reason is None else _FINISH[reason]


def usage_object(usage: Usage) -> dict[str, Any]:
    """OpenAI's ``usage`` object; counts the provider did not report are left out (a usage
    with no counts at all is left out of answers and streams)."""
    out: dict[str, Any] = {}
    if usage.input_tokens is not None:
        out["prompt_tokens"] = usage.input_tokens
    if usage.output_tokens is not None:
        out["completion_tokens"] = usage.output_tokens
    if usage.total_tokens is not None:
        out["total_tokens"] = usage.total_tokens
    if usage.cache_read_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def _message_object(message: Message, refusal: str | None,
                    reasoning: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": message.content, "refusal": refusal}
    if message.tool_calls:
        out["tool_calls"] = [{"id": call.id, "type": "function",
                              "function": {"name": call.name, "arguments": call.arguments}}
                             for call in message.tool_calls]
    if reasoning:
        out["reasoning_content"] = reasoning
    return out


def chat_completion(response: ChatResponse, *, id: str | None = None,
                    created: int | None = None) -> dict[str, Any]:
    """``response`` as a ``chat.completion`` object; ``id`` defaults to the provider's id
    (else ``chatcmpl-<ms>``), ``created`` to now. Choices 1, 2 … (``n > 1``) follow choice 0."""
    choices = [{"index": 0, "logprobs": None,
                "message": _message_object(response.message, response.refusal,
                                           response.reasoning),
                "finish_reason": finish_word(response.finish_reason)}]
    choices.extend({"index": choice.index, "logprobs": None,
                    "message": _message_object(choice.message, None, None),
                    "finish_reason": finish_word(choice.finish_reason)}
                   for choice in response.more_choices)
    out: dict[str, Any] = {
        "id": id or response.id or f"chatcmpl-{time.time_ns() // 1_000_000}",
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": response.model,
        "choices": choices,
    }
    usage = usage_object(response.usage) if response.usage is not None else None
    if usage:
        out["usage"] = usage
    return out


class ChunkWriter:
    """Stream events as ``chat.completion.chunk`` server-sent events.

    `write()` returns the bytes for one event (``b""`` for a usage event, which is held back
    and sent by `close()` when the client asked for ``include_usage``); `close()` returns the
    end: the usage chunk and ``data: [DONE]``. The first chunk of each choice carries
    ``"role": "assistant"``. `error()` is an in-band error event for a failure after the first
    byte went out (the HTTP status cannot change then); send `close()` after it.
    """

    __slots__ = ("_head", "_include_usage", "_roles", "_usage")

    def __init__(self, *, id: str, model: str, created: int | None = None,
                 include_usage: bool = False) -> None:
        head = {"id": id, "object": "chat.completion.chunk",
                "created": int(time.time()) if created is None else created, "model": model}
        self._head = json.dumps(head, separators=(",", ":"))[:-1]  # open: choices follow
        self._include_usage = include_usage
        self._roles: set[int] = set()
        self._usage: Usage | None = None

    def _chunk(self, choice: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if choice not in self._roles:
            self._roles.add(choice)
            delta = {"role": "assistant", **delta}
        body = {"index": choice, "delta": delta, "logprobs": None, "finish_reason": finish}
        return (f"data: {self._head},\"choices\":[{json.dumps(body, separators=(',', ':'))}]}}"
                f"\n\n").encode()

    def write(self, event: StreamEvent) -> bytes:
        """The server-sent event for ``event`` (``b""`` when it is sent later or not at all)."""
        kind = type(event)
        if kind is TextDelta:
            return self._chunk(event.choice, {"content": event.text})  # type: ignore[union-attr]
        if kind is ToolCallDelta:
            call: ToolCallDelta = event  # type: ignore[assignment]
            function: dict[str, Any] = {"arguments": call.arguments}
            if call.name is not None:
                function = {"name": call.name, **function}
            fragment: dict[str, Any] = {"index": call.index}
            if call.id is not None:
                fragment.update(id=call.id, type="function")
            fragment["function"] = function
            return self._chunk(call.choice, {"tool_calls": [fragment]})
        if kind is ReasoningDelta:
            return self._chunk(event.choice,  # type: ignore[union-attr]
                               {"reasoning_content": event.text})  # type: ignore[union-attr]
        if kind is RefusalDelta:
            return self._chunk(event.choice, {"refusal": event.text})  # type: ignore[union-attr]
        if kind is FinishEvent:
            finish: FinishEvent = event  # type: ignore[assignment]
            return self._chunk(finish.choice, {}, finish_word(finish.reason))
        if kind is UsageEvent:
            self._usage = event.usage  # type: ignore[union-attr]
            return b""
        raise TypeError(f"not a stream event: {type(event).__name__}")

    def close(self) -> bytes:
        """The usage chunk (when asked for and reported) and ``data: [DONE]``."""
        end = b"data: [DONE]\n\n"
        counts = usage_object(self._usage) if self._usage is not None else None
        if not (self._include_usage and counts):
            return end
        usage = json.dumps(counts, separators=(",", ":"))
        return f"data: {self._head},\"choices\":[],\"usage\":{usage}}}\n\n".encode() + end

    def error(self, error: BaseException) -> bytes:
        """An in-band ``{"error": {...}}`` event for ``error``."""
        _, _, body = error_response(error)
        return f"data: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


# -- errors ----------------------------------------------------------------------------------


def _retry_after(error: BaseException) -> float | None:
    wait = getattr(error, "retry_after", None)
    return wait if isinstance(wait, (int, float)) and math.isfinite(wait) and wait >= 0 else None


def _classify(error: BaseException) -> tuple[int, str, str | None]:
    """(HTTP status, OpenAI error type, code) for ``error``."""
    if isinstance(error, InvalidRequestError):
        return 400, "invalid_request_error", None
    if isinstance(error, ContextWindowExceededError):
        return 400, "invalid_request_error", "context_length_exceeded"
    if isinstance(error, ContentFilteredError):
        return 400, "invalid_request_error", "content_filter"
    if isinstance(error, NotFoundError):
        return 404, "invalid_request_error", "model_not_found"
    if isinstance(error, BadRequestError):
        return 400, "invalid_request_error", None
    if isinstance(error, RateLimitError):
        return 429, "rate_limit_error", "rate_limit_exceeded"
    if isinstance(error, (OverloadedError, AllTargetsFailedError)):
        return 503, "server_error", "upstream_unavailable"
    if isinstance(error, AuthenticationError):
        # the upstream rejected this server's credential: not the caller's key, so not a 401
        if _retry_after(error) is not None:  # every key cooling down (KeysExhaustedError)
            return 503, "server_error", "upstream_unavailable"
        return 502, "server_error", "upstream_auth"
    if isinstance(error, RequestTimeout):
        return 504, "server_error", "upstream_timeout"
    if isinstance(error, ProviderError):
        return 502, "server_error", "upstream_error"
    return 500, "server_error", None


def error_response(error: BaseException) -> tuple[int, dict[str, str], dict[str, Any]]:
    """``(status, headers, body)`` answering a request that failed with ``error``.

    The caller's own mistakes keep their meaning and their message (400 with ``param`` naming
    the field, 404 for an unknown model, 429 with ``retry-after``). Failures of the provider
    behind the server are 5xx (502, 503 when it is unavailable for a while, 504 on a timeout),
    because the caller's key is not the one the provider refused; their message names the
    provider and the error's class only, since the full message speaks of the server's own
    setup (base URLs, key ids): log it on the server. Anything that is not an aipk error is a
    500 whose message names only its type.
    """
    status, kind, code = _classify(error)
    wait = _retry_after(error)
    if not isinstance(error, AipkError):
        message = f"internal error ({type(error).__name__})"
    elif status >= 500:  # the details (upstream URLs, keys' ids) are the server's, not the caller's
        provider = getattr(error, "provider", None)
        who = ("every provider" if isinstance(error, AllTargetsFailedError) or not provider
               else f"the {provider} provider")
        message = (f"{who} behind this server failed ({type(error).__name__})"
                   + (f"; retry in {wait:g} s" if wait else ""))
    else:
        message = error.message if isinstance(error, ProviderError) else str(error)
    param = getattr(error, "field", None) if isinstance(error, InvalidRequestError) else None
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    headers: dict[str, str] = {}
    if wait is not None and status in (429, 503):
        headers["retry-after"] = str(max(1, math.ceil(wait)))
    return status, headers, body


# -- models ----------------------------------------------------------------------------------


def model_list(models: Iterable[ModelInfo]) -> dict[str, Any]:
    """``GET /v1/models``: ``{"object": "list", "data": [{"id", "object": "model", "created",
    "owned_by"}]}``, ``owned_by`` being each model's provider."""
    return {"object": "list", "data": [
        {"id": info.id, "object": "model", "created": 0, "owned_by": info.provider}
        for info in models]}
