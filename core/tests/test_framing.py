"""The NDJSON and JSON-array framers: examples, malformed input, and chunking invariance."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipk.framing import (
    FRAMINGS,
    Framer,
    FramingError,
    JSONArrayFramer,
    NDJSONFramer,
    make_framer,
)
from aipk.sse import ServerSentEvent, SSEDecoder


def frame_all(framer: Framer, chunks: list[bytes]) -> list[str]:
    out: list[ServerSentEvent] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    out += framer.close()
    return [event.data for event in out]


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=4)
separators = st.sampled_from(["", " ", "\n", "\r\n", "\n\r\n", "\t "])


# --- NDJSON --------------------------------------------------------------------------------


def test_ndjson_lines_crlf_blank_lines_and_bom() -> None:
    body = b'\xef\xbb\xbf{"a":1}\r\n\n   \n{"b":"\xc3\xa9"}\n'
    assert frame_all(NDJSONFramer(), [body]) == ['{"a":1}', '{"b":"é"}']


def test_ndjson_fast_path_matches_general_path() -> None:
    framer = NDJSONFramer()
    assert framer.feed(b'{"a":1}\n') == [ServerSentEvent('{"a":1}')]  # first line: general
    assert framer.feed(b'{"b":2}\n') == [ServerSentEvent('{"b":2}')]  # fast path
    assert framer.feed(b'{"c":3}\r\n') == [ServerSentEvent('{"c":3}')]  # CR: general
    assert framer.close() == []
    assert framer.unterminated is False


def test_ndjson_last_line_without_newline_is_returned_and_flagged() -> None:
    framer = NDJSONFramer()
    assert framer.feed(b'{"a":1}\n{"done":tr') == [ServerSentEvent('{"a":1}')]
    assert framer.close() == [ServerSentEvent('{"done":tr')]
    assert framer.unterminated is True


def test_ndjson_invalid_utf8_is_a_framing_error() -> None:
    framer = NDJSONFramer()
    framer.feed(b"{}\n")
    with pytest.raises(FramingError, match="not valid UTF-8"):
        framer.feed(b'{"a":"\xff"}\n')


@settings(max_examples=200, deadline=None)
@given(st.lists(json_objects, max_size=6), st.lists(st.sampled_from(["\n", "\r\n", "\n\n"]),
                                                    min_size=6, max_size=6),
       st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_ndjson_any_split_gives_the_same_frames(objects: list[dict[str, Any]], ends: list[str],
                                                cuts: list[int]) -> None:
    body = "".join(json.dumps(o, ensure_ascii=False) + end
                   for o, end in zip(objects, ends, strict=False)).encode()
    whole = frame_all(NDJSONFramer(), [body])
    assert [json.loads(line) for line in whole] == objects
    assert frame_all(NDJSONFramer(), split_at(body, cuts)) == whole
    assert frame_all(NDJSONFramer(), [body[i:i + 1] for i in range(len(body))]) == whole


# --- JSON array ----------------------------------------------------------------------------


def test_json_array_google_separators() -> None:
    body = b'[{"a": 1}\n,\r\n{"b": [1, 2, {"c": "]}\\""}]}\n]'
    assert frame_all(JSONArrayFramer(), [body]) == ['{"a": 1}', '{"b": [1, 2, {"c": "]}\\""}]}']


def test_json_array_bom_whitespace_trailing_comma_and_scalars() -> None:
    body = '\ufeff  [ 12 , "x,]" , true,null ,[],{} , ] \n'.encode()
    assert frame_all(JSONArrayFramer(), [body]) == ["12", '"x,]"', "true", "null", "[]", "{}"]


def test_json_array_empty() -> None:
    assert frame_all(JSONArrayFramer(), [b"[]"]) == []
    assert frame_all(JSONArrayFramer(), [b" [ \n ] "]) == []


@pytest.mark.parametrize(("body", "message"), [
    (b"<html>502</html>", "not a JSON array"),
    (b'{"error": {}}', "not a JSON array"),
    (b'[{"a":1} {"b":2}]', "expected ',' or ']'"),
    (b"[1,,2]", "empty element"),
    (b"[1] x", "after the JSON array"),
])
def test_json_array_malformed_is_a_framing_error(body: bytes, message: str) -> None:
    with pytest.raises(FramingError, match=message):
        frame_all(JSONArrayFramer(), [body])


@pytest.mark.parametrize(("body", "where"), [
    (b"", "before its opening"),
    (b'[{"a":1},', "before its closing"),
    (b'[{"a":1}', "before its closing"),
    (b'[{"a":', "inside an element"),
    (b'[{"a":"x}', "inside an element"),
])
def test_json_array_truncated_body_raises_at_close(body: bytes, where: str) -> None:
    framer = JSONArrayFramer()
    framer.feed(body)
    with pytest.raises(FramingError, match=where):
        framer.close()
    assert framer.unterminated is True


def test_json_array_element_nested_too_deeply_is_a_framing_error() -> None:
    with pytest.raises(FramingError, match="nested too deeply"):
        JSONArrayFramer().feed(b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]")


def test_json_array_number_at_chunk_end_waits_for_more_digits() -> None:
    framer = JSONArrayFramer()
    assert framer.feed(b"[1") == []
    assert framer.feed(b"2") == []
    assert [e.data for e in framer.feed(b"3]")] == ["123"]
    assert framer.close() == []


def test_json_array_utf8_split_across_chunks_and_invalid_utf8() -> None:
    body = '["é€"]'.encode()
    assert frame_all(JSONArrayFramer(), [body[:3], body[3:5], body[5:]]) == ['"é€"']
    with pytest.raises(FramingError, match="UTF-8"):
        JSONArrayFramer().feed(b'["\xff"]')
    framer = JSONArrayFramer()
    framer.feed(b'["\xc3')
    with pytest.raises(FramingError, match="inside"):
        framer.close()


def test_json_array_brackets_and_escapes_inside_strings_do_not_end_an_element() -> None:
    body = rb'[{"a": "}]\\\"{[", "b": ["]"]}, {"c": "\\"}]'
    frames = frame_all(JSONArrayFramer(), [body])
    assert frames == [r'{"a": "}]\\\"{[", "b": ["]"]}', r'{"c": "\\"}']
    assert json.loads(frames[0]) == {"a": '}]\\"{[', "b": ["]"]}
    framer = JSONArrayFramer()
    assert framer.feed(b'[{"a": "x}') == []  # a string still open: not the end
    assert [f.data for f in framer.feed(b'"}]')] == ['{"a": "x}"}']


@pytest.mark.parametrize("cut", range(1, 24))
def test_json_array_bare_number_cut_inside_its_fraction_or_exponent(cut: int) -> None:
    body = b"[1.0000000000000002e+16, -2.5E-3]"
    frames = frame_all(JSONArrayFramer(), [body[:cut], body[cut:]])
    assert [json.loads(f) for f in frames] == [1.0000000000000002e+16, -2.5e-3]



@pytest.mark.parametrize("element", ['{"c": "%s"}', '"%s"', '["%s"]'])
def test_json_array_long_element_is_not_copied_at_every_read(element: str) -> None:
    # appending each read to the text collected so far copies a long element once per read:
    # quadratic work, seconds for a few megabytes arriving in the usual 16 kB reads
    text = element % ("x" * 40_000)
    body = ("[" + text + "]").encode()
    framer = JSONArrayFramer()
    frames = framer.feed(body[:8])
    middle = body[8:-3]  # only "x": nothing in it could end the element
    for i in range(0, len(middle), 100):
        frames += framer.feed(middle[i:i + 100])
        assert len(framer._buf) <= 200, len(framer._buf)  # collected apart, joined once
    frames += framer.feed(body[-3:])
    frames += framer.close()
    assert [f.data for f in frames] == [text]

@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, max_size=5), separators, separators,
       st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_json_array_any_split_gives_the_same_frames(values: list[Any], before: str, after: str,
                                                    cuts: list[int]) -> None:
    body = ("[" + before + (after + "," + before).join(
        json.dumps(v, ensure_ascii=False) for v in values) + after + "]").encode()
    whole = frame_all(JSONArrayFramer(), [body])
    assert [json.loads(element) for element in whole] == values
    assert frame_all(JSONArrayFramer(), split_at(body, cuts)) == whole
    assert frame_all(JSONArrayFramer(), [body[i:i + 1] for i in range(len(body))]) == whole


# --- the registry of framings --------------------------------------------------------------


def test_make_framer_names_factories_and_default() -> None:
    assert isinstance(make_framer(None), SSEDecoder)
    assert isinstance(make_framer("ndjson"), NDJSONFramer)
    assert isinstance(make_framer("json-array"), JSONArrayFramer)
    assert isinstance(make_framer(NDJSONFramer), NDJSONFramer)
    assert set(FRAMINGS) == {"sse", "ndjson", "json-array"}
    for name in FRAMINGS:
        assert isinstance(make_framer(name), Framer)
    with pytest.raises(FramingError, match="unknown stream framing 'xml'.*json-array"):
        make_framer("xml")


def test_sse_close_reports_an_unterminated_event() -> None:
    framer = SSEDecoder()
    framer.feed(b"data: 1\n\ndata: 2\n")
    assert framer.close() == [ServerSentEvent("2")]
    assert framer.unterminated is True
    framer = SSEDecoder()
    framer.feed(b"data: 1\n\n")
    assert framer.close() == []
    assert framer.unterminated is False
