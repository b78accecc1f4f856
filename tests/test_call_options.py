"""Per-call options (headers, timeout, extra_body) and the fine-grained errors, over real HTTP
against the loopback emulator, for OpenAI, Anthropic, Gemini and an OpenAI-compatible preset,
sync and async, streamed and not."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import aipk
from aipk import Message
from aipk.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RequestTimeout,
)
from aipk.router import is_context_window_error
from aipk_testkit.emulator import Emulator, Fault, RecordedRequest

USER = [Message.user("Hello there")]
#: provider id -> (emulator protocol, model)
PROVIDERS = {
    "openai": ("openai", "gpt-4o-mini"),
    "anthropic": ("anthropic", "claude-sonnet-4-5"),
    "gemini": ("gemini", "gemini-2.0-flash"),
    "groq": ("openai", "llama-3.3-70b-versatile"),
}


def _client(emu: Emulator, name: str, **kwargs: Any) -> aipk.Client:
    return aipk.Client(name, base_url=emu.url(PROVIDERS[name][0]), api_key="k-test",
                       sleep=lambda _: None, **kwargs)


def _aclient(emu: Emulator, name: str, **kwargs: Any) -> aipk.AsyncClient:
    async def no_sleep(_: float) -> None:
        return None

    return aipk.AsyncClient(name, base_url=emu.url(PROVIDERS[name][0]), api_key="k-test",
                            sleep=no_sleep, **kwargs)


def _chat_requests(emu: Emulator) -> list[RecordedRequest]:
    return [r for r in emu.requests if r.method == "POST"]


def _call(emu: Emulator, name: str, mode: str, **options: Any) -> aipk.ChatResponse:
    """One chat call in ``mode`` (sync/async x chat/stream) with per-call ``options``."""
    model = PROVIDERS[name][1]
    if mode == "sync-chat":
        with _client(emu, name) as client:
            return client.chat(model=model, messages=USER, **options)
    if mode == "sync-stream":
        with _client(emu, name) as client, client.stream(model=model, messages=USER,
                                                         **options) as stream:
            return stream.get_response()

    async def go() -> aipk.ChatResponse:
        async with _aclient(emu, name) as client:
            if mode == "async-chat":
                return await client.chat(model=model, messages=USER, **options)
            async with client.stream(model=model, messages=USER, **options) as stream:
                return await stream.get_response()

    result: aipk.ChatResponse = asyncio.run(go())
    return result


MODES = ("sync-chat", "sync-stream", "async-chat", "async-stream")


# -- headers, extra_body, timeout --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_per_call_headers_and_extra_body_reach_the_server(emu: Emulator, name: str,
                                                          mode: str) -> None:
    response = _call(emu, name, mode, headers={"X-Trace-Id": "t-1", "X-Client": "call"},
                     extra_body={"aipk_probe": {"n": 1}})
    assert response.text == "echo: Hello there"
    (sent,) = _chat_requests(emu)
    assert sent.headers["x-trace-id"] == "t-1"
    assert sent.headers["x-client"] == "call"
    assert sent.json()["aipk_probe"] == {"n": 1}


def test_per_call_headers_win_over_the_clients_and_do_not_stick(emu: Emulator) -> None:
    with _client(emu, "openai", headers={"X-Client": "default", "X-Team": "a"}) as client:
        client.chat(model="gpt-4o-mini", messages=USER, headers={"X-Client": "call"})
        client.chat(model="gpt-4o-mini", messages=USER)
        metrics = client.metrics()
    first, second = _chat_requests(emu)
    assert (first.headers["x-client"], first.headers["x-team"]) == ("call", "a")
    assert second.headers["x-client"] == "default"
    assert metrics["requests"] == 2  # one client, one set of metrics


def test_extra_body_is_merged_last_over_the_plugins_fields(emu: Emulator) -> None:
    with _client(emu, "openai") as client:
        client.chat(model="gpt-4o-mini", messages=USER, temperature=0.5,
                    extra_body={"temperature": 0.1, "model": "gpt-4o"})
    body = _chat_requests(emu)[0].json()
    assert (body["temperature"], body["model"]) == (0.1, "gpt-4o")


@pytest.mark.parametrize("header", ["Authorization", "x-api-key", "X-Goog-Api-Key", "api-key"])
def test_a_credential_header_per_call_is_an_error_naming_the_fix(emu: Emulator,
                                                                header: str) -> None:
    with _client(emu, "openai") as client:
        with pytest.raises(InvalidRequestError, match="api_key=") as caught:
            client.chat(model="gpt-4o-mini", messages=USER, headers={header: "sk-other"})
        assert caught.value.field == "headers"
        assert "sk-other" not in str(caught.value)
        with pytest.raises(InvalidRequestError):
            client.stream(model="gpt-4o-mini", messages=USER, headers={header: "x"}).get_response()
    assert _chat_requests(emu) == []


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "tab\there", "caf\u00e9"])
def test_a_per_call_header_that_cannot_be_sent_is_an_error_and_nothing_is_sent(
        emu: Emulator, value: str) -> None:
    with _client(emu, "openai") as client:
        with pytest.raises(InvalidRequestError, match="X-Trace") as caught:
            client.chat(model="gpt-4o-mini", messages=USER, headers={"X-Trace": value})
        assert caught.value.field == "headers"
        assert value not in str(caught.value)
    assert _chat_requests(emu) == []


def test_secret_looking_headers_are_redacted_in_the_request_repr() -> None:
    request = aipk.HttpRequest(url="https://x.example/v1", headers={
        "X-Custom-Token": "tok-secret", "X-Session-Id": "s", "X-Trace-Id": "t-1"})
    shown = repr(request)
    assert "tok-secret" not in shown and "'X-Trace-Id': 't-1'" in shown


def test_per_call_headers_are_not_logged(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="aipk"), _client(emu, "openai") as client:
        client.chat(model="gpt-4o-mini", messages=USER, headers={"X-My-Key": "very-secret"})
    assert "very-secret" not in caplog.text


@pytest.mark.parametrize("mode", MODES)
def test_per_call_timeout_bounds_the_wait(emu: Emulator, mode: str) -> None:
    emu.enqueue(Fault.slow_first_byte(1.0), Fault.slow_first_byte(1.0),
                Fault.slow_first_byte(1.0))
    with pytest.raises(RequestTimeout):
        _call(emu, "openai", mode, timeout=0.2, retry=aipk.RetryPolicy(max_retries=0))


def test_per_call_timeout_accepts_a_timeout_record_and_rejects_nonsense(emu: Emulator) -> None:
    with _client(emu, "openai") as client:
        answer = client.chat(model="gpt-4o-mini", messages=USER,
                             timeout=aipk.Timeout(connect=1.0, read=5.0))
        assert answer.text == "echo: Hello there"
        bad: Any
        for bad in (0, -1.0, "5"):
            with pytest.raises(InvalidRequestError, match="timeout="):
                client.chat(model="gpt-4o-mini", messages=USER, timeout=bad)


# -- fine-grained errors -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_404_and_403_are_typed(emu: Emulator, name: str, mode: str) -> None:
    emu.enqueue(Fault.status(404))
    with pytest.raises(NotFoundError) as missing:
        _call(emu, name, mode)
    assert isinstance(missing.value, BadRequestError)  # existing handlers still catch it
    assert missing.value.status == 404 and not missing.value.retryable
    emu.enqueue(Fault.status(403))
    with pytest.raises(PermissionDeniedError) as denied:
        _call(emu, name, mode)
    assert isinstance(denied.value, AuthenticationError)
    assert denied.value.status == 403


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["openai", "groq", "anthropic"])
def test_context_window_errors_are_typed(emu: Emulator, name: str, mode: str) -> None:
    emu.enqueue(Fault.status(400, code="context_length_exceeded",
                             message="prompt is too long: 210000 tokens > 200000 maximum"))
    with pytest.raises(ContextWindowExceededError) as caught:
        _call(emu, name, mode)
    assert not caught.value.retryable
    assert is_context_window_error(caught.value)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["openai", "groq", "gemini"])
def test_blocked_prompts_are_content_filtered_errors(emu: Emulator, name: str,
                                                     mode: str) -> None:
    emu.enqueue(Fault.blocked("PROHIBITED_CONTENT"))
    with pytest.raises(ContentFilteredError) as caught:
        _call(emu, name, mode)
    assert not caught.value.retryable
    assert isinstance(caught.value, BadRequestError)
    if name == "gemini":
        assert (caught.value.status, caught.value.code) == (200, "PROHIBITED_CONTENT")
    else:
        assert (caught.value.status, caught.value.code) == (400, "content_filter")


# -- n > 1 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["openai", "groq"])
def test_every_choice_with_its_finish_reason_chat_and_stream_alike(emu: Emulator, name: str,
                                                                   mode: str) -> None:
    response = _call(emu, name, mode, extra_body={"n": 3})
    assert [c.index for c in response.choices] == [0, 1, 2]
    assert [c.message.content for c in response.choices] == [
        "echo: Hello there", "echo: Hello there #1", "echo: Hello there #2"]
    assert [c.finish_reason for c in response.choices] == [
        aipk.FinishReason.STOP, aipk.FinishReason.LENGTH, aipk.FinishReason.LENGTH]
    assert [c.raw_finish_reason for c in response.choices] == ["stop", "length", "length"]
    # choice 0 is the response itself
    assert response.text == "echo: Hello there"
    assert response.finish_reason is aipk.FinishReason.STOP


def test_stream_events_say_which_choice_they_belong_to(emu: Emulator) -> None:
    with _client(emu, "openai") as client, client.stream(
            model="gpt-4o-mini", messages=USER, extra_body={"n": 2}) as stream:
        events = list(stream)
    texts = {0: "", 1: ""}
    for event in events:
        if type(event) is aipk.TextDelta:
            texts[event.choice] += event.text
    assert texts == {0: "echo: Hello there", 1: "echo: Hello there #1"}
    finishes = [(e.choice, e.raw) for e in events if type(e) is aipk.FinishEvent]
    assert finishes == [(0, "stop"), (1, "length")]


def test_accumulator_keeps_every_choice_in_any_order() -> None:
    acc = aipk.StreamAccumulator()
    for event in [aipk.TextDelta(text="b", choice=1), aipk.TextDelta(text="a"),
                  aipk.ToolCallDelta(index=0, id="c1", name="f", arguments="{}", choice=2),
                  aipk.FinishEvent(reason=aipk.FinishReason.TOOL_CALLS, raw="tool_calls",
                                   choice=2),
                  aipk.TextDelta(text="b2", choice=1), aipk.FinishEvent(
                      reason=aipk.FinishReason.STOP, raw="stop")]:
        acc.add(event)
    response = acc.response(provider="p", model="m")
    assert response.text == "a" and response.finish_reason is aipk.FinishReason.STOP
    one, two = response.more_choices
    assert (one.index, one.message.content, one.finish_reason) == (1, "bb2", None)
    assert two.index == 2 and two.message.tool_calls[0].name == "f"
    assert two.finish_reason is aipk.FinishReason.TOOL_CALLS


@pytest.mark.parametrize("mode", MODES)
def test_gemini_candidates_are_choices_too(emu: Emulator, mode: str) -> None:
    response = _call(emu, "gemini", mode, extra_body={"generationConfig": {"candidateCount": 3}})
    assert [(c.index, c.message.content, c.raw_finish_reason) for c in response.choices] == [
        (0, "echo: Hello there", "STOP"), (1, "echo: Hello there #1", "MAX_TOKENS"),
        (2, "echo: Hello there #2", "MAX_TOKENS")]
    assert [c.finish_reason for c in response.choices] == [
        aipk.FinishReason.STOP, aipk.FinishReason.LENGTH, aipk.FinishReason.LENGTH]


def test_gemini_candidate_count_as_request_extra_keeps_the_plugins_config(emu: Emulator) -> None:
    with _client(emu, "gemini") as client:
        response = client.chat(model="gemini-2.0-flash", messages=USER, max_tokens=50,
                               extra={"generationConfig": {"candidateCount": 2}})
    config = _chat_requests(emu)[0].json()["generationConfig"]
    assert config == {"maxOutputTokens": 50, "candidateCount": 2}
    assert len(response.choices) == 2


def _transports() -> list[Any]:
    from aipk.transports import AiohttpTransport, AsyncHttpxTransport

    return [AiohttpTransport, AsyncHttpxTransport]


@pytest.mark.parametrize("transport_class", _transports(), ids=lambda cls: cls.__name__)
def test_per_call_timeout_wins_over_the_client_and_transport_timeouts(
        emu: Emulator, transport_class: Any) -> None:
    """The client's 30 s read (bound to the transport by bind_timeout) is replaced for one
    call: a 1 s silence mid-body times that call out, and the next call, without timeout=,
    waits through the same silence."""

    async def run() -> None:
        transport = transport_class()
        client = _aclient(emu, "openai", transport=transport, timeout=30.0,
                          retry=aipk.RetryPolicy(max_retries=0))
        try:
            emu.enqueue(Fault.stall(1.0))
            with pytest.raises(RequestTimeout):
                await client.chat(model="gpt-4o-mini", messages=USER, timeout=0.2)
            emu.enqueue(Fault.stall(1.0))
            answer = await client.chat(model="gpt-4o-mini", messages=USER)
            assert answer.text == "echo: Hello there"
        finally:
            await client.close()
            await transport.close()

    asyncio.run(run())


def test_per_call_timeout_wins_over_a_sync_client_timeout(emu: Emulator) -> None:
    with _client(emu, "openai", timeout=30.0, retry=aipk.RetryPolicy(max_retries=0)) as client:
        emu.enqueue(Fault.stall(1.0))
        with pytest.raises(RequestTimeout):
            client.chat(model="gpt-4o-mini", messages=USER, timeout=0.2)
        emu.enqueue(Fault.stall(1.0))
        assert client.chat(model="gpt-4o-mini", messages=USER).text == "echo: Hello there"
