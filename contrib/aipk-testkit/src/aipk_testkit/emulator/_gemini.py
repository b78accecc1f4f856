"""Google Gemini ``generateContent``, as the real service speaks it (mounted at ``/gemini``).

Endpoints below the mount (the ``/v1beta`` segment is optional, so both a version-less base
URL like aipk's ``<base>/gemini`` + ``/models/...`` and an SDK's ``<base>/gemini`` +
``/v1beta/models/...`` work):

* ``POST [/v1beta]/models/{model}:generateContent``: one ``GenerateContentResponse`` (pretty
  printed, as Google sends it);
* ``POST [/v1beta]/models/{model}:streamGenerateContent?alt=sse``: one whole
  ``GenerateContentResponse`` per ``data:`` event, events ending in CRLF CRLF, no terminator
  (the stream ends at EOF); text in ``chunk_size`` pieces, each function call whole in its own
  event, ``usageMetadata`` on every event as a running snapshot, ``finishReason`` on the last.
  Without ``alt=sse`` the same chunks come back as one JSON array, streamed one element per
  HTTP chunk (separated by ``\n,\r\n``; the closing ``]`` is the terminator a truncation
  drops);
* ``GET [/v1beta]/models`` and ``GET [/v1beta]/models/{id}``;
* ``POST /v1internal:generateContent`` / ``:streamGenerateContent?alt=sse``: the Code Assist
  endpoint (OAuth + project), request ``{"model", "project", "request"}``, every response
  wrapped as ``{"response": ...}``.

Auth: ``x-goog-api-key`` or ``?key=`` (or ``authorization: Bearer`` as an OAuth token; the only
way for Code Assist). As the real API: no credential → 403 ``PERMISSION_DENIED``, a wrong key →
400 ``INVALID_ARGUMENT`` with ``ErrorInfo`` reason ``API_KEY_INVALID``. Errors are
``google.rpc`` bodies; a 429 carries ``QuotaFailure`` and, given ``retry_after``,
``RetryInfo.retryDelay`` (the ``retry-after`` header is added by the server). Gemini sends no
rate-limit headers. Reply mapping: finish ``stop``/``tool_calls`` → ``STOP``, ``length`` →
``MAX_TOKENS``, ``content_filter`` → ``SAFETY``, an upper-case word passes through as is; a
``refusal`` is a ``SAFETY`` finish with no content; ``ToolCallSpec.id`` becomes
``functionCall.id`` (Gemini normally sends none).
"""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Callable
from typing import Any

from ._protocol import (
    ChatCall,
    ProtocolHandler,
    Rendered,
    RequestError,
    emulated_token_count,
    register,
)
from ._ratelimit import RateLimitSnapshot
from ._structured import gemini_structured
from ._types import RecordedRequest, Reply

_VARY = ("vary", "Origin, X-Origin, Referer")
_JSON_HEADERS = [("content-type", "application/json; charset=UTF-8"), _VARY]
_SSE_HEADERS = [("content-type", "text/event-stream"), ("content-disposition", "attachment"),
                _VARY]
_CHAT = re.compile(r"(?:/v1(?:beta|alpha)?)?/(?:models|tunedModels)/(?P<model>[^/:]+)"
                   r":(?P<method>generateContent|streamGenerateContent)")
_COUNT = re.compile(r"(?:/v1(?:beta|alpha)?)?/models/(?P<model>[^/:]+):countTokens")
_CLOUDCODE = re.compile(r"/v1internal:(?P<method>generateContent|streamGenerateContent)")
_MODELS = re.compile(r"(?:/v1(?:beta|alpha)?)?/models(?:/(?P<model>[^/:]+))?")

# status -> (google.rpc status, message), as the real API words them
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 "
          "access token, login cookie or other valid authentication credential."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    409: ("ABORTED", "The operation was aborted."),
    429: ("RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and "
          "billing details."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report in "
          "https://developers.generativeai.google/guide/troubleshooting"),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}
# OpenAI-style fault codes (what the conformance suite scripts) -> google.rpc statuses
_CODES = {"overloaded": (503, "UNAVAILABLE"), "server_error": (500, "INTERNAL"),
          "rate_limit_exceeded": (429, "RESOURCE_EXHAUSTED"),
          "invalid_request_error": (400, "INVALID_ARGUMENT")}
_STATUS_CODES = {status: code for code, (status, _) in _ERRORS.items()}
_FINISH = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS",
           "content_filter": "SAFETY"}
_NO_KEY = ("Method doesn't allow unregistered callers (callers without established identity). "
           "Please use API Key or other form of API consumer identity to call this API.")
_BAD_KEY = "API key not valid. Please pass a valid API key."
_SAFETY_RATINGS = [{"category": c, "probability": p} for c, p in (
    ("HARM_CATEGORY_HATE_SPEECH", "NEGLIGIBLE"), ("HARM_CATEGORY_DANGEROUS_CONTENT", "HIGH"),
    ("HARM_CATEGORY_HARASSMENT", "NEGLIGIBLE"),
    ("HARM_CATEGORY_SEXUALLY_EXPLICIT", "NEGLIGIBLE"))]


def _event(value: Any) -> bytes:
    return b"data: " + json.dumps(value, separators=(",", ": ")).encode() + b"\r\n\r\n"


def _pretty(value: Any) -> bytes:
    return json.dumps(value, indent=2).encode()


def _duration(seconds: float) -> str:
    """A protobuf Duration in JSON form: ``"34s"``, ``"1.5s"``."""
    text = f"{max(0.0, seconds):.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def _text_of(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return "".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"),
                                                                                   str))


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def _args(arguments: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except ValueError:
        return {"_raw": arguments}  # a scripted malformed argument string, kept visible


@register
class GeminiHandler(ProtocolHandler):
    """The Gemini API (and its Code Assist variant)."""

    name = "gemini"
    mount = "/gemini"
    request_id_header = "x-goog-request-id"

    def default_models(self) -> list[str]:
        return ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite",
                "gemini-2.0-flash"]

    def route(self, method: str, path: str) -> str | None:
        if _CHAT.fullmatch(path) or _CLOUDCODE.fullmatch(path):
            return "chat" if method == "POST" else None
        if method == "GET" and _MODELS.fullmatch(path):
            return "models"
        if method == "POST" and _COUNT.fullmatch(path):
            return "count_tokens"
        return None

    def check_auth(self, request: RecordedRequest, accepts: Callable[[str], bool]) -> (
            Rendered | None):
        bearer = request.headers.get("authorization")
        if bearer is not None and bearer.startswith("Bearer ") and accepts(bearer[7:]):
            return None
        if request.path.endswith(("/v1internal:generateContent",
                                  "/v1internal:streamGenerateContent")):
            return self.render_error(401)
        given = self._api_key(request)
        if given is not None and accepts(given):
            return None
        if given is None and bearer is None:
            return self.render_error(403, _NO_KEY)
        if given is None:
            return self.render_error(401)
        return self._bad_key()

    @staticmethod
    def _api_key(request: RecordedRequest) -> str | None:
        given = request.headers.get("x-goog-api-key")
        if given is None:
            given = next((v for k, _, v in (p.partition("=") for p in request.query.split("&"))
                          if k == "key"), None)
        return given

    def credential_of(self, request: RecordedRequest) -> str | None:
        return super().credential_of(request) or self._api_key(request)

    def _bad_key(self) -> Rendered:
        body = {"error": {"code": 400, "message": _BAD_KEY, "status": "INVALID_ARGUMENT",
                          "details": [
                              {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                               "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                               "metadata": {"service": "generativelanguage.googleapis.com"}},
                              {"@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                               "locale": "en-US", "message": _BAD_KEY}]}}
        return Rendered(400, list(_JSON_HEADERS), _pretty(body))

    def parse_chat(self, request: RecordedRequest, path: str) -> ChatCall:
        try:
            data = json.loads(request.body)
        except ValueError:
            raise RequestError(400, "Invalid JSON payload received. Unexpected token.") from None
        if not isinstance(data, dict):
            raise RequestError(400, "Invalid JSON payload received. Expected an object.")
        cloud = _CLOUDCODE.fullmatch(path)
        if cloud is not None:
            method = cloud["method"]
            model = data.get("model")
            if not isinstance(model, str) or not model:
                raise RequestError(400, "model is required")
            if not isinstance(data.get("project"), str) or not data["project"]:
                raise RequestError(400, "project is required")
            inner = data.get("request")
            if not isinstance(inner, dict):
                raise RequestError(400, "request is required")
            data = inner
        else:
            match = _CHAT.fullmatch(path)
            assert match is not None  # route() only sends chat paths here
            method, model = match["method"], match["model"]
        contents = data.get("contents")
        if not isinstance(contents, list) or not contents:
            raise RequestError(400, "* GenerateContentRequest.contents: contents is not "
                               "specified\n")
        chars = len(_text_of((data.get("systemInstruction") or {}).get("parts")))
        user_text = ""
        for content in contents:
            if not isinstance(content, dict):
                raise RequestError(400, "Invalid value at 'contents': expected an object")
            text = _text_of(content.get("parts"))
            chars += len(text)
            if content.get("role", "user") == "user" and text:
                user_text = text
        streaming = method == "streamGenerateContent"
        sse = streaming and "alt=sse" in request.query.split("&")
        config = data.get("generationConfig")
        count = config.get("candidateCount") if isinstance(config, dict) else None
        return ChatCall(model=model, stream=sse, user_text=user_text,
                        prompt_tokens=max(1, chars // 4 + 2 * len(contents)),
                        options=(cloud is not None, streaming and not sse,
                                 count if type(count) is int and 1 <= count <= 8 else 1),
                        structured=gemini_structured(data))

    def answer(self, endpoint: str, path: str, request: RecordedRequest) -> Rendered:
        if endpoint == "count_tokens":
            return self._count_tokens(path, request)
        entries = [self._model(m) for m in self.models]
        match = _MODELS.fullmatch(path)
        wanted = match["model"] if match else None
        if wanted is None:
            return Rendered(200, list(_JSON_HEADERS), _pretty({"models": entries}))
        for entry in entries:
            if entry["name"] == f"models/{wanted}":
                return Rendered(200, list(_JSON_HEADERS), _pretty(entry))
        return self.render_error(404, f"models/{wanted} is not found for API version v1beta, "
                                 "or is not supported for get. Call ModelService.ListModels to "
                                 "see the list of available models and their supported "
                                 "methods.")

    def _count_tokens(self, path: str, request: RecordedRequest) -> Rendered:
        """``{"totalTokens": N, "promptTokensDetails": [...]}`` for ``contents`` or a whole
        ``generateContentRequest`` (`emulated_token_count()`); 404 for an unknown model."""
        match = _COUNT.fullmatch(path)
        model = match["model"] if match else ""
        if model not in self.models:
            return self.render_error(404, f"models/{model} is not found for API version "
                                     "v1beta, or is not supported for countTokens. Call "
                                     "ListModels to see the list of available models and "
                                     "their supported methods.")
        try:
            data = json.loads(request.body)
        except ValueError:
            return self.render_error(400, "Invalid JSON payload received.")
        inner = data.get("generateContentRequest", data) if isinstance(data, dict) else {}
        contents = inner.get("contents") if isinstance(inner, dict) else None
        if not isinstance(contents, list) or not contents:
            return self.render_error(400, "* CountTokensRequest.contents: contents is not "
                                     "specified")
        system = inner.get("systemInstruction")
        text = _text_of(system.get("parts") if isinstance(system, dict) else None) + "".join(
            _text_of(c.get("parts")) for c in contents if isinstance(c, dict))
        tools = inner.get("tools")
        count = emulated_token_count(text, len(contents), json.dumps(
            tools, separators=(",", ":")) if tools else "")
        return Rendered(200, list(_JSON_HEADERS), _pretty({
            "totalTokens": count,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": count}]}))

    @staticmethod
    def _model(model: str) -> dict[str, Any]:
        return {"name": f"models/{model}", "version": "001",
                "displayName": model.replace("-", " ").title(),
                "description": f"Emulated {model}", "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
                "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2,
                "thinking": True}

    # -- replies ----------------------------------------------------------------------------

    def render_reply(self, reply: Reply, call: ChatCall, usage: tuple[int, int]) -> Rendered:
        cloudcode, array = call.options[:2] if call.options else (False, False)
        asked = call.options[2] if len(call.options) > 2 else 1
        wanted = asked if isinstance(asked, int) else 1

        def others(streamed: bool) -> list[dict[str, Any]]:
            """Candidates 1, 2 …: the reply's text and `` #i``, stopped by MAX_TOKENS."""
            return [{"content": {"parts": [{"text": f"{reply.text or ''} #{i}"}],
                                 "role": "model"}, "finishReason": "MAX_TOKENS", "index": i}
                    for i in range(1, wanted)]
        model = reply.model or call.model
        response_id = secrets.token_urlsafe(17)[:23]
        raw = reply.resolved_finish_reason
        finish = _FINISH.get(raw, raw if raw.isupper() else "OTHER")
        pieces: list[dict[str, Any]] = []
        if reply.refusal is None:
            pieces.extend({"text": p} for p in _pieces(reply.text or "", reply.chunk_size))
            for spec in reply.tool_calls:
                call_part: dict[str, Any] = {"name": spec.name,
                                             "args": _args(spec.arguments_json)}
                if spec.id is not None:
                    call_part["id"] = spec.id
                pieces.append({"functionCall": call_part})
        else:
            finish = "SAFETY"
        prompt, completion = usage

        def chunk(parts: list[dict[str, Any]] | None, done: bool,
                  candidates: int) -> dict[str, Any]:
            candidate: dict[str, Any] = {}
            if parts is not None:
                candidate["content"] = {"parts": parts, "role": "model"}
            if done:
                candidate["finishReason"] = finish
                if finish == "SAFETY":
                    candidate["safetyRatings"] = _SAFETY_RATINGS
            candidate["index"] = 0
            meta: dict[str, Any] = {"promptTokenCount": prompt}
            if candidates:
                meta["candidatesTokenCount"] = candidates
            meta["totalTokenCount"] = prompt + candidates
            meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
            body = {"candidates": [candidate], "usageMetadata": meta, "modelVersion": model,
                    "responseId": response_id}
            return {"response": body} if cloudcode else body

        if not call.stream and not array:
            merged = self._merge(pieces) if pieces or reply.refusal is None else None
            whole = chunk(merged, True, completion)
            target = whole["response"] if cloudcode else whole
            target["candidates"].extend(others(False))
            return Rendered(200, list(_JSON_HEADERS), _pretty(whole))
        events: list[dict[str, Any]] = []
        if reply.refusal is not None:
            events.append(chunk(None, True, 0))
        elif not pieces:
            events.append(chunk([{"text": ""}], True, completion))
        else:
            count = len(pieces)
            for index, piece in enumerate(pieces, 1):
                last = index == count
                events.append(chunk([piece], last,
                                    completion if last else max(1, completion * index // count)))
        if wanted > 1:  # the other candidates, after choice 0's last chunk
            tail = events[-1]["response"] if cloudcode else events[-1]
            tail["candidates"].extend(others(True))
        if array:  # one HTTP chunk per element, separated as Google does; "]" ends it
            elements = [(b"[" if i == 0 else b"\n,\r\n") + _pretty(e)
                        for i, e in enumerate(events)]
            return Rendered(200, list(_JSON_HEADERS), events=elements, terminator=b"\n]")
        return Rendered(200, list(_SSE_HEADERS), events=[_event(e) for e in events],
                        terminator=b"")

    def render_blocked(self, call: ChatCall, reason: str) -> Rendered:
        """HTTP 200 with no candidates and ``promptFeedback.blockReason`` (as Gemini blocks a
        prompt), one SSE event when streamed."""
        body = {"promptFeedback": {"blockReason": reason},
                "usageMetadata": {"promptTokenCount": call.prompt_tokens,
                                  "totalTokenCount": call.prompt_tokens},
                "modelVersion": call.model, "responseId": secrets.token_urlsafe(17)[:23]}
        if call.stream:
            return Rendered(200, list(_SSE_HEADERS), events=[_event(body)], terminator=b"")
        return Rendered(200, list(_JSON_HEADERS), _pretty(body))

    @staticmethod
    def _merge(pieces: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Text pieces joined into one part (a non-streamed answer), calls kept apart."""
        text = "".join(p["text"] for p in pieces if "text" in p)
        calls = [p for p in pieces if "functionCall" in p]
        return ([{"text": text}] if text or not calls else []) + calls

    # -- errors -----------------------------------------------------------------------------

    def render_error(self, status: int, message: str | None = None, *, code: str | None = None,
                     param: str | None = None, error_type: str | None = None,
                     retry_after: float | None = None) -> Rendered:
        """A ``google.rpc`` error body; ``code`` may name the status (``RESOURCE_EXHAUSTED``)
        or an OpenAI-style code, and a 429 lists a quota violation plus, when
        ``retry_after`` is given, a ``RetryInfo``."""
        default_status, default_message = _ERRORS.get(
            status, ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION", f"HTTP {status}"))
        rpc_status = code if code in _STATUS_CODES else default_status
        error: dict[str, Any] = {"code": status, "message": message or default_message,
                                 "status": rpc_status}
        if status == 429:
            quota = ("GenerateRequestsPerDayPerProjectPerModel-FreeTier"
                     if error_type == "daily" else
                     "GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
            details: list[dict[str, Any]] = [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                    {"quotaMetric": "generativelanguage.googleapis.com/"
                                    "generate_content_free_tier_requests",
                     "quotaId": quota, "quotaValue": "15"}]},
                {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                    {"description": "Learn more about Gemini API quotas",
                     "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}]
            if retry_after is not None and math.isfinite(retry_after):
                details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                "retryDelay": _duration(retry_after)})
            error["details"] = details
        return Rendered(status, list(_JSON_HEADERS), _pretty({"error": error}))

    def error_event(self, message: str, code: str | None) -> bytes:
        status, rpc_status = _CODES.get(code or "", (500, "INTERNAL"))
        if code in _STATUS_CODES:
            status, rpc_status = _STATUS_CODES[code], code
        return _event({"error": {"code": status, "message": message, "status": rpc_status}})

    def malformed_body(self, invalid_utf8: bool) -> bytes:
        if invalid_utf8:
            return (b'{"candidates": [{"content": {"parts": [{"text": "\xff\xfe\xfa"}], '
                    b'"role": "model"}, "finishReason": "STOP", "index": 0}]}')
        return b'{\n  "candidates": [\n    {\n      "content": {\n        "par'

    def malformed_event(self, invalid_utf8: bool) -> bytes:
        if invalid_utf8:
            return (b'data: {"candidates": [{"content": {"parts": [{"text": "\xff\xfe"}],'
                    b'"role": "model"},"index": 0}]}\r\n\r\n')
        return b'data: {"candidates": [{"content": {"parts": [{"te\r\n\r\n'

    def rate_limit_headers(self, snapshot: RateLimitSnapshot) -> list[tuple[str, str]]:
        return []  # Gemini sends no rate-limit headers; a 429 body says when to retry

