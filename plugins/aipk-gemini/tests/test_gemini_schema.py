"""JSON Schema → Gemini function-declaration schema: kept, rewritten, stripped, refused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipk.errors import InvalidRequestError
from aipk_gemini.schema import to_gemini_schema


def _obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def test_supported_keywords_are_kept() -> None:
    schema = {
        "type": "object", "title": "Args", "description": "d", "required": ["n", "tags"],
        "propertyOrdering": ["n", "tags"], "minProperties": 1,
        "properties": {
            "n": {"type": "integer", "minimum": 0, "maximum": 9, "format": "int32",
                  "default": 1, "example": 3},
            "tags": {"type": "array", "items": {"type": "string", "minLength": 1,
                                                "maxLength": 5, "pattern": "^[a-z]+$"},
                     "minItems": 1, "maxItems": 3},
            "unit": {"type": "string", "enum": ["c", "f"], "format": "enum"},
            "when": {"type": "string", "format": "date-time"},
            "ratio": {"type": "number", "format": "double", "nullable": True},
        },
    }
    assert to_gemini_schema("t", schema) == schema


def test_rejected_keys_are_stripped_at_every_level() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "x", "$comment": "c",
        "type": "object", "additionalProperties": False, "x-internal": True,
        "properties": {
            "inner": {"type": "object", "additionalProperties": False, "readOnly": True,
                      "properties": {"v": {"type": "number", "exclusiveMinimum": 0,
                                           "multipleOf": 2, "examples": [2]}}},
            "list": {"type": "array", "uniqueItems": True, "items": {"type": "string",
                                                                     "format": "email"}},
        },
    }
    assert to_gemini_schema("t", schema) == _obj(
        inner=_obj(v={"type": "number"}),
        list={"type": "array", "items": {"type": "string"}})


def test_nullable_forms_and_one_of() -> None:
    schema = _obj(
        a={"type": ["string", "null"]},
        b={"anyOf": [{"type": "integer"}, {"type": "null"}], "description": "maybe"},
        c={"oneOf": [{"type": "integer"}, {"type": "string"}]},
        d={"enum": ["x", None]},
        e={"const": "fixed"},
        f={"allOf": [{"type": "boolean"}], "description": "flag"},
    )
    assert to_gemini_schema("t", schema) == _obj(
        a={"type": "string", "nullable": True},
        b={"type": "integer", "nullable": True, "description": "maybe"},
        c={"anyOf": [{"type": "integer"}, {"type": "string"}]},
        d={"enum": ["x"], "type": "string", "nullable": True},
        e={"enum": ["fixed"], "type": "string"},
        f={"type": "boolean", "description": "flag"},
    )


def test_local_refs_are_inlined() -> None:
    schema = {
        "type": "object", "$defs": {"City": _obj(name={"type": "string"})},
        "definitions": {"Unit": {"type": "string", "enum": ["c", "f"]}},
        "properties": {"city": {"$ref": "#/$defs/City", "description": "where"},
                       "unit": {"$ref": "#/definitions/Unit"},
                       "cities": {"type": "array", "items": {"$ref": "#/$defs/City"}}},
    }
    city = _obj(name={"type": "string"})
    assert to_gemini_schema("t", schema) == _obj(
        city={**city, "description": "where"},
        unit={"type": "string", "enum": ["c", "f"]},
        cities={"type": "array", "items": city})


def test_no_argument_tools_have_no_parameters() -> None:
    assert to_gemini_schema("t", {"type": "object", "properties": {}}) is None
    assert to_gemini_schema("t", {"type": "object"}) is None
    assert to_gemini_schema("t", {"type": "object", "additionalProperties": False}) is None


@pytest.mark.parametrize(("schema", "keyword"), [
    (_obj(x={"not": {"type": "string"}}), "'not'"),
    (_obj(x={"type": "string", "if": {}, "then": {}}), "'if'"),
    (_obj(x={"type": "object", "patternProperties": {"^a": {"type": "string"}}}),
     "'patternProperties'"),
    (_obj(x={"type": "array", "prefixItems": [{"type": "string"}]}), "'prefixItems'"),
    (_obj(x={"type": "array", "items": [{"type": "string"}]}), "tuple-style items"),
    (_obj(x={"allOf": [{"type": "string"}, {"minLength": 1}]}), "allOf"),
    (_obj(x={"type": "integer", "enum": [1, 2]}), "non-string values"),
    (_obj(x={"const": 3}), "non-string values"),
    (_obj(x={"type": ["string", "integer"]}), "one non-null type"),
    (_obj(x={"type": "null"}), "type 'null'"),
    (_obj(x={"type": "object", "additionalProperties": {"type": "string"}}),
     "no properties"),
    (_obj(x={"$ref": "#/$defs/Missing"}), "does not point"),
    (_obj(x={"$ref": "https://example.com/schema.json"}), "does not point"),
    ({"type": "object", "$defs": {"Node": _obj(next={"$ref": "#/$defs/Node"})},
      "properties": {"root": {"$ref": "#/$defs/Node"}}}, "recursive"),
    (_obj(x="string"), "must be an object"),
    (_obj(x={"anyOf": []}), "non-empty list"),
    (_obj(x={"type": "string", "enum": "abc"}), "must be a list"),
    ({"type": "object", "properties": ["a"]}, "properties must be an object"),
])
def test_inexpressible_schemas_are_refused(schema: dict[str, Any], keyword: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        to_gemini_schema("search", schema)
    assert info.value.field == "tools"
    assert "'search'" in str(info.value) and keyword in str(info.value)
    assert "parameters_json_schema=True" in str(info.value)


def test_error_names_the_path() -> None:
    schema = _obj(outer=_obj(inner={"type": "string", "dependentRequired": {}}))
    with pytest.raises(InvalidRequestError, match=r"parameters\.properties\.outer\.properties"
                                                  r"\.inner\.dependentRequired"):
        to_gemini_schema("t", schema)


def test_input_is_not_mutated() -> None:
    schema = {"type": "object", "additionalProperties": False,
              "properties": {"a": {"type": ["string", "null"]}}, "required": ["a"]}
    before = repr(schema)
    to_gemini_schema("t", schema)
    assert repr(schema) == before


_SCHEMA = st.recursive(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "boolean"])}),
    lambda inner: st.one_of(
        st.fixed_dictionaries({"type": st.just("array"), "items": inner}),
        st.fixed_dictionaries({"type": st.just("object"),
                               "properties": st.dictionaries(st.text(min_size=1, max_size=4),
                                                             inner, min_size=1, max_size=3),
                               "additionalProperties": st.booleans()}),
        st.fixed_dictionaries({"anyOf": st.lists(inner, min_size=1, max_size=3)}),
    ), max_leaves=12)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=4), _SCHEMA, min_size=1, max_size=3))
def test_generated_schemas_convert_without_rejected_keys(properties: dict[str, Any]) -> None:
    converted = to_gemini_schema("t", {"type": "object", "properties": properties})
    assert converted is not None
    assert set(converted["properties"]) == set(properties)
    assert "additionalProperties" not in repr(converted)
