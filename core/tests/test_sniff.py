"""The framer for stream answers not labelled text/event-stream: an event stream under another
label is framed exactly as SSE, a JSON body becomes one frame, anything else is kept for the
error; for any chunking of the same bytes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aipk
from aipk._sniff import SniffingFramer, not_a_stream
from aipk.sse import ServerSentEvent, SSEDecoder


def frames(framer: SniffingFramer | SSEDecoder, chunks: list[bytes]) -> list[ServerSentEvent]:
    out: list[ServerSentEvent] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    return out + framer.close()


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    out, prev = [], 0
    for point in points:
        out.append(data[prev:point])
        prev = point
    return [*out, data[prev:]]


_line = st.sampled_from([b"data: {\"a\": 1}", b"data:x", b"event: e", b"id: 3", b"retry: 5",
                         b": comment", b"", b"data: \xc3\xa9"])
sse_bodies = st.builds(lambda lines, bom, ws: bom + ws + b"\n".join(lines) + b"\n\n",
                       st.lists(_line, min_size=1, max_size=8),
                       st.sampled_from([b"", b"\xef\xbb\xbf"]), st.sampled_from([b"", b"\n"]))


@settings(max_examples=200, deadline=None)
@given(body=sse_bodies, cuts=st.lists(st.integers(0, 80), max_size=6))
def test_an_event_stream_under_another_label_frames_as_sse(body: bytes, cuts: list[int]) -> None:
    sniffed = SniffingFramer("text/plain")
    assert frames(sniffed, split_at(body, cuts)) == frames(SSEDecoder(), [body])
    assert sniffed.kind == ("sse" if body.removeprefix(b"\xef\xbb\xbf").strip() else None)


@settings(max_examples=100, deadline=None)
@given(value=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5),
                             max_size=4),
       cuts=st.lists(st.integers(0, 80), max_size=6), lead=st.sampled_from(["", " \n", "\ufeff"]))
def test_a_json_body_is_one_frame(value: dict[str, object], cuts: list[int], lead: str) -> None:
    body = (lead + json.dumps(value, ensure_ascii=False)).encode()
    sniffed = SniffingFramer("application/json")
    got = frames(sniffed, split_at(body, cuts))
    assert sniffed.kind == "json"
    assert [json.loads(frame.data) for frame in got] == [value]


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1, max_size=60).filter(
    lambda t: t.strip() and t.lstrip("\ufeff").lstrip()[:1] not in ("{", "[", ":", "")
    and not any(t.lstrip("\ufeff").lstrip().startswith(f[:len(t.strip())])
                for f in ("data", "event", "id", "retry"))),
       cuts=st.lists(st.integers(0, 80), max_size=6))
def test_other_text_is_kept_and_never_a_frame(text: str, cuts: list[int]) -> None:
    body = text.encode()
    sniffed = SniffingFramer("text/html")
    assert frames(sniffed, split_at(body, cuts)) == []
    assert sniffed.kind == "text" and sniffed.body == body


@pytest.mark.parametrize(("kind", "body", "retryable"), [
    ("text", b"<html><body>502 Bad Gateway</body></html>", True),
    ("json", b'{"object": "chat.completion", "choices": []}', False),
])
def test_the_error_names_what_came_instead(kind: str, body: bytes, retryable: bool) -> None:
    sniffed = SniffingFramer("text/html" if kind == "text" else "application/json")
    sniffed.feed(body)
    error = not_a_stream(sniffed, "openai", "req-1")
    assert isinstance(error, aipk.errors.ResponseError)
    assert error.retryable is retryable and error.request_id == "req-1"
    assert body.decode()[:20] in str(error) and "base_url" in str(error)


def test_a_live_secret_in_the_body_is_masked() -> None:
    secret = aipk.Secret("sk-proxy-echo-1234567890")
    sniffed = SniffingFramer("text/plain")
    sniffed.feed(b"denied for key sk-proxy-echo-1234567890")
    assert "1234567890" not in str(not_a_stream(sniffed, "openai", None))
    del secret


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
                       max_size=5),
       cuts=st.lists(st.integers(0, 80), max_size=6))
def test_a_json_array_frames_as_the_json_array_framing(values: list[dict[str, int]],
                                                        cuts: list[int]) -> None:
    body = ("[" + "\n,\r\n".join(json.dumps(v) for v in values) + "]").encode()
    sniffed = SniffingFramer("application/json")
    got = frames(sniffed, split_at(body, cuts))
    assert sniffed.kind == "json-array"
    assert [json.loads(frame.data) for frame in got] == values
