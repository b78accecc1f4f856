"""Stream framing: how a streamed body's bytes split into the frames a decoder reads.

A framer is a small sans-IO state machine: ``feed(chunk) -> [frames]`` for each body chunk, then
``close() -> [frames]`` at the end of the body. Every frame is a
[`ServerSentEvent`][aipk.sse.ServerSentEvent], whose ``data`` is the frame's text (one JSON document
for the JSON framings), so one provider decoder reads any framing the same way. The core ships
three:

- ``"sse"``: [`SSEDecoder`][aipk.sse.SSEDecoder] (``text/event-stream``), the default;
- ``"ndjson"``: `NDJSONFramer`, one JSON document per line (Ollama's native API);
- ``"json-array"``: `JSONArrayFramer`, one top-level JSON array streamed element by
  element (Gemini's ``streamGenerateContent`` without ``alt=sse``).

A provider's stream decoder picks one with its ``framing`` attribute (see
`StreamDecoder`): a name above, or a zero-argument callable returning any object
with ``feed``/``close`` (the `Framer` protocol), for framings the core does not know. A
framer raises `FramingError` (or another ``ValueError``) for bytes that break its framing;
the client turns that into a [`ResponseError`][aipk.errors.ResponseError]. Every framer is
chunking-invariant: any split of the same bytes gives the same frames. After `close()`,
``unterminated`` tells whether the body ended inside a frame (a last line with no newline, an
event with no blank line), which is how a truncated body shows at the framing level.
"""

from __future__ import annotations

import codecs
import json
import json.scanner
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from .sse import ServerSentEvent, SSEDecoder, complete_lines

__all__ = [
    "FRAMINGS",
    "Framer",
    "FramingError",
    "JSONArrayFramer",
    "NDJSONFramer",
    "SSEDecoder",
    "loads",
    "make_framer",
    "parse_json",
    "parse_json_bytes",
]


class FramingError(ValueError):
    """The body breaks its framing (not UTF-8, not a JSON array, cut inside an element)."""


@runtime_checkable
class Framer(Protocol):
    """Splits a streamed body into frames; feed it chunks of any size."""

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume ``chunk``; return the frames it completed (often none or one)."""
        ...

    def close(self) -> list[ServerSentEvent]:
        """The body ended: return the frames still pending, or raise `FramingError`."""
        ...


#: Builds a ServerSentEvent(data) in C (its generated ``__new__`` is Python code).
_new = tuple.__new__
_BOM = b"\xef\xbb\xbf"


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FramingError(f"{what} is not valid UTF-8 at byte {exc.start}") from None


class NDJSONFramer:
    """Newline-delimited JSON (``application/x-ndjson``, JSON Lines): one frame per line.

    Lines end in LF (a CR before it is dropped); blank and whitespace-only lines are skipped; a
    leading UTF-8 BOM is skipped. Lines are split before UTF-8 decoding, so a character split
    across chunks is safe. `close()` returns a last line that had no newline and sets
    ``unterminated``. The framer does not parse the JSON: the decoder does, once.
    """

    __slots__ = ("_partial", "_started", "unterminated")

    def __init__(self) -> None:
        self._partial: list[bytes] = []  # pieces of an unfinished line
        self._started = False  # the first line (which may carry a BOM) has been seen
        #: set by `close()`: the body's last line had no newline
        self.unterminated = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        # Fast path: exactly one whole line, nothing pending (how servers flush each object).
        if (self._started and not self._partial and chunk.find(b"\n") == len(chunk) - 1
                and len(chunk) > 1 and chunk[-2] != 13):
            try:
                return [_new(ServerSentEvent, (chunk[:-1].decode("utf-8"), None, None, None))]
            except UnicodeDecodeError:
                pass  # the general path says where
        lines = complete_lines(self._partial, chunk)
        return self._frames(lines) if lines else []

    def close(self) -> list[ServerSentEvent]:
        if not self._partial:
            return []
        line = b"".join(self._partial)
        self._partial = []
        frames = self._frames([line])
        self.unterminated = bool(frames)
        return frames

    def _frames(self, lines: list[bytes]) -> list[ServerSentEvent]:
        frames: list[ServerSentEvent] = []
        for line in lines:
            if not self._started:
                self._started = True
                if line.startswith(_BOM):
                    line = line[3:]
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line or line.isspace():
                continue
            frames.append(_new(ServerSentEvent, (_text(line, "NDJSON line"), None, None, None)))
        return frames


# JSONArrayFramer states
_BEFORE = 0  # before the opening "["
_FIRST = 1  # after "[": an element or "]"
_AFTER = 2  # after an element: "," or "]"
_NEXT = 3  # after ",": an element (or "]", tolerated)
_IN = 4  # inside an element
_DONE = 5  # after the closing "]": only whitespace

_WHITESPACE = " \t\r\n"
_CLOSERS = frozenset('}]"')
#: what may still follow a bare number's digits (its fraction or exponent)
_NUMBER_CHARS = frozenset("0123456789.eE+-")
_DECODE = json.JSONDecoder().raw_decode
#: (frame data, its parsed value) for the element the JSON-array framer framed last
_last: tuple[str | None, Any] = (None, None)


_make_scanner: Any = getattr(json.scanner, "c_make_scanner", None)  # None without the C module
_SCAN = _make_scanner(json.JSONDecoder()) if _make_scanner is not None else None


def parse_json(data: str) -> Any:
    """``json.loads(data)``: the same value, the same errors, about a third cheaper for a
    compact JSON document (a stream frame, a reply body). It calls the C scanner directly,
    without ``json.loads``' Python layers and their two whitespace regex matches; anything
    the scanner does not read whole (leading or trailing whitespace, bad JSON) goes to
    ``json.loads``, which decides."""
    if _SCAN is not None:
        try:
            value, end = _SCAN(data, 0)
        except (StopIteration, ValueError):  # StopIteration: nothing JSON at the start
            return json.loads(data)
        if end == len(data):
            return value
    return json.loads(data)


def parse_json_bytes(body: bytes) -> Any:
    """``json.loads(body)`` for a body as read (`parse_json()` on its UTF-8 text; any
    other encoding json.loads detects goes to json.loads)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return json.loads(body)
    if _SCAN is not None:
        try:
            value, end = _SCAN(text, 0)
        except (StopIteration, ValueError):
            return json.loads(body)
        if end == len(text):
            return value
    return json.loads(body)


def loads(data: str) -> Any:
    """``json.loads(data)``, free when ``data`` is the frame a `JSONArrayFramer` just
    made: the framer parsed it to find its end, so a decoder reading that framing calls this
    instead of ``json.loads`` and each element is parsed once."""
    last = _last
    if last[0] is data:
        return last[1]
    return parse_json(data)


class JSONArrayFramer:
    """One top-level JSON array streamed element by element: one frame per element.

    Tolerates whitespace (and the ``\\n,\\r\\n`` separators Google sends), a leading BOM, and a
    comma before the closing bracket. Each frame's ``data`` is the element's exact text. The
    element's end is found by the C JSON scanner, tried only when new bytes could end it, so a
    stream costs a scan per element rather than per character. Anything other than whitespace
    outside the array, or a body that ends before the closing ``]``, raises
    `FramingError` (a truncated body shows here; an in-band error element is a frame like
    any other, for the decoder to classify). A decoder that parses frames with `loads()`
    reuses the framer's parse.
    """

    __slots__ = ("_buf", "_more", "_start", "_state", "_text", "elements", "unterminated")

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._buf = ""  # undecided text; an element being collected starts at _start
        #: text of the element being collected that cannot have ended it, not yet in _buf
        #: (joined once, when a piece that may end it arrives: not copied at every read)
        self._more: list[str] = []
        self._start = 0
        self._state = _BEFORE
        #: elements framed so far
        self.elements = 0
        #: set by `close()`: the body ended before the array's closing bracket
        self.unterminated = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        try:
            text = self._text.decode(chunk)
        except UnicodeDecodeError as exc:
            raise FramingError(f"JSON array stream is not valid UTF-8 ({exc.reason})") from None
        if not text:
            return []
        if self._state == _IN:
            # The element can only have ended in the new text if it holds a closing character
            # (or, for a bare number or literal, a delimiter).
            if _CLOSERS.isdisjoint(text) and not self._scalar_may_end(text):
                self._more.append(text)
                return []
            self._take_more(text)
            return self._scan(self._start)
        self._buf = text
        return self._scan(0)

    def close(self) -> list[ServerSentEvent]:
        try:
            self._text.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise FramingError(f"the JSON array stream ends inside a UTF-8 character "
                               f"({exc.reason})") from None
        frames: list[ServerSentEvent] = []
        self._take_more("")
        if self._state == _IN and self._buf[self._start] not in '{["':
            # a bare number or literal ends at the end of the body
            frames = self._scan(self._start, final=True)
        if self._state != _DONE:
            self.unterminated = True
            where = "before its opening '['" if self._state == _BEFORE else (
                "inside an element" if self._state == _IN else "before its closing ']'")
            raise FramingError(f"the JSON array stream ended {where}")
        return frames

    def _take_more(self, text: str) -> None:
        """Append the pending pieces and ``text`` to the element being collected."""
        more = self._more
        if more:
            more.append(text)
            self._buf += "".join(more)
            more.clear()
        else:
            self._buf += text

    def _scalar_may_end(self, text: str) -> bool:
        return self._buf[self._start] not in '{["' and any(c in text for c in ",] \t\r\n")

    def _scan(self, pos: int, final: bool = False) -> list[ServerSentEvent]:
        buf = self._buf
        end = len(buf)
        frames: list[ServerSentEvent] = []
        state = self._state
        while pos < end:
            if state == _IN:
                start = pos
                try:
                    value, value_end = _DECODE(buf, start)
                except ValueError:
                    value, value_end = None, -1
                except RecursionError:
                    raise FramingError("a JSON array element is nested too deeply") from None
                if value_end < 0 or (not final and buf[start] not in '{["'
                                     and _NUMBER_CHARS.issuperset(buf[value_end:])):
                    # incomplete, or a bare number that the rest may extend ("1" + "0", or
                    # "1.5" + "e+16" cut after its "e"): wait
                    self._buf = buf[start:]
                    self._start = 0
                    self._state = _IN
                    return frames
                data = buf[start:value_end]
                global _last
                _last = (data, value)
                frames.append(_new(ServerSentEvent, (data, None, None, None)))
                self.elements += 1
                pos = value_end
                state = _AFTER
                continue
            char = buf[pos]
            if char in _WHITESPACE:
                pos += 1
                continue
            if state == _BEFORE:
                if char == "\ufeff" and pos == 0:
                    pos += 1
                    continue
                if char != "[":
                    raise FramingError(
                        f"the stream is not a JSON array (it starts with {buf[pos:pos + 20]!r})")
                state = _FIRST
            elif state == _AFTER:
                if char == ",":
                    state = _NEXT
                elif char == "]":
                    state = _DONE
                else:
                    raise FramingError(
                        f"expected ',' or ']' between JSON array elements, got {char!r}")
            elif state == _DONE:
                raise FramingError(f"data after the JSON array's closing ']': {char!r}")
            elif char == "]":  # _FIRST or _NEXT
                state = _DONE
            elif char == ",":
                raise FramingError("an empty element in the JSON array stream")
            else:
                state = _IN
                continue  # the element starts here
            pos += 1
        self._buf = ""
        self._start = 0
        self._state = state
        return frames


#: The core's framings by name, for a decoder's ``framing`` attribute.
FRAMINGS: dict[str, Callable[[], Framer]] = {
    "sse": SSEDecoder,
    "ndjson": NDJSONFramer,
    "json-array": JSONArrayFramer,
}


def make_framer(framing: str | Callable[[], Framer] | None) -> Framer:
    """A fresh framer for a decoder's ``framing`` (a name in `FRAMINGS`, a factory, or
    None for SSE)."""
    if framing is None:
        return SSEDecoder()
    if isinstance(framing, str):
        try:
            factory = FRAMINGS[framing]
        except KeyError:
            raise FramingError(
                f"unknown stream framing {framing!r}; a decoder's framing is one of "
                f"{', '.join(sorted(FRAMINGS))} or a callable returning a Framer") from None
        return factory()
    return framing()
