"""`aipk.json_count`: a count read from decoded JSON is a whole, non-negative number or None."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import aipk

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                               max_size=3),
    max_leaves=6)


@given(st.integers(min_value=0))
def test_a_whole_non_negative_number_is_its_int(count: int) -> None:
    assert aipk.json_count(count) == count
    if count < 2**53:  # a float says the same count exactly
        assert aipk.json_count(float(count)) == count


@given(_JSON)
def test_anything_else_is_none(value: Any) -> None:
    whole = (type(value) is int and value >= 0) or (
        type(value) is float and math.isfinite(value) and value.is_integer() and value >= 0)
    result = aipk.json_count(value)
    if whole:
        assert result == int(value) and type(result) is int
    else:
        assert result is None


def test_the_values_servers_send_instead_of_a_count() -> None:
    for text in ('"12"', "true", "-1", "12.5", "null", "[]", "{}", "1e400"):
        value = json.loads(text)
        assert aipk.json_count(value) is None, text
    assert aipk.json_count(json.loads("12.0")) == 12
