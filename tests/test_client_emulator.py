"""The clients and the OpenAI plugin end to end, over real HTTP, against the loopback emulator."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

import httpx
import pytest

import aipk
from aipk import Message, Tool
from aipk.errors import (
    AuthenticationError,
    BadRequestError,
    MissingCredentialError,
    NetworkError,
    RateLimitError,
    RequestTimeout,
    ResponseError,
    ServerError,
    StreamError,
)
from aipk_testkit.emulator import Emulator, Fault, Reply, ToolCallSpec

from .passed_in import PassedIn

KEY = "sk-test-0123456789abcdef"
USER = [Message.user("Hello there")]
WEATHER = Tool(name="get_weather", description="Weather",
               parameters={"type": "object", "properties": {"city": {"type": "string"}}})


class Sleeps(list[float]):
    """Records requested waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(emu: Emulator, sleeps: Sleeps) -> Iterator[aipk.Client]:
    with aipk.Client("openai", base_url=emu.url("openai"), api_key=KEY, sleep=sleeps) as c:
        yield c


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


TRANSPORTS = ("httpx", "aiohttp")


# -- chat ----------------------------------------------------------------------------------------


def test_chat_returns_text_usage_request_id_and_rate_limits(emu: Emulator,
                                                            client: aipk.Client) -> None:
    emu.set_rate_limit(requests=10, tokens=1000, window=60.0)
    emu.enqueue(Reply(text="Bonjour!", usage=(11, 3)))
    reply = client.chat(model="gpt-4o-mini", messages=USER, temperature=0)
    assert reply.text == "Bonjour!"
    assert reply.usage is not None and (reply.usage.input_tokens, reply.usage.output_tokens) == (
        11, 3)
    assert reply.finish_reason is aipk.FinishReason.STOP
    assert reply.request_id and reply.request_id.startswith("req_")
    assert reply.rate_limit is not None and reply.rate_limit.requests is not None
    assert reply.rate_limit.requests.limit == 10 and reply.rate_limit.requests.remaining == 9
    assert client.rate_limits("gpt-4o-mini") == reply.rate_limit
    sent = emu.requests[-1]
    body = sent.json()
    assert body["temperature"] == 0 and "top_p" not in body and "tools" not in body
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.path.endswith("/chat/completions")


def test_tool_call_round_trip(emu: Emulator, client: aipk.Client) -> None:
    emu.enqueue(Reply(tool_calls=[ToolCallSpec(name="get_weather", arguments='{"city":"Oslo"}'),
                                  ToolCallSpec(name="get_weather", arguments='{"city":"Rome"}')]))
    first = client.chat(model="gpt-4o-mini", messages=USER, tools=[WEATHER], tool_choice="auto")
    assert first.finish_reason is aipk.FinishReason.TOOL_CALLS
    assert [c.parsed_arguments()["city"] for c in first.tool_calls] == ["Oslo", "Rome"]
    emu.enqueue(Reply(text="Cold and warm."))
    answer = client.chat(model="gpt-4o-mini", tools=[WEATHER], messages=[
        *USER, first.message,
        *(Message.tool(c.id, '{"c": 1}') for c in first.tool_calls)])
    assert answer.text == "Cold and warm."
    sent = emu.requests[-1].json()["messages"]
    assert sent[1]["tool_calls"][0]["id"] == first.tool_calls[0].id
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assert sent[2]["tool_call_id"] == first.tool_calls[0].id


# -- streaming -----------------------------------------------------------------------------------


def test_stream_text_usage_and_final_response(emu: Emulator, client: aipk.Client) -> None:
    emu.enqueue(Reply(text="A fairly long streamed answer.", chunk_size=3, usage=(5, 9)))
    with client.stream(model="gpt-4o-mini", messages=USER) as stream:
        events = list(stream)
    deltas = [e.text for e in events if isinstance(e, aipk.TextDelta)]
    assert "".join(deltas) == "A fairly long streamed answer."
    assert len(deltas) == 10
    assert isinstance(events[-1], aipk.UsageEvent) and events[-1].usage.output_tokens == 9
    assert stream.response.text == "A fairly long streamed answer."
    assert stream.response.finish_reason is aipk.FinishReason.STOP
    assert emu.requests[-1].json()["stream_options"] == {"include_usage": True}


def test_stream_parallel_tool_calls_accumulate_by_index(emu: Emulator,
                                                        client: aipk.Client) -> None:
    emu.enqueue(Reply(tool_calls=[
        ToolCallSpec(name="get_weather", arguments='{"city": "Paris, France"}'),
        ToolCallSpec(name="get_weather", arguments='{"city": "Lima, Peru"}')]))
    stream = client.stream(model="gpt-4o-mini", messages=USER, tools=[WEATHER])
    deltas = [e for e in stream if isinstance(e, aipk.ToolCallDelta)]
    assert {d.index for d in deltas} == {0, 1}
    assert len(deltas) > 2  # arguments arrive in fragments
    calls = stream.response.tool_calls
    assert [c.parsed_arguments()["city"] for c in calls] == ["Paris, France", "Lima, Peru"]
    assert all(c.id.startswith("call_") for c in calls)


# -- retries and rate limits ---------------------------------------------------------------------


def test_429_waits_retry_after_then_succeeds(emu: Emulator, client: aipk.Client,
                                             sleeps: Sleeps) -> None:
    emu.enqueue(Fault.status(429, retry_after=1.5))
    emu.enqueue(Reply(text="after the wait"))
    assert client.chat(model="gpt-4o-mini", messages=USER).text == "after the wait"
    assert sleeps == [1.5]
    assert client.metrics()["retries"] == 1


def test_429_retry_after_ms_wins(emu: Emulator, client: aipk.Client, sleeps: Sleeps) -> None:
    emu.enqueue(Fault.status(429, retry_after=30, retry_after_ms=250))
    emu.enqueue(Reply(text="ok"))
    client.chat(model="gpt-4o-mini", messages=USER)
    assert sleeps == [0.25]


def test_429_beyond_the_cap_fails_fast_with_retry_after(emu: Emulator, client: aipk.Client,
                                                        sleeps: Sleeps) -> None:
    emu.enqueue(Fault.status(429, retry_after=600))
    with pytest.raises(RateLimitError) as info:
        client.chat(model="gpt-4o-mini", messages=USER)
    assert info.value.retry_after == 600 and info.value.retryable
    assert sleeps == [] and len(emu.requests) == 1


@pytest.mark.parametrize("status", [503, 529])
def test_a_server_errors_retry_after_is_waited_for(emu: Emulator, client: aipk.Client,
                                                   sleeps: Sleeps, status: int) -> None:
    emu.enqueue(Fault.status(status, retry_after=3), Fault.status(status, retry_after_ms=40),
                Reply(text="back"))
    assert client.chat(model="gpt-4o-mini", messages=USER).text == "back"
    assert sleeps == [3.0, 0.04]


@pytest.mark.parametrize("status", [503, 529])
def test_a_server_errors_retry_after_beyond_the_cap_fails_fast(
        emu: Emulator, client: aipk.Client, sleeps: Sleeps, status: int) -> None:
    emu.enqueue(Fault.status(status, retry_after=600), Reply(text="never asked for"))
    with pytest.raises(ServerError) as info:
        client.chat(model="gpt-4o-mini", messages=USER)
    assert info.value.retry_after == 600 and info.value.status == status
    assert sleeps == [] and len(emu.requests) == 1


def test_server_errors_retry_with_backoff_then_raise(emu: Emulator, client: aipk.Client,
                                                     sleeps: Sleeps) -> None:
    for status in (500, 503, 500):
        emu.enqueue(Fault.status(status))
    with pytest.raises(ServerError) as info:
        client.chat(model="gpt-4o-mini", messages=USER)
    assert info.value.status == 500 and info.value.retryable
    assert len(emu.requests) == 3
    assert 0.375 <= sleeps[0] <= 0.5 and 0.75 <= sleeps[1] <= 1.0


def test_529_is_overloaded_and_retried(emu: Emulator, client: aipk.Client,
                                       sleeps: Sleeps) -> None:
    emu.enqueue(Fault.status(529))
    emu.enqueue(Reply(text="recovered"))
    assert client.chat(model="gpt-4o-mini", messages=USER).text == "recovered"
    assert len(sleeps) == 1


def test_bad_request_is_not_retried(emu: Emulator, client: aipk.Client, sleeps: Sleeps) -> None:
    emu.enqueue(Fault.status(400))
    with pytest.raises(BadRequestError) as info:
        client.chat(model="gpt-4o-mini", messages=USER)
    assert info.value.status == 400 and not info.value.retryable
    assert sleeps == [] and len(emu.requests) == 1


def test_per_call_retry_policy(emu: Emulator, client: aipk.Client, sleeps: Sleeps) -> None:
    emu.enqueue(Fault.status(503))
    with pytest.raises(ServerError):
        client.chat(model="gpt-4o-mini", messages=USER, retry=aipk.RetryPolicy(max_retries=0))
    assert sleeps == [] and len(emu.requests) == 1


# -- failures ------------------------------------------------------------------------------------


def test_wrong_key_is_an_authentication_error_without_the_secret(emu: Emulator,
                                                                 sleeps: Sleeps) -> None:
    emu.require_api_key("sk-the-right-one")
    secret = "sk-wrong-key-abcdef123456"
    with aipk.Client("openai", base_url=emu.url("openai"), api_key=secret, sleep=sleeps) as c:
        with pytest.raises(AuthenticationError) as info:
            c.chat(model="gpt-4o-mini", messages=USER)
        assert secret not in repr(c)
    err = info.value
    assert err.status == 401 and err.auth_code is aipk.AuthErrorCode.INVALID_CREDENTIALS
    assert not err.retryable and sleeps == []
    assert secret not in str(err) and secret not in repr(err) and secret not in repr(err.body)
    assert "check the API key" in str(err)


def test_read_timeout_on_slow_first_byte(emu: Emulator, sleeps: Sleeps) -> None:
    emu.enqueue(Fault.slow_first_byte(1.0))
    with aipk.Client("openai", base_url=emu.url("openai"), api_key=KEY, sleep=sleeps,
                     timeout=aipk.Timeout(connect=2, read=0.2), max_retries=0) as c, \
            pytest.raises(RequestTimeout) as info:
        c.chat(model="gpt-4o-mini", messages=USER)
    assert info.value.provider == "openai" and info.value.before_first_byte


def test_reset_mid_stream_is_a_network_error_after_events(emu: Emulator,
                                                          client: aipk.Client) -> None:
    emu.enqueue(Reply(text="x" * 80, chunk_size=4))
    emu.requests.clear()
    emu.enqueue(Fault.reset_mid_stream(after_events=3))
    client.chat(model="gpt-4o-mini", messages=USER)  # consume the first scripted reply
    got: list[aipk.StreamEvent] = []
    with pytest.raises(NetworkError) as info:
        for event in client.stream(model="gpt-4o-mini", messages=USER):
            got.append(event)
    assert got, "events before the reset are delivered"
    assert not info.value.before_first_byte and not info.value.retryable


def test_truncated_stream_is_a_response_error(emu: Emulator, client: aipk.Client) -> None:
    emu.enqueue(Fault.truncate(after_events=2))
    with pytest.raises(ResponseError, match="ended early"):
        list(client.stream(model="gpt-4o-mini", messages=USER))


def test_malformed_json_is_retried_then_a_response_error(emu: Emulator, client: aipk.Client,
                                                         sleeps: Sleeps) -> None:
    emu.enqueue(Fault.malformed_json(), Reply(text="whole"))
    assert client.chat(model="gpt-4o-mini", messages=USER).text == "whole"
    assert len(sleeps) == 1  # nothing reached the caller: retried like a failure before it
    emu.enqueue(Fault.malformed_json(), Fault.malformed_json(), Fault.malformed_json())
    with pytest.raises(ResponseError) as info:
        client.chat(model="gpt-4o-mini", messages=USER)
    assert info.value.provider == "openai" and info.value.request_id
    assert info.value.retryable and len(sleeps) == 3
    emu.enqueue(Fault.malformed_json())  # a stream that delivered an event is not restarted
    with pytest.raises(ResponseError):
        list(client.stream(model="gpt-4o-mini", messages=USER))


def test_invalid_utf8_in_a_stream_is_a_response_error(emu: Emulator,
                                                      client: aipk.Client) -> None:
    emu.enqueue(Fault.invalid_utf8())
    with pytest.raises(ResponseError, match="UTF-8"):
        list(client.stream(model="gpt-4o-mini", messages=USER))


def test_in_band_error_is_a_stream_error(emu: Emulator, client: aipk.Client) -> None:
    emu.enqueue(Fault.inband_error(message="Overloaded", code="server_error"))
    with pytest.raises(StreamError) as info:
        list(client.stream(model="gpt-4o-mini", messages=USER))
    assert info.value.code == "server_error" and info.value.retryable
    assert "Overloaded" in str(info.value) and info.value.request_id


def test_connection_refused_is_retried_then_a_network_error(sleeps: Sleeps) -> None:
    with aipk.Client("openai", base_url="http://127.0.0.1:9/v1", api_key=KEY,
                     sleep=sleeps) as c, pytest.raises(NetworkError) as info:
        c.chat(model="gpt-4o-mini", messages=USER)
    assert info.value.before_first_byte and len(sleeps) == 2


# -- configuration -------------------------------------------------------------------------------


def test_models_listing(emu: Emulator, client: aipk.Client) -> None:
    models = client.models()
    assert models and all(m.provider == "openai" for m in models)
    assert "gpt-4o-mini" in {m.id for m in models}
    static = client.models(static=True)
    assert {m.id for m in static} >= {"gpt-4o", "gpt-4o-mini"}
    assert client.health().healthy


def test_extra_headers_and_own_http_client(emu: Emulator) -> None:
    with httpx.Client() as own, aipk.Client("openai", base_url=emu.url("openai"), api_key=KEY,
                                            headers={"x-trace": "t-1"}, http_client=own) as c:
        c.chat(model="gpt-4o-mini", messages=USER)
    assert emu.requests[-1].headers["x-trace"] == "t-1"
    assert own.is_closed  # closed by its owner, the with block, not by aipk


def test_loopback_needs_no_key_and_sends_none(emu: Emulator,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with aipk.Client("openai", base_url=emu.url("openai")) as c:
        c.chat(model="gpt-4o-mini", messages=USER)
    assert "authorization" not in emu.requests[-1].headers


def test_missing_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingCredentialError, match="OPENAI_API_KEY"):
        aipk.Client("openai")


def test_env_key_and_organization(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-1,sk-from-env-2")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-123")
    with aipk.Client("openai", base_url=emu.url("openai")) as c:
        c.chat(model="gpt-4o-mini", messages=USER)
    headers = emu.requests[-1].headers
    assert headers["authorization"] == "Bearer sk-from-env-1"
    assert headers["openai-organization"] == "org-123"


def test_no_secret_in_debug_logs(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    emu.enqueue(Fault.status(429, retry_after=0))
    caplog.set_level(logging.DEBUG)
    with aipk.Client("openai", base_url=emu.url("openai"), api_key=KEY,
                     sleep=lambda s: None) as c:
        c.chat(model="gpt-4o-mini", messages=USER)
    assert caplog.records, "debug logging is exercised"
    assert all(KEY not in r.getMessage() for r in caplog.records)


def test_clients_satisfy_the_segregated_protocols(client: aipk.Client) -> None:
    from aipk import protocols as p

    for proto in (p.CoreInfo, p.CapabilitiesInfo, p.RateLimitInfo, p.ChatCapable,
                  p.ModelsCapable, p.HealthCapable):
        assert isinstance(client, proto), proto
    caps = client.capabilities("o3-mini")
    assert caps.vision is False and caps.context_window == 200_000 and caps.streaming


# -- async, over both transports -----------------------------------------------------------------


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_async_chat_stream_and_faults(emu: Emulator, sleeps: Sleeps, transport: str) -> None:
    made = PassedIn(transport)

    async def scenario() -> None:
        async with aipk.AsyncClient("openai", base_url=emu.url("openai"), api_key=KEY,
                                    sleep=sleeps.asleep, transport=made()) as c:
            emu.enqueue(Reply(text="async hello"))
            assert (await c.chat(model="gpt-4o-mini", messages=USER)).text == "async hello"
            emu.enqueue(Reply(text="streamed async", chunk_size=2))
            stream = c.stream(model="gpt-4o-mini", messages=USER)
            texts = [t async for t in stream.text()]
            assert "".join(texts) == "streamed async" and len(texts) == 7
            assert (await stream.get_response()).usage is not None
            emu.enqueue(Fault.status(429, retry_after=0.5))
            emu.enqueue(Reply(text="again"))
            assert (await c.chat(model="gpt-4o-mini", messages=USER)).text == "again"
            assert sleeps == [0.5]
            emu.enqueue(Fault.reset_mid_stream(after_events=2))
            with pytest.raises(NetworkError):
                async for _ in c.stream(model="gpt-4o-mini", messages=USER):
                    pass
            emu.enqueue(Fault.truncate(after_events=2))
            with pytest.raises(ResponseError):
                async for _ in c.stream(model="gpt-4o-mini", messages=USER):
                    pass
            assert [m.id for m in await c.models()]
            from aipk import protocols as p

            assert isinstance(c, p.AsyncChatCapable) and isinstance(c, p.AsyncModelsCapable)
        await made.close()

    run(scenario())


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_async_concurrent_requests_share_one_client(emu: Emulator, transport: str) -> None:
    made = PassedIn(transport)

    async def scenario() -> list[str]:
        async with aipk.AsyncClient("openai", base_url=emu.url("openai"), api_key=KEY,
                                    transport=made()) as c:
            replies = await asyncio.gather(*(
                c.chat(model="gpt-4o-mini", messages=[Message.user(f"n{i}")])
                for i in range(100)))
            assert c.metrics()["successes"] == 100
        await made.close()
        return [r.text for r in replies]

    texts = run(scenario())
    assert texts == [f"echo: n{i}" for i in range(100)]
