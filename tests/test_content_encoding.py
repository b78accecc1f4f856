"""A response whose ``Content-Encoding`` header does not match its body (a misconfigured
proxy's gzip header on a plain body) is a ``ResponseError`` that is not retried, over real HTTP
against the emulator, for the sync client and the async client on both transports, for a
whole body and for a stream."""

from __future__ import annotations

import asyncio

import pytest

import aipk
from aipk.errors import NetworkError, ResponseError
from aipk_testkit.emulator import Emulator, Fault

USER = [aipk.Message.user("hi")]


def call(emu: Emulator, how: str, *, stream: bool) -> str | BaseException:
    """One chat (or stream) call the way ``how`` says: its text, or the error it raised."""
    if how == "sync":
        with aipk.Client("openai", base_url=emu.url("openai"), api_key="sk-1") as client:
            try:
                if stream:
                    with client.stream(model="m", messages=USER) as answer:
                        for _event in answer:
                            pass
                    return answer.response.text or ""
                return client.chat(model="m", messages=USER).text or ""
            except aipk.AipkError as exc:
                return exc

    async def scenario() -> str | BaseException:
        from aipk.transports import AiohttpTransport, AsyncHttpxTransport

        transport = AiohttpTransport() if how == "aiohttp" else AsyncHttpxTransport()
        try:
            async with aipk.AsyncClient("openai", base_url=emu.url("openai"), api_key="sk-1",
                                        transport=transport) as client:
                if stream:
                    async with client.stream(model="m", messages=USER) as answer:
                        async for _event in answer:
                            pass
                    return (await answer.get_response()).text or ""
                return (await client.chat(model="m", messages=USER)).text or ""
        except aipk.AipkError as exc:
            return exc
        finally:
            await transport.close()

    return asyncio.run(scenario())


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("how", ["sync", "httpx", "aiohttp"])
def test_a_body_that_does_not_match_its_content_encoding_is_a_response_error_not_retried(
        aipk_emulator: Emulator, how: str, encoding: str, stream: bool) -> None:
    aipk_emulator.enqueue(Fault.wrong_encoding(encoding))
    outcome = call(aipk_emulator, how, stream=stream)
    assert isinstance(outcome, ResponseError), outcome
    assert not isinstance(outcome, NetworkError)
    assert outcome.retryable is False
    message = str(outcome)
    assert "does not match its Content-Encoding" in message
    assert "'Accept-Encoding': 'identity'" in message  # the fix
    assert len(aipk_emulator.requests) == 1  # trying again would not help: not retried

