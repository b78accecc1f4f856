"""Structured output end to end over real HTTP: each plugin's native mechanism, sync and async,
streamed and not, against the loopback emulator (which answers with JSON following the schema
the request sent)."""

from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

import aipk
from aipk import Message
from aipk._jsonschema import problems
from aipk.errors import StructuredOutputError
from aipk_testkit.emulator import Emulator, Reply
from aipk_testkit.emulator._structured import sample

KEY = "sk-test-0123456789abcdef"
ASK = [Message.user("Tell me about a city")]


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


@attrs.frozen
class Place:
    name: str
    population: int
    size: Size
    kind: Literal["city", "town"] = "city"
    tags: list[str] = attrs.Factory(list)
    mayor: str | None = None


@dataclass
class Report:
    places: list[Place]
    note: str = field(default="")


# provider, model, extra client options, the body key that carries the native mechanism
CASES = [
    ("openai", "gpt-4o-mini", {}, "response_format"),
    ("anthropic", "claude-sonnet-4-5", {}, "output_config"),
    ("gemini", "gemini-2.0-flash", {}, "generationConfig"),
    ("groq", "llama-3.3-70b-versatile", {}, "response_format"),
    ("cerebras", "llama3.1-8b", {}, "response_format"),
    ("openrouter", "openai/gpt-4o-mini", {}, "response_format"),
    ("ollama-native", "llama3.2", {}, "format"),
]


def _url(emu: Emulator, provider: str) -> str:
    compatible = provider in ("groq", "cerebras", "openrouter")
    return emu.url("openai" if compatible else provider.removesuffix("-native"))


def _body(emu: Emulator) -> dict[str, Any]:
    return json.loads(emu.requests[-1].body)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("provider", "model", "options", "key"), CASES)
@pytest.mark.parametrize("stream", [False, True])
def test_sync_record_class(aipk_emulator: Emulator, provider: str, model: str,
                           options: dict[str, Any], key: str, stream: bool) -> None:
    with aipk.Client(provider, base_url=_url(aipk_emulator, provider), api_key=KEY,
                     **options) as client:
        if stream:
            with client.stream(model=model, messages=ASK, response_format=Report) as s:
                texts = "".join(s.text())
                response = s.response
            assert json.loads(texts) == json.loads(response.text)
        else:
            response = client.chat(model=model, messages=ASK, response_format=Report)
    assert isinstance(response.parsed, Report)
    assert isinstance(response.parsed.places[0], Place)
    assert response.parsed.places[0].size is Size.SMALL
    assert key in _body(aipk_emulator)


@pytest.mark.parametrize(("provider", "model", "options", "key"), CASES)
@pytest.mark.parametrize("stream", [False, True])
def test_async_dict_schema(aipk_emulator: Emulator, provider: str, model: str,
                           options: dict[str, Any], key: str, stream: bool) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "minLength": 2},
                                               "rank": {"type": "integer", "minimum": 1}},
              "required": ["city", "rank"]}

    async def run() -> aipk.ChatResponse:
        async with aipk.AsyncClient(provider, base_url=_url(aipk_emulator, provider),
                                    api_key=KEY, **options) as client:
            if stream:
                s = client.stream(model=model, messages=ASK, response_format=schema)
                async with s:
                    async for _ in s:
                        pass
                return await s.get_response()
            return await client.chat(model=model, messages=ASK, response_format=schema)

    response = asyncio.run(run())
    assert response.parsed["rank"] >= 1
    assert isinstance(response.parsed["city"], str)


def test_openai_sends_strict_json_schema(aipk_emulator: Emulator) -> None:
    with aipk.Client("openai", base_url=aipk_emulator.url("openai"), api_key=KEY) as client:
        client.chat(model="gpt-4o", messages=ASK, response_format=Place)
    sent = _body(aipk_emulator)["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    schema = sent["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(schema["properties"])  # strict: all required
    assert {"type": "null"} in schema["properties"]["kind"]["anyOf"]  # optional -> nullable


def test_openai_strict_nulls_for_defaults_are_dropped(aipk_emulator: Emulator) -> None:
    answer = {"name": "Oslo", "population": 700000, "size": "large", "kind": None,
              "tags": None, "mayor": None}
    aipk_emulator.enqueue(Reply(text=json.dumps(answer)))
    with aipk.Client("openai", base_url=aipk_emulator.url("openai"), api_key=KEY) as client:
        reply = client.chat(model="gpt-4o", messages=ASK, response_format=Place)
    assert reply.parsed == Place(name="Oslo", population=700000, size=Size.LARGE)


def test_json_mode(aipk_emulator: Emulator) -> None:
    with aipk.Client("openai", base_url=aipk_emulator.url("openai"), api_key=KEY) as client:
        reply = client.chat(model="gpt-4o", messages=ASK, response_format="json")
    assert _body(aipk_emulator)["response_format"] == {"type": "json_object"}
    assert reply.parsed == {"answer": "echo"}


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_sends_its_format_field(aipk_emulator: Emulator, stream: bool) -> None:
    with aipk.Client("ollama-native", base_url=aipk_emulator.url("ollama"),
                     api_key=KEY) as client:
        reply = client.chat(model="llama3.2", messages=ASK, response_format="json")
        assert _body(aipk_emulator)["format"] == "json"
        assert reply.parsed == {"answer": "echo"}
        if stream:
            with client.stream(model="llama3.2", messages=ASK, response_format=Place) as s:
                assert json.loads("".join(s.text()))["population"] >= 0
                reply = s.response
        else:
            reply = client.chat(model="llama3.2", messages=ASK, response_format=Place)
    sent = _body(aipk_emulator)["format"]
    assert sent["type"] == "object" and set(sent["required"]) >= {"name", "population"}
    assert isinstance(reply.parsed, Place) and reply.parsed.size is Size.SMALL


def test_groq_degrades_to_json_mode_with_the_schema_in_a_system_message(
        aipk_emulator: Emulator) -> None:
    with aipk.Client("groq", base_url=aipk_emulator.url("openai"), api_key=KEY) as client:
        reply = client.chat(messages=ASK, response_format=Place)
    body = _body(aipk_emulator)
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["role"] == "system"
    assert '"population"' in body["messages"][0]["content"]
    assert isinstance(reply.parsed, Place)


def test_anthropic_forced_tool_when_configured(aipk_emulator: Emulator) -> None:
    with aipk.Client("anthropic", base_url=aipk_emulator.url("anthropic"), api_key=KEY,
                     structured_output="tool") as client:
        reply = client.chat(model="claude-3-5-haiku-latest", messages=ASK,
                            response_format=Place)
        with client.stream(model="claude-3-5-haiku-latest", messages=ASK,
                           response_format=Place) as s:
            streamed = s.get_response()
    body = _body(aipk_emulator)
    assert body["tool_choice"] == {"type": "tool", "name": "final_result"}
    assert "output_config" not in body
    assert isinstance(reply.parsed, Place) and reply.parsed == streamed.parsed


def test_gemini_response_schema_for_older_models(aipk_emulator: Emulator) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"]}
    with aipk.Client("gemini", base_url=aipk_emulator.url("gemini"), api_key=KEY,
                     structured_output="response_schema") as client:
        reply = client.chat(model="gemini-1.5-flash", messages=ASK, response_format=schema)
    config = _body(aipk_emulator)["generationConfig"]
    assert config["responseSchema"]["properties"]["city"]["type"] == "string"
    assert "responseJsonSchema" not in config
    assert reply.parsed == {"city": "xxxx"}


@pytest.mark.parametrize("stream", [False, True])
def test_invalid_answers_raise_with_the_raw_text(aipk_emulator: Emulator, stream: bool) -> None:
    aipk_emulator.enqueue(Reply(text='{"name": "Oslo", "population": "many"'),
                          Reply(text='{"name": "Oslo", "population": "many", "size": "small"}'))
    with aipk.Client("openai", base_url=aipk_emulator.url("openai"), api_key=KEY) as client:
        for expected_path in ("$", "$.population"):
            with pytest.raises(StructuredOutputError) as caught:
                if stream:
                    client.stream(model="gpt-4o", messages=ASK,
                                  response_format=Place).get_response()
                else:
                    client.chat(model="gpt-4o", messages=ASK, response_format=Place)
            assert caught.value.path == expected_path
            assert caught.value.text.startswith('{"name": "Oslo"')
            assert caught.value.response.text == caught.value.text
            assert "population" in caught.value.text


def test_plain_requests_have_no_parsed_and_send_no_format(aipk_emulator: Emulator) -> None:
    with aipk.Client("openai", base_url=aipk_emulator.url("openai"), api_key=KEY) as client:
        reply = client.chat(model="gpt-4o", messages=ASK)
    assert reply.parsed is None
    assert "response_format" not in _body(aipk_emulator)


def test_anthropic_moves_unsupported_constraints_into_the_description_and_aipk_checks_them(
        aipk_emulator: Emulator) -> None:
    schema = {"type": "object", "properties": {"rank": {"type": "integer", "minimum": 3}},
              "required": ["rank"], "oneOf": [{"required": ["rank"]}]}
    with aipk.Client("anthropic", base_url=aipk_emulator.url("anthropic"),
                     api_key=KEY) as client, pytest.raises(StructuredOutputError) as caught:
        client.chat(model="claude-sonnet-4-5", messages=ASK, response_format=schema)
    sent = _body(aipk_emulator)["output_config"]["format"]
    assert sent["type"] == "json_schema"
    assert sent["schema"]["properties"]["rank"] == {"type": "integer",
                                                    "description": "(minimum: 3)"}
    assert "anyOf" in sent["schema"] and "oneOf" not in sent["schema"]
    assert sent["schema"]["additionalProperties"] is False
    assert caught.value.path == "$.rank"  # the emulated model ignored it; aipk did not


SCHEMAS = st.deferred(lambda: st.one_of(
    st.sampled_from([{"type": "string", "minLength": 3}, {"type": "integer", "minimum": 2},
                     {"type": "number"}, {"type": "boolean"}, {"type": "null"},
                     {"enum": ["a", 1]}, {"const": "k"}, {"type": ["string", "null"]}]),
    st.builds(lambda items, n: {"type": "array", "items": items, "minItems": n},
              SCHEMAS, st.integers(0, 2)),
    st.builds(lambda props: {"type": "object", "properties": props, "required": sorted(props),
                             "additionalProperties": False},
              st.dictionaries(st.text("abcxyz", min_size=1, max_size=4), SCHEMAS, max_size=3)),
    st.builds(lambda options: {"anyOf": options}, st.lists(SCHEMAS, min_size=1, max_size=3)),
))


@settings(max_examples=200, deadline=None)
@given(SCHEMAS)
def test_the_emulator_answers_follow_any_schema(schema: dict[str, Any]) -> None:
    assert problems(sample(schema), schema) == []


@pytest.mark.parametrize("provider", ["cerebras", "openrouter"])
def test_compatible_services_with_json_schema_send_it(aipk_emulator: Emulator,
                                                      provider: str) -> None:
    with aipk.Client(provider, base_url=aipk_emulator.url("openai"), api_key=KEY) as client:
        client.chat(model="m", messages=ASK, response_format=Place)
    assert _body(aipk_emulator)["response_format"]["type"] == "json_schema"



def test_an_answer_breaking_the_schema_is_not_resent_and_does_not_blame_the_key(
        aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Reply(text='{"name": "Oslo"}'))
    keys = ["sk-test-aaaaaaaaaaaaaaaa", "sk-test-bbbbbbbbbbbbbbbb"]
    with aipk.Client("openai", base_url=aipk_emulator.url("openai"), api_key=keys) as client:
        with pytest.raises(StructuredOutputError, match="population"):
            client.chat(model="gpt-4o", messages=ASK, response_format=Place)
        health = client.credentials.health_all()
        metrics = client.metrics()
    assert len(aipk_emulator.requests) == 1  # the model answered: no failover, no retry
    assert all(h.consecutive_failures == 0 for h in health.values())
    assert metrics["failovers"] == 0 and metrics["retries"] == 0
