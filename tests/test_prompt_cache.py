"""Prompt caching marks (``Message.cache``, ``Tool.cache``): Anthropic's ``cache_control`` on the
wire, over real HTTP against the emulator; other providers leave them out."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import aipk
from aipk import Message, Tool
from aipk_testkit.emulator import Emulator, Reply

EPHEMERAL = {"type": "ephemeral"}
LOOKUP = Tool(name="lookup", description="Look a word up", cache=True,
              parameters={"type": "object", "properties": {"word": {"type": "string"}}})
PLAIN = Tool(name="plain", description="No cache mark")


def _messages() -> list[Message]:
    return [Message(role="system", content="A long, stable system prompt.", cache=True),
            Message(role="user", content="Here is a long document.", cache=True),
            Message.assistant("Noted."),
            Message.user("Question about it?")]


@pytest.mark.parametrize("mode", ["chat", "stream", "async", "count"])
def test_anthropic_sends_cache_control_where_marked(emu: Emulator, mode: str) -> None:
    emu.set_default(Reply(text="ok"))
    kwargs: dict[str, Any] = {"model": "claude-sonnet-4-5", "messages": _messages(),
                              "tools": [PLAIN, LOOKUP]}
    if mode == "async":
        async def go() -> None:
            async with aipk.AsyncClient("anthropic", base_url=emu.url("anthropic"),
                                        api_key="k") as client:
                await client.chat(**kwargs)

        asyncio.run(go())
    else:
        with aipk.Client("anthropic", base_url=emu.url("anthropic"), api_key="k") as client:
            if mode == "chat":
                client.chat(**kwargs)
            elif mode == "stream":
                client.stream(**kwargs).get_response()
            else:
                client.count_tokens(**kwargs)
    body = emu.requests[-1].json()
    assert body["system"] == [{"type": "text", "text": "A long, stable system prompt.",
                               "cache_control": EPHEMERAL}]
    first, answer, question = body["messages"]
    assert first["content"] == [{"type": "text", "text": "Here is a long document.",
                                 "cache_control": EPHEMERAL}]
    assert answer["content"] == "Noted." and question["content"] == "Question about it?"
    assert [t.get("cache_control") for t in body["tools"]] == [None, EPHEMERAL]


def test_a_cached_tool_result_is_marked_too(emu: Emulator) -> None:
    call = aipk.ToolCall(id="toolu_1", name="lookup", arguments='{"word": "x"}')
    messages = [Message.user("look x up"), Message.assistant(tool_calls=[call]),
                Message(role="tool", tool_call_id="toolu_1", content="a long result",
                        cache=True)]
    with aipk.Client("anthropic", base_url=emu.url("anthropic"), api_key="k") as client:
        client.chat(model="claude-sonnet-4-5", messages=messages, tools=[LOOKUP])
    result = emu.requests[-1].json()["messages"][2]["content"][-1]
    assert result["type"] == "tool_result" and result["cache_control"] == EPHEMERAL


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_providers_that_cache_on_their_own_ignore_the_marks(emu: Emulator,
                                                            provider: str) -> None:
    with aipk.Client(provider, base_url=emu.url(provider), api_key="k") as client:
        client.chat(model="gpt-4o-mini" if provider == "openai" else "gemini-2.5-flash",
                    messages=_messages(), tools=[LOOKUP])
    assert "cache_control" not in emu.requests[-1].body.decode()


def test_unmarked_requests_are_unchanged(emu: Emulator) -> None:
    with aipk.Client("anthropic", base_url=emu.url("anthropic"), api_key="k") as client:
        client.chat(model="claude-sonnet-4-5", messages=[Message.system("s"), Message.user("q")])
    body = emu.requests[-1].json()
    assert body["system"] == "s" and body["messages"] == [{"role": "user", "content": "q"}]
