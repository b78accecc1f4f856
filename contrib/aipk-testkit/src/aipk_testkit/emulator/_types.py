"""The scripting vocabulary, shared by every protocol: replies, tool calls, faults, records.

These are plain values. They say *what* the model answers (`Reply`) or *what goes
wrong* (`Fault`); each protocol handler decides how that looks on its wire.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["status", "slow_first_byte", "reset_after_headers", "reset_mid_stream",
                    "truncate", "malformed_json", "invalid_utf8", "inband_error", "stall",
                    "blocked", "trickle", "wrong_encoding"]


@dataclass
class ToolCallSpec:
    """One tool call the model makes.

    ``id`` stays ``None`` unless given: each protocol handler's ``render_reply`` makes one up
    in its protocol's style when it is ``None`` (the OpenAI handler: ``call_<hex>``). A
    third-party handler must do the same (``spec.id or f"call_{index}"``): the conformance
    suite expects every tool call of an answer to carry its own id.
    """

    name: str
    arguments: str | Mapping[str, Any] = "{}"
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON text the wire carries."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"))


@dataclass
class Reply:
    """A scripted model answer; serves streaming and non-streaming requests alike.

    ``finish_reason`` defaults to ``"tool_calls"`` when there are tool calls, else ``"stop"``;
    ``usage`` is ``(prompt_tokens, completion_tokens)``, a rough count when ``None``;
    ``chunk_size`` is the number of characters per streamed text / argument delta;
    ``model`` defaults to the request's model; ``headers`` are added to the response.
    """

    text: str | None = None
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    refusal: str | None = None
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    chunk_size: int = 4
    model: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")

    @property
    def resolved_finish_reason(self) -> str:
        """``finish_reason``, or the one a real model would give for this content."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"

    def completion_tokens(self) -> int:
        """A rough completion token count (about four characters a token)."""
        chars = len(self.text or "") + len(self.refusal or "")
        chars += sum(len(c.name) + len(c.arguments_json) for c in self.tool_calls)
        return max(1, (chars + 3) // 4)


@dataclass(frozen=True)
class Fault:
    """A scripted failure; build one with the static constructors, then ``enqueue`` it."""

    kind: FaultKind
    status_code: int = 200
    retry_after: float | None = None
    retry_after_ms: float | None = None
    delay: float = 0.0
    after_events: int = 3
    then: Reply | Fault | None = None
    message: str | None = None
    code: str | None = None
    reply: Reply | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def status(status: int, *, retry_after: float | None = None,
               retry_after_ms: float | None = None, message: str | None = None,
               code: str | None = None,
               headers: Mapping[str, str] | None = None) -> Fault:
        """An HTTP error ``status`` with an error body in the protocol's shape.

        ``retry_after`` / ``retry_after_ms`` add the ``retry-after`` / ``retry-after-ms`` headers;
        ``code`` is the error code in the body (e.g. ``context_length_exceeded``); ``headers``
        adds any others (a provider's own wait header, say).
        """
        if not 400 <= status <= 599:
            raise ValueError(f"an error status is 4xx or 5xx, not {status}")
        return Fault("status", status_code=status, retry_after=retry_after,
                     retry_after_ms=retry_after_ms, message=message, code=code,
                     headers=tuple((headers or {}).items()))

    @staticmethod
    def blocked(reason: str = "SAFETY") -> Fault:
        """The provider's safety filter blocks the prompt: Gemini answers 200 with no
        candidates and ``promptFeedback.blockReason`` = ``reason``; OpenAI-style protocols
        answer 400 with code ``content_filter``."""
        return Fault("blocked", message=reason)

    @staticmethod
    def slow_first_byte(delay: float, then: Reply | Fault | None = None) -> Fault:
        """Wait ``delay`` seconds before the response head, then answer ``then``.

        ``then`` is a reply or another fault; ``None`` means the default reply.
        """
        if delay < 0:
            raise ValueError("delay must not be negative")
        return Fault("slow_first_byte", delay=delay, then=then)

    @staticmethod
    def reset_after_headers() -> Fault:
        """Send a 200 head (``Content-Length`` of the whole JSON body, or chunked for a
        stream), then abort the socket before any body byte."""
        return Fault("reset_after_headers")

    @staticmethod
    def reset_mid_stream(after_events: int = 3, reply: Reply | None = None) -> Fault:
        """Send ``after_events`` events (of ``reply``, else filler text), then abort the socket.

        No terminating chunk is sent. A non-streaming request gets half its body, then the abort.
        """
        return Fault("reset_mid_stream", after_events=after_events, reply=reply)

    @staticmethod
    def truncate(after_events: int = 3, reply: Reply | None = None) -> Fault:
        """Send ``after_events`` events, then end the body cleanly without the terminator.

        A negative count keeps all but that many of the last events (``-1``: everything but
        the final event, e.g. OpenAI's usage chunk or Gemini's finishReason chunk); a count past
        the end sends every event but still no terminator event. A non-streaming request gets a
        complete response whose JSON body is cut in half.
        """
        return Fault("truncate", after_events=after_events, reply=reply)

    @staticmethod
    def stall(delay: float, after_events: int = 3, reply: Reply | None = None) -> Fault:
        """Send the head and ``after_events`` events, go silent for ``delay`` seconds with the
        connection open, then send the rest of the stream normally (a read timeout shorter
        than ``delay`` fires in the silence; ``0`` stalls before the first event).

        A non-streaming request gets half its body, the silence, then the other half.
        """
        if delay < 0:
            raise ValueError("delay must not be negative")
        return Fault("stall", delay=delay, after_events=after_events, reply=reply)

    @staticmethod
    def trickle(interval: float, after_events: int = 0, reply: Reply | None = None) -> Fault:
        """Send the head and ``after_events`` events at once, then the rest of the body one
        byte every ``interval`` seconds (the default answer, or ``reply``): no silence is ever
        longer than ``interval``, so no read timeout fires, yet the answer takes
        ``interval`` times its size. A non-streaming request trickles its whole body.
        """
        if interval <= 0:
            raise ValueError("interval must be positive")
        return Fault("trickle", delay=interval, after_events=after_events, reply=reply)

    @staticmethod
    def wrong_encoding(encoding: str = "gzip", reply: Reply | None = None) -> Fault:
        """A 200 whose ``Content-Encoding`` header says ``encoding`` (``gzip``, ``br``,
        ``deflate``, ``zstd``) while the body (the default answer, or ``reply``, stream or
        not) is sent as is, uncompressed: what a misconfigured proxy does."""
        return Fault("wrong_encoding", message=encoding, reply=reply)

    @staticmethod
    def malformed_json() -> Fault:
        """Non-stream: a 200 whose body is not JSON. Stream: an event whose data is not JSON."""
        return Fault("malformed_json")

    @staticmethod
    def invalid_utf8() -> Fault:
        """Like `malformed_json()`, but the bytes are not valid UTF-8."""
        return Fault("invalid_utf8")

    @staticmethod
    def inband_error(message: str = "The server had an error while processing your request.",
                     code: str | None = "server_error", after_events: int = 3) -> Fault:
        """Stream: a 200, ``after_events`` normal events, then the protocol's error event.

        A non-streaming request gets a 200 whose JSON body is the error object.
        """
        return Fault("inband_error", message=message, code=code, after_events=after_events)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator received: ``path`` has no query; ``headers`` are lower-cased;
    ``received_at`` is when its head arrived (``time.time()``), for counting arrivals per
    window.

    Attributes:
        method: The HTTP method.
        path: The full path, mount included, without the query string.
        query: The query string (without ``?``), or ``""``.
        headers: The request headers, names lower-cased.
        body: The raw body; `json()` decodes it.
        received_at: When the request's head arrived (``time.time()``).
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.time)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)
