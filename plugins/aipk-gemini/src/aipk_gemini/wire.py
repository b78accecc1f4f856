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
import mimetypes
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import attrs

import aipk
from aipk import (
    ChatRequest,
    ChatResponse,
    Choice,
    FinishReason,
    HttpRequest,
    Message,
    ModelInfo,
    Provider,
    ToolCall,
    Usage,
    json_count,
)
from aipk.errors import (
    ConfigurationError,
    ContentFilteredError,
    InvalidRequestError,
    ResponseError,
)

from .parts import other_part
from .schema import to_gemini_schema
from .status import (
    DAILY_QUOTA_CODE,
    _stream_error,
    map_error,
    parse_rate_limits,
    rate_limit_state_from_error,
    retry_delay,
    seconds_until_daily_reset,
)

__all__ = [
    "CLOUDCODE_BASE_URL",
    "DAILY_QUOTA_CODE",
    "build_chat_body",
    "build_chat_request",
    "build_models_request",
    "finish_reason",
    "map_error",
    "parse_chat_response",
    "parse_models",
    "parse_rate_limits",
    "parse_usage",
    "rate_limit_state_from_error",
    "raw_finish_reason",
    "retry_delay",
    "seconds_until_daily_reset",
    "to_cloudcode",
]

#: The Code Assist endpoint used for OAuth with a ``project_id`` (what gemini-cli talks to).
CLOUDCODE_BASE_URL = "https://cloudcode-pa.googleapis.com/v1internal"

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
    "IMAGE_RECITATION": _FILTERED,
    "MALFORMED_FUNCTION_CALL": FinishReason.ERROR,
    "UNEXPECTED_TOOL_CALL": FinishReason.ERROR,
    "TOO_MANY_TOOL_CALLS": FinishReason.ERROR,
    "MISSING_THOUGHT_SIGNATURE": FinishReason.ERROR,
}
#: finishReason as a number (a request with ``$alt=json;enum-encoding=int``): the
#: ``Candidate.FinishReason`` enum of google.ai.generativelanguage.v1beta, where OTHER is 5 and
#: LANGUAGE 6 (not in declaration order)
_FINISH_NUMBERS = ("FINISH_REASON_UNSPECIFIED", "STOP", "MAX_TOKENS", "SAFETY", "RECITATION",
                   "OTHER", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
                   "MALFORMED_FUNCTION_CALL", "IMAGE_SAFETY", "UNEXPECTED_TOOL_CALL")
#: ``promptFeedback.blockReason`` as a number, same enum encoding
_BLOCK_NUMBERS = ("BLOCK_REASON_UNSPECIFIED", "SAFETY", "OTHER", "BLOCKLIST",
                  "PROHIBITED_CONTENT", "IMAGE_SAFETY")


def raw_finish_reason(value: Any) -> str | None:
    """``finishReason`` as Gemini's word: the string itself, the enum's name for a number
    (``enum-encoding=int``; a number newer than this table stays its digits), None when
    unset (absent, empty, or ``0``, FINISH_REASON_UNSPECIFIED)."""
    if type(value) is str:
        return value or None
    if type(value) is int and value > 0:
        return _FINISH_NUMBERS[value] if value < len(_FINISH_NUMBERS) else str(value)
    return None
#: A candidate's record of its sources, kept whole in ``ChatResponse.extra``: Google Search
#: grounding, recitation citations, the URL context tool's fetched URLs
SOURCE_METADATA = ("groundingMetadata", "citationMetadata", "urlContextMetadata")
#: ``stream_framing`` option values: ``alt=sse`` events, or one JSON array (no ``alt``)
STREAM_FRAMINGS = ("sse", "json-array")


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


def parse_usage(meta: Any) -> Usage | None:
    """Usage from ``usageMetadata``; None when it holds no token counts at all."""
    if not isinstance(meta, Mapping):
        return None
    prompt = json_count(meta.get("promptTokenCount"))
    candidates = json_count(meta.get("candidatesTokenCount"))
    thoughts = json_count(meta.get("thoughtsTokenCount"))
    tool_prompt = json_count(meta.get("toolUsePromptTokenCount"))
    total = json_count(meta.get("totalTokenCount"))
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
        cache_read_tokens=json_count(meta.get("cachedContentTokenCount")),
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
            calls.append(ToolCall(id=call.get("id") or f"call_{len(calls)}", name=_name(call),
                                  arguments=_call_json(call.get("args"))))
        elif isinstance(part.get("text"), str):
            text.append(part["text"])
    raw = raw_finish_reason(candidate.get("finishReason"))
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
        if type(reason) is int and reason > 0:  # enum-encoding=int
            reason = _BLOCK_NUMBERS[reason] if reason < len(_BLOCK_NUMBERS) else str(reason)
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
    others: list[Mapping[str, Any]] = []
    text_signature: str | None = None
    for part in _parts(candidate):
        if not isinstance(part, Mapping):
            continue
        signature = part.get("thoughtSignature")
        call = part.get("functionCall")
        if isinstance(call, Mapping):
            call_id = call.get("id") or f"call_{len(calls)}"
            calls.append(ToolCall(id=call_id, name=_name(call),
                                  arguments=_call_json(call.get("args"))))
            if signature:
                signatures[call_id] = signature
            continue
        piece = part.get("text")
        if isinstance(piece, str):
            (reasoning if part.get("thought") else text).append(piece)
        elif piece is None and other_part(part):
            others.append(part)
        if signature:
            text_signature = signature
    if text_signature:
        extra["thoughtSignature"] = text_signature
    if signatures:
        extra["functionCallSignatures"] = signatures
    message_extra = dict(extra)
    if others:
        extra["other_parts"] = others
    raw = raw_finish_reason(candidate.get("finishReason"))
    reason = finish_reason(raw, bool(calls)) if raw else None
    if candidate.get("finishMessage"):
        extra["finishMessage"] = candidate["finishMessage"]
    for key in SOURCE_METADATA:
        if candidate.get(key):
            extra[key] = candidate[key]
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
            context_window=json_count(item.get("inputTokenLimit")) or base.context_window,
            max_output_tokens=json_count(item.get("outputTokenLimit")) or base.max_output_tokens,
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


def __getattr__(name: str) -> Any:
    """The stream decoder lives in `aipk_gemini.stream`; ``wire.GeminiStreamDecoder`` and
    ``wire.candidate_count`` still find it."""
    if name in ("GeminiStreamDecoder", "candidate_count"):
        from . import stream

        return getattr(stream, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _name(call: Mapping[str, Any]) -> str:
    """A ``functionCall``'s name; ValueError (a ResponseError to the caller) when it has
    none, since a call that names no tool cannot be run."""
    name = call.get("name")
    if not name or type(name) is not str:
        raise ValueError(f"functionCall {call.get('id')!r} has no tool name (name: {name!r}); "
                         f"the answer asks for a tool without saying which")
    return name
