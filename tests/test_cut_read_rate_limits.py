"""A call cut while its body is read still records the rate-limit headers of the head it got,
over real HTTP against the emulator (a stall after the head and half the body):

* the call's ``Timeout(total=...)`` passing mid-body (sync client, and the async client on
  both transports), and
* the caller cancelling the async task mid-body (both transports).

Each first makes one answered call (remaining requests 9 of 10), then the cut one, whose head
says 8: ``client.rate_limits(model)`` must say 8 afterwards.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import aipk
from aipk.errors import RequestTimeout
from aipk_testkit.emulator import Emulator, Fault

USER = [aipk.Message.user("hi")]
MODEL = "gpt-4o-mini"


def _async_transports() -> list[Any]:
    from aipk.transports import AiohttpTransport, AsyncHttpxTransport

    return [AiohttpTransport, AsyncHttpxTransport]


def remaining_requests(client: aipk.Client | aipk.AsyncClient) -> int | None:
    state = client.rate_limits(MODEL)
    assert state is not None and state.requests is not None
    return state.requests.remaining


def test_a_sync_call_past_its_total_mid_body_records_the_heads_rate_limits(
        emu: Emulator) -> None:
    emu.set_rate_limit(requests=10, tokens=100_000)
    with aipk.Client("openai", base_url=emu.url("openai"), api_key="sk-1",
                     retry=aipk.RetryPolicy(max_retries=0)) as client:
        client.chat(model=MODEL, messages=USER)
        assert remaining_requests(client) == 9
        emu.enqueue(Fault.stall(3.0))
        with pytest.raises(RequestTimeout):
            client.chat(model=MODEL, messages=USER, timeout=aipk.Timeout(total=0.4))
        assert remaining_requests(client) == 8


@pytest.mark.parametrize("cut", ["total", "cancel"])
@pytest.mark.parametrize("transport_class", _async_transports(), ids=lambda cls: cls.__name__)
def test_an_async_call_cut_mid_body_records_the_heads_rate_limits(
        emu: Emulator, transport_class: Any, cut: str) -> None:
    """Cut while its body is read: by its ``Timeout(total=...)`` passing, or by its task
    being cancelled."""
    emu.set_rate_limit(requests=10, tokens=100_000)

    async def scenario() -> None:
        transport = transport_class()
        try:
            async with aipk.AsyncClient("openai", base_url=emu.url("openai"), api_key="sk-1",
                                        transport=transport,
                                        retry=aipk.RetryPolicy(max_retries=0)) as client:
                await client.chat(model=MODEL, messages=USER)
                assert remaining_requests(client) == 9
                emu.enqueue(Fault.stall(3.0))
                if cut == "total":
                    with pytest.raises(RequestTimeout):
                        await client.chat(model=MODEL, messages=USER,
                                          timeout=aipk.Timeout(total=0.4))
                else:
                    task = asyncio.create_task(client.chat(model=MODEL, messages=USER))
                    while len(emu.requests) < 2:  # the request arrived; its head follows
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(0.3)  # the head and half the body read; the rest stalls
                    assert not task.done()
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                assert remaining_requests(client) == 8
        finally:
            await transport.close()

    asyncio.run(scenario())
