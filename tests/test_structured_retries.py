"""``chat(..., output_retries=N)``: an answer that breaks its ``response_format`` is shown to the
model with what is wrong, and asked for again, over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import given

import aipk
import aipk.router
from aipk import ChatRequest, ChatResponse, Message, ToolCall
from aipk._structured import retry_request
from aipk.errors import InvalidRequestError, StructuredOutputError
from aipk_testkit.emulator import Emulator, Reply, ToolCallSpec

KEY = "sk-test-0123456789abcdef"
ASK = [Message.user("Tell me about a city")]
BAD = '{"name": "Oslo", "population": "many"}'
GOOD = '{"name": "Oslo", "population": 700000}'


@attrs.frozen
class City:
    name: str
    population: int


def _openai(emu: Emulator) -> aipk.Client:
    return aipk.Client("openai", base_url=emu.url("openai"), api_key=KEY)


def _bodies(emu: Emulator) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in emu.requests if r.path.endswith(("/completions",
                                                                            "/messages"))]


def test_a_broken_answer_is_shown_to_the_model_and_asked_for_again(
        aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Reply(text=BAD), Reply(text=GOOD))
    with aipk.Client("openai", base_url=aipk_emulator.url("openai"), api_key=KEY) as client:
        reply = client.chat(model="gpt-4o", messages=ASK, response_format=City,
                            output_retries=2)
    assert reply.parsed == City(name="Oslo", population=700000)
    first, second = _bodies(aipk_emulator)
    assert first["messages"] == [{"role": "user", "content": "Tell me about a city"}]
    assert second["messages"][:2] == [first["messages"][0],
                                      {"role": "assistant", "content": BAD}]
    correction = second["messages"][2]
    assert correction["role"] == "user"
    assert "$.population" in correction["content"] and "integer" in correction["content"]
    assert second["response_format"] == first["response_format"]


def test_async_client_asks_again_too(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Reply(text='{"name": "Oslo", "population": 7'), Reply(text=GOOD))

    async def main() -> ChatResponse:
        async with aipk.AsyncClient("openai", base_url=aipk_emulator.url("openai"),
                                    api_key=KEY) as client:
            return await client.chat(model="gpt-4o", messages=ASK, response_format=City,
                                     output_retries=1)

    reply = asyncio.run(main())
    assert reply.parsed == City(name="Oslo", population=700000)
    correction = _bodies(aipk_emulator)[1]["messages"][-1]["content"]
    assert "not valid JSON" in correction


def test_without_output_retries_the_first_broken_answer_raises(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Reply(text=BAD), Reply(text=GOOD))
    with _openai(aipk_emulator) as client, pytest.raises(StructuredOutputError) as caught:
        client.chat(model="gpt-4o", messages=ASK, response_format=City)
    assert caught.value.text == BAD
    assert len(_bodies(aipk_emulator)) == 1


def test_when_every_try_is_broken_the_last_error_is_raised(aipk_emulator: Emulator) -> None:
    last = '{"name": 3, "population": 1}'
    aipk_emulator.enqueue(Reply(text=BAD), Reply(text=BAD), Reply(text=last), Reply(text=GOOD))
    with _openai(aipk_emulator) as client, pytest.raises(StructuredOutputError) as caught:
        client.chat(model="gpt-4o", messages=ASK, response_format=City, output_retries=2)
    assert caught.value.text == last and caught.value.path == "$.name"
    bodies = _bodies(aipk_emulator)
    assert len(bodies) == 3
    assert len(bodies[2]["messages"]) == 5  # question, then answer + correction twice


@pytest.mark.parametrize("reply", [Reply(refusal="I can't help with that"),
                                   Reply(text='{"name": "Os', finish_reason="length")],
                         ids=["refusal", "cut-off"])
def test_refusals_and_cut_off_answers_are_not_asked_again(aipk_emulator: Emulator,
                                                           reply: Reply) -> None:
    aipk_emulator.enqueue(reply, Reply(text=GOOD))
    with _openai(aipk_emulator) as client, pytest.raises(StructuredOutputError):
        client.chat(model="gpt-4o", messages=ASK, response_format=City, output_retries=3)
    assert len(_bodies(aipk_emulator)) == 1


def test_a_forced_tool_answer_gets_its_correction_as_the_tool_result(
        aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(
        Reply(tool_calls=[ToolCallSpec(name="final_result", arguments=BAD, id="toolu_1")]),
        Reply(tool_calls=[ToolCallSpec(name="final_result", arguments=GOOD, id="toolu_2")]))
    with aipk.Client("anthropic", base_url=aipk_emulator.url("anthropic"), api_key=KEY,
                     structured_output="tool") as client:
        reply = client.chat(model="claude-sonnet-4-5", messages=ASK, max_tokens=200,
                            response_format=City, output_retries=1)
    assert reply.parsed == City(name="Oslo", population=700000)
    second = _bodies(aipk_emulator)[1]
    assistant, result = second["messages"][1:]
    assert assistant["role"] == "assistant"
    assert assistant["content"][-1]["type"] == "tool_use"
    assert assistant["content"][-1]["id"] == "toolu_1"
    assert result["role"] == "user"
    block = result["content"][0]
    assert block["type"] == "tool_result" and block["tool_use_id"] == "toolu_1"
    text = block["content"] if isinstance(block["content"], str) else block["content"][0]["text"]
    assert "$.population" in text
    assert second["tool_choice"] == {"type": "tool", "name": "final_result"}


def test_the_router_passes_output_retries_to_its_target(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Reply(text=BAD), Reply(text=GOOD))
    target = aipk.router.Target(provider="openai", model="gpt-4o",
                                base_url=aipk_emulator.url("openai"), api_key=KEY)
    with aipk.router.Router([target]) as router:
        reply = router.chat(messages=ASK, response_format=City, output_retries=1)
    assert reply.parsed == City(name="Oslo", population=700000)
    assert len(_bodies(aipk_emulator)) == 2


@pytest.mark.parametrize("value", [-1, 1.5, "2", True])
def test_output_retries_must_be_a_whole_number(aipk_emulator: Emulator, value: Any) -> None:
    with _openai(aipk_emulator) as client, pytest.raises(InvalidRequestError) as caught:
        client.chat(model="gpt-4o", messages=ASK, response_format=City,
                        output_retries=value)
    assert caught.value.field == "output_retries"
    assert "output_retries=2" in str(caught.value)
    assert not _bodies(aipk_emulator)


def test_stream_rejects_output_retries_and_says_where_it_belongs(
        aipk_emulator: Emulator) -> None:
    where = r"chat\(\.\.\., output_retries=N\)"
    with _openai(aipk_emulator) as client, pytest.raises(InvalidRequestError, match=where):
        client.stream(model="gpt-4o", messages=ASK, response_format=City, output_retries=1)


# -- the next request, without I/O ------------------------------------------------------------

_REQUEST = ChatRequest(model="m", messages=ASK, response_format=City)
_paths = st.lists(st.tuples(st.from_regex(r"\$(\.[a-z]{1,6}|\[[0-9]\]){0,3}", fullmatch=True),
                            st.text(min_size=1, max_size=30)), min_size=1, max_size=30)


def _error(response: ChatResponse, problems: list[tuple[str, str]] = ()) -> StructuredOutputError:
    return StructuredOutputError("broken", provider="p", text=response.text or "",
                                 problems=problems, response=response)


@given(_paths)
def test_the_correction_names_every_problem_up_to_twenty(problems: list[tuple[str, str]]) -> None:
    response = ChatResponse(provider="p", model="m", message=Message.assistant("{}"))
    again = retry_request(_REQUEST, _error(response, problems))
    assert again is not None
    assert again.messages[:-2] == _REQUEST.messages
    assert again.messages[-2] == Message.assistant("{}")
    correction = again.messages[-1].content or ""
    for path, message in problems[:20]:
        assert f"at {path}: {message}" in correction
    assert (f"(and {len(problems) - 20} more)" in correction) == (len(problems) > 20)
    assert again.response_format == _REQUEST.response_format


def test_answers_calling_the_callers_own_tools_are_not_asked_again() -> None:
    calls = (ToolCall(id="c1", name="final_result", arguments=BAD),
             ToolCall(id="c2", name="lookup", arguments="{}"))
    response = ChatResponse(provider="p", model="m",
                            message=Message.assistant(None, tool_calls=calls))
    assert retry_request(_REQUEST, _error(response, [("$.population", "x")])) is None


def test_an_empty_answer_gets_a_correction_without_an_empty_assistant_turn() -> None:
    response = ChatResponse(provider="p", model="m", message=Message.assistant(""))
    again = retry_request(_REQUEST, _error(response))
    assert again is not None
    assert [m.role for m in again.messages] == ["user", "user"]
    assert "not valid JSON" in (again.messages[-1].content or "")
