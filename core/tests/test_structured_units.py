"""The JSON Schema subset validator and checker, response_format coercion, docstring parsing and
tool building, each on hand-written cases (the property tests cover random records)."""

from __future__ import annotations

import json
import string
from typing import Any

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import given

import aipk
from aipk import ChatRequest, Message, ResponseFormat
from aipk._jsonschema import problems, schema_problems
from aipk._structured import parse_structured
from aipk._tools import parse_docstring
from aipk.errors import InvalidRequestError, StructuredOutputError

ASK = [Message.user("hi")]


@pytest.mark.parametrize(("schema", "value", "path"), [
    ({"type": "string", "minLength": 2}, "a", "$"),
    ({"type": "string", "maxLength": 2}, "abc", "$"),
    ({"type": "integer", "minimum": 3}, 2, "$"),
    ({"type": "number", "maximum": 3}, 3.5, "$"),
    ({"type": "number", "exclusiveMaximum": 3}, 3, "$"),
    ({"type": "integer"}, True, "$"),
    ({"type": "integer"}, 1.5, "$"),
    ({"enum": ["a", "b"]}, "c", "$"),
    ({"const": 1}, True, "$"),
    ({"type": "array", "items": {"type": "string"}}, ["a", 2], "$[1]"),
    ({"type": "array", "minItems": 2}, [1], "$"),
    ({"type": "object", "required": ["a"]}, {}, "$.a"),
    ({"type": "object", "properties": {"a": {"type": "string"}},
      "additionalProperties": False}, {"a": "x", "b": 1}, "$.b"),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, {"k k": "x"}, "$['k k']"),
    ({"anyOf": [{"type": "string"}, {"type": "null"}]}, 3, "$"),
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 3, "$"),
    ({"$defs": {"n": {"type": "integer"}}, "type": "object",
      "properties": {"x": {"$ref": "#/$defs/n"}}}, {"x": "1"}, "$.x"),
    ({"type": ["string", "null"]}, 1, "$"),
])
def test_violations_are_found_with_their_path(schema: dict[str, Any], value: Any,
                                              path: str) -> None:
    found = problems(value, schema)
    assert found and found[0][0] == path


@pytest.mark.parametrize(("schema", "value"), [
    ({"type": "integer"}, 2.0),
    ({"type": "number"}, 2),
    ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, 3),
    ({"type": ["string", "null"]}, None),
    ({"type": "object", "properties": {"a": {"type": "string"}}}, {"a": "x", "b": 1}),
    ({"description": "anything", "format": "date"}, [1, {"x": None}]),
    (True, 5),
])
def test_valid_values_pass(schema: Any, value: Any) -> None:
    assert problems(value, schema) == []


@pytest.mark.parametrize(("schema", "path"), [
    ({"type": "strin"}, "$.type"),
    ({"type": "object", "properties": {"a": {"type": "list"}}}, "$.properties.a.type"),
    ({"type": "object", "required": "a"}, "$.required"),
    ({"anyOf": []}, "$.anyOf"),
    ({"type": "string", "minLength": -1}, "$.minLength"),
    ({"$ref": "#/$defs/missing"}, "$.$ref"),
    ({"type": "array", "items": 3}, "$.items"),
])
def test_broken_schemas_are_reported(schema: dict[str, Any], path: str) -> None:
    assert schema_problems(schema)[0][0] == path


def test_response_format_forms() -> None:
    assert ChatRequest(model="m", messages=ASK, response_format="json").response_format == (
        ResponseFormat.json())
    wrapped = ChatRequest(model="m", messages=ASK, response_format={
        "type": "json_schema", "json_schema": {"name": "math answer", "strict": False,
                                               "schema": {"type": "object"}}}).response_format
    assert wrapped is not None and wrapped.name == "math_answer" and wrapped.strict is False
    with pytest.raises(InvalidRequestError, match="response_format='yaml'"):
        ChatRequest(model="m", messages=ASK, response_format="yaml")
    with pytest.raises(InvalidRequestError, match=r"\$\.properties\.a\.type"):
        ChatRequest(model="m", messages=ASK,
                    response_format={"type": "object", "properties": {"a": {"type": "str"}}})
    with pytest.raises(InvalidRequestError, match="dict\\[str"):
        @attrs.frozen
        class Bad:
            counts: dict[int, int]
        ChatRequest(model="m", messages=ASK, response_format=Bad)


@attrs.frozen
class Node:
    children: list[Node]


def test_a_recursive_record_is_refused_when_the_request_is_built() -> None:
    with pytest.raises(InvalidRequestError, match="refers to itself"):
        ChatRequest(model="m", messages=ASK, response_format=Node)


def test_pydantic_models_use_pydantic() -> None:
    pydantic = pytest.importorskip("pydantic")

    class City(pydantic.BaseModel):  # type: ignore[misc,name-defined]
        name: str
        population: int = 0

    fmt = ChatRequest(model="m", messages=ASK, response_format=City).response_format
    assert fmt is not None and fmt.schema["required"] == ["name"]  # type: ignore[index]
    parsed = parse_structured('{"name": "Oslo"}', fmt, provider="p")
    assert isinstance(parsed, City) and parsed.population == 0
    with pytest.raises(StructuredOutputError):
        parse_structured('{"name": 3, "population": "x"}', fmt, provider="p")


def test_a_refusal_is_a_structured_output_error() -> None:
    response = aipk.ChatResponse(provider="openai", model="m",
                                 message=Message.assistant(None), refusal="I can't help")
    from aipk._structured import with_parsed
    with pytest.raises(StructuredOutputError) as caught:
        with_parsed(response, ResponseFormat.json())
    assert caught.value.text == "I can't help" and caught.value.response is response


def test_docstring_styles() -> None:
    google = '''Summary line
    continues.

    Args:
        city (str): The city.
            More about it.
        *args: Ignored.

    Returns:
        Nothing.
    '''
    assert parse_docstring(google) == ("Summary line\ncontinues.",
                                       {"city": "The city. More about it.", "args": "Ignored."})
    numpy = ("Do.\n\nParameters\n----------\nx : int\n    The x.\ny\n    The y.\n\n"
             "Returns\n-------\nint\n")
    assert parse_docstring(numpy) == ("Do.", {"x": "The x.", "y": "The y."})
    rest = "Do.\n\n:param x: The x.\n:type x: int\n:param str y: The y\n    continued.\n"
    assert parse_docstring(rest) == ("Do.", {"x": "The x.", "y": "The y continued."})


NAMES = st.text(string.ascii_lowercase, min_size=1, max_size=8)
WORDS = st.lists(st.text(string.ascii_letters, min_size=1, max_size=6), min_size=1, max_size=4)


@given(st.dictionaries(NAMES, WORDS, min_size=1, max_size=4), st.sampled_from(["g", "n", "r"]))
def test_docstring_parameters_round_trip(params: dict[str, list[str]], style: str) -> None:
    lines = ["Summary.", ""]
    if style == "g":
        lines.append("Args:")
        lines += [f"    {name}: {' '.join(words)}" for name, words in params.items()]
    elif style == "n":
        lines += ["Parameters", "----------"]
        for name, words in params.items():
            lines += [f"{name} : str", f"    {' '.join(words)}"]
    else:
        lines += [f":param {name}: {' '.join(words)}" for name, words in params.items()]
    summary, parsed = parse_docstring("\n".join(lines))
    assert summary == "Summary."
    assert parsed == {name: " ".join(words) for name, words in params.items()}


def test_tools_from_functions_refuse_what_cannot_be_called_by_name() -> None:
    def star(*items: int) -> None: ...

    def positional(a: int, /) -> None: ...

    def open_ended(a: int, **more: Any) -> None: ...

    with pytest.raises(InvalidRequestError, match=r"\*items"):
        aipk.as_tool(star)
    with pytest.raises(InvalidRequestError, match="positional-only"):
        aipk.as_tool(positional)
    assert "additionalProperties" not in aipk.as_tool(open_ended).parameters
    with pytest.raises(InvalidRequestError, match="missing the key 'name'"):
        aipk.as_tool({"type": "function", "function": {"parameters": {}}})
    with pytest.raises(InvalidRequestError, match="not int"):
        aipk.as_tool(3)


def test_tool_arguments_that_are_not_json_or_not_an_object() -> None:
    def echo(city: str) -> str:
        return city

    with pytest.raises(InvalidRequestError, match="'<lambda>' must be"):
        aipk.as_tool(lambda city: city)
    tool = aipk.as_tool(echo)
    with pytest.raises(aipk.ToolArgumentsError, match="not valid JSON"):
        tool.validate_arguments('{"city": ')
    with pytest.raises(aipk.ToolArgumentsError, match="JSON object"):
        tool.validate_arguments("[1]")
    assert tool.validate_arguments({"city": "x"}) == {"city": "x"}
    assert json.loads(json.dumps(tool.parameters)) == tool.parameters


@attrs.frozen
class Book:
    title: str
    default: int = 0
    properties: list[str] = attrs.Factory(list)


def test_fields_named_like_keywords_keep_their_schema() -> None:
    fmt = ChatRequest(model="m", messages=ASK, response_format=Book).response_format
    assert fmt is not None
    strict, ok = fmt.strict_schema()
    assert ok and set(strict["properties"]) == {"title", "default", "properties"}
    assert strict["required"] == ["title", "default", "properties"]
    tool = aipk.as_tool(Book)
    assert tool.validate_arguments({"title": "x", "properties": ["a"]}) == {
        "title": "x", "properties": ["a"]}
    with pytest.raises(aipk.ToolArgumentsError, match="argument properties"):
        tool.validate_arguments({"title": "x", "properties": "a"})
    assert parse_structured('{"title": "x", "default": null, "properties": null}', fmt,
                            provider="p") == Book(title="x")
