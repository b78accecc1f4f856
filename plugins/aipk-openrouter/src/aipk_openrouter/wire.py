"""What OpenRouter adds to the OpenAI wire format; everything else is ``aipk_openai.wire``.

* Requests: ``HTTP-Referer`` / ``X-Title`` attribution headers, only from the user's options;
  ``model`` / ``models`` from a `ModelRouter` option; an assistant message's
  ``extra["reasoning_details"]`` is sent back on it (preserved reasoning).
* Responses: the upstream provider, the cost in credits, ``native_finish_reason`` and
  ``reasoning_details`` go into ``ChatResponse.extra``; ``reasoning_details`` also into the
  message's ``extra``, so appending ``response.message`` to the conversation sends them back.
* Errors: OpenRouter wraps upstream failures as ``{"error": {"message": "Provider returned
  error", "code": 429, "metadata": {"provider_name", "raw"}}}``; the message names the
  upstream and its words. A 429 without ``retry-after`` takes its wait from
  ``metadata.headers["X-RateLimit-Reset"]`` (epoch ms) when present. A 403 whose
  ``metadata`` names moderation ``reasons`` (input flagged by the model's moderation) is a
  ContentFilteredError, not a permission problem.
* Streams: in-chunk ``error`` objects raise StreamError (the OpenAI decoder does this) and the
  ``: OPENROUTER PROCESSING`` keep-alive comments are dropped by the core's SSE decoder; the
  upstream, the cost, ``native_finish_reason`` and the ``reasoning_details`` (fragments
  merged per index, the signature kept) go into ``extra`` as for a non-streamed answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

import aipk
from aipk import ChatRequest, ChatResponse, HttpRequest, Provider, StreamEvent
from aipk.errors import ConfigurationError, ContentFilteredError, ProviderError, RateLimitError
from aipk.sse import ServerSentEvent
from aipk_openai import wire as openai_wire
from aipk_openai.wire import OpenAIStreamDecoder

from .limits import parse_reset_ms
from .routing import router_of

__all__ = ["OpenRouterStreamDecoder", "attribution_headers", "build_chat_request",
           "map_error", "parse_chat_response"]

_ATTRIBUTION = (("referer", "http-referer"), ("title", "x-title"))
_RAW_LIMIT = 500


def attribution_headers(options: Mapping[str, Any]) -> dict[str, str]:
    """``http-referer`` / ``x-title`` from the ``referer`` / ``title`` options; no defaults."""
    headers: dict[str, str] = {}
    for option, header in _ATTRIBUTION:
        value = options.get(option)
        if value is None:
            continue
        text = str(value).strip()
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise ConfigurationError(
                f"the OpenRouter {option}= option contains a control character; it must be a "
                f"single line")
        if text:
            headers[header] = text
    return headers


def _with_reasoning_details(request: ChatRequest, built: HttpRequest) -> HttpRequest:
    """``built`` with each assistant message's ``extra["reasoning_details"]`` sent back on
    that message, as OpenRouter asks so a model can go on from its own reasoning."""
    if not any(m.role == "assistant" and m.extra.get("reasoning_details")
               for m in request.messages):
        return built
    body = dict(built.json)
    sent = list(body["messages"])
    offset = len(sent) - len(request.messages)  # a system message the plugin put first
    for index, message in enumerate(request.messages):
        details = message.extra.get("reasoning_details") if message.role == "assistant" else None
        if details:
            sent[offset + index] = {**sent[offset + index], "reasoning_details": details}
    body["messages"] = sent
    return attrs.evolve(built, json=body)


def build_chat_request(provider: Provider, request: ChatRequest, stream: bool) -> HttpRequest:
    """The OpenAI request plus attribution headers, the router's model order and each
    assistant turn's ``reasoning_details``."""
    built = _with_reasoning_details(
        request, openai_wire.build_chat_request(provider, request, stream))
    option = provider.options.get("router")
    if option is not None and "models" not in request.extra:
        router = router_of(option)
        built = attrs.evolve(built, json={**built.json, **router.body_fields()})
    headers = attribution_headers(provider.options)
    return built.merge_headers(headers) if headers else built


def _response_extra(data: Mapping[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    upstream = data.get("provider")
    if isinstance(upstream, str):
        extra["upstream_provider"] = upstream
    usage = data.get("usage")
    if isinstance(usage, Mapping):
        cost = usage.get("cost")
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            extra["cost"] = float(cost)
    return extra


def parse_chat_response(provider: Provider, request: ChatRequest, data: Any) -> ChatResponse:
    """The OpenAI parse, with OpenRouter's own fields in ``extra``."""
    response = openai_wire.parse_chat_response(provider, request, data)
    extra = {**response.extra, **_response_extra(data)}
    choice = data["choices"][0]
    native = choice.get("native_finish_reason")
    if isinstance(native, str):
        extra["native_finish_reason"] = native
    details = (choice.get("message") or {}).get("reasoning_details")
    message = response.message
    if details:
        extra["reasoning_details"] = details
        message = attrs.evolve(message, extra={**message.extra, "reasoning_details": details})
    cost = extra.get("cost")
    return attrs.evolve(response, extra=extra, message=message,
                        cost=cost if isinstance(cost, float) else response.cost)


def _merge_details(merged: list[dict[str, Any]], fragments: Any) -> None:
    """Streamed ``reasoning_details`` fragments folded into whole entries, one per ``index``
    (as the non-streamed answer gives them): ``text``, ``summary`` and ``data`` pieces are
    joined, any other field (``signature``, ``id``, ``format`` …) keeps its last non-empty
    value."""
    if not isinstance(fragments, list):
        return
    for fragment in fragments:
        if not isinstance(fragment, Mapping):
            continue
        index = fragment.get("index")
        entry = next((e for e in merged if e.get("index") == index
                      and e.get("type") == fragment.get("type")), None)
        if entry is None:
            merged.append(dict(fragment))
            continue
        for key, value in fragment.items():
            if key in ("text", "summary", "data") and isinstance(value, str):
                entry[key] = str(entry.get(key) or "") + value
            elif value or key not in entry:
                entry[key] = value


class OpenRouterStreamDecoder(OpenAIStreamDecoder):
    """The OpenAI decoder, also noting in ``extra`` the upstream provider, the cost,
    ``native_finish_reason`` and the ``reasoning_details`` (fragments merged per index), as
    the non-streamed answer has them.

    Only the first chunk and chunks that mention ``"cost"``, a ``native_finish_reason`` or
    ``reasoning_details`` are looked at twice.
    """

    __slots__ = ("_noted", "cost")

    def __init__(self, provider: Provider) -> None:
        super().__init__(provider)
        self._noted = False
        #: the cost OpenRouter reported (with the usage), the answer's ``cost``
        self.cost: float | None = None

    def feed(self, event: ServerSentEvent) -> Sequence[StreamEvent]:
        events = super().feed(event)
        data = event.data
        if data[:1] == "{" and (not self._noted or '"cost"' in data
                                or '"reasoning_details":[{' in data
                                or '"native_finish_reason":"' in data):
            self._noted = True
            chunk = json.loads(data)
            if isinstance(chunk, Mapping):
                self._note(chunk)
        return events

    def _note(self, chunk: Mapping[str, Any]) -> None:
        extra = self.extra
        extra.update(_response_extra(chunk))
        cost = extra.get("cost")
        if isinstance(cost, float):
            self.cost = cost
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
            return
        native = choice.get("native_finish_reason")
        if isinstance(native, str):
            extra["native_finish_reason"] = native
        delta = choice.get("delta")
        if isinstance(delta, Mapping) and delta.get("reasoning_details"):
            _merge_details(extra.setdefault("reasoning_details", []),
                           delta["reasoning_details"])


def _detail(error: Mapping[str, Any]) -> str | None:
    metadata = error.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    raw = metadata.get("raw")
    if raw is not None and not isinstance(raw, str):
        raw = json.dumps(raw, ensure_ascii=False)
    reasons = metadata.get("reasons")
    if not raw and isinstance(reasons, list) and reasons:
        raw = "flagged for " + ", ".join(str(r) for r in reasons)
    if not raw:
        return None
    if len(raw) > _RAW_LIMIT:
        raw = raw[:_RAW_LIMIT] + "…"
    upstream = metadata.get("provider_name")
    return f"({upstream}) {raw}" if isinstance(upstream, str) and upstream else raw


def _flagged(error: Mapping[str, Any]) -> bool:
    """A 403 from moderation: ``metadata`` names the ``reasons`` or the ``flagged_input``."""
    metadata = error.get("metadata")
    return isinstance(metadata, Mapping) and bool(metadata.get("reasons")
                                                  or metadata.get("flagged_input"))


def _reset_wait(error: Mapping[str, Any], now: float) -> float | None:
    metadata = error.get("metadata")
    headers = metadata.get("headers") if isinstance(metadata, Mapping) else None
    if not isinstance(headers, Mapping):
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    at = parse_reset_ms(lowered.get("x-ratelimit-reset"), now)
    return None if at is None else at - now


def map_error(provider: Provider, status: int, headers: Mapping[str, str], data: Any,
              request_id: str | None, now: float) -> ProviderError:
    """OpenRouter's error body as a typed error naming the upstream provider and its words."""
    error = data.get("error") if isinstance(data, Mapping) else None
    if not isinstance(error, Mapping):
        return openai_wire.map_error(provider, status, headers, data, request_id, now)
    message = str(error.get("message") or f"HTTP {status}")
    detail = _detail(error)
    if detail:
        message = f"{message}: {detail}"
    if status == 402:
        message += " (add credits at https://openrouter.ai/settings/credits or use a :free model)"
    raw_code = error.get("code") or error.get("type")
    if status == 403 and _flagged(error):
        return ContentFilteredError(
            f"{message} (the model's moderation flagged the input; rephrase it or pick a model "
            f"without moderation)", provider=provider.name, status=status, body=data,
            headers=headers, request_id=request_id, retryable=False,
            code=None if raw_code is None else str(raw_code))
    result = aipk.error_for_status(provider=provider.name, status=status, headers=headers,
                                   body=data, message=message,
                                   code=None if raw_code is None else str(raw_code),
                                   request_id=request_id, now=now)
    if isinstance(result, RateLimitError) and result.retry_after is None:
        result.retry_after = _reset_wait(error, now)
    return result
