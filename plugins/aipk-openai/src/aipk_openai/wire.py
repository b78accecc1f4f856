"""The OpenAI chat-completions wire format, as pure functions and one stream decoder.

Other plugins whose providers speak OpenAI-compatible chat completions (Cerebras, OpenRouter,
Qwen, Groq …) import these instead of copying them, and adjust only what differs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aipk
from aipk import (
    ChatRequest,
    ChatResponse,
    Choice,
    FinishEvent,
    FinishReason,
    HttpRequest,
    Message,
    ModelInfo,
    Provider,
    TextDelta,
    ToolCall,
    Usage,
    UsageEvent,
    json_count,
)
from aipk.errors import (
    InvalidRequestError,
    ResponseError,
)

from .status import _flat_error, _stream_error, map_error, parse_rate_limits, provider_rate_limits

if TYPE_CHECKING:
    from .stream import OpenAIStreamDecoder

# Records built for every reply (and every streamed chunk): made through aipk.record_maker,
# a function that takes the keywords directly (a class call packs them into a dict).
_chat_response = aipk.record_maker(ChatResponse)
_usage = aipk.record_maker(Usage)
_text_delta = aipk.record_maker(TextDelta)
_finish_event = aipk.record_maker(FinishEvent)
_usage_event = aipk.record_maker(UsageEvent)
_http_request = aipk.record_maker(HttpRequest)

__all__ = [
    "OpenAIStreamDecoder",
    "build_chat_body",
    "build_chat_request",
    "build_models_request",
    "encode_message",
    "finish_reason",
    "map_error",
    "parse_chat_response",
    "parse_models",
    "parse_rate_limits",
    "parse_usage",
    "provider_rate_limits",
]

_FINISH = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
    "error": FinishReason.ERROR,
}
_OTHER = FinishReason.OTHER


def finish_reason(raw: str) -> FinishReason:
    """The normalised finish reason for OpenAI's word."""
    return _FINISH.get(raw, _OTHER)


# -- requests --------------------------------------------------------------------------------


def _image_part(image: aipk.Image) -> dict[str, Any]:
    url = image.url
    if url is None:
        assert image.data is not None
        url = f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"
    return {"type": "image_url", "image_url": {"url": url}}


def encode_message(message: Message) -> dict[str, Any]:
    """One message in OpenAI's shape."""
    out: dict[str, Any] = {"role": message.role}
    if message.images:
        parts: list[dict[str, Any]] = []
        if message.content:
            parts.append({"type": "text", "text": message.content})
        parts.extend(_image_part(image) for image in message.images)
        out["content"] = parts
    else:
        out["content"] = message.content
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def _tool_choice(choice: aipk.ToolChoice) -> Any:
    if choice.mode == "function":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def build_chat_body(provider: Provider, request: ChatRequest, stream: bool) -> dict[str, Any]:
    """The JSON body for ``POST /chat/completions``; unset fields are left out."""
    messages: list[dict[str, Any]] = []
    images = False
    for message in request.messages:  # a loop, not a comprehension: no frame of its own
        if message.images:
            images = True
            messages.append(encode_message(message))
        elif message.tool_calls or message.tool_call_id is not None or message.name is not None:
            messages.append(encode_message(message))
        else:  # `encode_message()` inline for the usual text message
            messages.append({"role": message.role, "content": message.content})
    if images:
        _check_vision(provider, request)
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.max_tokens is not None:
        body[provider.options.get("max_tokens_field", "max_tokens")] = request.max_tokens
    if request.stop is not None:
        body["stop"] = list(request.stop)
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": _function(tool)} for tool in request.tools
        ]
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice(request.tool_choice)
    if request.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.response_format is not None:
        add_response_format(provider, request.response_format, body)
    if stream:
        body["stream"] = True
        if provider.options.get("stream_usage", True):
            body["stream_options"] = {"include_usage": True}
    if request.extra:
        body.update(request.extra)
    return body


def add_response_format(provider: Provider, fmt: aipk.ResponseFormat,
                        body: dict[str, Any]) -> None:
    """Ask for JSON in ``body``: ``response_format`` ``json_schema`` (strict when the schema
    allows it) where the provider has it (option ``structured_output``, default
    ``"json_schema"``), else ``json_object`` plus a system message giving the schema."""
    if fmt.schema is None:
        body["response_format"] = {"type": "json_object"}
        return
    if provider.options.get("structured_output", "json_schema") != "json_schema":
        body["response_format"] = {"type": "json_object"}
        body["messages"] = [{"role": "system", "content": schema_instruction(fmt)},
                            *body["messages"]]
        return
    schema: Mapping[str, Any] = fmt.schema
    strict = fmt.strict
    if strict is not False:
        strict_form, strict_ok = fmt.strict_schema()
        if strict_ok:
            schema, strict = strict_form, True
        elif strict:
            raise InvalidRequestError(
                f"response_format {fmt.name!r} cannot be strict: it has a free-form object "
                f"(a dict field); pass strict=False in the ResponseFormat or use a record type",
                provider=provider.name, field="response_format")
        else:
            strict = False
    body["response_format"] = {"type": "json_schema", "json_schema": {
        "name": fmt.name, "schema": dict(schema), "strict": strict}}


def schema_instruction(fmt: aipk.ResponseFormat) -> str:
    """The system instruction that asks for JSON following ``fmt``'s schema (JSON mode)."""
    return ("Answer with one JSON object only, no prose, following this JSON Schema: "
            + json.dumps(fmt.schema, separators=(",", ":")))


def _function(tool: aipk.Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
    if tool.description:
        fn["description"] = tool.description
    if tool.strict is not None:
        fn["strict"] = tool.strict
    return fn


def _check_vision(provider: Provider, request: ChatRequest) -> None:
    for message in request.messages:  # a loop, not any(): no generator on every request
        if message.images:
            break
    else:
        return
    for info in provider.spec.models:
        if info.id == request.model and info.capabilities and not info.capabilities.vision:
            raise InvalidRequestError(
                f"model {request.model!r} does not accept images; remove them or use a vision "
                f"model", provider=provider.name, field="messages",
            )


def _headers(provider: Provider, accept: str) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": accept}
    organization = provider.options.get("organization")
    if organization:
        headers["openai-organization"] = str(organization)
    project = provider.options.get("project")
    if project:
        headers["openai-project"] = str(project)
    return headers


#: base URL -> its chat completions URL (a few per process: built once each)
_chat_urls: dict[str, str] = {}


def _chat_url(provider: Provider) -> str:
    url = _chat_urls.get(provider.base_url)
    if url is None:
        if len(_chat_urls) >= 64:  # bounded, whatever a process does
            _chat_urls.clear()
        url = _chat_urls[provider.base_url] = provider.url("chat/completions")
    return url


def build_chat_request(provider: Provider, request: ChatRequest, stream: bool) -> HttpRequest:
    """``POST {base_url}/chat/completions``."""
    # (`_chat_url()` inline: the URL built once per base URL)
    url = _chat_urls.get(provider.base_url) or _chat_url(provider)
    options = provider.options
    if options.get("organization") or options.get("project"):
        headers = _headers(provider, "text/event-stream" if stream else "application/json")
    else:  # `_headers()` inline for the usual provider
        headers = {"content-type": "application/json",
                   "accept": "text/event-stream" if stream else "application/json"}
    return _http_request(method="POST", url=url, headers=headers,
                         json=build_chat_body(provider, request, stream))


def build_models_request(provider: Provider) -> HttpRequest:
    """``GET {base_url}/models``."""
    return HttpRequest(method="GET", url=provider.url("models"),
                       headers=_headers(provider, "application/json"))


# -- responses -------------------------------------------------------------------------------


def parse_usage(data: Mapping[str, Any]) -> Usage:
    """Usage from OpenAI's ``usage`` object; counts that are missing or not whole numbers
    stay None."""
    # `json_count` inline for the usual non-negative int (the same answer, one call less each);
    # ``data.get`` each time, not a bound ``get``: making the bound method costs more
    prompt = data.get("prompt_tokens")
    if type(prompt) is not int or prompt < 0:
        prompt = json_count(prompt)
    completion = data.get("completion_tokens")
    if type(completion) is not int or completion < 0:
        completion = json_count(completion)
    total = data.get("total_tokens")
    if type(total) is not int or total < 0:
        total = json_count(total)
    if total is None:
        total = (completion if prompt is None else prompt if completion is None
                 else prompt + completion)
    # `_details` inline: each details object looked up once
    reasoning: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None
    details = data.get("completion_tokens_details")
    # a dict check, not Mapping: the data is decoded JSON, and an ABC check costs ten times more
    if isinstance(details, dict):
        reasoning = details.get("reasoning_tokens")
        if type(reasoning) is not int or reasoning < 0:
            reasoning = json_count(reasoning)
    details = data.get("prompt_tokens_details")
    if isinstance(details, dict):
        cache_read = details.get("cached_tokens")
        if type(cache_read) is not int or cache_read < 0:
            cache_read = json_count(cache_read)
        # OpenRouter reports prompt-cache writes (Anthropic, Gemini upstreams) there too
        if "cache_write_tokens" in details:  # (a lookup less than .get() when it is absent)
            cache_write = details["cache_write_tokens"]
            if cache_write is not None:
                cache_write = json_count(cache_write)
    if cache_read is None and "prompt_cache_hit_tokens" in data:  # DeepSeek's own field
        cache_read = json_count(data["prompt_cache_hit_tokens"])
    return _usage(input_tokens=prompt, output_tokens=completion, total_tokens=total,
                  reasoning_tokens=reasoning, cache_read_tokens=cache_read,
                  cache_write_tokens=cache_write)


def _call_parts(call: Mapping[str, Any]) -> tuple[Any, Any]:
    """A tool call's name and arguments: ``function`` ``{name, arguments}``, or for a custom
    tool (``type: "custom"``) ``custom`` ``{name, input}`` (free text, not JSON)."""
    fn: Any = call.get("function")
    if fn is None and isinstance(call.get("custom"), Mapping):
        return _named(call["custom"].get("name"), call), call["custom"].get("input")
    return _named(fn.get("name"), call), fn.get("arguments")


def _named(name: Any, call: Any) -> str:
    """A tool call's ``name``; ValueError (a ResponseError to the caller) when it has none,
    since a call that names no tool cannot be run."""
    if not name or type(name) is not str:
        raise ValueError(f"tool call {call.get('id')!r} has no tool name (name: {name!r}); "
                         f"the answer asks for a tool without saying which")
    return name


def _message(provider: Provider, msg: Mapping[str, Any]) -> Message:
    raw_calls = msg.get("tool_calls")
    if not raw_calls:  # the common case: text only
        legacy = msg.get("function_call")
        if isinstance(legacy, Mapping):  # the deprecated single function call
            return Message(role="assistant", content=msg.get("content"), tool_calls=(
                ToolCall(id="call_0", name=_named(legacy.get("name"), legacy),
                         arguments=legacy.get("arguments") or "{}"),))
        return Message(role="assistant", content=msg.get("content"))
    calls = []
    for i, c in enumerate(raw_calls):
        name, arguments = _call_parts(c)
        calls.append(ToolCall(id=c.get("id") or f"call_{i}", name=name,
                              arguments=arguments or "{}"))
    return Message(role="assistant", content=msg.get("content"), tool_calls=tuple(calls))


def _more_choices(provider: Provider, choices: list[Any]) -> tuple[Choice, ...]:
    """Choices 1, 2 … of an ``n > 1`` answer, each with its own finish reason."""
    out = []
    for position, choice in enumerate(choices[1:], 1):
        raw = choice.get("finish_reason")
        index = choice.get("index")
        message = _message(provider, choice.get("message") or {})
        reason = finish_reason(raw) if raw else None
        if reason is FinishReason.STOP and message.tool_calls:  # "stop" after tool calls
            reason = FinishReason.TOOL_CALLS
        out.append(Choice(index=index if type(index) is int else position, message=message,
                          finish_reason=reason, raw_finish_reason=raw))
    return tuple(out)


def parse_chat_response(provider: Provider, request: ChatRequest, data: Any) -> ChatResponse:
    """A ``chat.completion`` body as a ChatResponse (choice 0; the others, with ``n > 1``, in
    ``more_choices``)."""
    if isinstance(data, dict) and data.get("error"):
        raise _stream_error(provider, data["error"])
    if "choices" not in data and _flat_error(data):  # Cerebras's, DashScope's flat shape
        raise _stream_error(provider, data)
    choices = data["choices"]
    if not choices:
        raise ResponseError("the response has no choices", provider=provider.name)
    first = choices[0]
    if first.get("error"):  # OpenRouter: the upstream failed (finish_reason "error")
        raise _stream_error(provider, first["error"])
    msg = first.get("message") or {}
    get = msg.get
    raw = first.get("finish_reason")
    refusal = get("refusal")
    content = get("content")
    # finish_reason(raw), inline; OTHER from a module constant (an enum class attribute costs)
    reason = _FINISH.get(raw, _OTHER) if raw else None
    if refusal and not content and reason is FinishReason.STOP:
        reason = FinishReason.REFUSAL
    more = _more_choices(provider, choices) if len(choices) > 1 else ()
    usage = data.get("usage")
    extra: dict[str, Any] = {}
    if get("annotations"):
        extra = _message_extra(msg)
    if _RARE_KEYS.isdisjoint(msg):  # the usual text answer: no other key to read
        message = Message.assistant(content)
        reasoning = None
    else:
        if get("audio") or get("images"):
            extra = _message_extra(msg)
        # _message() inline for the usual text-only answer
        message = (_message(provider, msg) if get("tool_calls") or get("function_call")
                   else Message.assistant(content))
        if reason is FinishReason.STOP and message.tool_calls:  # "stop" after tool calls
            reason = FinishReason.TOOL_CALLS
        reasoning = get("reasoning_content") or get("reasoning")
    logprobs = first.get("logprobs")
    if logprobs:  # asked for with extra={"logprobs": True}: kept as sent
        extra["logprobs"] = logprobs
    return _chat_response(
        provider=provider.spec.name,  # provider.name without the property's call
        model=data.get("model") or request.model,
        message=message,
        finish_reason=reason,
        raw_finish_reason=raw,
        usage=parse_usage(usage) if usage else None,
        id=data.get("id"),
        refusal=refusal,
        reasoning=reasoning,
        extra=extra,
        more_choices=more,
    )


#: The message keys `parse_chat_response` reads beyond ``content``, ``refusal`` and
#: ``annotations`` (a message with none of them is plain text).
_RARE_KEYS = frozenset({"audio", "images", "tool_calls", "function_call", "reasoning_content",
                        "reasoning"})


#: Message fields kept whole in ``ChatResponse.extra``: url citations, audio output (its
#: ``transcript`` and base64 ``data``), generated images (OpenRouter's image models).
_KEPT = ("annotations", "audio", "images")


def _message_extra(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {key: msg[key] for key in _KEPT if msg.get(key)}


def parse_models(provider: Provider, data: Any) -> list[ModelInfo]:
    """``{"data": [{"id": …}, …]}`` as ModelInfo, enriched from the plugin's static list."""
    known = {info.id: info for info in provider.spec.models}
    out = []
    for item in data.get("data") or ():
        static = known.get(item["id"])
        out.append(ModelInfo(
            id=item["id"], provider=provider.name,
            display_name=static.display_name if static else None,
            capabilities=static.capabilities if static else None,
            created=item.get("created"),
            extra={"owned_by": item["owned_by"]} if item.get("owned_by") else {},
        ))
    return out


def __getattr__(name: str) -> Any:
    """The stream decoder lives in `aipk_openai.stream`; ``wire.OpenAIStreamDecoder`` finds it."""
    if name == "OpenAIStreamDecoder":
        from .stream import OpenAIStreamDecoder

        return OpenAIStreamDecoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
