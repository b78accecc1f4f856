"""Ollama's native API, as a real server speaks it (mounted at ``/ollama``).

Endpoints below the mount:

* ``POST /api/chat``: streams unless the body says ``"stream": false``. A stream is NDJSON
  (``application/x-ndjson``): one object per line, each ``{"model", "created_at", "message":
  {"role": "assistant", "content"}, "done": false}``, text in ``chunk_size`` pieces, each tool
  call whole in its own line; the terminator line has ``"done": true``, ``done_reason``,
  ``prompt_eval_count``, ``eval_count`` and the timings. A non-streamed answer is that final
  object with the whole message.
* ``GET /api/tags``: the models, with ``size`` and ``details``.

Auth: ``authorization: Bearer`` (Ollama Cloud; a local server needs none). Errors are
``{"error": "message"}`` with the status; an in-band error is an ``{"error": ...}`` line. Reply
mapping: finish ``stop``/``tool_calls`` → ``stop``, ``length`` → ``length``, anything else
passes through; a ``refusal`` is sent as text (Ollama has no refusal field). An unscripted
request with ``format`` (``"json"`` or a JSON Schema) is answered with JSON following it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ._protocol import ChatCall, ProtocolHandler, Rendered, RequestError, register
from ._ratelimit import RateLimitSnapshot
from ._structured import ollama_structured
from ._types import RecordedRequest, Reply

_JSON_HEADERS = [("content-type", "application/json; charset=utf-8")]
_NDJSON_HEADERS = [("content-type", "application/x-ndjson")]
_CREATED = "2025-08-20T13:48:24.316155Z"
_FINISH = {"stop": "stop", "tool_calls": "stop", "length": "length"}
_DEFAULT_MESSAGES = {400: "invalid request", 401: "unauthorized", 403: "forbidden",
                     404: "model not found, try pulling it first", 429: "too many requests",
                     500: "llama runner process has terminated", 503: "server busy"}


def _line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _text_of(content: Any) -> str:
    return content if isinstance(content, str) else ""


@register
class OllamaHandler(ProtocolHandler):
    """The Ollama native API (``/api/chat``, ``/api/tags``)."""

    name = "ollama"
    mount = "/ollama"

    def default_models(self) -> list[str]:
        return ["llama3.1:8b", "gemma3:1b", "gpt-oss:20b"]

    def route(self, method: str, path: str) -> str | None:
        if path == "/api/chat":
            return "chat" if method == "POST" else None
        if path == "/api/tags" and method == "GET":
            return "tags"
        return None

    def check_auth(self, request: RecordedRequest, accepts: Callable[[str], bool]) -> (
            Rendered | None):
        given = self.credential_of(request)
        if given is not None and accepts(given):
            return None
        return self.render_error(401)

    def parse_chat(self, request: RecordedRequest, path: str) -> ChatCall:
        try:
            data = json.loads(request.body)
        except ValueError:
            raise RequestError(400, "invalid character in request body") from None
        if not isinstance(data, dict):
            raise RequestError(400, "json: cannot unmarshal into api.ChatRequest")
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError(400, "model is required")
        messages = data.get("messages")
        if not isinstance(messages, list):
            raise RequestError(400, "messages is required")
        chars, user_text = 0, ""
        for message in messages:
            if not isinstance(message, dict):
                raise RequestError(400, "json: cannot unmarshal into api.Message")
            text = _text_of(message.get("content"))
            chars += len(text)
            if message.get("role") == "user" and text:
                user_text = text
        stream = data.get("stream", True) is not False
        return ChatCall(model=model, stream=stream, user_text=user_text,
                        prompt_tokens=max(1, chars // 4 + 4 * len(messages)),
                        structured=ollama_structured(data))

    def answer(self, endpoint: str, path: str, request: RecordedRequest) -> Rendered:
        models = [{"name": m, "model": m, "modified_at": "2025-06-28T01:12:36.619720716-04:00",
                   "size": 1_117_322_768, "digest": f"{abs(hash(m)):064x}"[:64],
                   "details": {"parent_model": "", "format": "gguf",
                               "family": m.split(":")[0], "families": [m.split(":")[0]],
                               "parameter_size": "1.8B", "quantization_level": "Q4_K_M"}}
                  for m in self.models]
        return Rendered(200, list(_JSON_HEADERS), json.dumps({"models": models}).encode())

    # -- replies ----------------------------------------------------------------------------

    def render_reply(self, reply: Reply, call: ChatCall, usage: tuple[int, int]) -> Rendered:
        model = reply.model or call.model
        raw = reply.resolved_finish_reason
        done_reason = _FINISH.get(raw, raw)
        text = reply.text if reply.refusal is None else reply.refusal
        calls = [{"id": spec.id or f"call_{i:08x}",
                  "function": {"index": i, "name": spec.name,
                               "arguments": _arguments(spec.arguments_json)}}
                 for i, spec in enumerate(reply.tool_calls)]
        prompt, completion = usage
        final: dict[str, Any] = {
            "model": model, "created_at": _CREATED,
            "message": {"role": "assistant", "content": ""},
            "done_reason": done_reason, "done": True,
            "total_duration": 171_946_792, "load_duration": 38_473_250,
            "prompt_eval_count": prompt, "prompt_eval_duration": 27_608_250,
            "eval_count": completion, "eval_duration": 105_611_917,
        }
        if not call.stream:
            final["message"] = {"role": "assistant", "content": text or ""}
            if calls:
                final["message"]["tool_calls"] = calls
            return Rendered(200, list(_JSON_HEADERS), _line(final)[:-1])
        size = reply.chunk_size
        pieces = [(text or "")[i:i + size] for i in range(0, len(text or ""), size)]
        events = [_line({"model": model, "created_at": _CREATED,
                         "message": {"role": "assistant", "content": piece}, "done": False})
                  for piece in pieces]
        events += [_line({"model": model, "created_at": _CREATED,
                          "message": {"role": "assistant", "content": "", "tool_calls": [c]},
                          "done": False})
                   for c in calls]
        return Rendered(200, list(_NDJSON_HEADERS), events=events, terminator=_line(final))

    # -- errors -----------------------------------------------------------------------------

    def render_error(self, status: int, message: str | None = None, *, code: str | None = None,
                     param: str | None = None, error_type: str | None = None,
                     retry_after: float | None = None) -> Rendered:
        text = message or _DEFAULT_MESSAGES.get(status, f"HTTP {status}")
        return Rendered(status, list(_JSON_HEADERS), json.dumps({"error": text}).encode())

    def error_event(self, message: str, code: str | None) -> bytes:
        return _line({"error": message})

    def malformed_body(self, invalid_utf8: bool) -> bytes:
        if invalid_utf8:
            return b'{"model":"m","message":{"role":"assistant","content":"\xff\xfe"},"done":true}'
        return b'{"model":"m","message":{"role":"assistant","cont'

    def malformed_event(self, invalid_utf8: bool) -> bytes:
        if invalid_utf8:
            return b'{"model":"m","message":{"role":"assistant","content":"\xff"},"done":false}\n'
        return b'{"model":"m","message":{"role":"assistant","cont\n'

    def rate_limit_headers(self, snapshot: RateLimitSnapshot) -> list[tuple[str, str]]:
        return []  # Ollama sends no rate-limit headers


def _arguments(text: str) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:
        return {"_raw": text}
