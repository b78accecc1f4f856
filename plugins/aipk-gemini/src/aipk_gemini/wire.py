"""The Gemini ``generateContent`` wire format, as pure functions and one stream decoder.

Requests: roles mapped (``assistant`` → ``model``, tool results → ``user`` turns of
``functionResponse`` parts), system messages → ``systemInstruction``, tools →
``functionDeclarations``, tool choice → ``toolConfig.functionCallingConfig``.

Thought signatures round-trip through ``Message.extra`` (and ``ChatResponse.extra``):

* ``"thoughtSignature"``: the signature Gemini put on a text part, echoed on the text part;
* ``"functionCallSignatures"``: ``{tool_call_id: signature}``, echoed on that ``functionCall``.

Gemini has no tool-call ids: calls get ``functionCall.id`` when Gemini sends one, else
``call_<n>`` (``n`` counts the calls of one response), and tool results find their function
name from the most recent assistant call with that id (or ``Message.tool(..., name=)``).

Usage: ``input_tokens`` = ``promptTokenCount`` (+ ``toolUsePromptTokenCount``),
``output_tokens`` = ``candidatesTokenCount`` + ``thoughtsTokenCount`` (both are billed as output),
``reasoning_tokens`` = ``thoughtsTokenCount``, ``cache_read_tokens`` =
``cachedContentTokenCount``, ``total_tokens`` = ``totalTokenCount``.
"""

from __future__ import annotations

import base64
import json
import math
import mimetypes
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import attrs

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
    RateLimitError,
    RateLimitState,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageEvent,
    framing,
)
from aipk.errors import (
    AuthenticationError,
    AuthErrorCode,
    ConfigurationError,
    ContentFilteredError,
    InvalidRequestError,
    OverloadedError,
    ProviderError,
    ResponseError,
    StreamError,
)
from aipk.sse import ServerSentEvent

from .schema import to_gemini_schema

__all__ = [
    "CLOUDCODE_BASE_URL",
    "DAILY_QUOTA_CODE",
    "GeminiStreamDecoder",
    "build_chat_body",
    "build_chat_request",
    "build_models_request",
    "candidate_count",
    "finish_reason",
    "map_error",
    "parse_chat_response",
    "parse_models",
    "parse_rate_limits",
    "parse_usage",
    "rate_limit_state_from_error",
    "retry_delay",
    "seconds_until_daily_reset",
    "to_cloudcode",
]

#: The Code Assist endpoint used for OAuth with a ``project_id`` (what gemini-cli talks to).
CLOUDCODE_BASE_URL = "https://cloudcode-pa.googleapis.com/v1internal"
#: ``RateLimitError.code`` for a 429 caused by a per-day quota (a ``quotaId`` containing
#: ``PerDay``): retrying today will not help, so the error is not retryable and its
#: ``retry_after`` is the time until the quota resets (midnight, US Pacific time).
DAILY_QUOTA_CODE = "DAILY_QUOTA_EXHAUSTED"

_FILTERED = FinishReason.CONTENT_FILTER
_FINISH = {
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "SAFETY": _FILTERED,
    "RECITATION": _FILTERED,
    "BLOCKLIST": _FILTERED,
    "PROHIBITED_CONTENT": _FILTERED,
    "SPII": _FILTERED,
    "IMAGE_SAFETY": _FILTERED,
    "IMAGE_PROHIBITED_CONTENT": _FILTERED,
    "MALFORMED_FUNCTION_CALL": FinishReason.ERROR,
    "UNEXPECTED_TOOL_CALL": FinishReason.ERROR,
}
#: finishReason as a number (a request with ``$alt=json;enum-encoding=int``), google.ai's order
_FINISH_NUMBERS = ("FINISH_REASON_UNSPECIFIED", "STOP", "MAX_TOKENS", "SAFETY", "RECITATION",
                   "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
                   "MALFORMED_FUNCTION_CALL", "IMAGE_SAFETY")
#: ``stream_framing`` option values: ``alt=sse`` events, or one JSON array (no ``alt``)
STREAM_FRAMINGS = ("sse", "json-array")
#: Longer retry delays are nonsense and ignored (the core's limit for resets, one week).
_MAX_DELAY = 7 * 24 * 3600.0


def finish_reason(raw: str, called: bool = False) -> FinishReason:
    """The normalised finish reason for Gemini's word; STOP after function calls is TOOL_CALLS."""
    reason = _FINISH.get(raw, FinishReason.OTHER)
    if called and reason is FinishReason.STOP:
        return FinishReason.TOOL_CALLS
    return reason


# -- requests --------------------------------------------------------------------------------


def _model_path(model: str) -> str:
    if not model.startswith(("models/", "tunedModels/")):
        model = "models/" + model
    return quote(model, safe="/-._~")


def _image_part(image: aipk.Image) -> dict[str, Any]:
    if image.data is not None:
        return {"inlineData": {"mimeType": image.media_type,
                               "data": base64.b64encode(image.data).decode("ascii")}}
    url = image.url or ""
    if url.startswith("data:"):
        head, sep, payload = url[5:].partition(",")
        mime, _, encoding = head.partition(";")
        if not sep or encoding != "base64" or not (mime or image.media_type):
            raise InvalidRequestError(
                "a data: image URL must look like data:<media type>;base64,<data>",
                provider="gemini", field="images")
        return {"inlineData": {"mimeType": mime or image.media_type, "data": payload}}
    file: dict[str, Any] = {"fileUri": url}
    guessed = image.media_type or mimetypes.guess_type(urlsplit(url).path)[0]
    if guessed:
        file["mimeType"] = guessed
    return {"fileData": file}


def _arguments(call: ToolCall) -> dict[str, Any]:
    args = call.parsed_arguments()
    if not isinstance(args, dict):
        raise InvalidRequestError(
            f"tool call {call.id!r} to {call.name!r}: Gemini needs the arguments to be a JSON "
            f"object, not {type(args).__name__}", provider="gemini", field="messages")
    return args


def _tool_response(content: str | None) -> dict[str, Any]:
    if content:
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    return {"result": content or ""}


def _model_parts(message: Message) -> list[dict[str, Any]]:
    extra = message.extra
    text_signature = extra.get("thoughtSignature")
    call_signatures = extra.get("functionCallSignatures")
    if not isinstance(call_signatures, Mapping):
        call_signatures = {}
    parts: list[dict[str, Any]] = []
    if message.content or (text_signature and not message.tool_calls):
        part: dict[str, Any] = {"text": message.content or ""}
        if text_signature:
            part["thoughtSignature"] = text_signature
            text_signature = None
        parts.append(part)
    for call in message.tool_calls:
        part = {"functionCall": {"name": call.name, "args": _arguments(call)}}
        signature = call_signatures.get(call.id) or text_signature
        if signature:
            part["thoughtSignature"] = signature
            text_signature = None
        parts.append(part)
    parts.extend(_image_part(image) for image in message.images)
    return parts or [{"text": ""}]


def _contents(messages: Sequence[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    responses: list[dict[str, Any]] | None = None  # the open turn of function responses
    for message in messages:
        role = message.role
        if role == "system":
            if message.content:
                system.append({"text": message.content})
            continue
        if role == "tool":
            call_id = message.tool_call_id or ""
            name = message.name or names.get(call_id)
            if not name:
                raise InvalidRequestError(
                    f"the tool result for call id {call_id!r} answers no earlier assistant tool "
                    f"call; pass name= to Message.tool() so Gemini knows which function it "
                    f"answers", provider="gemini", field="messages")
            part = {"functionResponse": {"name": name,
                                         "response": _tool_response(message.content)}}
            if responses is None:
                responses = []
                contents.append({"role": "user", "parts": responses})
            responses.append(part)
            responses.extend(_image_part(image) for image in message.images)
            continue
        responses = None
        if role == "assistant":
            for call in message.tool_calls:
                names[call.id] = call.name
            contents.append({"role": "model", "parts": _model_parts(message)})
            continue
        parts: list[dict[str, Any]] = []
        if message.content or not message.images:
            parts.append({"text": message.content or ""})
        parts.extend(_image_part(image) for image in message.images)
        contents.append({"role": "user", "parts": parts})
    return system, contents


def _tool_config(choice: aipk.ToolChoice) -> dict[str, Any]:
    if choice.mode == "function":
        config: dict[str, Any] = {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    else:
        config = {"mode": {"auto": "AUTO", "required": "ANY", "none": "NONE"}[choice.mode]}
    return {"functionCallingConfig": config}


def _declaration(provider: Provider, tool: aipk.Tool) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    if provider.options.get("parameters_json_schema"):
        declaration["parametersJsonSchema"] = dict(tool.parameters)
        return declaration
    parameters = to_gemini_schema(tool.name, tool.parameters)
    if parameters is not None:
        declaration["parameters"] = parameters
    return declaration


def _merge(body: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        current = body.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            body[key] = {**current, **value}
        else:
            body[key] = value


def build_chat_body(provider: Provider, request: ChatRequest) -> dict[str, Any]:
    """The JSON body for ``generateContent`` / ``streamGenerateContent``; unset fields left out.

    ``request.extra`` is merged in last; a dict value (``generationConfig``, ``toolConfig``…)
    is merged one level deep, so ``extra={"generationConfig": {"thinkingConfig": {...}}}``
    keeps the temperature.
    """
    if request.parallel_tool_calls is False:
        raise InvalidRequestError(
            "Gemini cannot be told to avoid parallel tool calls; leave parallel_tool_calls unset",
            provider=provider.name, field="parallel_tool_calls")
    system, contents = _contents(request.messages)
    if not contents:
        raise InvalidRequestError(
            "Gemini needs at least one user or assistant message besides system messages",
            provider=provider.name, field="messages")
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop is not None:
        config["stopSequences"] = list(request.stop)
    if request.response_format is not None:
        add_response_format(provider, request.response_format, config)
    if config:
        body["generationConfig"] = config
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(provider, tool)
                                                   for tool in request.tools]}]
    if request.tool_choice is not None:
        body["toolConfig"] = _tool_config(request.tool_choice)
    if request.extra:
        _merge(body, request.extra)
    return body


def add_response_format(provider: Provider, fmt: aipk.ResponseFormat,
                        config: dict[str, Any]) -> None:
    """Ask for JSON in ``generationConfig``: ``responseMimeType`` plus ``responseJsonSchema``
    (the default), or the OpenAPI-subset ``responseSchema`` for older models (option
    ``structured_output="response_schema"``); no schema is JSON mode."""
    config["responseMimeType"] = "application/json"
    if fmt.schema is None:
        return
    if provider.options.get("structured_output") == "response_schema":
        converted = to_gemini_schema(fmt.name, fmt.schema)
        if converted is not None:
            config["responseSchema"] = converted
        return
    config["responseJsonSchema"] = dict(fmt.schema)


def stream_framing(provider: Provider) -> str:
    """How streams are requested: the ``stream_framing`` option, ``"sse"`` (the default,
    ``?alt=sse``) or ``"json-array"`` (no ``alt``: Google streams one JSON array)."""
    framing = provider.options.get("stream_framing", "sse")
    if framing not in STREAM_FRAMINGS:
        raise ConfigurationError(
            f"unknown Gemini stream_framing {framing!r}; pass stream_framing='sse' (default) "
            f"or 'json-array' to aipk.Client")
    return str(framing)


def build_chat_request(provider: Provider, request: ChatRequest, stream: bool) -> HttpRequest:
    """``POST {base}/models/{model}:generateContent``, or ``:streamGenerateContent?alt=sse``
    (``:streamGenerateContent`` alone with the option ``stream_framing="json-array"``)."""
    path = _model_path(request.model)
    sse = not stream or stream_framing(provider) == "sse"
    method = ("generateContent" if not stream else
              "streamGenerateContent?alt=sse" if sse else "streamGenerateContent")
    return HttpRequest(
        method="POST",
        url=provider.url(f"{path}:{method}"),
        headers={"content-type": "application/json",
                 "accept": "text/event-stream" if stream and sse else "application/json"},
        json=build_chat_body(provider, request),
    )


def build_models_request(provider: Provider) -> HttpRequest:
    """``GET {base}/models?pageSize=1000`` (one page holds every Gemini model)."""
    return HttpRequest(method="GET", url=provider.url("models?pageSize=1000"),
                       headers={"accept": "application/json"})


_CHAT_URL = re.compile(
    r"/(?:models|tunedModels)/(?P<model>[^/:?#]+):(?P<method>generateContent|"
    r"streamGenerateContent)(?P<query>\?[^#]*)?$")


def to_cloudcode(http_request: HttpRequest, project: str,
                 base_url: str = CLOUDCODE_BASE_URL) -> HttpRequest:
    """A standard chat request rewritten for the Code Assist endpoint: ``{base}:<method>``
    with the body wrapped as ``{"model", "project", "request"}``; other requests unchanged."""
    match = _CHAT_URL.search(http_request.url)
    if match is None or http_request.json is None:
        return http_request
    url = f"{base_url.rstrip('/')}:{match['method']}{match['query'] or ''}"
    body = {"model": unquote(match["model"]), "project": project, "request": http_request.json}
    return attrs.evolve(http_request, url=url, json=body)


# -- responses -------------------------------------------------------------------------------


def _count(value: Any) -> int | None:
    """A token count: a non-negative whole number, else None (never a string or a bool)."""
    if type(value) is int:
        return value if value >= 0 else None
    if type(value) is float and value.is_integer() and value >= 0:
        return int(value)
    return None


def parse_usage(meta: Any) -> Usage | None:
    """Usage from ``usageMetadata``; None when it holds no token counts at all."""
    if not isinstance(meta, Mapping):
        return None
    prompt = _count(meta.get("promptTokenCount"))
    candidates = _count(meta.get("candidatesTokenCount"))
    thoughts = _count(meta.get("thoughtsTokenCount"))
    tool_prompt = _count(meta.get("toolUsePromptTokenCount"))
    total = _count(meta.get("totalTokenCount"))
    if prompt is None and candidates is None and thoughts is None and total is None:
        return None
    input_tokens = (None if prompt is None and tool_prompt is None
                    else (prompt or 0) + (tool_prompt or 0))
    output_tokens = (None if candidates is None and thoughts is None
                     else (candidates or 0) + (thoughts or 0))
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total if total is not None else
        (output_tokens if input_tokens is None else input_tokens + (output_tokens or 0)),
        reasoning_tokens=thoughts,
        cache_read_tokens=_count(meta.get("cachedContentTokenCount")),
    )


def _unwrap(data: Any) -> Any:
    """The GenerateContentResponse inside a Code Assist ``{"response": {...}}`` envelope."""
    if isinstance(data, dict) and "candidates" not in data:
        inner = data.get("response")
        if isinstance(inner, dict):
            return inner
    return data


def _first_candidate(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    candidates = data.get("candidates")
    if not isinstance(candidates, list):
        return None
    for candidate in candidates:
        if isinstance(candidate, Mapping) and not candidate.get("index"):
            return candidate
    return None


def _other_candidates(data: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    """Candidates 1, 2 … (``candidateCount > 1``) with their index."""
    candidates = data.get("candidates")
    if not isinstance(candidates, list):  # a chunk may carry candidate 1 alone
        return []
    return [(c["index"], c) for c in candidates
            if isinstance(c, Mapping) and type(c.get("index")) is int and c["index"] > 0]


def _choice(index: int, candidate: Mapping[str, Any]) -> Choice:
    """One more candidate as a Choice: its answer text, function calls and finish reason."""
    text: list[str] = []
    calls: list[ToolCall] = []
    for part in _parts(candidate):
        if not isinstance(part, Mapping) or part.get("thought"):
            continue
        call = part.get("functionCall")
        if isinstance(call, Mapping):
            calls.append(ToolCall(id=call.get("id") or f"call_{len(calls)}", name=call["name"],
                                  arguments=_call_json(call.get("args"))))
        elif isinstance(part.get("text"), str):
            text.append(part["text"])
    raw = candidate.get("finishReason")
    raw = raw if isinstance(raw, str) and raw else None
    joined = "".join(text)
    return Choice(index=index, message=Message(
        role="assistant", content=joined if joined or not calls else None, tool_calls=calls),
        finish_reason=finish_reason(raw, bool(calls)) if raw else None, raw_finish_reason=raw)


def _parts(candidate: Mapping[str, Any]) -> list[Any]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return parts if isinstance(parts, list) else []


def _call_json(args: Any) -> str:
    return json.dumps(args if args is not None else {}, ensure_ascii=False,
                      separators=(",", ":"))


def _block_reason(data: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    feedback = data.get("promptFeedback")
    if isinstance(feedback, Mapping):
        reason = feedback.get("blockReason")
        if isinstance(reason, str) and reason:
            return reason, feedback
    return None


def prompt_blocked(provider: Provider, blocked: tuple[str, Mapping[str, Any]],
                   data: Any) -> ContentFilteredError:
    """The error for a prompt Gemini blocked (no candidates, ``promptFeedback.blockReason``):
    ``code`` is the block reason, ``body`` the whole response."""
    reason, feedback = blocked
    detail = feedback.get("blockReasonMessage")
    said = f": {detail}" if isinstance(detail, str) and detail else ""
    return ContentFilteredError(
        f"the prompt was blocked ({reason}){said}; rephrase it (retrying as is will not help)",
        provider=provider.name, status=200, body=data, code=reason)


def parse_chat_response(provider: Provider, request: ChatRequest, data: Any) -> ChatResponse:
    """A ``GenerateContentResponse`` (or its Code Assist envelope) as a ChatResponse."""
    if isinstance(data, dict) and isinstance(data.get("error"), Mapping):
        raise _stream_error(provider, data["error"])
    data = _unwrap(data)
    if not isinstance(data, Mapping):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    candidate = _first_candidate(data)
    blocked = _block_reason(data)
    extra: dict[str, Any] = {}
    if candidate is None:
        if blocked is None:
            raise ResponseError("the response has no candidates and no promptFeedback",
                                provider=provider.name)
        raise prompt_blocked(provider, blocked, data)
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    signatures: dict[str, str] = {}
    text_signature: str | None = None
    for part in _parts(candidate):
        if not isinstance(part, Mapping):
            continue
        signature = part.get("thoughtSignature")
        call = part.get("functionCall")
        if isinstance(call, Mapping):
            call_id = call.get("id") or f"call_{len(calls)}"
            calls.append(ToolCall(id=call_id, name=call["name"],
                                  arguments=_call_json(call.get("args"))))
            if signature:
                signatures[call_id] = signature
            continue
        piece = part.get("text")
        if isinstance(piece, str):
            (reasoning if part.get("thought") else text).append(piece)
        if signature:
            text_signature = signature
    if text_signature:
        extra["thoughtSignature"] = text_signature
    if signatures:
        extra["functionCallSignatures"] = signatures
    message_extra = dict(extra)
    raw: str | None = None
    reason: FinishReason | None = None
    raw_value = candidate.get("finishReason")
    if isinstance(raw_value, str) and raw_value:
        raw = raw_value
        reason = finish_reason(raw, bool(calls))
    if candidate.get("finishMessage"):
        extra["finishMessage"] = candidate["finishMessage"]
    joined = "".join(text)
    return ChatResponse(
        provider=provider.name,
        model=data.get("modelVersion") or request.model,
        message=Message(role="assistant", content=joined if joined or not calls else None,
                        tool_calls=calls, extra=message_extra),
        finish_reason=reason,
        raw_finish_reason=raw,
        usage=parse_usage(data.get("usageMetadata")),
        id=data.get("responseId"),
        reasoning="".join(reasoning) if reasoning else None,
        extra=extra,
        more_choices=tuple(_choice(n, c) for n, c in _other_candidates(data)),
    )


def parse_models(provider: Provider, data: Any) -> list[ModelInfo]:
    """``{"models": [{"name": "models/…", …}]}`` as ModelInfo (models that can
    ``generateContent`` only), enriched from the plugin's static list."""
    if not isinstance(data, Mapping) or not isinstance(data.get("models") or [], list):
        raise ResponseError("the model listing is not {\"models\": [...]}; check base_url",
                            provider=provider.name)
    known = {info.id: info for info in provider.spec.models}
    out = []
    for item in data.get("models") or ():
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        methods = item.get("supportedGenerationMethods")
        if isinstance(methods, list) and "generateContent" not in methods:
            continue
        model_id = item["name"].removeprefix("models/")
        static = known.get(model_id)
        base = static.capabilities if static and static.capabilities else \
            provider.spec.capabilities
        caps = attrs.evolve(
            base,
            context_window=_count(item.get("inputTokenLimit")) or base.context_window,
            max_output_tokens=_count(item.get("outputTokenLimit")) or base.max_output_tokens,
            reasoning=bool(item.get("thinking")) or base.reasoning,
        )
        out.append(ModelInfo(
            id=model_id, provider=provider.name,
            display_name=item.get("displayName") or (static.display_name if static else None),
            capabilities=caps,
            input_price=static.input_price if static else None,
            output_price=static.output_price if static else None,
            extra={"version": item["version"]} if item.get("version") else {},
        ))
    return out


# -- errors and rate limits ------------------------------------------------------------------


def retry_delay(details: Any) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail's ``retryDelay`` (``"34s"``, ``"1.5s"``,
    or ``{"seconds", "nanos"}``); None when absent or nonsense. Never raises."""
    if not isinstance(details, list):
        return None
    for detail in details:
        if not isinstance(detail, Mapping) or not str(detail.get("@type", "")).endswith(
                "RetryInfo"):
            continue
        value = detail.get("retryDelay")
        seconds: float | None = None
        try:
            if isinstance(value, str):
                seconds = aipk.parse_duration(value)
            elif isinstance(value, Mapping):
                seconds = float(value.get("seconds") or 0) + float(value.get("nanos") or 0) / 1e9
        except (ValueError, TypeError, OverflowError):
            seconds = None
        if seconds is not None and math.isfinite(seconds) and 0 <= seconds <= _MAX_DELAY:
            return seconds
    return None


def _quota_ids(details: Any) -> list[str]:
    ids: list[str] = []
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("QuotaFailure"):
            for violation in detail.get("violations") or ():
                if isinstance(violation, Mapping) and isinstance(violation.get("quotaId"), str):
                    ids.append(violation["quotaId"])
    return ids


def _reason(details: Any) -> str | None:
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("ErrorInfo"):
            reason = detail.get("reason")
            return reason if isinstance(reason, str) else None
    return None


def _pacific() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("America/Los_Angeles")
    except Exception:  # noqa: BLE001 - no tz database (some Windows installs): use PST
        return timezone(timedelta(hours=-8))


def seconds_until_daily_reset(now: float) -> float:
    """Seconds from ``now`` until the next midnight US Pacific time (when daily quotas reset)."""
    local = datetime.fromtimestamp(now, _pacific())
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(0.0, midnight.timestamp() - now)


def _error_parts(data: Any) -> tuple[str | None, str | None, list[Any]]:
    if isinstance(data, list) and data:  # streaming endpoints answer errors as a JSON array
        data = data[0]
    error = data.get("error") if isinstance(data, Mapping) else None
    if isinstance(error, Mapping):
        message = error.get("message")
        status = error.get("status")
        details = error.get("details")
        return (str(message) if message else None,
                str(status) if status else (str(error["code"]) if error.get("code") else None),
                details if isinstance(details, list) else [])
    if isinstance(data, str) and data:
        return data, None, []
    return None, None, []


_AUTH_REASONS = {"API_KEY_INVALID": AuthErrorCode.INVALID_CREDENTIALS,
                 "API_KEY_EXPIRED": AuthErrorCode.INVALID_CREDENTIALS,
                 "ACCESS_TOKEN_EXPIRED": AuthErrorCode.TOKEN_EXPIRED,
                 "ACCESS_TOKEN_SCOPE_INSUFFICIENT": AuthErrorCode.SCOPE_INSUFFICIENT}


def map_error(provider: Provider, status: int, headers: Mapping[str, str], data: Any,
              request_id: str | None, now: float) -> ProviderError:
    """A Google error body (``{"error": {"code", "message", "status", "details"}}``) as a
    typed error: RetryInfo → ``retry_after``; a ``PerDay`` quota → `DAILY_QUOTA_CODE`,
    not retryable; an invalid API key (Gemini answers 400) → AuthenticationError."""
    message, code, details = _error_parts(data)
    reason = _reason(details)
    if reason in _AUTH_REASONS:
        auth_code = _AUTH_REASONS[reason]
        return AuthenticationError(
            f"{message or 'the credential was refused'} (check the API key: GEMINI_API_KEY or "
            f"api_key=; for OAuth, log in again)",
            provider=provider.name, auth_code=auth_code, status=status, body=data,
            headers=headers, request_id=request_id, details={"reason": reason})
    error = aipk.error_for_status(provider=provider.name, status=status, headers=headers,
                                  body=data, message=message, code=code, request_id=request_id,
                                  now=now)
    if isinstance(error, RateLimitError):
        delay = retry_delay(details)
        if delay is not None:
            error.retry_after = delay
        daily = [q for q in _quota_ids(details) if "PerDay" in q]
        if daily:
            error.code = DAILY_QUOTA_CODE
            error.retryable = False
            error.retry_after = seconds_until_daily_reset(now)
    elif status == 503 and message and "overloaded" in message.lower():
        return OverloadedError(error.message, provider=provider.name, status=status, body=data,
                               headers=headers, request_id=request_id, retryable=True,
                               code=code, retry_after=getattr(error, "retry_after", None))
    return error


def rate_limit_state_from_error(error: ProviderError, now: float) -> RateLimitState | None:
    """The ``not_before`` a RateLimitError's ``retry_after`` (from RetryInfo) implies.

    The rate-limit hook sees only headers, and Gemini puts its retry delay in the body; until
    the core feeds mapped errors to the tracker, callers can merge this state themselves.
    """
    if isinstance(error, RateLimitError) and error.retry_after is not None:
        return RateLimitState(not_before=now + error.retry_after, observed_at=now)
    return None


def parse_rate_limits(status: int, headers: Mapping[str, str], now: float) -> (
        RateLimitState | None):
    """Gemini sends no rate-limit headers; only a ``retry-after`` header (from a proxy, or the
    emulator) gives state. The RetryInfo in a 429 body is read by `map_error()`."""
    retry_after = aipk.parse_retry_after(headers, now)
    if retry_after is None:
        return None
    return RateLimitState(not_before=now + retry_after, observed_at=now)


# -- streaming -------------------------------------------------------------------------------

_RETRYABLE = {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED"}


def _stream_error(provider: Provider, error: Any) -> StreamError:
    if isinstance(error, Mapping):
        message = str(error.get("message") or "Gemini reported an error mid-stream")
        status = error.get("status")
        number = error.get("code")
        code = str(status) if status else (str(number) if number is not None else None)
        retryable = (status in _RETRYABLE
                     or (type(number) is int and (number >= 500 or number == 429)))
    else:
        message, code, retryable = str(error), None, False
    return StreamError(message, provider=provider.name, code=code, retryable=retryable,
                       body=error)


def candidate_count(request: ChatRequest) -> int:
    """How many candidates ``request`` asks for (``generationConfig.candidateCount`` in its
    ``extra``; 1 when unset or not a positive whole number)."""
    config = request.extra.get("generationConfig")
    count = config.get("candidateCount") if isinstance(config, Mapping) else None
    return count if type(count) is int and count > 1 else 1


class GeminiStreamDecoder:
    """``streamGenerateContent?alt=sse`` chunks (or Code Assist envelopes) to stream events.

    Each chunk is a whole GenerateContentResponse: text parts become TextDelta, ``thought``
    parts ReasoningDelta, each ``functionCall`` one complete ToolCallDelta (index, id, name and
    the JSON arguments); ``usageMetadata`` is a running snapshot, re-emitted when it changes;
    ``finishReason`` (or a ``promptFeedback.blockReason``) becomes the FinishEvent. Gemini sends
    no terminator event (no ``[DONE]``): the chunk carrying the finish reason is the last one,
    with the final ``usageMetadata``, and then the body ends. So that chunk is the terminator
    (``done``), and a body that ends before it was cut short. With ``candidates > 1``
    (``generationConfig.candidateCount``) the stream ends once that many candidates finished:
    one may finish after another.

    ``framing`` follows the provider's ``stream_framing`` option: ``"sse"``, or
    ``"json-array"`` for a stream requested without ``alt=sse`` (each array element is one
    chunk).
    """

    terminator = "a chunk with a finishReason"

    __slots__ = ("_calls", "_candidates", "_finished", "_loads", "_other_calls", "_provider",
                 "_usage", "done", "extra", "framing", "model", "response_id")

    def __init__(self, provider: Provider, candidates: int = 1) -> None:
        self._provider = provider
        self._candidates = candidates  # how many must finish before the stream is done
        self._finished: set[int] = set()
        #: the core framer this stream is read with (see `stream_framing()`)
        self.framing = stream_framing(provider)
        # the JSON-array framer parsed each element already; framing.loads reuses that parse
        self._loads = json.loads if self.framing == "sse" else framing.loads
        self._calls = 0
        self._other_calls: dict[int, int] | None = None  # candidate -> calls so far (n > 1)
        self._usage: Usage | None = None
        self.done = False
        self.response_id: str | None = None
        self.model: str | None = None
        self.extra: dict[str, Any] = {}

    def feed(self, event: ServerSentEvent) -> Sequence[StreamEvent]:
        chunk = self._loads(event.data)
        if type(chunk) is list and len(chunk) == 1:
            chunk = chunk[0]
        if type(chunk) is not dict:
            raise ValueError(f"expected a JSON object, got {type(chunk).__name__}")
        error = chunk.get("error")
        if error:
            raise _stream_error(self._provider, error)
        chunk = _unwrap(chunk)
        if ("candidates" not in chunk and "usageMetadata" not in chunk
                and "promptFeedback" not in chunk):
            raise ValueError(
                "not a GenerateContentResponse (no candidates, usageMetadata or "
                "promptFeedback); is base_url a Gemini endpoint?")
        if self.response_id is None:
            self.response_id = chunk.get("responseId")
            self.model = chunk.get("modelVersion")
        out: list[StreamEvent] = []
        candidate = _first_candidate(chunk)
        if candidate is not None:
            for part in _parts(candidate):
                if type(part) is dict:
                    self._part(part, out)
            raw = candidate.get("finishReason")
            if type(raw) is int and 0 < raw < len(_FINISH_NUMBERS):
                raw = _FINISH_NUMBERS[raw]
            if raw and isinstance(raw, str):
                self._finish(0)
                out.append(FinishEvent(reason=finish_reason(raw, self._calls > 0), raw=raw))
        else:
            blocked = _block_reason(chunk)
            if blocked is not None:
                raise prompt_blocked(self._provider, blocked, chunk)
        candidates = chunk.get("candidates")
        if (type(candidates) is list and len(candidates) > 1) or (
                candidate is None and candidates):
            self._others(chunk, out)
        meta = chunk.get("usageMetadata")
        if meta:
            usage = parse_usage(meta)
            if usage is not None and usage != self._usage:
                self._usage = usage
                out.append(UsageEvent(usage=usage))
        return out

    def _others(self, chunk: Mapping[str, Any], out: list[StreamEvent]) -> None:
        """Events of candidates 1, 2 … (``candidateCount > 1``), tagged with ``choice``."""
        counts = self._other_calls
        if counts is None:
            counts = self._other_calls = {}
        for which, candidate in _other_candidates(chunk):
            for part in _parts(candidate):
                if type(part) is not dict or part.get("thought"):
                    continue
                call = part.get("functionCall")
                if type(call) is dict and isinstance(call.get("name"), str):
                    index = counts.get(which, 0)
                    counts[which] = index + 1
                    out.append(ToolCallDelta(index=index, id=str(call.get("id") or
                                                                 f"call_{index}"),
                                             name=call["name"],
                                             arguments=_call_json(call.get("args")),
                                             choice=which))
                elif isinstance(part.get("text"), str) and part["text"]:
                    out.append(TextDelta(text=part["text"], choice=which))
            raw = candidate.get("finishReason")
            if raw and isinstance(raw, str):
                self._finish(which)
                out.append(FinishEvent(reason=finish_reason(raw, which in counts), raw=raw,
                                       choice=which))

    def _finish(self, which: int) -> None:
        if self._candidates == 1:
            self.done = True
            return
        self._finished.add(which)
        self.done = len(self._finished) >= self._candidates

    def _part(self, part: dict[str, Any], out: list[StreamEvent]) -> None:
        signature = part.get("thoughtSignature")
        call = part.get("functionCall")
        if call is not None:
            if type(call) is not dict or not isinstance(call.get("name"), str):
                raise ValueError(f"functionCall without a name: {call!r}")
            index = self._calls
            self._calls += 1
            call_id = call.get("id") or f"call_{index}"
            out.append(ToolCallDelta(index=index, id=str(call_id), name=call["name"],
                                     arguments=_call_json(call.get("args"))))
            if signature:
                self.extra.setdefault("functionCallSignatures", {})[str(call_id)] = signature
            return
        text = part.get("text")
        if text and isinstance(text, str):
            out.append(ReasoningDelta(text=text) if part.get("thought") else TextDelta(text=text))
        if signature:
            self.extra["thoughtSignature"] = signature

    def close(self) -> Sequence[StreamEvent]:
        return ()
