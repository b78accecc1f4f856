"""Request dispatch, protocol-neutral: routing, auth, rate limits, the reply queue and faults.

Runs on the emulator's event loop. For each request it picks the protocol handler by mount,
then turns the next scripted item (or the default reply) into bytes: the handler renders a
`Rendered`, this module frames it (``Content-Length`` body, or one HTTP
chunk per stream event) into an `Encoded` and applies faults by cutting or splicing events.
Only the request id and rate-limit headers are formatted per request; the sticky default reply
is encoded once per (model, stream, options, prompt size) and served from a cache.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._http import LAST_CHUNK, Connection, frame_chunk, header_lines, status_line
from ._protocol import ChatCall, ProtocolHandler, Rendered, RequestError
from ._ratelimit import RateLimiter
from ._structured import Structured, structured_reply
from ._types import Fault, RecordedRequest, Reply

_CACHE_LIMIT = 256
_FILLER = "This response was cut short on purpose by the emulator. "


@dataclass(frozen=True)
class Encoded:
    """A response as bytes: ``head`` lacks only the per-request headers and the blank line."""

    head: bytes
    payload: bytes
    tokens: int = 0
    abort: bool = False
    #: write ``payload[:pause_at]``, go silent for ``pause`` seconds, then write the rest
    pause_at: int = 0
    pause: float = 0.0
    #: after ``payload[:pause_at]``, write the rest one byte every ``trickle`` seconds
    trickle: float = 0.0


@dataclass
class KeyFault:
    """What `fail_key()` scripted for one key: each request gets one
    of ``faults`` (picked at random) with probability ``rate``, else is served normally."""

    faults: tuple[Fault, ...]
    rate: float = 1.0
    rng: random.Random = field(default_factory=random.Random)

    def pick(self) -> Fault | None:
        rng = self.rng
        if self.rate < 1.0 and rng.random() >= self.rate:
            return None
        faults = self.faults
        return faults[0] if len(faults) == 1 else rng.choice(faults)


@dataclass
class State:
    """What the user's thread scripts and the loop reads (single assignments, deque ops)."""

    queue: deque[Reply | Fault] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    record: bool = True
    accepts: Callable[[str], bool] | None = None
    key_faults: dict[str, KeyFault] = field(default_factory=dict)
    key_queues: dict[str, deque[Reply | Fault]] = field(default_factory=dict)
    limiter: RateLimiter | None = None
    sticky: tuple[Reply, dict[tuple[Any, ...], Encoded]] | None = None
    #: seconds before answering each request to a non-chat endpoint (``"models"`` …)
    endpoint_delays: dict[str, float] = field(default_factory=dict)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def encode(rendered: Rendered, extra: list[tuple[str, str]] | None = None, *, tokens: int = 0,
           events: list[bytes] | None = None, terminator: bool = True,
           final_chunk: bool = True, abort: bool = False) -> Encoded:
    """Frame ``rendered``; ``events`` overrides its events (faults), ``terminator`` and
    ``final_chunk`` drop the protocol's end event / the zero-length chunk."""
    headers = rendered.headers + (extra or [])
    chosen = rendered.events if events is None else events
    if chosen is None:
        payload = rendered.body
        headers.append(("content-length", str(len(payload))))
    else:
        headers.append(("transfer-encoding", "chunked"))
        parts = [frame_chunk(e) for e in chosen]
        if terminator and rendered.terminator:
            parts.append(frame_chunk(rendered.terminator))
        if final_chunk:
            parts.append(LAST_CHUNK)
        payload = b"".join(parts)
    return Encoded(status_line(rendered.status) + header_lines(headers), payload, tokens, abort)


def _filler(after_events: int) -> Reply:
    need = (max(after_events, 0) + 3) * 4
    return Reply(text=(_FILLER * (need // len(_FILLER) + 1))[:need], chunk_size=4)


class App:
    """Dispatches requests from `Connection` objects."""

    def __init__(self, handlers: list[ProtocolHandler], state: State) -> None:
        self.handlers = sorted(handlers, key=lambda h: len(h.mount), reverse=True)
        # Unknown paths get an error in OpenAI's shape (the most common protocol), whatever the
        # import order of the protocol modules.
        self.fallback = next((h for h in handlers if h.name == "openai"), handlers[0])
        self.state = state

    def _match(self, path: str) -> tuple[ProtocolHandler, str] | None:
        for handler in self.handlers:
            mount = handler.mount
            if path.startswith(mount) and (len(path) == len(mount) or path[len(mount)] == "/"):
                return handler, path[len(mount):]
        return None

    # -- entry points from the connection ---------------------------------------------------

    def bad_request(self, conn: Connection, status: int, message: str) -> None:
        """Answer a request the HTTP layer could not parse (the connection then closes)."""
        self._send(conn, self.fallback, encode(self.fallback.render_error(status, message)))

    def handle(self, conn: Connection, request: RecordedRequest) -> None:
        """Answer one complete request."""
        state = self.state
        if state.record:
            state.requests.append(request)
        matched = self._match(request.path)
        endpoint = matched[0].route(request.method, matched[1]) if matched else None
        if matched is None or endpoint is None:
            handler = matched[0] if matched else self.fallback
            message = f"Invalid URL ({request.method} {request.path})"
            self._send(conn, handler, encode(handler.render_error(404, message)))
            return
        handler, path = matched
        accepts = state.accepts
        if accepts is not None:
            denied = handler.check_auth(request, accepts)
            if denied is not None:
                self._send(conn, handler, encode(denied))
                return
        limiter = state.limiter
        if limiter is not None:
            exhausted = limiter.exhausted()
            if exhausted is not None:
                which, wait = exhausted
                error = handler.render_error(
                    429, f"Rate limit reached on {which} per window. "
                    f"Please try again in {wait:.3f}s.",
                    code="rate_limit_exceeded", error_type=which, retry_after=wait)
                self._send(conn, handler, encode(error, handler.retry_after_headers(wait)),
                           count=False)
                return
        if endpoint != "chat":
            self._send(conn, handler, encode(handler.answer(endpoint, path, request)),
                       delay=state.endpoint_delays.get(endpoint, 0.0))
            return
        try:
            call = handler.parse_chat(request, path)
        except RequestError as exc:
            rendered = handler.render_error(exc.status, exc.message, code=exc.code,
                                            param=exc.param)
            self._send(conn, handler, encode(rendered))
            return
        item: Reply | Fault | None = None
        if state.key_faults or state.key_queues:
            key = handler.credential_of(request) or ""
            own = state.key_queues.get(key)
            if own:
                item = own.popleft()
            elif key in state.key_faults:
                item = state.key_faults[key].pick()
        if item is None and state.queue:
            item = state.queue.popleft()
        delay = 0.0
        while isinstance(item, Fault) and item.kind == "slow_first_byte":
            delay += item.delay
            item = item.then
        if isinstance(item, Fault):
            encoded = self._fault(handler, call, item)
        elif item is not None:
            encoded = self._reply(handler, call, item)
        else:
            encoded = self._default(handler, call)
        self._send(conn, handler, encoded, delay=delay)

    # -- responses --------------------------------------------------------------------------

    def _send(self, conn: Connection, handler: ProtocolHandler, encoded: Encoded, *,
              delay: float = 0.0, count: bool = True) -> None:
        headers = [(handler.request_id_header, handler.new_request_id())]
        limiter = self.state.limiter
        if limiter is not None:
            snapshot = limiter.consume(1 if count else 0, encoded.tokens)
            headers += handler.rate_limit_headers(snapshot)
        if not conn.keep_alive:
            headers.append(("connection", "close"))
        head = encoded.head + header_lines(headers) + b"\r\n"
        conn.respond(head, encoded.payload, abort=encoded.abort, delay=delay,
                     pause_at=encoded.pause_at, pause=encoded.pause, trickle=encoded.trickle)

    def _reply(self, handler: ProtocolHandler, call: ChatCall, reply: Reply) -> Encoded:
        usage = reply.usage or (call.prompt_tokens, reply.completion_tokens())
        rendered = handler.render_reply(reply, call, usage)
        return encode(rendered, list(reply.headers.items()), tokens=usage[0] + usage[1])

    def _default(self, handler: ProtocolHandler, call: ChatCall) -> Encoded:
        sticky = self.state.sticky
        if sticky is None:
            if isinstance(call.structured, Structured):
                return self._reply(handler, call, structured_reply(call.structured))
            return self._reply(handler, call, Reply(text="echo: " + call.user_text))
        reply, cache = sticky
        key = (handler.name, call.model, call.stream, call.options,
               call.prompt_tokens if reply.usage is None else 0)
        encoded = cache.get(key)
        if encoded is None:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            encoded = cache[key] = self._reply(handler, call, reply)
        return encoded

    def _fault(self, handler: ProtocolHandler, call: ChatCall, fault: Fault) -> Encoded:
        if fault.kind == "status":
            extra: list[tuple[str, str]] = []
            if fault.retry_after is not None:
                extra.append(("retry-after", _number(fault.retry_after)))
            if fault.retry_after_ms is not None:
                extra.append(("retry-after-ms", _number(fault.retry_after_ms)))
            extra.extend(fault.headers)
            return encode(handler.render_error(fault.status_code, fault.message,
                                               code=fault.code,
                                               retry_after=fault.retry_after), extra)
        if fault.kind == "blocked":
            return encode(handler.render_blocked(call, fault.message or "SAFETY"))
        if fault.reply is not None:
            source = fault.reply
        elif fault.kind in ("stall", "trickle", "wrong_encoding"):  # the usual answer
            source = Reply(text="echo: " + call.user_text)
        else:
            source = _filler(fault.after_events)
        usage = source.usage or (call.prompt_tokens, source.completion_tokens())
        rendered = handler.render_reply(source, call, usage)
        events = rendered.events
        cut = fault.after_events
        if fault.kind == "reset_after_headers":
            head = encode(rendered, abort=True).head
            return Encoded(head, b"", 0, abort=True)
        if fault.kind in ("reset_mid_stream", "truncate"):
            reset = fault.kind == "reset_mid_stream"
            if events is not None:
                return encode(rendered, events=events[:cut], terminator=False,
                              final_chunk=not reset, abort=reset)
            half = rendered.body[:len(rendered.body) // 2]
            if reset:  # announce the whole body, send half, abort
                whole = encode(rendered, abort=True)
                return Encoded(whole.head, half, 0, abort=True)
            rendered.body = half
            return encode(rendered)
        if fault.kind == "stall":
            whole = encode(rendered, tokens=usage[0] + usage[1])
            if events is None:
                pause_at = len(rendered.body) // 2
            else:
                pause_at = sum(len(frame_chunk(e)) for e in events[:cut])
            return Encoded(whole.head, whole.payload, whole.tokens, pause_at=pause_at,
                           pause=fault.delay)
        if fault.kind == "trickle":
            whole = encode(rendered, tokens=usage[0] + usage[1])
            at = 0 if events is None else sum(len(frame_chunk(e)) for e in events[:cut])
            return Encoded(whole.head, whole.payload, whole.tokens, pause_at=at,
                           trickle=fault.delay)
        if fault.kind == "wrong_encoding":
            return encode(rendered, [("content-encoding", fault.message or "gzip")],
                          tokens=usage[0] + usage[1])
        if fault.kind in ("malformed_json", "invalid_utf8"):
            bad_utf8 = fault.kind == "invalid_utf8"
            if events is not None:
                return encode(rendered, events=[*events[:1], handler.malformed_event(bad_utf8)])
            rendered.body = handler.malformed_body(bad_utf8)
            return encode(rendered)
        # inband_error
        message = fault.message or "The server had an error while processing your request."
        if events is not None:
            return encode(rendered, events=[*events[:cut], handler.error_event(message,
                                                                                fault.code)],
                          terminator=False)
        error = handler.render_error(500, message, code=fault.code)
        rendered.body = error.body
        return encode(rendered)
