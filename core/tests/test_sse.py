"""The incremental SSE decoder: WHATWG examples, line endings, chunking, BOM, UTF-8 and size."""

from __future__ import annotations

import random
import re
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aipk.sse import ServerSentEvent, SSEDecodeError, SSEDecoder


def decode(data: bytes, *, flush: bool = True) -> list[ServerSentEvent]:
    """Decode ``data`` fed as one chunk."""
    decoder = SSEDecoder()
    events = decoder.feed(data)
    if flush:
        events += decoder.flush()
    return events


def decode_chunks(chunks: list[bytes], *, flush: bool = True) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    if flush:
        events += decoder.flush()
    return events


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


# --- WHATWG specification examples -----------------------------------------------------------


def test_spec_multiline_data_joined_with_lf() -> None:
    stream = b"data: YHOO\ndata: +2\ndata: 10\n\n"
    assert decode(stream) == [ServerSentEvent("YHOO\n+2\n10")]


def test_spec_comment_id_and_empty_id() -> None:
    stream = (
        b": test stream\n\n"
        b"data: first event\nid: 1\n\n"
        b"data:second event\nid\n\n"
        b"data:  third event\n"
    )
    decoder = SSEDecoder()
    events = decoder.feed(stream)
    # The third block has no blank line yet: per the spec it is not dispatched by feed().
    assert events == [
        ServerSentEvent("first event", id="1"),
        ServerSentEvent("second event", id=""),  # `id` with no colon sets the id to ""
    ]
    assert decoder.last_event_id == ""
    # Only one leading space is stripped; flush() dispatches the unterminated final event.
    assert decoder.flush() == [ServerSentEvent(" third event", id="")]


def test_spec_data_field_with_no_colon() -> None:
    stream = b"data\n\ndata\ndata\n\ndata:\n"
    decoder = SSEDecoder()
    assert decoder.feed(stream) == [ServerSentEvent(""), ServerSentEvent("\n")]
    assert decoder.flush() == [ServerSentEvent("")]


def test_spec_space_after_colon_is_optional() -> None:
    assert decode(b"data:test\n\ndata: test\n\n") == [ServerSentEvent("test")] * 2


def test_only_one_leading_space_stripped() -> None:
    assert decode(b"data:   x  \n\n") == [ServerSentEvent("  x  ")]
    assert decode(b"event:  spaced\ndata: d\n\n") == [ServerSentEvent("d", event=" spaced")]


def test_event_and_retry_fields() -> None:
    stream = b"event: add\nretry: 1500\ndata: 73857293\n\nevent: remove\ndata: 2153\n\n"
    assert decode(stream) == [
        ServerSentEvent("73857293", event="add", retry=1500),
        ServerSentEvent("2153", event="remove", retry=1500),
    ]


def test_event_name_resets_after_dispatch() -> None:
    events = decode(b"event: a\ndata: 1\n\ndata: 2\n\n")
    assert [e.event for e in events] == ["a", None]


def test_event_without_data_is_not_dispatched_and_its_name_is_dropped() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: ping\nid: 7\n\n") == []
    # The id still updates the last event id, the event name does not leak into the next event.
    assert decoder.last_event_id == "7"
    assert decoder.feed(b"data: x\n\n") == [ServerSentEvent("x", id="7")]
    assert decoder.flush() == []


def test_id_with_nul_is_ignored() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"id: good\ndata: a\n\nid: b\x00ad\ndata: b\n\n")
    assert events == [ServerSentEvent("a", id="good"), ServerSentEvent("b", id="good")]
    assert decoder.last_event_id == "good"


def test_last_event_id_persists_across_events() -> None:
    decoder = SSEDecoder()
    assert decoder.last_event_id is None
    events = decoder.feed(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n")
    assert [e.id for e in events] == ["1", "1", "2"]
    assert decoder.last_event_id == "2"


@pytest.mark.parametrize("value", [b"abc", b"1.5", b"-1", b"", b" 10", b"1e3", b"\xd9\xa1"])
def test_non_digit_retry_is_ignored(value: bytes) -> None:
    events = decode(b"retry: 10\ndata: a\n\nretry:" + value + b"\ndata: b\n\n")
    assert [e.retry for e in events] == [10, 10]


def test_retry_digits() -> None:
    assert decode(b"retry: 0007\ndata: a\n\n") == [ServerSentEvent("a", retry=7)]
    assert decode(b"retry: 0\ndata: a\n\n") == [ServerSentEvent("a", retry=0)]


def test_absurdly_long_retry_is_ignored_not_a_crash() -> None:
    # Regression: int() refuses more than 4300 digits with a plain ValueError.
    stream = b"retry: 5\ndata: a\n\nretry: " + b"9" * 5000 + b"\ndata: b\n\n"
    assert [e.retry for e in decode(stream)] == [5, 5]


def test_comments_and_unknown_fields_ignored() -> None:
    stream = b":comment\n: another\nfoo: bar\ndata: x\nDATA: y\n:\n\n"
    assert decode(stream) == [ServerSentEvent("x")]


def test_only_comments_dispatch_nothing() -> None:
    assert decode(b": keep-alive\n\n: keep-alive\n\n") == []


def test_colon_in_value_is_kept() -> None:
    assert decode(b'data: {"a": "b:c"}\n\n') == [ServerSentEvent('{"a": "b:c"}')]


# --- line endings and chunking ----------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_each_line_ending(eol: bytes) -> None:
    stream = eol.join([b"event: e", b"data: a", b"data: b", b"", b"data: c", b"", b""])
    expected = [ServerSentEvent("a\nb", event="e"), ServerSentEvent("c")]
    assert decode(stream) == expected
    assert decode_chunks(bytewise(stream)) == expected


def test_mixed_line_endings() -> None:
    stream = b"data: a\rdata: b\ndata: c\r\n\r\ndata: d\r\r"
    assert decode(stream) == [ServerSentEvent("a\nb\nc"), ServerSentEvent("d")]


def test_crlf_split_between_chunks_is_one_line_ending() -> None:
    # If the split CRLF were seen as CR + LF, the LF would be a blank line and dispatch early.
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n") == []
    # A lone CR ends the blank line at once; the LF that follows belongs to it.
    assert decoder.feed(b"\r") == [ServerSentEvent("a\nb")]
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: c\r\n\r\n") == [ServerSentEvent("c")]
    assert decoder.flush() == []


def test_cr_at_chunk_end_then_empty_chunk_then_lf() -> None:
    assert decode_chunks([b"data: a\r", b"", b"\n", b"\r\n"]) == [ServerSentEvent("a")]


def test_cr_cr_is_two_line_endings_across_chunks() -> None:
    assert decode_chunks([b"data: a\r", b"\rdata: b\n\n"]) == [
        ServerSentEvent("a"),
        ServerSentEvent("b"),
    ]


def test_crlf_split_no_duplicate_events() -> None:
    stream = b"data: 1\r\n\r\ndata: 2\r\n\r\n"
    for cut in range(len(stream) + 1):
        assert decode_chunks([stream[:cut], stream[cut:]]) == [
            ServerSentEvent("1"),
            ServerSentEvent("2"),
        ], cut


# --- BOM ---------------------------------------------------------------------------------------

BOM = b"\xef\xbb\xbf"


def test_bom_at_start_is_stripped() -> None:
    assert decode(BOM + b"data: x\n\n") == [ServerSentEvent("x")]


def test_bom_split_across_chunks_is_stripped() -> None:
    stream = BOM + b"data: x\n\n"
    for chunks in ([stream[:1], stream[1:]], [stream[:2], stream[2:]], bytewise(stream)):
        assert decode_chunks(chunks) == [ServerSentEvent("x")]


def test_bom_stripped_only_once_and_only_at_start() -> None:
    # A second BOM makes the first line's field name "\ufeffdata", an unknown field.
    assert decode(BOM + BOM + b"data: x\n\ndata: y\n\n") == [ServerSentEvent("y")]
    # A BOM later in the stream is data, not stripped.
    assert decode(b"data: a\n\n" + BOM + b"data: b\n\ndata: " + BOM + b"c\n\n") == [
        ServerSentEvent("a"),
        ServerSentEvent("\ufeffc"),
    ]


def test_bom_prefix_that_is_not_a_bom() -> None:
    # Starts like a BOM but is not one: the bytes are kept (they form an unknown field here).
    assert decode_chunks([b"\xef", b"\xbbX\ndata: y\n\n"]) == [ServerSentEvent("y")]
    assert decode_chunks([b"\xef", b"\xbb", b"\ndata: z\n\n"]) == [ServerSentEvent("z")]
    with pytest.raises(SSEDecodeError):
        decode_chunks([b"data: \xef", b"\xbb\n\n"])


def test_short_stream_of_bom_prefix_flushes_cleanly() -> None:
    assert decode_chunks([b"\xef", b"\xbb"]) == []
    assert decode(b"") == []
    assert decode_chunks([b"", b"", b""]) == []


# --- UTF-8 -------------------------------------------------------------------------------------


def test_multibyte_characters_split_across_chunks() -> None:
    text = "héllo 世界 🎉 Ω"
    stream = f"event: ünï\nid: ïd😀\ndata: {text}\n\n".encode()
    expected = [ServerSentEvent(text, event="ünï", id="ïd😀")]
    assert decode_chunks(bytewise(stream)) == expected
    for cut in range(len(stream) + 1):
        assert decode_chunks([stream[:cut], stream[cut:]]) == expected


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c"])
def test_unicode_line_separators_do_not_split_lines(char: str) -> None:
    stream = f"data: a{char}b\ndata: c\n\n".encode()
    assert decode(stream) == [ServerSentEvent(f"a{char}b\nc")]
    assert decode_chunks(bytewise(stream)) == [ServerSentEvent(f"a{char}b\nc")]


@pytest.mark.parametrize(
    "stream",
    [
        b"data: \xff\n\n",
        b"data: \xc3\n\n",  # truncated 2-byte sequence
        b"data: \xed\xa0\x80\n\n",  # encoded surrogate
        b"event: \x80\ndata: x\n\n",
        b"id: \xfe\ndata: x\n\n",
    ],
)
def test_invalid_utf8_raises_decode_error(stream: bytes) -> None:
    with pytest.raises(SSEDecodeError) as info:
        decode(stream)
    assert isinstance(info.value, ValueError)
    assert "UTF-8" in str(info.value)


def test_invalid_utf8_in_comment_or_unknown_field_is_harmless() -> None:
    assert decode(b": \xff\xfe\nx\xff: 1\ndata: ok\n\n") == [ServerSentEvent("ok")]


def test_invalid_utf8_in_pending_event_raises_on_flush() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: \xff") == []
    with pytest.raises(SSEDecodeError):
        decoder.flush()


# --- flush -------------------------------------------------------------------------------------


def test_flush_dispatches_final_event_without_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\nevent: last\ndata: b") == [ServerSentEvent("a")]
    assert decoder.flush() == [ServerSentEvent("b", event="last")]


def test_flush_after_complete_stream_yields_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\n") == [ServerSentEvent("a")]
    assert decoder.flush() == []


def test_flush_with_trailing_cr() -> None:
    assert decode(b"data: a\r") == [ServerSentEvent("a")]


def test_flush_does_not_dispatch_event_without_data() -> None:
    assert decode(b"event: x\nid: 3") == []


# --- size --------------------------------------------------------------------------------------


def test_large_event_in_random_chunks() -> None:
    rng = random.Random(1234)
    payload = ("ab€" * (5 * 1024 * 1024 // 5)).encode()  # ~5 MB, multi-byte chars inside
    stream = b"event: big\r\ndata: " + payload + b"\r\n\r\ndata: after\r\n\r\n"
    chunks, pos = [], 0
    while pos < len(stream):
        # Mostly tiny chunks near the boundaries, larger ones in the middle to stay fast.
        size = rng.randint(1, 3) if pos < 64 or len(stream) - pos < 64 else rng.randint(1, 65536)
        chunks.append(stream[pos : pos + size])
        pos += size
    events = decode_chunks(chunks)
    assert len(events) == 2
    assert events[0].event == "big"
    assert events[0].data.encode() == payload
    assert events[1] == ServerSentEvent("after")


def test_large_event_bytewise() -> None:
    payload = "x" * 100_000
    stream = f"data: {payload}\n\n".encode()
    assert decode_chunks(bytewise(stream)) == [ServerSentEvent(payload)]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_a_long_line_in_many_chunks_is_joined_once_not_per_chunk(eol: bytes) -> None:
    # joining the pending bytes at every chunk copies a long line once per chunk: quadratic
    # work, seconds for a few megabytes arriving in the usual 16 kB reads
    stream = b"data: " + b"x" * 40_000 + eol + eol
    chunks = [stream[i : i + 100] for i in range(0, len(stream), 100)]
    joins = 0

    def count(frame: object, event: str, arg: object) -> None:
        nonlocal joins
        if event == "c_call" and getattr(arg, "__name__", "") == "join" and getattr(
                arg, "__self__", None) == b"":
            joins += 1

    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    sys.setprofile(count)
    try:
        for chunk in chunks:
            events += decoder.feed(chunk)
    finally:
        sys.setprofile(None)
    assert events == [ServerSentEvent("x" * 40_000)]
    assert joins <= 2, joins  # once when the line ends (not ~400 times)


# --- properties --------------------------------------------------------------------------------

_line_text = st.text(
    st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters="\r\n",
    )
    | st.sampled_from(["\u2028", "\u0085", "\ufeff", ":", " ", "\x00", "é", "😀"]),
    max_size=12,
)
_name = _line_text
_id = _line_text.filter(lambda s: "\x00" not in s)


@st.composite
def _events(draw: st.DrawFn) -> dict[str, object]:
    data = draw(st.lists(_line_text, min_size=1, max_size=4))
    return {
        "data": data,
        "event": draw(st.none() | _name),
        "id": draw(st.none() | _id),
        "retry": draw(st.none() | st.integers(0, 10**6)),
    }


def _field(draw: st.DrawFn, name: str, value: str) -> str:
    # "name: value" or, when no leading space would be lost, "name:value".
    if value.startswith(" ") or draw(st.booleans()):
        return f"{name}: {value}"
    return f"{name}:{value}"


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[ServerSentEvent]]:
    events = draw(st.lists(_events(), max_size=6))
    lines: list[str] = []
    expected: list[ServerSentEvent] = []
    last_id: str | None = None
    retry: int | None = None

    def maybe_comment() -> None:
        if draw(st.integers(0, 4)) == 0:
            lines.append(":" + draw(_line_text))

    maybe_comment()
    for ev in events:
        fields: list[str] = []
        if ev["event"] is not None:
            fields.append(_field(draw, "event", ev["event"]))  # type: ignore[arg-type]
        if ev["id"] is not None:
            fields.append(_field(draw, "id", ev["id"]))  # type: ignore[arg-type]
            last_id = ev["id"]  # type: ignore[assignment]
        if ev["retry"] is not None:
            fields.append(f"retry: {ev['retry']}")
            retry = ev["retry"]  # type: ignore[assignment]
        data_fields = [_field(draw, "data", d) for d in ev["data"]]  # type: ignore[attr-defined]
        # Metadata fields may come before, between or after the data lines.
        for f in fields:
            data_fields.insert(draw(st.integers(0, len(data_fields))), f)
        for f in data_fields:
            lines.append(f)
            maybe_comment()
        lines.append("")  # dispatch
        expected.append(
            ServerSentEvent("\n".join(ev["data"]), ev["event"], last_id, retry)  # type: ignore[arg-type]
        )
        if draw(st.integers(0, 5)) == 0:
            lines.append("")  # extra blank lines never dispatch anything
    endings = [draw(st.sampled_from(["\n", "\r", "\r\n"])) for _ in lines]
    # CR followed directly by a line-feed-only ending would be read as one CRLF: avoid that.
    for i in range(1, len(lines)):
        if endings[i - 1] == "\r" and lines[i] == "" and endings[i] == "\n":
            endings[i] = "\r\n"
    text = "".join(line + eol for line, eol in zip(lines, endings, strict=True))
    prefix = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return prefix + text.encode("utf-8"), expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_streams(), st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_chunking_gives_the_generated_events(
    generated: tuple[bytes, list[ServerSentEvent]], cuts: list[int]
) -> None:
    stream, expected = generated
    whole = decode(stream)
    assert whole == expected
    assert decode_chunks(split_at(stream, cuts)) == whole


@settings(max_examples=60, deadline=None)
@given(_streams())
def test_bytewise_chunking_gives_the_generated_events(
    generated: tuple[bytes, list[ServerSentEvent]],
) -> None:
    stream, expected = generated
    assert decode_chunks(bytewise(stream)) == expected


_sse_bytes = st.lists(
    st.sampled_from(
        [b"\r", b"\n", b"\r\n", b":", b" ", b"data", b"event", b"id", b"retry", b"\x00",
         b"\xef", b"\xbb", b"\xbf", b"\xff", b"\xc3", b"\xa9", b"1", b"a", b"9" * 4400]
    )
    | st.binary(max_size=4),
    max_size=40,
).map(b"".join)


def _outcome(chunks: list[bytes]) -> list[ServerSentEvent] | type[SSEDecodeError]:
    try:
        return decode_chunks(chunks)
    except SSEDecodeError:
        return SSEDecodeError


@settings(max_examples=400, deadline=None)
@given(_sse_bytes | st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=8))
def test_arbitrary_bytes_only_raise_decode_error_and_chunking_is_invisible(
    data: bytes, cuts: list[int]
) -> None:
    whole = _outcome([data])  # anything but SSEDecodeError propagates and fails the test
    assert _outcome(split_at(data, cuts)) == whole
    if whole is not SSEDecodeError:
        assert all(isinstance(e, ServerSentEvent) and isinstance(e.data, str) for e in whole)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_valid_utf8_data_never_raises(text: str) -> None:
    stream = ("data: " + text + "\n\n").encode()
    events = decode(stream)
    # Whatever line breaks the text holds, each decoded piece is a substring of the text.
    first_line = re.split("\r\n|\r|\n", text)[0]
    assert events
    assert events[0].data.split("\n")[0] == first_line


_LINE_TEXT = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                     max_size=20)
_FIELD = st.one_of(
    _LINE_TEXT.map(lambda t: f"data: {t}\n\n"),  # the fast path's shape
    _LINE_TEXT.map(lambda t: f"data:{t}\n\n"),
    _LINE_TEXT.map(lambda t: f"event: {t}\n"),
    _LINE_TEXT.map(lambda t: f"id: {t}\n"),
    st.integers(0, 9999).map(lambda n: f"retry: {n}\n"),
    _LINE_TEXT.map(lambda t: f"data: {t}\n"),  # an unfinished multi-line event
    st.just(": keep-alive\n\n"),
    st.just("data: a\r\n\r\n"),
)


@given(st.lists(_FIELD, max_size=12))
def test_whole_event_chunks_decode_as_byte_by_byte(pieces: list[str]) -> None:
    """Chunks that are exactly one ``data:`` line and a blank line take a fast path; with
    whatever came before (an ``event:``, an ``id:``, an unfinished event), the events are
    the ones the general path gives for the same bytes fed one at a time."""
    whole, single = SSEDecoder(), SSEDecoder()
    fast = [e for piece in pieces for e in whole.feed(piece.encode())] + whole.flush()
    data = "".join(pieces).encode()
    slow = [e for i in range(len(data)) for e in single.feed(data[i:i + 1])] + single.flush()
    assert fast == slow
    assert whole.last_event_id == single.last_event_id


@given(st.lists(_FIELD, max_size=24), st.lists(st.integers(0, 400), max_size=6),
       st.sampled_from([b"", b": \xff\n\n", b"data: \xff\n\n"]))
def test_reads_of_many_events_decode_as_byte_by_byte(
        pieces: list[str], cuts: list[int], odd: bytes) -> None:
    """Reads holding many events (over aiohttp one read holds hundreds) take the frame path:
    the whole events of a read are decoded at once and the usual ``data:`` event is built
    straight from its text. Whatever the reads hold (an event cut at either end, fields other
    than data, invalid UTF-8 where it is harmless or where it is an error), the events and
    errors are those of the line path fed one byte at a time."""
    data = "".join(pieces).encode()
    if odd:
        at = len(data) // 2
        data = data[:at] + odd + data[at:]

    def outcome(chunks: list[bytes]) -> object:
        decoder = SSEDecoder()
        try:
            events = [e for chunk in chunks for e in decoder.feed(chunk)] + decoder.flush()
        except SSEDecodeError as exc:
            return str(exc)
        return events, decoder.last_event_id

    assert outcome(split_at(data, cuts)) == outcome(
        [data[i:i + 1] for i in range(len(data))])
