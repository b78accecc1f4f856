"""Streams that end early and connections that stall, for every protocol and transport, over
real HTTP against the loopback emulator.

One rule for every protocol: a stream whose body ends before the protocol's terminator raises
:class:`aipk.IncompleteStreamError` (a ResponseError) carrying the answer received so far; and the
client's timeout applies whatever the transport, so a silence longer than the read timeout is a
:class:`aipk.errors.RequestTimeout`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

import aipk
from aipk import IncompleteStreamError, Message, Timeout
from aipk.errors import ConfigurationError, RequestTimeout, ResponseError
from aipk.transports import AiohttpTransport, AsyncHttpxTransport, HttpxTransport, bind_timeout
from aipk_testkit.emulator import Emulator, Fault, Reply, ToolCallSpec

USER = [Message.user("Hello there")]
NO_RETRY = aipk.RetryPolicy(max_retries=0)
TEXT = "The quick brown fox jumps over the lazy dog."
#: provider -> (emulator protocol, model, API key)
PROVIDERS = {
    "openai": ("openai", "gpt-4o-mini", "sk-test-0123456789abcdef"),
    "anthropic": ("anthropic", "claude-sonnet-4-5", "sk-ant-test-0123456789"),
    "gemini": ("gemini", "gemini-2.5-flash", "AIza-test-key"),
}
#: the protocols whose terminator is an event of its own (Gemini's is its finishReason chunk)
TERMINATOR_EVENT = {"openai": True, "anthropic": True, "gemini": False}
MODES = ["sync", "async-httpx", "async-aiohttp"]


def _kwargs(emu: Emulator, provider: str, **extra: Any) -> dict[str, Any]:
    protocol, _model, key = PROVIDERS[provider]
    return {"base_url": emu.url(protocol), "api_key": key, "retry": NO_RETRY, **extra}


def stream(emu: Emulator, provider: str, mode: str, *, timeout: float | None = None,
           **request: Any) -> aipk.ChatResponse:
    """Stream one answer in ``mode``; the aggregated response, or the error."""
    model = PROVIDERS[provider][1]
    fields = {"model": model, "messages": USER, **request}
    if mode == "sync":
        with aipk.Client(provider, **_kwargs(emu, provider, timeout=timeout)) as client:
            chat = client.stream(**fields)
            for _ in chat:
                pass
            return chat.response

    async def run() -> aipk.ChatResponse:
        transport = AiohttpTransport() if mode == "async-aiohttp" else None
        try:
            async with aipk.AsyncClient(provider, **_kwargs(emu, provider, timeout=timeout),
                                        transport=transport) as client:
                chat = client.stream(**fields)
                async for _ in chat:
                    pass
                return await chat.get_response()
        finally:  # a transport passed in is the caller's to close
            if transport is not None:
                await transport.close()

    return asyncio.run(run())


def chat(emu: Emulator, provider: str, mode: str, *, timeout: float | None = None,
         http_client: Any = None) -> aipk.ChatResponse:
    model = PROVIDERS[provider][1]
    if mode == "sync":
        with aipk.Client(provider, **_kwargs(emu, provider, timeout=timeout),
                         http_client=http_client) as client:
            return client.chat(model=model, messages=USER)

    async def run() -> aipk.ChatResponse:
        transport = AiohttpTransport() if mode == "async-aiohttp" else None
        try:
            async with aipk.AsyncClient(provider, **_kwargs(emu, provider, timeout=timeout),
                                        transport=transport, http_client=http_client) as client:
                return await client.chat(model=model, messages=USER)
        finally:  # a transport passed in is the caller's to close
            if transport is not None:
                await transport.close()

    return asyncio.run(run())


# -- streams that end before their terminator -------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("cut", [0, 1, 3, -1])
def test_stream_cut_short_raises_and_keeps_the_partial_answer(emu: Emulator, provider: str,
                                                              mode: str, cut: int) -> None:
    emu.enqueue(Fault.truncate(after_events=cut, reply=Reply(text=TEXT, chunk_size=5)))
    with pytest.raises(IncompleteStreamError) as info:
        stream(emu, provider, mode)
    error = info.value
    assert isinstance(error, ResponseError) and error.retryable
    assert error.provider == provider and error.request_id  # the response's request id
    assert "before its terminator" in str(error) and ".partial" in str(error)
    partial = error.partial
    assert isinstance(partial, aipk.ChatResponse) and partial.provider == provider
    assert TEXT.startswith(partial.text)
    if cut == 0:
        assert partial.text == "" and partial.usage is None
    if cut == -1:  # only the last event is missing: every piece of text arrived before it
        assert partial.text == TEXT or provider == "gemini"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_every_event_but_no_terminator(emu: Emulator, provider: str, mode: str) -> None:
    emu.enqueue(Fault.truncate(after_events=10**6, reply=Reply(text=TEXT, usage=(7, 9))))
    if not TERMINATOR_EVENT[provider]:  # Gemini: the finishReason chunk was the end
        response = stream(emu, provider, mode)
        assert response.text == TEXT and response.usage is not None
        return
    with pytest.raises(IncompleteStreamError) as info:
        stream(emu, provider, mode)
    partial = info.value.partial  # finish reason and usage came, only the terminator did not
    assert partial.text == TEXT and partial.finish_reason is aipk.FinishReason.STOP
    assert partial.usage is not None and partial.usage.output_tokens == 9


def test_openai_stream_without_its_usage_chunk_and_done(emu: Emulator) -> None:
    """The case that used to pass silently: finish reason, then the body ends."""
    emu.enqueue(Fault.truncate(after_events=-1, reply=Reply(text=TEXT, usage=(7, 9))))
    with pytest.raises(IncompleteStreamError, match=r"\[DONE\].*usage not yet sent") as info:
        stream(emu, "openai", "sync")
    partial = info.value.partial
    assert (partial.text, partial.finish_reason, partial.usage) == (
        TEXT, aipk.FinishReason.STOP, None)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_partial_tool_calls_are_kept(emu: Emulator, provider: str, mode: str) -> None:
    call = ToolCallSpec(name="get_weather", arguments={"city": "Paris"}, id="call_1")
    emu.enqueue(Fault.truncate(after_events=-1, reply=Reply(text="Let me check.",
                                                            tool_calls=[call], chunk_size=4)))
    with pytest.raises(IncompleteStreamError) as info:
        stream(emu, provider, mode)
    partial = info.value.partial
    if provider != "gemini":  # Gemini's single function-call chunk is the one cut off
        assert [c.name for c in partial.tool_calls] == ["get_weather"]
        assert '{"city":"Paris"}'.startswith(partial.tool_calls[0].arguments)
    assert "Let me check.".startswith(partial.text)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_complete_streams_are_unaffected(emu: Emulator, provider: str) -> None:
    emu.enqueue(Reply(text=TEXT, usage=(7, 9)))
    response = stream(emu, provider, "sync")
    assert response.text == TEXT and response.usage is not None


# -- timeouts: the client's applies whatever the transport -------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_stall_mid_stream_beyond_the_read_timeout_is_a_request_timeout(
        emu: Emulator, provider: str, mode: str) -> None:
    emu.enqueue(Fault.stall(1.5, after_events=2, reply=Reply(text=TEXT)))
    started = time.monotonic()
    with pytest.raises(RequestTimeout) as info:
        stream(emu, provider, mode, timeout=0.3)
    assert time.monotonic() - started < 1.4  # the timeout fired, not the end of the stall
    assert not info.value.before_first_byte


@pytest.mark.parametrize("mode", MODES)
def test_a_stall_shorter_than_the_read_timeout_is_waited_out(emu: Emulator, mode: str) -> None:
    emu.enqueue(Fault.stall(0.3, after_events=2, reply=Reply(text=TEXT)))
    assert stream(emu, "openai", mode, timeout=2.0).text == TEXT


@pytest.mark.parametrize("mode", MODES)
def test_a_stall_before_the_first_event_is_a_request_timeout(emu: Emulator, mode: str) -> None:
    emu.enqueue(Fault.stall(1.5, after_events=0))
    with pytest.raises(RequestTimeout):
        stream(emu, "anthropic", mode, timeout=0.3)


@pytest.mark.parametrize("mode", MODES)
def test_a_stall_mid_body_is_a_request_timeout(emu: Emulator, mode: str) -> None:
    emu.enqueue(Fault.stall(1.5))
    started = time.monotonic()
    with pytest.raises(RequestTimeout) as info:
        chat(emu, "openai", mode, timeout=0.3)
    assert time.monotonic() - started < 1.4
    assert not info.value.before_first_byte


@pytest.mark.parametrize("mode", MODES)
def test_a_slow_head_is_a_request_timeout(emu: Emulator, mode: str) -> None:
    emu.enqueue(Fault.slow_first_byte(1.5))
    with pytest.raises(RequestTimeout) as info:
        chat(emu, "gemini", mode, timeout=0.3)
    assert info.value.before_first_byte


@pytest.mark.parametrize("mode", ["sync", "async-httpx"])
def test_the_client_timeout_applies_over_your_own_httpx_client(emu: Emulator,
                                                               mode: str) -> None:
    emu.enqueue(Fault.stall(1.5, after_events=2))
    own = httpx.Client(timeout=30) if mode == "sync" else httpx.AsyncClient(timeout=30)
    with pytest.raises(RequestTimeout):
        chat(emu, "openai", mode, timeout=0.3, http_client=own)
    # an http_client passed in is the caller's to close
    if isinstance(own, httpx.Client):
        own.close()
    else:
        asyncio.run(own.aclose())


def test_clients_sharing_a_transport_each_apply_their_own_timeout(emu: Emulator) -> None:
    emu.enqueue(Fault.stall(0.8, after_events=1), Fault.stall(0.8, after_events=1))

    async def run() -> tuple[BaseException | None, str]:
        shared = AiohttpTransport()
        kwargs = _kwargs(emu, "openai", transport=shared)
        async with aipk.AsyncClient("openai", timeout=0.2, **kwargs) as impatient, \
                aipk.AsyncClient("openai", timeout=5.0, **kwargs) as patient:
            assert impatient._transport._pool is patient._transport._pool  # one session
            failed: BaseException | None = None
            try:
                await impatient.chat(model="gpt-4o-mini", messages=USER)
            except RequestTimeout as exc:
                failed = exc
            answer = await patient.chat(model="gpt-4o-mini", messages=USER)
        await shared.close()  # a transport passed in is the caller's to close
        return failed, answer.text

    failed, text = asyncio.run(run())
    assert isinstance(failed, RequestTimeout) and text == "echo: Hello there"


# -- which timeout applies ------------------------------------------------------------------------


class _Plain:
    """A third-party transport that cannot take a timeout from the client."""

    def send(self, request: Any, body: bytes | None) -> Any:
        raise AssertionError("not sent")

    def close(self) -> None: ...


def test_bind_timeout_rules() -> None:
    client_timeout = Timeout(connect=0.5, read=0.5)
    own = Timeout(read=7.0)
    # the transport has none: the client's applies, through a copy sharing the pool
    transport = HttpxTransport()
    bound, applied = bind_timeout(transport, client_timeout, explicit=True)
    assert applied == client_timeout and bound.timeout == client_timeout
    assert bound is not transport and bound._client is transport._client
    assert transport.timeout is None  # the original is untouched (it may be shared)
    # the transport's own, and the client has none: the transport's stays
    mine = AsyncHttpxTransport(timeout=own)
    assert bind_timeout(mine, Timeout(), explicit=False) == (mine, own)
    # both, the same: fine; different: a ConfigurationError naming both
    assert bind_timeout(mine, own, explicit=True) == (mine, own)
    with pytest.raises(ConfigurationError, match="set twice.*set it in one place"):
        bind_timeout(AiohttpTransport(timeout=own), client_timeout, explicit=True)
    # a transport that cannot apply a timeout: only an explicit one is an error
    plain = _Plain()
    assert bind_timeout(plain, client_timeout, explicit=False) == (plain, client_timeout)
    with pytest.raises(ConfigurationError, match="_Plain cannot apply the client's timeout"):
        bind_timeout(plain, client_timeout, explicit=True)
    with pytest.raises(ConfigurationError, match="with_timeout"):
        aipk.Client("openai", api_key="sk-x", transport=_Plain(), timeout=3)  # type: ignore[arg-type]


def test_client_timeout_reaches_every_transport() -> None:
    with aipk.Client("openai", api_key="sk-x", timeout=0.5, transport=HttpxTransport()) as c:
        assert c.timeout == Timeout(connect=0.5, read=0.5)
        assert c._transport.timeout == c.timeout  # type: ignore[attr-defined]
    with aipk.Client("openai", api_key="sk-x", transport=HttpxTransport(timeout=Timeout(
            read=9.0))) as c:
        assert c.timeout.read == 9.0
    aio = aipk.AsyncClient("openai", api_key="sk-x", timeout=0.5, transport=AiohttpTransport())
    per_request = aio._transport._request_timeout  # type: ignore[attr-defined]
    assert (per_request.sock_read, per_request.sock_connect, per_request.total) == (
        0.5, 0.5, None)
    assert per_request.connect == 0.5 + Timeout().pool
