"""Anthropic's Messages API, as the real service speaks it (mounted at ``/anthropic``).

Endpoints below the mount: ``POST /v1/messages`` (a ``message`` JSON body, or the SSE event
sequence ``message_start``, ``content_block_start``, ``ping``, ``content_block_delta`` …,
``content_block_stop``, ``message_delta``, ending with the ``message_stop`` event), and
``GET /v1/models`` / ``GET /v1/models/{id}``.

Streams follow the captures in ``fixtures/anthropic/*.sse``: every event has an ``event:``
line, a ``ping`` follows the first block start, a tool_use block starts with ``input: {}`` and
an empty first ``input_json_delta``, ``message_delta`` carries the cumulative usage, and data
lines carry the whitespace padding before the closing brace that the live API adds. Auth is
``x-api-key`` (or ``Authorization: Bearer`` with the ``oauth-2025-04-20`` beta flag); a
request without ``anthropic-version`` is refused as the real API refuses it. Errors are
``{"type": "error", "error": {"type", "message"}}``, 529 is ``overloaded_error``, in-band
errors are ``event: error``; ``anthropic-ratelimit-{requests,tokens}-*`` headers carry RFC 3339
resets and ``request-id`` the request id.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from datetime import datetime, timezone
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
from ._structured import anthropic_structured
from ._types import RecordedRequest, Reply

_JSON_HEADERS = [("content-type", "application/json")]
_SSE_HEADERS = [("content-type", "text/event-stream; charset=utf-8"),
                ("cache-control", "no-cache")]
_STOP = b'event: message_stop\ndata: {"type":"message_stop"    }\n\n'
_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_OAUTH_BETA = "oauth-2025-04-20"

# status -> (error type, message), as the real API words them
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error",
          "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your per-minute rate limit "
          "(https://docs.claude.com/en/api/rate-limits); see the response headers for current "
          "usage. Please try again later."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}
_TYPES = frozenset(t for t, _ in _ERRORS.values())
# OpenAI-flavoured codes scripted through Fault -> the Anthropic error type
_CODE_TYPES = {"overloaded": "overloaded_error", "server_error": "api_error",
               "rate_limit_exceeded": "rate_limit_error", "timeout": "timeout_error"}
# the finish reasons a Reply may name (OpenAI's words) -> Anthropic's stop_reason
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                 "content_filter": "refusal"}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _error_type(code: str | None, status: int | None = None) -> str:
    if code in _TYPES:
        return code
    if code in _CODE_TYPES:
        return _CODE_TYPES[code]
    if status is not None and status in _ERRORS:
        return _ERRORS[status][0]
    return "api_error" if status is None or status >= 500 else "invalid_request_error"


def rfc3339(timestamp: float) -> str:
    """A Unix time as Anthropic writes resets: UTC, whole seconds (rounded up), ``Z``."""
    moment = datetime.fromtimestamp(math.ceil(timestamp), tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content
                       if isinstance(b, dict) and b.get("type") == "text"
                       and isinstance(b.get("text"), str))
    return ""


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def _tool_input(arguments: str) -> Any:
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@register
class AnthropicHandler(ProtocolHandler):
    """The Anthropic Messages protocol."""

    name = "anthropic"
    mount = "/anthropic"
    request_id_header = "request-id"

    def default_models(self) -> list[str]:
        return ["claude-opus-4-7", "claude-sonnet-4-6", "claude-sonnet-4-5",
                "claude-haiku-4-5-20251001"]

    def route(self, method: str, path: str) -> str | None:
        if path == "/v1/messages":
            return "chat" if method == "POST" else None
        if path == "/v1/messages/count_tokens":
            return "count_tokens" if method == "POST" else None
        if method == "GET" and (path == "/v1/models" or path.startswith("/v1/models/")):
            return "models"
        return None

    def check_auth(self, request: RecordedRequest, accepts: Callable[[str], bool]) -> (
            Rendered | None):
        headers = request.headers
        api_key = headers.get("x-api-key")
        if api_key is not None and accepts(api_key):
            return None
        bearer = headers.get("authorization")
        if bearer is not None and api_key is None:
            if _OAUTH_BETA not in headers.get("anthropic-beta", ""):
                return self.render_error(401, "OAuth authentication is currently not supported.")
            token = bearer[7:] if bearer.startswith("Bearer ") else None
            return None if token is not None and accepts(token) else self.render_error(
                401, "Invalid bearer token")
        if api_key is None:
            return self.render_error(401, "x-api-key header is required")
        return self.render_error(401)

    def credential_of(self, request: RecordedRequest) -> str | None:
        return request.headers.get("x-api-key") or super().credential_of(request)

    def parse_chat(self, request: RecordedRequest, path: str) -> ChatCall:
        if not request.headers.get("anthropic-version"):
            raise RequestError(400, "anthropic-version: header is required")
        try:
            data = json.loads(request.body)
        except ValueError:
            raise RequestError(400, "There was an error parsing the body of your request as "
                               "JSON") from None
        if not isinstance(data, dict):
            raise RequestError(400, "Input should be a valid dictionary")
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError(400, "model: Field required")
        max_tokens = data.get("max_tokens")
        if type(max_tokens) is not int or max_tokens < 1:
            raise RequestError(400, "max_tokens: Field required" if max_tokens is None
                               else "max_tokens: Input should be a valid positive integer")
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "messages: Field required" if messages is None
                               else "messages: at least one message is required")
        chars = len(_text_of(data.get("system")))
        user_text = ""
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ("user", "assistant"):
                raise RequestError(400, f"messages.{i}.role: Input should be 'user' or "
                                   f"'assistant'")
            if i == 0 and role != "user":
                raise RequestError(400, 'messages: first message must use the "user" role')
            text = _text_of(message.get("content"))
            chars += len(text)
            if role == "user" and text:
                user_text = text
        return ChatCall(model=model, stream=data.get("stream") is True, user_text=user_text,
                        prompt_tokens=max(1, chars // 4 + 3 * len(messages)),
                        structured=anthropic_structured(data))

    def answer(self, endpoint: str, path: str, request: RecordedRequest) -> Rendered:
        if endpoint == "count_tokens":
            return self._count_tokens(request)
        entries = [{"type": "model", "id": m, "display_name": m,
                    "created_at": "2025-09-29T00:00:00Z"} for m in self.models]
        if path == "/v1/models":
            return Rendered(200, list(_JSON_HEADERS), _dumps({
                "data": entries, "has_more": False,
                "first_id": entries[0]["id"] if entries else None,
                "last_id": entries[-1]["id"] if entries else None}))
        wanted = path[len("/v1/models/"):]
        for entry in entries:
            if entry["id"] == wanted:
                return Rendered(200, list(_JSON_HEADERS), _dumps(entry))
        return self.render_error(404, f"model: {wanted}")

    def _count_tokens(self, request: RecordedRequest) -> Rendered:
        """``{"input_tokens": N}``: `emulated_token_count()` of the system prompt, the
        messages' text and the tools' JSON; 400s for what the real endpoint refuses."""
        try:
            data = json.loads(request.body)
        except ValueError:
            return self.render_error(400, "There was an error parsing the body of your request "
                                     "as JSON")
        if not isinstance(data, dict) or not data.get("model"):
            return self.render_error(400, "model: Field required")
        for refused in ("max_tokens", "stream", "temperature"):
            if refused in data:
                return self.render_error(400, f"{refused}: Extra inputs are not permitted")
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.render_error(400, "messages: Field required")
        text = _text_of(data.get("system")) + "".join(
            _text_of(m.get("content")) for m in messages if isinstance(m, dict))
        tools = json.dumps(data.get("tools") or [], separators=(",", ":"))
        count = emulated_token_count(text, len(messages), tools if data.get("tools") else "")
        return Rendered(200, list(_JSON_HEADERS), _dumps({"input_tokens": count}))

    # -- replies ----------------------------------------------------------------------------

    def render_reply(self, reply: Reply, call: ChatCall, usage: tuple[int, int]) -> Rendered:
        mid = "msg_01" + secrets.token_hex(11)
        model = reply.model or call.model
        finish = reply.resolved_finish_reason
        stop_reason = "refusal" if reply.refusal is not None and not reply.tool_calls \
            else _STOP_REASONS.get(finish, finish)
        stop_details = ({"type": "refusal", "category": None, "explanation": reply.refusal}
                        if stop_reason == "refusal" else None)
        calls = [(c.id or "toolu_01" + secrets.token_hex(11), c.name, c.arguments_json)
                 for c in reply.tool_calls]
        cache = {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        if not call.stream:
            content: list[dict[str, Any]] = []
            if reply.text:
                content.append({"type": "text", "text": reply.text})
            content.extend({"type": "tool_use", "id": i, "name": n, "input": _tool_input(a)}
                           for i, n, a in calls)
            body: dict[str, Any] = {
                "id": mid, "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": stop_reason, "stop_sequence": None,
                "usage": {"input_tokens": usage[0], **cache, "output_tokens": usage[1],
                          "service_tier": "standard"}}
            if stop_details is not None:
                body["stop_details"] = stop_details
            return Rendered(200, list(_JSON_HEADERS), _dumps(body))

        counter = [0]

        def event(name: bytes, data: bytes) -> bytes:
            counter[0] += 1  # the live API pads data lines before the closing brace
            return (b"event: " + name + b"\ndata: " + data[:-1]
                    + b" " * (counter[0] * 7 % 16) + b"}\n\n")

        def start(index: int, block: dict[str, Any]) -> bytes:
            return event(b"content_block_start", b'{"type":"content_block_start","index":%d,'
                         b'"content_block":%b}' % (index, _dumps(block)))

        def delta(index: int, body: bytes) -> bytes:
            return event(b"content_block_delta", b'{"type":"content_block_delta","index":%d,'
                         b'"delta":%b}' % (index, body))

        def stop(index: int) -> bytes:
            return event(b"content_block_stop", b'{"type":"content_block_stop","index":%d}'
                         % index)

        events = [event(b"message_start", _dumps({"type": "message_start", "message": {
            "model": model, "id": mid, "type": "message", "role": "assistant", "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": usage[0], **cache, "output_tokens": 1,
                      "service_tier": "standard"}}}))]
        size = reply.chunk_size
        index = 0
        if reply.text or not calls:
            events += [start(0, {"type": "text", "text": ""}), _PING]
            events += [delta(0, b'{"type":"text_delta","text":%b}' % _dumps(p))
                       for p in _pieces(reply.text or "", size)]
            events.append(stop(0))
            index = 1
        for offset, (ident, name, arguments) in enumerate(calls):
            at = index + offset
            events.append(start(at, {"type": "tool_use", "id": ident, "name": name,
                                     "input": {}}))
            if at == 0:
                events.append(_PING)
            events += [delta(at, b'{"type":"input_json_delta","partial_json":%b}' % _dumps(p))
                       for p in ["", *_pieces(arguments, size)]]
            events.append(stop(at))
        events.append(event(b"message_delta", _dumps({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None,
                      **({"stop_details": stop_details} if stop_details else {})},
            "usage": {"input_tokens": usage[0], **cache, "output_tokens": usage[1]}})))
        return Rendered(200, list(_SSE_HEADERS), events=events, terminator=_STOP)

    # -- errors -----------------------------------------------------------------------------

    def render_error(self, status: int, message: str | None = None, *, code: str | None = None,
                     param: str | None = None, error_type: str | None = None,
                     retry_after: float | None = None) -> Rendered:
        kind = _error_type(error_type if error_type in _TYPES else code, status)
        text = message or _ERRORS.get(status, ("", f"HTTP {status}"))[1]
        return Rendered(status, list(_JSON_HEADERS), _dumps(
            {"type": "error", "error": {"type": kind, "message": text}}))

    def error_event(self, message: str, code: str | None) -> bytes:
        body = {"type": "error", "error": {"type": _error_type(code), "message": message}}
        return b"event: error\ndata: " + _dumps(body) + b"\n\n"

    def malformed_body(self, invalid_utf8: bool) -> bytes:
        if invalid_utf8:
            return (b'{"id":"msg_bad","type":"message","role":"assistant","content":[{"type":'
                    b'"text","text":"\xff\xfe\xfa"}],"stop_reason":"end_turn"}')
        return b'{"id":"msg_bad","type":"message","role":"assistant","content":[{"ty'

    def malformed_event(self, invalid_utf8: bool) -> bytes:
        if invalid_utf8:
            return (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                    b'"delta":{"type":"text_delta","text":"\xff\xfe\xfa"}}\n\n')
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","ind\n\n'

    def rate_limit_headers(self, snapshot: RateLimitSnapshot) -> list[tuple[str, str]]:
        reset = rfc3339(snapshot.reset_at)
        return [("anthropic-ratelimit-requests-limit", str(snapshot.requests_limit)),
                ("anthropic-ratelimit-requests-remaining", str(snapshot.requests_remaining)),
                ("anthropic-ratelimit-requests-reset", reset),
                ("anthropic-ratelimit-tokens-limit", str(snapshot.tokens_limit)),
                ("anthropic-ratelimit-tokens-remaining", str(snapshot.tokens_remaining)),
                ("anthropic-ratelimit-tokens-reset", reset)]
