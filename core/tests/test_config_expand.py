"""``${VAR}`` expansion: properties over arbitrary text and environments, plus the edge cases."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipk.config import ExpansionError, expand
from aipk.config._expand import references

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
VALUES = st.text(alphabet=st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=20)
PLAIN = st.text(alphabet=st.characters(blacklist_characters="$\r\n", codec="utf-8"), max_size=20)


@given(PLAIN)
def test_text_without_a_dollar_is_unchanged(text: str) -> None:
    assert expand(text, {}) == text


@given(st.lists(st.one_of(PLAIN, NAMES.map(lambda n: ("ref", n)), st.just(("dollar", ""))),
                max_size=8),
       st.dictionaries(NAMES, VALUES, max_size=6))
def test_expansion_matches_a_reference_model(parts: list[object],
                                              env: dict[str, str]) -> None:
    """Build a template from pieces and compare with the piece-by-piece meaning."""
    template, expected, missing = "", "", None
    for part in parts:
        if isinstance(part, tuple) and part[0] == "ref":
            template += "${" + part[1] + "}"
            if part[1] in env:
                expected += env[part[1]]
            elif missing is None:
                missing = part[1]
        elif isinstance(part, tuple):
            template += "$$"
            expected += "$"
        else:
            assert isinstance(part, str)
            template += part
            expected += part
    if missing is not None:
        with pytest.raises(ExpansionError) as info:
            expand(template, env)
        assert info.value.variable == missing
        assert f"set {missing}" in str(info.value)
    else:
        assert expand(template, env) == expected


@given(NAMES, VALUES, PLAIN)
def test_a_default_applies_only_when_unset_or_empty(name: str, value: str, default: str) -> None:
    default = default.replace("}", "")
    template = "${" + name + ":-" + default + "}"
    assert expand(template, {}) == default
    assert expand(template, {name: ""}) == default
    assert expand(template, {name: value}) == (value if value else default)


@given(NAMES, VALUES)
def test_values_are_not_expanded_twice(name: str, value: str) -> None:
    # a value that itself looks like a reference stays literal: no recursive expansion
    assert expand("${" + name + "}", {name: "${" + value + "}"}) == "${" + value + "}"


@given(st.text(max_size=30))
def test_references_lists_each_well_formed_name(text: str) -> None:
    for name in references(text):
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)
        assert "${" + name in text


def test_a_lone_dollar_is_kept_and_double_dollar_escapes() -> None:
    assert expand("costs $5 and $$HOME", {"HOME": "/x"}) == "costs $5 and $HOME"


@pytest.mark.parametrize("bad", ["${}", "${1X}", "${A-B}", "${A:B}"])
def test_malformed_references_are_errors_with_the_syntax(bad: str) -> None:
    with pytest.raises(ExpansionError, match=r"\$\{NAME\}"):
        expand(bad, {})


def test_a_value_with_a_line_break_is_refused() -> None:
    with pytest.raises(ExpansionError, match="line break") as info:
        expand("${K}", {"K": "a\nb"})
    assert info.value.variable == "K"


def test_a_lookup_function_works_like_a_mapping() -> None:
    assert expand("${A}-${B:-b}", {"A": "a"}.get) == "a-b"
