"""Input mistakes at the API boundary over real HTTP: tools given as dicts reach every
provider's wire format; bad fields and numbers fail typed before anything is sent."""

from __future__ import annotations

import json

import pytest

import aipk
from aipk import Message
from aipk.errors import InvalidRequestError
from aipk_testkit.emulator import Emulator

USER = [Message.user("What is the weather in Paris?")]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}


@pytest.mark.parametrize("provider", sorted(MODELS))
@pytest.mark.parametrize("tool", [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                      "parameters": SCHEMA}},
    {"name": "get_weather", "description": "Weather now", "parameters": SCHEMA},
], ids=["openai-style", "flat"])
def test_tool_dicts_reach_every_providers_wire_format(emu: Emulator, provider: str,
                                                      tool: dict[str, object]) -> None:
    with aipk.Client(provider, api_key="sk-test-0123456789", base_url=emu.url(provider),
                     max_retries=0) as client:
        answer = client.chat(model=MODELS[provider], messages=USER, tools=[tool],
                             max_tokens=64)
        assert answer.text is not None or answer.tool_calls
    sent = json.dumps(emu.requests[-1].json()["tools"])
    assert "get_weather" in sent and "Weather now" in sent and '"city"' in sent


@pytest.mark.parametrize(("fields", "words"), [
    ({"temprature": 0.2}, "did you mean 'temperature'?"),
    ({"temperature": "hot"}, "temperature must be a number, not str 'hot'"),
    ({"top_p": 2}, "top_p is 2, outside the allowed range; pass a number from 0 to 1"),
    ({"max_tokens": "100"}, "max_tokens must be an integer, not str '100'"),
    ({"stop": 5}, "stop must be a string or a list of strings, not int 5; pass e.g. stop="),
    ({"stop": ["END", 3]}, "stop must be a string or a list of strings, not list ['END', 3]"),
    ({"tools": [{"type": "function", "function": {"parameters": SCHEMA}}]},
     "missing the key 'name'"),
])
def test_bad_fields_fail_typed_and_nothing_is_sent(emu: Emulator, fields: dict[str, object],
                                                   words: str) -> None:
    with aipk.Client("openai", api_key="sk-test-0123456789", base_url=emu.url("openai"),
                     max_retries=0) as client:
        with pytest.raises(InvalidRequestError) as chat_error:
            client.chat(model="gpt-4o-mini", messages=USER, **fields)
        with pytest.raises(InvalidRequestError):
            client.stream(model="gpt-4o-mini", messages=USER, **fields)
    assert words in str(chat_error.value)
    assert emu.requests == []
