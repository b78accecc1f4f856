"""OpenAI chat completions, as the real service speaks it (mounted at ``/v1``).

Endpoints: ``POST /v1/chat/completions`` (``chat.completion`` JSON, or ``chat.completion.chunk``
SSE ending in ``data: [DONE]``), ``GET /v1/models`` and ``GET /v1/models/{id}``.

Streams follow the captures in ``fixtures/openai/pai-chat-stream-*.json``: a first chunk with
the role (and, for a tool-call-only reply, the first tool call's header), ``chunk_size``
character deltas, tool-call ``id``/``type``/``name`` only in the first delta of each index,
a finish chunk with an empty delta, then (only with ``stream_options.include_usage``) a usage
chunk with ``choices: []`` while every other chunk carries ``"usage": null``. Chunks carry
``service_tier``, ``system_fingerprint`` and ``obfuscation`` (unless
``stream_options.include_obfuscation`` is false). Each chunk is built from a byte template plus
``json.dumps`` of its delta only, so a 20,000-chunk stream encodes in milliseconds.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from ._protocol import ChatCall, ProtocolHandler, Rendered, RequestError, register
from ._ratelimit import RateLimitSnapshot
from ._structured import openai_structured
from ._types import RecordedRequest, Reply

_FINGERPRINT = "fp_" + secrets.token_hex(5)
_OBFUSCATION = secrets.token_hex(24)
_JSON_HEADERS = [("content-type", "application/json"), ("openai-version", "2020-10-01"),
                 ("openai-processing-ms", "1")]
_SSE_HEADERS = [("content-type", "text/event-stream; charset=utf-8"),
                ("openai-version", "2020-10-01"), ("openai-processing-ms", "1")]
_DONE = b"data: [DONE]\n\n"

# status -> (type, code, message), as the real API words them
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key",
          "Incorrect API key provided. You can find your API key at "
          "https://platform.openai.com/account/api-keys."),
    403: ("invalid_request_error", None, "You are not allowed to perform this request."),
    404: ("invalid_request_error", None, "The requested resource was not found."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. "
          "Please try again later."),
    500: ("server_error", None,
          "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
    529: ("server_error", "overloaded", "The server is overloaded, please try again later."),
}
_BAD_JSON = ("We could not parse the JSON body of your request. (HINT: This likely means you "
             "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
             "but what was sent was not valid JSON.)")


def go_duration(seconds: float) -> str:
    """A duration as Go prints it, to the millisecond: ``0s``, ``12ms``, ``1.5s``, ``6m0s``."""
    ms = max(0, round(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0").rstrip(".") if frac else str(whole)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def echo_key(key: str) -> str:
    """The key as OpenAI's 401 echoes it: the first 8 and last 4 characters with stars between
    (a shorter key shows less of its start; a very short one only stars)."""
    shown = 8 if len(key) >= 20 else 3 if len(key) >= 10 else 0
    tail = 4 if shown else 0
    return key[:shown] + "*" * (len(key) - shown - tail) + key[len(key) - tail:]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def _choices(n: Any) -> int:
    """How many choices a request's ``n`` asks for (1 when absent or not a count)."""
    return n if type(n) is int and 1 <= n <= 128 else 1


@register
class OpenAIHandler(ProtocolHandler):
    """The OpenAI chat completions protocol."""

    name = "openai"
    mount = "/v1"

    def default_models(self) -> list[str]:
        return ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3-mini"]

    def route(self, method: str, path: str) -> str | None:
        if path == "/chat/completions":
            return "chat" if method == "POST" else None
        if method == "GET" and (path == "/models" or path.startswith("/models/")):
            return "models"
        return None

    def check_auth(self, request: RecordedRequest, accepts: Callable[[str], bool]) -> (
            Rendered | None):
        given = request.headers.get("authorization")
        if given is not None and given.startswith("Bearer ") and accepts(given[7:]):
            return None
        if not given:
            return self.render_error(401, "You didn't provide an API key. You need to provide "
                                     "your API key in an Authorization header using Bearer "
                                     "auth (i.e. Authorization: Bearer YOUR_KEY).")
        key = given[7:] if given.startswith("Bearer ") else given
        return self.render_error(401, f"Incorrect API key provided: {echo_key(key)}. You can "
                                 f"find your API key at "
                                 f"https://platform.openai.com/account/api-keys.")

    def parse_chat(self, request: RecordedRequest, path: str) -> ChatCall:
        try:
            data = json.loads(request.body)
        except ValueError:
            raise RequestError(400, _BAD_JSON) from None
        if not isinstance(data, dict):
            raise RequestError(400, _BAD_JSON)
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError(400, "you must provide a model parameter")
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "Missing required parameter: 'messages'.",
                               code="missing_required_parameter", param="messages")
        stream = data.get("stream") is True
        options = data.get("stream_options")
        if options is not None and not stream:
            raise RequestError(400, "The 'stream_options' parameter is only allowed when "
                               "'stream' is enabled.", param="stream_options")
        opts = options if isinstance(options, dict) else {}
        chars = 0
        user_text = ""
        for message in messages:
            if isinstance(message, dict):
                text = _content_text(message.get("content"))
                chars += len(text)
                if message.get("role") == "user":
                    user_text = text
        return ChatCall(model=model, stream=stream, user_text=user_text,
                        prompt_tokens=max(1, chars // 4 + 3 * len(messages)),
                        options=(opts.get("include_usage") is True,
                                 opts.get("include_obfuscation") is not False,
                                 _choices(data.get("n"))),
                        structured=openai_structured(data))

    def answer(self, endpoint: str, path: str, request: RecordedRequest) -> Rendered:
        entries = [{"id": m, "object": "model", "created": 1686935002, "owned_by": "system"}
                   for m in self.models]
        if path == "/models":
            return Rendered(200, list(_JSON_HEADERS),
                            _dumps({"object": "list", "data": entries}))
        wanted = path[len("/models/"):]
        for entry in entries:
            if entry["id"] == wanted:
                return Rendered(200, list(_JSON_HEADERS), _dumps(entry))
        return self.render_error(404, f"The model `{wanted}` does not exist or you do not have "
                                 "access to it.", code="model_not_found")

    # -- replies ----------------------------------------------------------------------------

    def render_reply(self, reply: Reply, call: ChatCall, usage: tuple[int, int]) -> Rendered:
        """``reply`` as choice 0; with ``n > 1`` in the request, choice i answers the reply's
        text followed by `` #i`` and stops for ``length`` (so each choice is distinct)."""
        cid = "chatcmpl-" + secrets.token_hex(15)[:29]
        asked = call.options[2] if len(call.options) > 2 else 1
        choices = asked if isinstance(asked, int) else 1
        created = int(time.time())
        model = reply.model or call.model
        calls = [(c.id or "call_" + secrets.token_hex(12), c.name, c.arguments_json)
                 for c in reply.tool_calls]
        usage_obj = {
            "prompt_tokens": usage[0], "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}
        if not call.stream:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": reply.text if reply.text is not None or calls or reply.refusal
                else "",
                "refusal": reply.refusal, "annotations": []}
            if calls:
                message["tool_calls"] = [
                    {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                    for i, n, a in calls]
            others: list[dict[str, Any]] = [{"index": i, "message": {"role": "assistant",
                                               "content": f"{reply.text or ''} #{i}",
                                               "refusal": None, "annotations": []},
                       "logprobs": None, "finish_reason": "length"}
                      for i in range(1, choices)]
            body = {"id": cid, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "message": message, "logprobs": None,
                                 "finish_reason": reply.resolved_finish_reason}, *others],
                    "usage": usage_obj, "service_tier": "default",
                    "system_fingerprint": _FINGERPRINT}
            return Rendered(200, list(_JSON_HEADERS), _dumps(body))
        include_usage, obfuscate = call.options[:2]
        base = (f'data: {{"id":"{cid}","object":"chat.completion.chunk","created":{created},'
                f'"model":{json.dumps(model)},"service_tier":"default",'
                f'"system_fingerprint":"{_FINGERPRINT}","choices":').encode()
        head = base + b'[{"index":0,"delta":'
        usage_null = b',"usage":null' if include_usage else b""
        counter = [0]

        def close() -> bytes:
            counter[0] += 1
            if not obfuscate:
                return b"}\n\n"
            n = counter[0]
            start = n % 24
            return b',"obfuscation":"%s"}\n\n' % _OBFUSCATION[start:start + 2 + n * 7 % 13].encode()

        def event(delta: bytes, finish: bytes = b"null") -> bytes:
            return (head + delta + b',"logprobs":null,"finish_reason":' + finish + b"}]"
                    + usage_null + close())

        def header(index: int, ident: str, name: str) -> bytes:
            return _dumps({"index": index, "id": ident, "type": "function",
                           "function": {"name": name, "arguments": ""}})

        events: list[bytes] = []
        text = reply.text
        if reply.refusal is not None and text is None:
            events.append(event(b'{"role":"assistant","content":null,"refusal":""}'))
        elif calls and text is None:
            events.append(event(b'{"role":"assistant","content":null,"tool_calls":['
                                + header(0, *calls[0][:2]) + b'],"refusal":null}'))
        else:
            events.append(event(b'{"role":"assistant","content":"","refusal":null}'))
        size = reply.chunk_size
        events.extend(event(b'{"content":%b}' % _dumps(p)) for p in _pieces(text or "", size))
        events.extend(event(b'{"refusal":%b}' % _dumps(p))
                      for p in _pieces(reply.refusal or "", size))
        for index, (ident, name, arguments) in enumerate(calls):
            if index or text is not None or reply.refusal is not None:
                events.append(event(b'{"tool_calls":[%b]}' % header(index, ident, name)))
            events.extend(
                event(b'{"tool_calls":[{"index":%d,"function":{"arguments":%b}}]}'
                      % (index, _dumps(p))) for p in _pieces(arguments, size))
        events.append(event(b"{}", _dumps(reply.resolved_finish_reason)))
        for i in range(1, choices):
            head = base + b'[{"index":%d,"delta":' % i
            events.append(event(b'{"role":"assistant","content":"","refusal":null}'))
            events.extend(event(b'{"content":%b}' % _dumps(p))
                          for p in _pieces(f"{text or ''} #{i}", size))
            events.append(event(b"{}", b'"length"'))
        if include_usage:
            events.append(base + b'[],"usage":' + _dumps(usage_obj) + close())
        return Rendered(200, list(_SSE_HEADERS), events=events, terminator=_DONE)

    # -- errors -----------------------------------------------------------------------------

    def _error_obj(self, status: int, message: str | None, code: str | None,
                   param: str | None, error_type: str | None) -> dict[str, Any]:
        default_type, default_code, default_message = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None,
                     f"HTTP {status}"))
        return {"error": {"message": message or default_message,
                          "type": error_type or default_type, "param": param,
                          "code": code if code is not None else default_code}}

    def render_error(self, status: int, message: str | None = None, *, code: str | None = None,
                     param: str | None = None, error_type: str | None = None,
                     retry_after: float | None = None) -> Rendered:
        return Rendered(status, list(_JSON_HEADERS),
                        _dumps(self._error_obj(status, message, code, param, error_type)))

    def error_event(self, message: str, code: str | None) -> bytes:
        obj = {"error": {"message": message, "type": "server_error", "param": None,
                         "code": code}}
        return b"data: " + _dumps(obj) + b"\n\n"

    def malformed_body(self, invalid_utf8: bool) -> bytes:
        if invalid_utf8:
            return (b'{"id":"chatcmpl-bad","object":"chat.completion","choices":[{"index":0,'
                    b'"message":{"role":"assistant","content":"\xff\xfe\xfa"},'
                    b'"finish_reason":"stop"}]}')
        return b'{"id":"chatcmpl-bad","object":"chat.completion","choices":[{"index":0,"mess'

    def malformed_event(self, invalid_utf8: bool) -> bytes:
        if invalid_utf8:
            return (b'data: {"id":"chatcmpl-bad","object":"chat.completion.chunk","choices":'
                    b'[{"index":0,"delta":{"content":"\xff\xfe\xfa"},"finish_reason":null}]}\n\n')
        return b'data: {"id":"chatcmpl-bad","object":"chat.completion.chunk","choices":[{"ind\n\n'

    def retry_after_headers(self, seconds: float) -> list[tuple[str, str]]:
        return [*super().retry_after_headers(seconds),
                ("retry-after-ms", str(max(0, round(seconds * 1000))))]

    def rate_limit_headers(self, snapshot: RateLimitSnapshot) -> list[tuple[str, str]]:
        reset = go_duration(snapshot.reset_in)
        return [("x-ratelimit-limit-requests", str(snapshot.requests_limit)),
                ("x-ratelimit-limit-tokens", str(snapshot.tokens_limit)),
                ("x-ratelimit-remaining-requests", str(snapshot.requests_remaining)),
                ("x-ratelimit-remaining-tokens", str(snapshot.tokens_remaining)),
                ("x-ratelimit-reset-requests", reset),
                ("x-ratelimit-reset-tokens", reset)]

