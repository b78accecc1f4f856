"""Token counting and the context-window pre-check, over real HTTP against the emulator:
Anthropic and Gemini count with their endpoints, OpenAI and compatible presets estimate
locally; the estimate and the count parsers are property-tested."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aipk
from aipk import ChatRequest, Message, Tool
from aipk._tokens import estimate_tokens
from aipk.errors import ContextWindowExceededError, NotFoundError
from aipk_anthropic import tokens as anthropic_tokens
from aipk_gemini import tokens as gemini_tokens
from aipk_testkit.emulator import Emulator, emulated_token_count

SYSTEM = "Be brief."
QUESTION = "What is the capital of France?"
MESSAGES = [Message.system(SYSTEM), Message.user(QUESTION)]
WEATHER = Tool(name="get_weather", description="Weather for a city",
               parameters={"type": "object", "properties": {"city": {"type": "string"}}})
#: provider -> (emulator protocol, a model the emulator serves)
COUNTED = {"anthropic": ("anthropic", "claude-sonnet-4-5"),
           "gemini": ("gemini", "gemini-2.5-flash")}
ESTIMATED = {"openai": ("openai", "gpt-4o-mini"), "groq": ("openai", "llama-3.3-70b-versatile")}


def _count(emu: Emulator, name: str, protocol: str, is_async: bool,
           **kwargs: Any) -> aipk.TokenCount:
    if not is_async:
        with aipk.Client(name, base_url=emu.url(protocol), api_key="k") as client:
            return client.count_tokens(**kwargs)

    async def go() -> aipk.TokenCount:
        async with aipk.AsyncClient(name, base_url=emu.url(protocol), api_key="k") as client:
            return await client.count_tokens(**kwargs)

    result: aipk.TokenCount = asyncio.run(go())
    return result


@pytest.mark.parametrize("is_async", [False, True])
@pytest.mark.parametrize("name", sorted(COUNTED))
def test_providers_with_a_count_endpoint_count_there(emu: Emulator, name: str,
                                                     is_async: bool) -> None:
    protocol, model = COUNTED[name]
    plain = _count(emu, name, protocol, is_async, model=model, messages=MESSAGES)
    assert (plain.estimated, plain.provider, plain.model) == (False, name, model)
    # the emulator counts characters / 3 plus 3 a message (Gemini: the system prompt is not
    # a content, Anthropic: not a message)
    assert plain.input_tokens == emulated_token_count(SYSTEM + QUESTION, 1)
    with_tools = _count(emu, name, protocol, is_async, model=model, messages=MESSAGES,
                        tools=[WEATHER])
    assert with_tools.input_tokens > plain.input_tokens
    sent = [r for r in emu.requests if r.method == "POST"]
    assert len(sent) == 2
    assert sent[0].path.endswith("/v1/messages/count_tokens" if name == "anthropic"
                                 else f"/models/{model}:countTokens")


@pytest.mark.parametrize("is_async", [False, True])
@pytest.mark.parametrize("name", sorted(ESTIMATED))
def test_other_providers_estimate_locally(emu: Emulator, name: str, is_async: bool) -> None:
    protocol, model = ESTIMATED[name]
    count = _count(emu, name, protocol, is_async, model=model, messages=MESSAGES,
                   tools=[WEATHER])
    assert count.estimated and count.model == model
    request = ChatRequest(model=model, messages=MESSAGES, tools=[WEATHER])
    assert count.input_tokens == estimate_tokens(request)
    assert emu.requests == []  # nothing sent


def test_a_count_for_an_unknown_model_is_not_found(emu: Emulator) -> None:
    with pytest.raises(NotFoundError, match="countTokens"):
        _count(emu, "gemini", "gemini", False, model="no-such-model", messages=MESSAGES)


# -- the context window pre-check ------------------------------------------------------------


def _window(name: str, model: str) -> int:
    with aipk.Client(name, api_key="k") as client:
        window = client.capabilities(model).context_window
    assert window is not None
    return window


@pytest.mark.parametrize("mode", ["sync-chat", "sync-stream", "async-chat", "async-stream"])
def test_check_context_fails_before_sending(emu: Emulator, mode: str) -> None:
    window = _window("openai", "gpt-4o-mini")
    huge = [Message.user("x" * (window * 4))]
    fits = [Message.user("short")]

    def run(client_kwargs: dict[str, Any], **call: Any) -> Any:
        if mode.startswith("sync"):
            with aipk.Client("openai", base_url=emu.url("openai"), api_key="k",
                             **client_kwargs) as client:
                if mode == "sync-chat":
                    return client.chat(model="gpt-4o-mini", **call)
                return client.stream(model="gpt-4o-mini", **call).get_response()

        async def go() -> Any:
            async with aipk.AsyncClient("openai", base_url=emu.url("openai"), api_key="k",
                                        **client_kwargs) as client:
                if mode == "async-chat":
                    return await client.chat(model="gpt-4o-mini", **call)
                return await client.stream(model="gpt-4o-mini", **call).get_response()

        return asyncio.run(go())

    with pytest.raises(ContextWindowExceededError) as caught:
        run({}, messages=huge, check_context=True)
    error = caught.value
    assert (error.status, error.context_window) == (0, window)
    assert error.tokens is not None and error.tokens > window
    assert "max_tokens" in error.message and "gpt-4o-mini" in error.message
    with pytest.raises(ContextWindowExceededError):
        run({"check_context": True}, messages=huge)  # the client option
    assert emu.requests == []
    assert run({"check_context": True}, messages=fits).text == "echo: short"
    # max_tokens counts against the window too
    with pytest.raises(ContextWindowExceededError):
        run({}, messages=fits, max_tokens=window, check_context=True)


def test_check_context_passes_models_without_a_known_window(emu: Emulator) -> None:
    with aipk.Client("openai", base_url=emu.url("openai"), api_key="k",
                     check_context=True) as client:
        reply = client.chat(model="my-finetune", messages=[Message.user("x" * 10_000)])
    assert reply.text.startswith("echo: ")


# -- properties ------------------------------------------------------------------------------


TEXT = st.text(max_size=200)


@given(texts=st.lists(TEXT, min_size=1, max_size=8), extra=TEXT)
def test_estimate_grows_with_the_text_and_the_messages(texts: list[str], extra: str) -> None:
    messages = [Message.user(t) for t in texts]
    base = estimate_tokens(ChatRequest(model="m", messages=messages))
    chars = sum(len(t) for t in texts)
    assert base == -(-chars // 4) + 4 * len(texts)
    longer = estimate_tokens(ChatRequest(model="m", messages=[*messages, Message.user(extra)]))
    assert longer >= base + 4
    tooled = estimate_tokens(ChatRequest(model="m", messages=messages, tools=[WEATHER]))
    assert tooled > base


@given(value=st.one_of(st.integers(), st.floats(), st.text(), st.none(), st.booleans()))
def test_count_parsers_take_only_counts(value: Any) -> None:
    for parse, key in ((anthropic_tokens.parse_token_count, "input_tokens"),
                       (gemini_tokens.parse_token_count, "totalTokens")):
        if type(value) is int and value >= 0:
            assert parse({key: value}) == value
        else:
            with pytest.raises((ValueError, TypeError)):
                parse({key: value})
        with pytest.raises(KeyError):
            parse({})


def test_the_emulators_anthropic_count_refuses_sampling_fields(emu: Emulator) -> None:
    import httpx

    body = {"model": "claude-sonnet-4-5", "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}]}
    answer = httpx.post(emu.url("anthropic") + "/v1/messages/count_tokens",
                        content=json.dumps(body), headers={"x-api-key": "k"})
    assert answer.status_code == 400 and "max_tokens" in answer.text
