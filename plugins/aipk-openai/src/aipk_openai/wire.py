"""The OpenAI chat-completions wire format, as pure functions and one stream decoder.

Other plugins whose providers speak OpenAI-compatible chat completions (Cerebras, OpenRouter,
Qwen, Groq …) import these instead of copying them, and adjust only what differs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

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
    RateLimitState,
    ReasoningDelta,
    RefusalDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageEvent,
    json_count,
)
from aipk.errors import (
    ContentFilteredError,
    InvalidRequestError,
    ProviderError,
    RateLimitError,
    ResponseError,
    StreamError,
)
from aipk.framing import parse_json
from aipk.sse import ServerSentEvent

from .waits import wait_in_message

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


# -- errors and rate limits ------------------------------------------------------------------

#: in-band error codes (compared in lower case) of a transient failure on the server's side:
#: worth another try while nothing was delivered (Azure's ``ServiceUnavailable`` and
#: ``InternalServerError``, OpenAI's ``server_error``, compatible servers' ``internal_error``,
#: ``overloaded`` …)
_RETRYABLE_CODES = frozenset({
    "server_error", "overloaded", "overloaded_error", "rate_limit_exceeded", "timeout",
    "service_unavailable", "serviceunavailable", "too_many_requests_error", "queue_exceeded",
    "internal_error", "internalerror", "internal_server_error", "internalservererror",
    "bad_gateway", "gateway_timeout", "engine_overloaded", "model_overloaded"})


#: moderation codes of compatible servers that the core does not know as content filters:
#: DashScope's ``data_inspection_failed`` (its native API says ``DataInspectionFailed``)
_MODERATION_CODES = frozenset({"data_inspection_failed", "datainspectionfailed"})
#: codes (in lower case) of an account whose quota or credit is spent: OpenAI's
#: ``insufficient_quota``, DashScope's ``Arrearage`` (a 400: the account is in arrears)
_SPENT_CODES = frozenset({"insufficient_quota", "arrearage"})


def _flat_error(data: Any) -> bool:
    """True for the flat error body some compatible servers send instead of ``{"error": …}``
    (Cerebras: ``{"message", "type", "param", "code"}``)."""
    return (isinstance(data, Mapping) and "error" not in data
            and isinstance(data.get("message"), str) and ("type" in data or "code" in data))


def _stream_error(provider: Provider, error: Any) -> StreamError:
    kind: Any = None
    if isinstance(error, Mapping):
        message = str(error.get("message") or "the provider reported an error mid-stream")
        kind = error.get("type")
        code = error.get("code") or kind
    else:
        message, code = str(error), None
    if isinstance(code, str) and code.isdigit():  # OpenRouter's HTTP status, as a string
        code = int(code)
    retryable = (str(code).lower() in _RETRYABLE_CODES or str(kind).lower() in _RETRYABLE_CODES
                 or (isinstance(code, int) and (code >= 500 or code == 429)))
    return StreamError(message, provider=provider.name, code=None if code is None else str(code),
                       retryable=retryable, body=error)


def map_error(provider: Provider, status: int, headers: Mapping[str, str], data: Any,
              request_id: str | None, now: float) -> ProviderError:
    """An OpenAI-shaped error body (``{"error": {"message", "type", "code"}}``, or the same
    fields at the top level as Cerebras sends them) as a typed error."""
    message: str | None = None
    code: str | None = None
    error = data.get("error") if isinstance(data, Mapping) else None
    if isinstance(error, Mapping):
        message = error.get("message")
        raw_code = error.get("code") or error.get("type")
        code = None if raw_code is None else str(raw_code)
    elif isinstance(error, str):
        message = error
    elif _flat_error(data):
        message = data["message"]
        raw_code = data.get("code") or data.get("type")
        code = None if raw_code is None else str(raw_code)
    elif isinstance(data, str) and data:
        message = data
    if status == 400 and code is not None and code.lower() in _MODERATION_CODES:
        return ContentFilteredError(
            f"{message or 'the content was flagged'} (the provider's content moderation "
            f"flagged the prompt or the answer; rephrase it, retrying as is will not help)",
            provider=provider.name, status=status, body=data, headers=headers,
            request_id=request_id, retryable=False, code=code)
    spent = code is not None and code.lower() in _SPENT_CODES
    if spent:
        message = (f"{message or 'the quota is spent'} (the account's quota or credit is spent: "
                   f"add credits or raise the limit in the provider's billing settings; "
                   f"retrying will not help)")
    mapped: ProviderError
    if spent and status != 429:  # DashScope's Arrearage is a 400: the same spent account
        mapped = RateLimitError(message or "", provider=provider.name, status=status,
                                body=data, headers=headers, request_id=request_id, code=code)
    else:
        mapped = aipk.error_for_status(provider=provider.name, status=status,
                                       headers=headers, body=data, message=message, code=code,
                                       request_id=request_id, now=now)
    if spent:  # a 429 that waiting does not cure: the router cools the key down for long
        mapped.retryable = False
    elif isinstance(mapped, RateLimitError) and mapped.retry_after is None:
        mapped.retry_after = wait_in_message(message)  # "Please try again in 4.428s."
    return mapped


def parse_rate_limits(status: int, headers: Mapping[str, str], now: float) -> (
        RateLimitState | None):
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` and retry-after."""
    return provider_rate_limits(None, status, headers, now)


def provider_rate_limits(provider: Provider | None, status: int, headers: Mapping[str, str],
                         now: float) -> RateLimitState | None:
    """`parse_rate_limits()` with the ``aipk_parse_rate_limits`` hook's arguments (the
    provider is not needed): the plugin's hook itself, so a response costs no forwarding
    call."""
    # Retry-after means something only on a refusal (429, 503) or a redirect, not on a 2xx.
    retry_after = aipk.parse_retry_after(headers, now) if status >= 300 else None
    return RateLimitState.from_headers(headers, now, _REQUEST_HEADERS, _TOKEN_HEADERS,
                                       retry_after)


#: OpenAI's (limit, remaining, reset) headers of the requests and the tokens window
_REQUEST_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                    "x-ratelimit-reset-requests")
_TOKEN_HEADERS = ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
                  "x-ratelimit-reset-tokens")


# -- streaming -------------------------------------------------------------------------------


class OpenAIStreamDecoder:
    """Chat-completion chunks to stream events; ``data: [DONE]`` ends the stream.

    Every choice is streamed (``n > 1``): events of choice 1, 2 … carry ``choice``. Tool-call
    fragments are keyed by their ``index``; ``id`` and ``name`` come on the first fragment
    (fragments without an index are numbered by their ``id``: each new id is the next call;
    a new id at an index whose call had another one is the next call too).
    A chunk carrying ``error`` raises StreamError, even when it also carries choices
    (OpenRouter), and so does a flat error object in place of a chunk (Cerebras:
    ``{"message", "type", "param", "code"}``). ``[DONE]`` is the terminator: OpenAI and every
    compatible server send it last, after the finish reason and (when requested with
    ``stream_options.include_usage``) the usage chunk, so a body that ends without it was cut
    short even if a finish reason came.
    """

    terminator = "[DONE]"

    __slots__ = ("_called", "_ids", "_loads", "_named", "_provider", "_refused", "_slots",
                 "_texted", "done", "extra", "model", "response_id")

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self._loads = parse_json  # json.loads, minus its Python layers
        self._refused = False  # a refusal and no text: "stop" means REFUSAL, as in chat()
        self._texted = False
        self._called: set[int] | None = None  # the choices that called tools
        self._ids: list[str] | None = None  # ids of tool calls sent without an index
        #: (choice, tool call index) -> whether a fragment named the tool
        self._named: dict[tuple[int, int], bool] | None = None
        #: wire index -> [the call's index, its id], for servers that reuse an index
        self._slots: dict[int, list[Any]] | None = None
        self.done = False
        self.response_id: str | None = None
        self.model: str | None = None
        self.extra: dict[str, Any] = {}

    def feed(self, event: ServerSentEvent) -> Sequence[StreamEvent]:
        data = event.data
        if data[:6] == "[DONE]":
            self.done = True
            if self._named is not None and not all(self._named.values()):
                self._nameless()
            return ()
        chunk = self._loads(data)
        if type(chunk) is not dict:
            raise ValueError(f"expected a JSON object, got {type(chunk).__name__}")
        if chunk.get("error"):
            raise _stream_error(self._provider, chunk["error"])
        if "choices" not in chunk and "usage" not in chunk:
            if _flat_error(chunk):
                raise _stream_error(self._provider, chunk)
            raise ValueError(
                f"not a chat.completion.chunk (type {chunk.get('type')!r}); is base_url a "
                f"chat-completions endpoint?"
            )
        if not self.response_id:  # Azure's first chunk (prompt_filter_results) has id ""
            self.response_id = chunk.get("id")
            self.model = chunk.get("model")
        out: list[StreamEvent] = []
        for choice in chunk.get("choices") or ():
            which = choice.get("index") or 0
            if type(which) is not int:
                raise ValueError(f"choice index {which!r} is not an integer")
            delta = choice.get("delta")
            if delta:
                text = delta.get("content")
                if text:
                    if which:
                        out.append(_text_delta(text=text, choice=which))
                    else:
                        self._texted = True
                        out.append(_text_delta(text=text))
                    if len(delta) == 1:  # the usual chunk: text and nothing else
                        delta = None
            if delta:
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if reasoning:
                    out.append(ReasoningDelta(text=reasoning, choice=which))
                refusal = delta.get("refusal")
                if refusal:
                    self._refused = self._refused or not which
                    out.append(RefusalDelta(text=refusal, choice=which))
                calls = delta.get("tool_calls")
                if calls:
                    self._note_call(which)
                    for call in calls:
                        fn = call.get("function") or call.get("custom") or {}
                        index = call.get("index")
                        if index is None:
                            index = self._unindexed(call.get("id"))
                        elif type(index) is not int:
                            raise ValueError(f"tool call index {index!r} is not an integer")
                        elif not which:
                            index = self._indexed(index, call.get("id"))
                        name = fn.get("name")
                        self._name_seen(which, index, name)
                        out.append(ToolCallDelta(index=index, id=call.get("id"), name=name,
                                                 arguments=(fn.get("arguments")
                                                            or fn.get("input") or ""),
                                                 choice=which))
                elif delta.get("function_call"):
                    self._note_call(which)
                    out.append(self._legacy_call(delta["function_call"], which))
                if not which and (delta.get("annotations") or delta.get("audio")
                                  or delta.get("images")):
                    self._keep(delta)
            raw = choice.get("finish_reason")
            if raw:
                if raw == "error" and choice.get("error"):  # OpenRouter: the upstream failed
                    raise _stream_error(self._provider, choice["error"])
                reason = finish_reason(raw)
                if reason is FinishReason.STOP and (self._refused or self._called is not None):
                    reason = self._stop_reason(which)
                out.append(_finish_event(reason=reason, raw=raw, choice=which))
                if not chunk.get("usage") and type(chunk.get("x_groq")) is dict:
                    self._groq_usage(chunk["x_groq"], out)
        usage = chunk.get("usage")
        if usage:
            out.append(_usage_event(usage=parse_usage(usage)))
        return out

    def _note_call(self, which: int) -> None:
        called = self._called
        if called is None:
            called = self._called = set()
        called.add(which)

    def _stop_reason(self, which: int) -> FinishReason:
        """What ``stop`` means for choice ``which``: REFUSAL after a refusal and no text (as
        in chat()), TOOL_CALLS after tool calls (gpt-4o with a forced ``tool_choice``, Gemini's
        and older Ollama's OpenAI-compatible APIs say ``stop`` then), else STOP."""
        if self._refused and not self._texted and not which:
            return FinishReason.REFUSAL
        if self._called is not None and which in self._called:
            return FinishReason.TOOL_CALLS
        return FinishReason.STOP

    @staticmethod
    def _groq_usage(groq: dict[str, Any], out: list[StreamEvent]) -> None:
        """Groq puts the stream's usage in ``x_groq.usage`` of the chunk with the finish
        reason (a usage chunk after it, if any, wins: the latest UsageEvent counts)."""
        usage = groq.get("usage")
        if type(usage) is dict and usage:
            out.append(_usage_event(usage=parse_usage(usage)))

    def _legacy_call(self, call: Any, which: int) -> ToolCallDelta:
        """A fragment of the deprecated ``function_call`` (one call per answer): tool call 0;
        the fragment naming the function also gets the id ``call_0`` (the wire has none)."""
        if type(call) is not dict:
            raise ValueError(f"function_call {call!r} is not an object")
        name = call.get("name")
        self._name_seen(which, 0, name)
        return ToolCallDelta(index=0, id="call_0" if name else None, name=name or None,
                             arguments=call.get("arguments") or "", choice=which)

    def _name_seen(self, which: int, index: int, name: Any) -> None:
        """Note whether tool call ``index`` of choice ``which`` has been named yet."""
        named = self._named
        if named is None:
            named = self._named = {}
        if name and type(name) is str:
            named[which, index] = True
        elif (which, index) not in named:
            named[which, index] = False

    def _nameless(self) -> None:
        """ValueError (a ResponseError to the caller) for a stream that ended with a tool
        call whose fragments never named the tool: a call the client cannot run."""
        missing = sorted(key for key, named in (self._named or {}).items() if not named)
        which, index = missing[0]
        raise ValueError(f"tool call {index} (choice {which}) ended without a tool name; the "
                         f"answer asks for a tool without saying which")

    def _keep(self, delta: Mapping[str, Any]) -> None:
        """What choice 0's delta carries beside text, reasoning, refusals and tool calls,
        gathered into ``extra`` as a whole answer has it: url citations, audio output (its
        ``transcript`` and base64 ``data`` pieces joined) and generated images."""
        annotations = delta.get("annotations")
        if annotations and type(annotations) is list:
            self.extra.setdefault("annotations", []).extend(annotations)
        images = delta.get("images")
        if images and type(images) is list:
            self.extra.setdefault("images", []).extend(images)
        audio = delta.get("audio")
        if audio and type(audio) is dict:
            kept = self.extra.setdefault("audio", {})
            for key, value in audio.items():
                if key in ("transcript", "data") and type(value) is str:
                    kept[key] = kept.get(key, "") + value
                elif value is not None:
                    kept[key] = value

    def _indexed(self, index: int, call_id: Any) -> int:
        """The index of a tool-call fragment sent with ``index``: that index, unless the
        fragment brings a new id at an index whose call had another one (Ollama's
        OpenAI-compatible API sends every call of a turn as index 0): then the next free
        index, so two calls are never merged into one."""
        slots = self._slots
        if slots is None:
            slots = self._slots = {}
        slot = slots.get(index)
        if slot is None:
            taken = {own for own, _ in slots.values()}
            own: int = index if index not in taken else max(taken) + 1
            slots[index] = [own, call_id or None]
            return own
        if isinstance(call_id, str) and call_id:
            if slot[1] is None:
                slot[1] = call_id  # the id came after the first fragment
            elif call_id != slot[1]:  # another call at a reused index
                own = max(taken for taken, _ in slots.values()) + 1
                slots[index] = [own, call_id]
                return own
        return int(slot[0])

    def _unindexed(self, call_id: Any) -> int:
        """The index of a tool-call fragment sent without one: a new id is the next call (some
        compatible servers send each call whole, none with an index), a known id its own, no
        id the last call's."""
        ids = self._ids
        if ids is None:
            ids = self._ids = []
        if isinstance(call_id, str) and call_id:
            if call_id not in ids:
                ids.append(call_id)
            return ids.index(call_id)
        return max(len(ids) - 1, 0)

    def close(self) -> Sequence[StreamEvent]:
        return ()
