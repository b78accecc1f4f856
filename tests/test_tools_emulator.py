"""Tools given as functions, records and dicts, and the tool loop, over real HTTP against the
loopback emulator: OpenAI, Anthropic, Gemini and a compatible preset, sync and async."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any

import pytest

import aipk
from aipk import Message
from aipk.errors import InvalidRequestError
from aipk_testkit.emulator import Emulator, Reply, ToolCallSpec

KEY = "sk-test-0123456789abcdef"
ASK = [Message.user("What is the weather in Paris and in Oslo?")]
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5",
          "gemini": "gemini-2.0-flash", "groq": "llama-3.3-70b-versatile"}


def get_weather(city: str, unit: str = "c") -> dict[str, Any]:
    """Get the current weather.

    Args:
        city: The city name.
        unit: "c" or "f".
    """
    return {"city": city, "temp": 21 if city == "Paris" else 4, "unit": unit}


def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom: {reason}")


@dataclass
class Lookup:
    """Look a word up."""

    word: str


def _url(emu: Emulator, provider: str) -> str:
    return emu.url("openai" if provider == "groq" else provider)


def _calls(*specs: tuple[str, dict[str, Any]]) -> Reply:
    return Reply(tool_calls=[ToolCallSpec(name=n, arguments=a, id=f"call_{i}")
                             for i, (n, a) in enumerate(specs)])


def _tool_results(result: aipk.ToolLoopResult) -> dict[str, str]:
    return {m.tool_call_id or "": m.content or "" for m in result.messages if m.role == "tool"}


@pytest.mark.parametrize("provider", list(MODELS))
def test_sync_loop_runs_tools_and_reports_failures(aipk_emulator: Emulator,
                                                   provider: str) -> None:
    aipk_emulator.enqueue(_calls(("get_weather", {"city": "Paris"}),
                                 ("explode", {"reason": "x"}),
                                 ("get_weather", {"city": 7}),
                                 ("nowhere", {})),
                          Reply(text="Paris is warm."))
    with aipk.Client(provider, base_url=_url(aipk_emulator, provider), api_key=KEY) as client:
        result = aipk.run_tools(client, model=MODELS[provider], messages=ASK,
                                tools=[get_weather, explode])
    assert result.finished and result.turns == 2
    assert result.text == "Paris is warm."
    results = _tool_results(result)
    assert json.loads(results["call_0"]) == {"city": "Paris", "temp": 21, "unit": "c"}
    assert json.loads(results["call_1"]) == {"error": "RuntimeError: boom: x"}
    assert "city" in json.loads(results["call_2"])["error"]
    assert "unknown tool 'nowhere'" in json.loads(results["call_3"])["error"]
    second = json.loads(aipk_emulator.requests[-1].body)
    assert "Paris" in json.dumps(second) and "boom" in json.dumps(second)
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "tool", "tool",
                                                 "tool", "assistant"]


@pytest.mark.parametrize("provider", list(MODELS))
def test_async_loop_runs_a_turns_calls_concurrently(aipk_emulator: Emulator,
                                                    provider: str) -> None:
    both = threading.Barrier(2, timeout=5)
    started: list[str] = []

    def slow_weather(city: str) -> str:
        """Weather, slowly (both calls must be in flight at once to pass the barrier)."""
        both.wait()
        return f"{city}: mild"

    async def population(city: str) -> int:
        """Population."""
        started.append(city)
        await asyncio.sleep(0)
        return 700_000

    aipk_emulator.enqueue(_calls(("slow_weather", {"city": "Paris"}),
                                 ("slow_weather", {"city": "Oslo"}),
                                 ("population", {"city": "Oslo"})),
                          Reply(text="done"))

    async def run() -> aipk.ToolLoopResult:
        async with aipk.AsyncClient(provider, base_url=_url(aipk_emulator, provider),
                                    api_key=KEY) as client:
            return await aipk.arun_tools(client, model=MODELS[provider], messages=ASK,
                                         tools=[slow_weather, population])

    result = asyncio.run(run())
    assert _tool_results(result) == {"call_0": "Paris: mild", "call_1": "Oslo: mild",
                                     "call_2": "700000"}
    assert started == ["Oslo"] and result.text == "done"


def test_loop_stops_at_max_turns_with_a_result(aipk_emulator: Emulator) -> None:
    aipk_emulator.set_default(_calls(("get_weather", {"city": "Paris"})))
    with aipk.Client("openai", base_url=aipk_emulator.url("openai"), api_key=KEY) as client:
        result = aipk.run_tools(client, messages=ASK, tools=[get_weather], max_turns=3)
    assert not result.finished and result.turns == 3
    assert result.response.tool_calls and len(aipk_emulator.requests) == 3


def test_lenient_validation_ignores_unknown_arguments(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(_calls(("get_weather", {"city": "Oslo", "extra": 1})),
                          Reply(text="ok"),
                          _calls(("get_weather", {"city": "Oslo", "extra": 1})),
                          Reply(text="ok"))
    with aipk.Client("openai", base_url=aipk_emulator.url("openai"), api_key=KEY) as client:
        lenient = aipk.run_tools(client, messages=ASK, tools=[get_weather], validate="lenient")
        strict = aipk.run_tools(client, messages=ASK, tools=[get_weather])
    assert json.loads(_tool_results(lenient)["call_0"])["temp"] == 4
    assert "extra" in json.loads(_tool_results(strict)["call_0"])["error"]


def test_tools_in_every_form_reach_the_wire(aipk_emulator: Emulator) -> None:
    as_dict = {"type": "function", "function": {
        "name": "search", "description": "Search.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
    with aipk.Client("openai", base_url=aipk_emulator.url("openai"), api_key=KEY) as client:
        client.chat(messages=ASK, tools=[get_weather, Lookup, as_dict])
    sent = {t["function"]["name"]: t["function"]
            for t in json.loads(aipk_emulator.requests[-1].body)["tools"]}
    assert sent["get_weather"]["description"] == "Get the current weather."
    assert sent["get_weather"]["parameters"]["properties"]["city"] == {
        "type": "string", "description": "The city name."}
    assert sent["get_weather"]["parameters"]["required"] == ["city"]
    assert sent["Lookup"]["parameters"]["required"] == ["word"]
    assert sent["search"]["parameters"]["properties"]["q"] == {"type": "string"}


def test_a_broken_tool_schema_fails_before_sending(aipk_emulator: Emulator) -> None:
    broken = {"name": "search", "parameters": {
        "type": "object", "properties": {"q": {"type": "text"}}}}
    with aipk.Client("openai", base_url=aipk_emulator.url("openai"), api_key=KEY) as client, \
            pytest.raises(InvalidRequestError, match=r"'search'.*parameters\.properties\.q"):
        client.chat(messages=ASK, tools=[broken])
    assert aipk_emulator.requests == []
