"""The framer for a stream answered without ``Content-Type: text/event-stream``.

Some servers and proxies answer a stream request with something else: a JSON error object
with HTTP 200, a whole (unstreamed) answer, an HTML or plain-text error page; others send a
real event stream under the wrong type. `SniffingFramer` looks at the body's first bytes:
a body that starts like an event stream is framed as one (no difference from the ``"sse"``
framing), a JSON array as the ``"json-array"`` framing (a server that ignored Gemini's
``alt=sse``), a JSON object is handed to the decoder whole, as one frame, at the end (so the
provider's decoder classifies an error object as it does an in-band error), and anything else
is kept (up to `MAX_KEPT` bytes) for the error the client raises. The client picks it
for SSE-framed decoders only when the type is not ``text/event-stream`` (so a normal stream
pays nothing), and always for JSON-array framed ones (an array and an error object share
``application/json``).
"""

from __future__ import annotations

from ._secrets import redact
from .errors import ResponseError
from .framing import FramingError, JSONArrayFramer
from .sse import ServerSentEvent, SSEDecoder

__all__ = ["MAX_KEPT", "SniffingFramer", "not_a_stream"]

#: The most of a body that is not an event stream kept for decoding or the error message.
MAX_KEPT = 4 * 1024 * 1024
_FIELDS = (b"data", b"event", b"id", b"retry")
_BOM = b"\xef\xbb\xbf"


def _kind(head: bytes) -> str | None:
    """``"sse"``, ``"json"``, ``"json-array"`` or ``"text"`` for a body starting with ``head``;
    None: undecided."""
    head = head.removeprefix(_BOM).lstrip()
    if not head or _BOM.startswith(head):
        return None
    first = head[:1]
    if first == b"{":
        return "json"
    if first == b"[":
        return "json-array"
    if first == b":":
        return "sse"
    for field in _FIELDS:
        if head.startswith(field):
            return "sse"
        if field.startswith(head):
            return None  # "da…": wait for more
    return "text"


class SniffingFramer:
    """An event stream, a JSON body, or other text: decided by the body's first bytes.

    ``kind`` is ``"sse"``, ``"json-array"``, ``"json"`` or ``"text"`` once decided; ``body``
    holds what was kept of a JSON object or text body; ``content_type`` is the response's,
    for messages.
    """

    __slots__ = ("_sse", "body", "content_type", "kind", "unterminated")
    _sse: SSEDecoder | JSONArrayFramer | None

    def __init__(self, content_type: str | None = None) -> None:
        self._sse = None
        self.body = b""
        self.content_type = content_type
        self.kind: str | None = None
        #: set by `close`: the body ended inside an event (event streams only)
        self.unterminated = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._sse is not None:
            return self._sse.feed(chunk)
        if len(self.body) < MAX_KEPT:
            self.body += chunk[:MAX_KEPT - len(self.body)]
        elif self.kind == "json":
            self.kind = "text"  # too large to be an error object: only its start is kept
        if self.kind is None:
            self.kind = _kind(self.body)
            if self.kind in ("sse", "json-array"):
                self._sse = SSEDecoder() if self.kind == "sse" else JSONArrayFramer()
                kept, self.body = self.body, b""
                return self._sse.feed(kept)
        return []

    def close(self) -> list[ServerSentEvent]:
        if self._sse is not None:
            frames = self._sse.close()
            self.unterminated = self._sse.unterminated
            return frames
        if self.kind != "json":
            return []
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FramingError(f"the JSON body is not valid UTF-8 at byte {exc.start}") from None
        return [ServerSentEvent(text.strip().removeprefix("\ufeff").strip())]

    def snippet(self, limit: int = 200) -> str:
        """The start of a body that is not an event stream, as text, for an error message."""
        text = self.body[:limit].decode("utf-8", errors="replace")
        return " ".join(text.split())


def not_a_stream(sniffed: SniffingFramer, provider: str, request_id: str | None) -> (
        ResponseError):
    """The error for a stream request answered with a body that is no event stream and no
    error the provider's decoder knows: one whole JSON answer (the server does not stream
    there; not retried) or a page of text (a proxy's error page; retried)."""
    what = sniffed.content_type or "no Content-Type"
    start = redact(sniffed.snippet())
    if sniffed.kind == "json":
        return ResponseError(
            f"the stream request was answered with one JSON body ({what}), not an event "
            f"stream: the server at this base_url does not stream; use chat(), or check "
            f"base_url (the body starts {start!r})", provider=provider, request_id=request_id)
    return ResponseError(
        f"the stream request was answered with {what} instead of an event stream, probably "
        f"an error page from a proxy (it starts {start!r}); retry, or check base_url",
        provider=provider, request_id=request_id, retryable=True)
