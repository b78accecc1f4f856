"""An incremental, spec-compliant decoder for ``text/event-stream`` bodies.

Feed it bytes as they arrive, in chunks of any size; it returns the events completed so far.
It follows the WHATWG "event stream interpretation": lines end in CR, LF or CRLF (also when a
CRLF is split across two chunks), ``data`` lines join with ``\\n``, lines starting with ``:`` are
comments, ``event``/``id``/``retry`` are kept, one leading space after the colon is dropped, a
leading UTF-8 BOM is skipped, and a blank line dispatches the event. An event with no ``data``
line is not dispatched. Bytes are split into lines *before* UTF-8 decoding, so a multi-byte
character split across chunks is safe, and U+2028 or U+0085 inside data never split a line.

Two deliberate choices beyond the spec: there is no size limit on a line or an event, and
[`SSEDecoder.flush()`][aipk.sse.SSEDecoder.flush] dispatches a final event whose blank line never
came (some servers end the body right after the last ``data:`` line); whether the stream was
complete is for the provider's decoder to judge from its own terminator.
"""

from __future__ import annotations

from functools import partial
from itertools import repeat
from typing import NamedTuple

__all__ = ["SSEDecodeError", "SSEDecoder", "ServerSentEvent"]

_BOM = b"\xef\xbb\xbf"
#: Longer ``retry`` values are ignored: int() refuses over 4300 digits (a plain ValueError).
_MAX_RETRY_DIGITS = 64


class SSEDecodeError(ValueError):
    """The stream is not valid UTF-8 where an event's text must be."""


class ServerSentEvent(NamedTuple):
    """One dispatched event. ``event`` is None when the stream gave no ``event:`` field."""

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None


#: Builds a ServerSentEvent from a 4-tuple in C (its generated ``__new__`` is Python code).
_event = tuple.__new__
#: `_event` with the class bound, for ``map``
_new_event = partial(tuple.__new__, ServerSentEvent)



def complete_lines(pending: list[bytes], chunk: bytes) -> list[bytes]:
    """The whole lines ``chunk`` completes, given the bytes of an unfinished line in
    ``pending`` (LF-separated, each without its LF); what follows the last LF stays in
    ``pending``. The line buffering every line-based framer shares."""
    if b"\n" not in chunk:
        if chunk:
            pending.append(chunk)
        return []
    if pending:
        pending.append(chunk)
        chunk = b"".join(pending)
        pending.clear()
    lines = chunk.split(b"\n")
    rest = lines.pop()
    if rest:
        pending.append(rest)
    return lines

def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SSEDecodeError(f"event stream is not valid UTF-8 at byte {exc.start}") from None


class SSEDecoder:
    """Incremental decoder: ``feed(chunk) -> [events]``, then ``flush() -> [events]`` at EOF.

    It is the core's ``"sse"`` `Framer` (``close`` is ``flush`` that also
    records whether the body ended inside an event).
    """

    __slots__ = ("_data", "_event", "_head", "_last_id", "_partial", "_retry", "_skip_lf",
                 "unterminated")

    def __init__(self) -> None:
        self._partial: list[bytes] = []  # pieces of an unfinished line
        self._data: list[bytes] = []
        self._event: bytes | None = None
        self._last_id: str | None = None
        self._retry: int | None = None
        self._skip_lf = False  # the previous chunk ended in CR; drop a leading LF
        self._head: bytes | None = b""  # bytes seen before the BOM check is settled; None = done
        #: set by `close()`: the body ended inside an event (no blank line after it)
        self.unterminated = False

    @property
    def last_event_id(self) -> str | None:
        """The last ``id`` seen; kept across events, as the spec requires for reconnection."""
        return self._last_id

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume ``chunk`` and return the events it completed (often none or one)."""
        # Fast path: the chunk is exactly one ``data: …`` line and its blank line, with nothing
        # pending (how most providers frame each event). Same result as the general path.
        if (chunk.startswith(b"data: ") and chunk.find(b"\n") == len(chunk) - 2
                and chunk.endswith(b"\n\n") and self._head is None and not self._partial
                and not self._data and not self._skip_lf and self._event is None
                and b"\r" not in chunk):
            try:
                data = chunk[6:-2].decode("utf-8")
            except UnicodeDecodeError:
                data = _decode(chunk[6:-2])  # raises SSEDecodeError saying where
            return [_event(ServerSentEvent, (data, None, self._last_id, self._retry))]
        if self._head is not None:
            chunk = self._strip_bom(chunk)
            if not chunk:
                return []
        if self._skip_lf:
            if not chunk:
                return []
            self._skip_lf = False
            if chunk[0] == 10:
                chunk = chunk[1:]
        if b"\r" in chunk:
            if chunk[-1] == 13:
                self._skip_lf = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        partial = self._partial
        if partial:
            if b"\n" not in chunk:  # still inside one long line: joined once it ends
                if chunk:
                    partial.append(chunk)
                return []
            partial.append(chunk)
            chunk = b"".join(partial)
            partial.clear()
        end = chunk.rfind(b"\n\n")
        if end >= 0:
            try:
                text = chunk[:end].decode("utf-8")
            except UnicodeDecodeError:
                pass  # maybe only in a comment or an unknown field: the line path decides
            else:
                events = self._frames(text)
                lines = complete_lines(partial, chunk[end + 2:])
                if lines:
                    events += self._process(lines)
                return events
        lines = complete_lines(partial, chunk)
        return self._process(lines) if lines else []

    def _frames(self, text: str) -> list[ServerSentEvent]:
        """The events of ``text``: whole events (the bytes before a read's last blank line,
        valid UTF-8, LF-separated, starting at a line), as the line path would give them. An
        event that is one ``data: …`` line, the usual one, is built straight from its text;
        any other goes through the line path."""
        last_id = self._last_id
        retry = self._retry
        if not self._data and self._event is None and text[:6] == "data: ":
            datas = text[6:].split("\n\ndata: ")
            if "\n" not in "".join(datas):
                # Every event is one "data: …" line (each newline was in a "\n\ndata: "):
                # one split gave every event's data; the events are built in C.
                return list(map(_new_event, zip(datas, repeat(None), repeat(last_id),
                                                repeat(retry))))
        events: list[ServerSentEvent] = []
        append = events.append
        frames = text.split("\n\n")
        if self._data or self._event is not None:  # the first frame ends a pending event
            events += self._whole_event(frames[0])
            last_id, retry = self._last_id, self._retry
            frames = frames[1:]
        for frame in frames:
            if frame[:6] == "data: " and "\n" not in frame:
                append(_event(ServerSentEvent, (frame[6:], None, last_id, retry)))
            else:
                events += self._whole_event(frame)
                last_id, retry = self._last_id, self._retry
        return events

    def _whole_event(self, frame: str) -> list[ServerSentEvent]:
        """The line path over one whole event's text and the blank line that ends it."""
        lines = frame.encode().split(b"\n")
        lines.append(b"")
        return self._process(lines)

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: finish a trailing line and dispatch a pending event, if any."""
        lines = [b"".join(self._partial)] if self._partial else []
        self._partial = []
        if self._head:  # a stream shorter than the BOM that was not a BOM prefix after all
            lines.insert(0, self._head)
            self._head = None
        lines.append(b"")
        return self._process(lines)

    def close(self) -> list[ServerSentEvent]:
        """`flush()` as a `Framer`; sets ``unterminated`` when the body
        ended inside an event."""
        self.unterminated = bool(self._data or self._partial)
        return self.flush()

    def _strip_bom(self, chunk: bytes) -> bytes:
        head = (self._head or b"") + chunk
        if len(head) < 3 and _BOM.startswith(head):
            self._head = head
            return b""
        self._head = None
        return head[3:] if head.startswith(_BOM) else head

    def _process(self, lines: list[bytes]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        data = self._data
        for line in lines:
            if line[:6] == b"data: ":  # the usual line: same as the general case below
                data.append(line[6:])
                continue
            if not line:
                if len(data) == 1 and self._event is None:  # the usual event, dispatched inline
                    events.append(_event(ServerSentEvent, (
                        _decode(data[0]), None, self._last_id, self._retry)))
                    data.clear()
                elif data:
                    events.append(self._dispatch())
                    data = self._data
                else:
                    self._event = None
                continue
            if line[0] == 58:  # b":" comment
                continue
            field, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if field == b"data":
                data.append(value)
            elif field == b"event":
                self._event = value
            elif field == b"id":
                if b"\0" not in value:
                    self._last_id = _decode(value)
            elif field == b"retry" and value.isdigit() and len(value) <= _MAX_RETRY_DIGITS:
                self._retry = int(value)
        return events

    def _dispatch(self) -> ServerSentEvent:
        data = self._data
        raw = data[0] if len(data) == 1 else b"\n".join(data)
        event = self._event
        self._data = []
        self._event = None
        return _event(ServerSentEvent, (
            _decode(raw),
            None if event is None else _decode(event),
            self._last_id,
            self._retry,
        ))
