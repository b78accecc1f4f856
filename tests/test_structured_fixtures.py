"""Structured output against real captures (``tests/fixtures/structured/``): the request each
plugin builds matches what the provider was sent, and each captured answer becomes
``response.parsed``, with the expected values written out by hand from the captures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import attrs
import pytest

import aipk_anthropic.plugin
import aipk_gemini.plugin
import aipk_openai.plugin
from aipk import ChatRequest, Message, ProviderSpec, ResponseFormat
from aipk._core import Engine
from aipk.errors import StructuredOutputError
from aipk_anthropic import ANTHROPIC
from aipk_anthropic import wire as anthropic_wire
from aipk_gemini import GEMINI
from aipk_gemini import wire as gemini_wire
from aipk_openai import OPENAI
from aipk_openai import wire as openai_wire
from aipk_testkit.fixtures import (
    Captures,
    find_fixtures,
    make_engine,
    make_provider,
    manifest_names,
    replay_stream,
    split_at,
)

FIXTURES = find_fixtures(__file__)
CAPTURES = Captures(FIXTURES / "structured")
PLUGINS: dict[str, tuple[ProviderSpec, Any]] = {
    "openai": (OPENAI, aipk_openai.plugin), "anthropic": (ANTHROPIC, aipk_anthropic.plugin),
    "google": (GEMINI, aipk_gemini.plugin)}


@dataclass
class CityLocation:
    city: str
    country: str


@attrs.frozen
class City:
    city: str
    country: str
    population: int


@attrs.frozen
class Dog:
    name: str
    age: int
    bio: str


@attrs.frozen
class CityData:
    city: str
    country: str


@attrs.frozen
class CountryData:
    country: str
    language: str


@attrs.frozen
class CityResult:
    kind: Literal["CityLocation"]
    data: CityData


@attrs.frozen
class CountryResult:
    kind: Literal["CountryLanguage"]
    data: CountryData


@attrs.frozen
class Union:
    result: CityResult | CountryResult


def _engine(folder: str, **options: Any) -> Engine:
    spec, plugin = PLUGINS[folder]
    return make_engine(make_provider(spec, **options), {spec.name: plugin})


def _request(fmt: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message.user("hi")], response_format=fmt)


def _sent(name: str) -> dict[str, Any]:
    body = CAPTURES.request(name)["body"]
    return json.loads(body) if isinstance(body, str) else body  # type: ignore[no-any-return]


# name -> (response_format, provider options, expected parsed value)
ANSWERS: dict[str, tuple[Any, dict[str, Any], Any]] = {
    "openai/lcgo-chat-json-schema.json": (
        {"type": "object", "properties": {"final_answer": {"type": "string"}},
         "required": ["final_answer"]}, {}, {"final_answer": "4"}),
    "openai/lcgo-chat-json-object.json": ("json", {}, {"greeting": "hello"}),
    "openai/pai-chat-json-schema-after-tool.json": (
        CityLocation, {}, CityLocation(city="Mexico City", country="Mexico")),
    "anthropic/pai-json-schema-output-config.json": (
        City, {}, City(city="London", country="United Kingdom", population=9002488)),
    "anthropic/pai-forced-tool-json.json": (
        City, {"structured_output": "tool"},
        City(city="Tokyo", country="Japan", population=14000000)),
    "google/pai-json-schema-gemini-2.0.json": (
        CityLocation, {}, CityLocation(city="Mexico City", country="Mexico")),
    "google/pai-response-schema-union.json": (
        Union, {"structured_output": "response_schema"},
        Union(result=CountryResult(kind="CountryLanguage",
                                   data=CountryData(country="Mexico", language="Spanish")))),
    "google/lcgo-json-mode-enum-int.json": ("json", {}, ["red", "green", "blue"]),
}

STREAMS: dict[str, tuple[Any, Any]] = {
    "openai/sdk-chat-stream-structured-output-json-schema.sse": (
        {"type": "object", "properties": {"city": {"type": "string"},
                                          "temperature": {"type": "number"},
                                          "units": {"enum": ["c", "f"]}}},
        {"city": "San Francisco", "temperature": 61, "units": "f"}),
    "anthropic/sdk-stream-json-schema-beta.sse": (
        {"type": "array", "items": {"type": "integer"}}, [12345, 67890]),
    "anthropic/llma-stream-json-schema.sse": (Dog, "Biscuit"),
    "google/pai-stream-json-schema-after-tool.sse": (
        CityLocation, CityLocation(city="Mexico City", country="Mexico")),
    "openai/sdk-chat-stream-json-object-mode.sse": ("json", "San Francisco, CA"),
}


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_captured_answers_become_parsed(name: str) -> None:
    fmt, options, expected = ANSWERS[name]
    body, headers = CAPTURES.body_and_headers(name)
    engine = _engine(name.split("/")[0], **options)
    response = engine.chat_response(_request(fmt), body, headers, None)
    assert response.parsed == expected


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_captured_streams_give_parsed_at_the_end(name: str) -> None:
    fmt, expected = STREAMS[name]
    raw = CAPTURES.body(name)
    engine = _engine(name.split("/")[0])
    events, response = replay_stream(engine, _request(fmt), split_at(raw, range(7, len(raw), 97)))
    parsed = response.parsed
    if isinstance(parsed, Dog):
        assert parsed.name == expected and parsed.age == 4
    elif isinstance(parsed, dict) and "location" in parsed:
        assert parsed["location"] == expected and parsed["forecast"][0]["day"] == "Monday"
    else:
        assert parsed == expected
    assert events  # text deltas were delivered as they arrived


def test_a_truncated_captured_stream_raises_with_the_partial_text() -> None:
    raw = CAPTURES.body("openai/sdk-chat-stream-structured-output-json-schema.sse")
    cut = raw[:raw.index(b'"temperature')]
    engine = _engine("openai")
    session = engine.open_stream(_request("json"), {}, None)
    session.feed(cut)
    with pytest.raises(StructuredOutputError) as caught:
        session.response()
    assert caught.value.text == '{"city":"San Francisco","'
    assert caught.value.path == "$"


def test_openai_request_matches_the_strict_capture() -> None:
    sent = _sent("openai/lcgo-chat-json-schema.json")["response_format"]
    inner = sent["json_schema"]
    fmt = ResponseFormat(schema=inner["schema"], name=inner["name"], strict=True)
    body: dict[str, Any] = {"messages": []}
    openai_wire.add_response_format(make_provider(OPENAI), fmt, body)
    assert body["response_format"] == sent


def test_openai_request_matches_the_non_strict_capture() -> None:
    sent = _sent("openai/pai-chat-json-schema-after-tool.json")["response_format"]
    fmt = ResponseFormat(schema=sent["json_schema"]["schema"], name="result", strict=False)
    body: dict[str, Any] = {"messages": []}
    openai_wire.add_response_format(make_provider(OPENAI), fmt, body)
    assert body["response_format"] == sent


def test_openai_json_mode_matches_the_capture() -> None:
    body: dict[str, Any] = {"messages": []}
    openai_wire.add_response_format(make_provider(OPENAI), ResponseFormat.json(), body)
    assert body["response_format"] == _sent("openai/lcgo-chat-json-object.json")[
        "response_format"]


def test_anthropic_output_config_matches_the_capture() -> None:
    sent = _sent("anthropic/pai-json-schema-output-config.json")["output_config"]
    body: dict[str, Any] = {}
    anthropic_wire.add_response_format(make_provider(ANTHROPIC), _request(City).response_format,
                                       body)  # type: ignore[arg-type]
    ours = body["output_config"]["format"]
    assert ours["type"] == sent["format"]["type"] == "json_schema"
    assert {k: v for k, v in ours["schema"].items() if k != "title"} == sent["format"]["schema"]


def test_anthropic_forced_tool_carries_the_schema_like_the_capture() -> None:
    sent = _sent("anthropic/pai-forced-tool-json.json")["tools"][0]
    body: dict[str, Any] = {}
    provider = make_provider(ANTHROPIC, structured_output="tool")
    anthropic_wire.add_response_format(provider, _request(City).response_format,
                                       body)  # type: ignore[arg-type]
    ours = body["tools"][0]
    assert ours["name"] == sent["name"] == "final_result"
    assert {k: v for k, v in ours["input_schema"].items()
            if k not in ("title", "additionalProperties")} == sent["input_schema"]
    assert body["tool_choice"] == {"type": "tool", "name": "final_result"}


def test_gemini_generation_config_matches_the_captures() -> None:
    sent = _sent("google/pai-json-schema-gemini-2.0.json")["generationConfig"]
    config: dict[str, Any] = {}
    fmt = ResponseFormat(schema=sent["responseJsonSchema"])
    gemini_wire.add_response_format(make_provider(GEMINI), fmt, config)
    assert config == {"responseMimeType": "application/json",
                      "responseJsonSchema": sent["responseJsonSchema"]}
    json_mode: dict[str, Any] = {}
    gemini_wire.add_response_format(make_provider(GEMINI), ResponseFormat.json(), json_mode)
    sent_mode = _sent("google/lcgo-json-mode-enum-int.json")["generationConfig"]
    assert json_mode == {"responseMimeType": sent_mode["responseMimeType"]}


def test_every_structured_capture_has_a_test_and_a_manifest_entry() -> None:
    on_disk = {f"{folder}/{name}" for folder in ("openai", "anthropic", "google")
               for name in Captures(FIXTURES / "structured" / folder).names()}
    assert on_disk == set(ANSWERS) | set(STREAMS)
    assert manifest_names(FIXTURES, "structured") == on_disk
