"""Ollama's native API on the wire: ``POST /api/chat`` and ``GET /api/tags``.

Pure functions (request bodies, response parsing, error mapping) and the NDJSON stream decoder.

* Requests: sampling parameters go in ``options`` (``temperature``, ``top_p``, ``num_predict``
  for ``max_tokens``, ``stop``); ``stream`` is always sent, because Ollama streams unless told
  ``false``; images are base64 strings (``Image(data=...)``; an image URL is refused);
  tool-call arguments are JSON objects, not strings. ``request.extra`` is merged in last, and
  its ``options`` one level deep: ``extra={"think": True}`` for thinking,
  ``extra={"keep_alive": "5m"}``. ``response_format=`` becomes ``format``: ``"json"`` for JSON
  mode, the JSON Schema itself otherwise (Ollama constrains the answer to it).
* Responses: ``message.content``, ``message.thinking`` (the reasoning), ``message.tool_calls``
  (whole calls; Ollama may give no id, then ``call_<n>``), ``done_reason`` (``stop`` or
  ``length``; ``stop`` with tool calls is TOOL_CALLS), ``prompt_eval_count`` and
  ``eval_count`` as usage. Timings are kept in ``extra`` (nanoseconds).
* Streams are NDJSON (``application/x-ndjson``): one such object per line, ``done: true`` on
  the last, which carries ``done_reason`` and the counts; ``{"error": "..."}`` on a line is an
  in-band error.
* Errors are ``{"error": "message"}`` with the HTTP status.
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
    FinishEvent,
    FinishReason,
    HttpRequest,
    Message,
    ModelInfo,
    Provider,
    RateLimitState,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageEvent,
    json_count,
)
from aipk.errors import InvalidRequestError, ProviderError, StreamError
from aipk.framing import parse_json
from aipk.sse import ServerSentEvent

__all__ = [
    "OllamaStreamDecoder",
    "build_chat_body",
    "build_chat_request",
    "build_models_request",
    "map_error",
    "parse_chat_response",
    "parse_models",
    "parse_rate_limits",
]

_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}
#: timing fields of a final object, kept in ``extra`` (nanoseconds)
_TIMINGS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


# -- requests --------------------------------------------------------------------------------


def _arguments(call: ToolCall) -> Any:
    try:
        return json.loads(call.arguments or "{}")
    except ValueError:
        raise InvalidRequestError(
            f"tool call {call.id!r} has arguments that are not JSON; Ollama takes them as a "
            f"JSON object", field="messages") from None


def encode_message(message: Message) -> dict[str, Any]:
    """One message in Ollama's shape."""
    out: dict[str, Any] = {"role": message.role, "content": message.content or ""}
    if message.images:
        images = []
        for image in message.images:
            if image.data is None:
                raise InvalidRequestError(
                    "Ollama takes images as bytes, not URLs; pass Image(data=...)",
                    field="messages")
            images.append(base64.b64encode(image.data).decode("ascii"))
        out["images"] = images
    if message.tool_calls:
        out["tool_calls"] = [{"function": {"name": c.name, "arguments": _arguments(c)}}
                             for c in message.tool_calls]
    if message.role == "tool" and message.name is not None:
        out["tool_name"] = message.name
    thinking = message.extra.get("thinking")
    if thinking:
        out["thinking"] = thinking
    return out


def build_chat_body(provider: Provider, request: ChatRequest, stream: bool) -> dict[str, Any]:
    """The JSON body for ``POST /api/chat``; unset fields are left out."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [encode_message(m) for m in request.messages],
        "stream": stream,
    }
    options: dict[str, Any] = {}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.top_p is not None:
        options["top_p"] = request.top_p
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    if request.stop is not None:
        options["stop"] = list(request.stop)
    if options:
        body["options"] = options
    choice = request.tool_choice
    if choice is not None and choice.mode in ("required", "function"):
        raise InvalidRequestError(
            f"Ollama has no tool_choice={choice.mode!r}; leave tool_choice unset (the model "
            f"decides) or pass tool_choice='none'", provider=provider.name, field="tool_choice")
    if request.tools and (choice is None or choice.mode != "none"):
        body["tools"] = [{"type": "function", "function": _function(tool)}
                         for tool in request.tools]
    fmt = request.response_format
    if fmt is not None:
        body["format"] = "json" if fmt.schema is None else dict(fmt.schema)
    if request.extra:
        for key, value in request.extra.items():
            if key == "options" and isinstance(value, Mapping):
                body["options"] = {**body.get("options", {}), **value}
            else:
                body[key] = value
    return body


def _function(tool: aipk.Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
    if tool.description:
        fn["description"] = tool.description
    return fn


_JSON = {"content-type": "application/json", "accept": "application/json"}
_NDJSON = {"content-type": "application/json", "accept": "application/x-ndjson"}


def build_chat_request(provider: Provider, request: ChatRequest, stream: bool) -> HttpRequest:
    """``POST {base_url}/api/chat``."""
    return HttpRequest(method="POST", url=provider.url("api/chat"),
                       headers=dict(_NDJSON if stream else _JSON),
                       json=build_chat_body(provider, request, stream))


def build_models_request(provider: Provider) -> HttpRequest:
    """``GET {base_url}/api/tags`` (the locally available models)."""
    return HttpRequest(method="GET", url=provider.url("api/tags"), headers={
        "accept": "application/json"})


# -- responses -------------------------------------------------------------------------------


def parse_usage(data: Mapping[str, Any]) -> Usage:
    """Usage from a final object's ``prompt_eval_count`` and ``eval_count``; a count Ollama
    leaves out (``prompt_eval_count`` for a prompt it had cached) stays None."""
    return Usage(input_tokens=json_count(data.get("prompt_eval_count")),
                 output_tokens=json_count(data.get("eval_count")))


def finish_reason(raw: str | None, tool_calls: bool) -> FinishReason | None:
    """The normalised reason for ``done_reason``; ``stop`` after tool calls is TOOL_CALLS."""
    if raw is None:
        return None
    if raw == "stop" and tool_calls:
        return FinishReason.TOOL_CALLS
    return _FINISH.get(raw, FinishReason.OTHER)


def _tool_call(index: int, raw: Mapping[str, Any]) -> ToolCall:
    fn = raw["function"]
    arguments = fn.get("arguments")
    text = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return ToolCall(id=raw.get("id") or f"call_{index}", name=fn["name"], arguments=text)


def _in_band_error(provider: Provider, error: Any) -> StreamError:
    """``{"error": "…"}`` in a 200 body or mid-stream; a proxy in between (or Ollama's
    OpenAI-style layer) may send ``{"error": {"message": …}}``."""
    if isinstance(error, Mapping):
        text = str(error.get("message") or "") or json.dumps(error, ensure_ascii=False)
    else:
        text = "" if error is None else str(error)
    return StreamError(text or "Ollama reported an error", provider=provider.name,
                       body=error)


def parse_chat_response(provider: Provider, request: ChatRequest, data: Any) -> ChatResponse:
    """A non-streamed ``/api/chat`` body as a ChatResponse."""
    if "error" in data:
        raise _in_band_error(provider, data["error"])
    msg = data["message"]
    calls = tuple(_tool_call(i, c) for i, c in enumerate(msg.get("tool_calls") or ()))
    raw = data.get("done_reason")
    return ChatResponse(
        provider=provider.name,
        model=data.get("model") or request.model,
        message=Message(role="assistant", content=msg.get("content"), tool_calls=calls),
        finish_reason=finish_reason(raw, bool(calls)),
        raw_finish_reason=raw,
        usage=parse_usage(data) if data.get("done") else None,
        reasoning=msg.get("thinking") or None,
        extra={k: data[k] for k in _TIMINGS if k in data},
    )


def parse_models(provider: Provider, data: Any) -> list[ModelInfo]:
    """``{"models": [{"name", "size", "details": {...}}]}`` as ModelInfo records."""
    out = []
    for item in data.get("models") or ():
        details = item.get("details") or {}
        extra = {k: details[k] for k in ("family", "parameter_size", "quantization_level")
                 if details.get(k)}
        if item.get("size") is not None:
            extra["size"] = item["size"]
        out.append(ModelInfo(id=item.get("name") or item["model"], provider=provider.name,
                             extra=extra))
    return out


# -- errors and rate limits ------------------------------------------------------------------


def map_error(provider: Provider, status: int, headers: Mapping[str, str], data: Any,
              request_id: str | None, now: float) -> ProviderError:
    """An Ollama error body (``{"error": "message"}``) as a typed error."""
    message: str | None = None
    if isinstance(data, Mapping):
        error = data.get("error")
        if isinstance(error, str):
            message = error
        elif isinstance(error, Mapping):
            message = str(error.get("message") or "") or None
    elif isinstance(data, str) and data:
        message = data
    return aipk.error_for_status(provider=provider.name, status=status, headers=headers,
                                 body=data, message=message, request_id=request_id, now=now)


def parse_rate_limits(headers: Mapping[str, str], now: float) -> RateLimitState | None:
    """Ollama sends no rate-limit headers; only a ``retry-after`` (a proxy's, or Ollama
    Cloud's) is kept."""
    retry_after = aipk.parse_retry_after(headers, now)
    if retry_after is None:
        return None
    return RateLimitState(not_before=now + retry_after, observed_at=now)


# -- streaming -------------------------------------------------------------------------------


class OllamaStreamDecoder:
    """``/api/chat`` NDJSON objects to stream events (``framing = "ndjson"``).

    ``done`` is True once the object with ``done: true`` arrived (its ``done_reason`` and
    counts become the finish and usage events); a stream that ends before it is the client's
    IncompleteStreamError. Each tool call arrives whole and gets the next index.
    """

    framing = "ndjson"
    terminator = 'an object with "done": true'

    __slots__ = ("_calls", "_loads", "_provider", "done", "extra", "model", "response_id")

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self._loads = parse_json  # json.loads, minus its Python layers
        self._calls = 0
        self.done = False
        self.response_id: str | None = None
        self.model: str | None = None
        self.extra: dict[str, Any] = {}

    def feed(self, event: ServerSentEvent) -> Sequence[StreamEvent]:
        chunk = self._loads(event.data)
        if type(chunk) is not dict:
            raise ValueError(f"expected a JSON object per line, got {type(chunk).__name__}")
        if "error" in chunk:
            raise _in_band_error(self._provider, chunk["error"])
        if self.model is None:
            self.model = chunk.get("model")
        msg = chunk.get("message")
        out: list[StreamEvent] = []
        if msg:
            text = msg.get("content")
            if text:
                out.append(TextDelta(text=text))
            thinking = msg.get("thinking")
            if thinking:
                out.append(ReasoningDelta(text=thinking))
            for raw in msg.get("tool_calls") or ():
                call = _tool_call(self._calls, raw)
                out.append(ToolCallDelta(index=self._calls, id=call.id, name=call.name,
                                         arguments=call.arguments))
                self._calls += 1
        if chunk.get("done"):
            self.done = True
            raw_reason = chunk.get("done_reason")
            reason = finish_reason(raw_reason, self._calls > 0) or FinishReason.STOP
            out.append(FinishEvent(reason=reason, raw=raw_reason))
            out.append(UsageEvent(usage=parse_usage(chunk)))
            self.extra.update((k, chunk[k]) for k in _TIMINGS if k in chunk)
        return out

    def close(self) -> Sequence[StreamEvent]:
        # a body that ends before ``"done": true`` is the client's IncompleteStreamError
        return ()
