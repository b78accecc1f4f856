"""``framing.parse_json`` / ``parse_json_bytes`` (the C scanner called directly) give exactly
what ``json.loads`` gives: the same value, or the same error type and message."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from aipk.framing import loads, parse_json, parse_json_bytes

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)
WHITESPACE = st.text(alphabet=" \t\r\n", max_size=2)


def _outcome(parse: Any, data: Any) -> tuple[str, Any]:
    try:
        return "ok", parse(data)
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


@given(JSON_VALUES, WHITESPACE, WHITESPACE, st.booleans())
def test_documents_parse_as_json_loads(value: Any, before: str, after: str, compact: bool) -> None:
    text = before + json.dumps(value, separators=(",", ":") if compact else None) + after
    assert _outcome(parse_json, text) == _outcome(json.loads, text)
    assert _outcome(parse_json_bytes, text.encode()) == _outcome(json.loads, text.encode())
    assert _outcome(loads, text) == _outcome(json.loads, text)


@given(st.text(max_size=40))
def test_any_text_parses_or_fails_as_json_loads(text: str) -> None:
    assert _outcome(parse_json, text) == _outcome(json.loads, text)


@given(st.binary(max_size=40) | st.text(max_size=40).map(lambda t: t.encode("utf-16")))
def test_any_bytes_parse_or_fail_as_json_loads(body: bytes) -> None:
    assert _outcome(parse_json_bytes, body) == _outcome(json.loads, body)


def test_cut_and_deep_documents_fail_as_json_loads() -> None:
    for text in ['{"a":1', '{"a":1} x', "", "[" * 100_000]:
        assert _outcome(parse_json, text) == _outcome(json.loads, text)
