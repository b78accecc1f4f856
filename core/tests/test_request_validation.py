"""Bad input to a chat request or a client is a typed error naming the field and the fix,
raised before anything is sent: numbers out of range or of the wrong type, misspelt fields,
tools given as dicts, timeouts."""

from __future__ import annotations

import importlib.util
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aipk
from aipk import ChatRequest, Message, Tool
from aipk._base import unknown_field_error
from aipk.errors import ConfigurationError, InvalidRequestError

#: Tests that build a real client need a provider plugin and the emulator; the core's isolated
#: session (only aipk-core installed) skips them, the full suite runs them.
needs_plugins = pytest.mark.skipif(
    importlib.util.find_spec("aipk_openai") is None
    or importlib.util.find_spec("aipk_testkit") is None,
    reason="needs aipk-openai and aipk-testkit installed (the full suite runs it)")

USER = [Message.user("Hi")]


def request(**fields: object) -> ChatRequest:
    return ChatRequest(model="m", messages=USER, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("field", "value", "words"), [
    ("temperature", 2.5, ["temperature is 2.5", "from 0 to 2"]),
    ("temperature", -0.1, ["outside the allowed range", "from 0 to 2"]),
    ("temperature", "hot", ["must be a number, not str 'hot'"]),
    ("temperature", True, ["must be a number, not bool"]),
    ("temperature", math.nan, ["outside the allowed range"]),
    ("top_p", 1.01, ["top_p is 1.01", "from 0 to 1"]),
    ("top_p", [0.5], ["must be a number, not list"]),
    ("max_tokens", "100", ["must be an integer, not str '100'", "max_tokens=1024"]),
    ("max_tokens", 0, ["max_tokens is 0", "positive integer"]),
    ("max_tokens", -5, ["max_tokens is -5"]),
    ("max_tokens", 10.0, ["must be an integer, not float"]),
    ("max_tokens", False, ["must be an integer, not bool"]),
])
def test_bad_numbers_are_refused_naming_field_problem_and_range(
        field: str, value: object, words: list[str]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        request(**{field: value})
    assert caught.value.field == field
    for word in words:
        assert word in str(caught.value)


def test_n_below_one_in_extra_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="n is 0") as caught:
        request(extra={"n": 0})
    assert caught.value.field == "n"
    assert request(extra={"n": 2}).extra["n"] == 2


def test_edges_and_other_number_types_are_accepted() -> None:
    from fractions import Fraction
    assert request(temperature=0, top_p=1, max_tokens=1).temperature == 0
    assert request(temperature=2.0).temperature == 2.0
    edge = request(temperature=Fraction(1, 2), top_p=Fraction(1, 4))
    assert edge.temperature == 0.5 and type(edge.temperature) is float
    assert edge.top_p == 0.25


@given(st.one_of(st.floats(allow_nan=True), st.integers(), st.booleans(), st.text(max_size=5),
                 st.none()))
def test_temperature_accepted_exactly_when_a_number_from_0_to_2(value: object) -> None:
    valid = value is None or (type(value) in (int, float) and 0 <= value <= 2)  # type: ignore[operator]
    if valid:
        assert request(temperature=value).temperature == value
    else:
        with pytest.raises(InvalidRequestError) as caught:
            request(temperature=value)
        assert caught.value.field == "temperature"


@given(st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=5)))
def test_max_tokens_accepted_exactly_when_a_positive_int(value: object) -> None:
    valid = type(value) is int and value > 0
    if valid:
        assert request(max_tokens=value).max_tokens == value
    else:
        with pytest.raises(InvalidRequestError) as caught:
            request(max_tokens=value)
        assert caught.value.field == "max_tokens"


# -- tools -----------------------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


def test_openai_style_and_flat_tool_dicts_become_tools() -> None:
    built = request(tools=[
        {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                          "parameters": SCHEMA, "strict": True}},
        {"name": "lookup", "description": "Find", "parameters": SCHEMA},
        {"name": "anthropic_style", "input_schema": SCHEMA},
        {"name": "bare"},
        Tool(name="ready"),
    ])
    assert [t.name for t in built.tools] == ["get_weather", "lookup", "anthropic_style", "bare",
                                             "ready"]
    assert built.tools[0] == Tool(name="get_weather", description="Weather", parameters=SCHEMA,
                                  strict=True)
    assert built.tools[2].parameters == SCHEMA
    assert built.tools[3].parameters == {"type": "object", "properties": {}}


@pytest.mark.parametrize(("tool", "words"), [
    ({"type": "function", "function": {"description": "x"}}, "missing the key 'name'"),
    ({"description": "x", "parameters": SCHEMA}, "missing the key 'name'"),
    ({"type": "function"}, "needs a 'function' dict"),
    ({"type": "function", "function": "get_weather"}, "needs a 'function' dict"),
    ({"name": "f", "parameters": "{}"}, "'parameters' must be a JSON Schema dict"),
    ({"name": "f", "parameters": {"type": "array"}}, "type 'object'"),
    ({"name": "bad name!"}, "must be non-empty and use only letters"),
    ("get_weather", "aipk.Tool objects or dicts, not str"),
])
def test_malformed_tool_dicts_are_typed_errors(tool: object, words: str) -> None:
    with pytest.raises(InvalidRequestError, match=words.replace("(", r"\(")) as caught:
        request(tools=[tool])
    assert caught.value.field == "tools"


def test_tools_must_be_a_list() -> None:
    with pytest.raises(InvalidRequestError, match=r"tools=\[tool\]"):
        request(tools=Tool(name="one"))
    with pytest.raises(InvalidRequestError, match=r"tools=\[tool\]"):
        request(tools={"name": "one"})


def test_tool_choice_can_name_a_dict_tool() -> None:
    built = request(tools=[{"name": "f"}], tool_choice=aipk.ToolChoice.function("f"))
    assert built.tool_choice is not None and built.tool_choice.name == "f"


# -- fields and timeouts -----------------------------------------------------------------------


def test_a_misspelt_field_suggests_the_right_one() -> None:
    error = unknown_field_error("temprature")
    assert "did you mean 'temperature'?" in str(error) and error.field == "temprature"
    assert "the fields are" in str(unknown_field_error("zzzzzz"))


@needs_plugins
def test_client_chat_with_a_misspelt_field_is_typed_before_sending() -> None:
    with aipk.Client("openai", api_key="sk-abc-123456", base_url="http://127.0.0.1:9/v1",
                     max_retries=0) as client:
        with pytest.raises(InvalidRequestError, match="did you mean 'max_tokens'"):
            client.chat(model="m", messages=USER, max_token=5)
        with pytest.raises(InvalidRequestError, match="max_tokens must be an integer"):
            client.stream(model="m", messages=USER, max_tokens="100")


@pytest.mark.parametrize(("timeout", "words"), [
    (-1, "timeout= is -1, not a positive number"),
    (0, "timeout= is 0"),
    (math.inf, "timeout= is inf"),
    ("10", "timeout= is a str, not a number"),
    (True, "timeout= is a bool"),
])
@needs_plugins
def test_bad_timeouts_are_configuration_errors(timeout: object, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        aipk.Client("openai", api_key="sk-abc-123456", base_url="http://127.0.0.1:9/v1",
                    timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=words):
        aipk.AsyncClient("openai", api_key="sk-abc-123456", base_url="http://127.0.0.1:9/v1",
                         timeout=timeout)  # type: ignore[arg-type]


def test_timeout_record_fields_are_checked() -> None:
    with pytest.raises(ConfigurationError, match=r"Timeout\(read=\) is -2"):
        aipk.Timeout(read=-2)
    assert aipk.Timeout(connect=1, read=2.5).read == 2.5
