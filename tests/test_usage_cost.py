"""Usage counts a provider did not send stay None, and each response carries its cost when the
model's prices are known: parsers property-tested, costs checked end to end over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aipk
from aipk import Message, Usage
from aipk._responses import cost_of
from aipk_anthropic import wire as anthropic_wire
from aipk_gemini import wire as gemini_wire
from aipk_openai import wire as openai_wire
from aipk_testkit.emulator import Emulator, Reply

USER = [Message.user("Hello there")]
COUNT = st.one_of(st.none(), st.integers(min_value=0, max_value=10**9))


def _present(**counts: int | None) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v is not None}


@given(prompt=COUNT, completion=COUNT, total=COUNT)
def test_openai_usage_keeps_missing_counts_none(prompt: int | None, completion: int | None,
                                                total: int | None) -> None:
    usage = openai_wire.parse_usage(_present(prompt_tokens=prompt, completion_tokens=completion,
                                             total_tokens=total))
    assert (usage.input_tokens, usage.output_tokens) == (prompt, completion)
    if total is not None:
        assert usage.total_tokens == total
    elif prompt is None and completion is None:
        assert usage.total_tokens is None
    else:
        assert usage.total_tokens == (prompt or 0) + (completion or 0)


@given(uncached=COUNT, output=COUNT, read=COUNT, write=COUNT)
def test_anthropic_usage_keeps_missing_counts_none(uncached: int | None, output: int | None,
                                                   read: int | None, write: int | None) -> None:
    usage = anthropic_wire.parse_usage(_present(
        input_tokens=uncached, output_tokens=output, cache_read_input_tokens=read,
        cache_creation_input_tokens=write))
    assert usage.output_tokens == output
    if uncached is None and read is None and write is None:
        assert usage.input_tokens is None
    else:
        assert usage.input_tokens == (uncached or 0) + (read or 0) + (write or 0)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (read, write)


@given(prompt=COUNT, candidates=COUNT, thoughts=COUNT)
def test_gemini_usage_keeps_missing_counts_none(prompt: int | None, candidates: int | None,
                                                thoughts: int | None) -> None:
    usage = gemini_wire.parse_usage(_present(promptTokenCount=prompt,
                                             candidatesTokenCount=candidates,
                                             thoughtsTokenCount=thoughts))
    if prompt is None and candidates is None and thoughts is None:
        assert usage is None
        return
    assert usage is not None
    assert usage.input_tokens == prompt
    if candidates is None and thoughts is None:
        assert usage.output_tokens is None
    else:
        assert usage.output_tokens == (candidates or 0) + (thoughts or 0)


@given(given_tokens=COUNT, made=COUNT,
       prices=st.tuples(st.floats(0, 1000), st.floats(0, 1000)))
def test_cost_needs_both_counts_and_both_prices(given_tokens: int | None, made: int | None,
                                                prices: tuple[float, float]) -> None:
    usage = Usage(input_tokens=given_tokens, output_tokens=made)
    cost = cost_of(usage, *prices)
    if given_tokens is None or made is None:
        assert cost is None
    else:
        assert cost == pytest.approx((given_tokens * prices[0] + made * prices[1]) / 1e6)
    assert cost_of(usage, None, prices[1]) is None
    assert cost_of(None, *prices) is None


# -- end to end ------------------------------------------------------------------------------


def _priced(provider: str) -> aipk.ModelInfo:
    spec = aipk.registry.default_registry().spec(provider)
    return next(m for m in spec.models if m.input_price is not None
                and m.output_price is not None)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_each_response_carries_its_cost(emu: Emulator, provider: str, stream: bool) -> None:
    model = _priced(provider)
    emu.set_default(Reply(text="four words of answer", usage=(1200, 300)))
    kwargs: dict[str, Any] = {"model": model.id, "messages": USER}
    if provider == "openai":
        kwargs["extra"] = {"stream_options": {"include_usage": True}} if stream else {}
    with aipk.Client(provider, base_url=emu.url(provider), api_key="k") as client:
        if stream:
            with client.stream(**kwargs) as events:
                response = events.get_response()
        else:
            response = client.chat(**kwargs)
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1200, 300)
    assert model.input_price is not None and model.output_price is not None
    assert response.cost == pytest.approx(
        (1200 * model.input_price + 300 * model.output_price) / 1e6)


def test_async_responses_carry_their_cost_too(emu: Emulator) -> None:
    model = _priced("anthropic")
    emu.set_default(Reply(text="answer", usage=(1000, 1000)))

    async def go() -> tuple[aipk.ChatResponse, aipk.ChatResponse]:
        async with aipk.AsyncClient("anthropic", base_url=emu.url("anthropic"),
                                    api_key="k") as client:
            whole = await client.chat(model=model.id, messages=USER)
            async with client.stream(model=model.id, messages=USER) as events:
                streamed = await events.get_response()
            return whole, streamed

    whole, streamed = asyncio.run(go())
    assert model.input_price is not None and model.output_price is not None
    expected = (model.input_price + model.output_price) / 1000
    assert whole.cost == pytest.approx(expected) and streamed.cost == pytest.approx(expected)


def test_cost_is_none_when_prices_are_unknown(emu: Emulator) -> None:
    emu.set_default(Reply(text="answer", usage=(10, 5)))
    with aipk.Client("openai", base_url=emu.url("openai"), api_key="k") as client:
        response = client.chat(model="no-such-priced-model", messages=USER)
    assert response.usage is not None and response.usage.input_tokens == 10
    assert response.cost is None
