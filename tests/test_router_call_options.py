"""The router's per-call options (``headers=``, ``timeout=``, ``extra_body=``,
``check_context=``) reach every target's client as the client API takes them: over real HTTP,
one loopback emulator per target, sync and async, chat and stream, asserting what each server
received."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

import aipk
from aipk import Message
from aipk.errors import ContextWindowExceededError, InvalidRequestError
from aipk.router import AllTargetsFailedError, AsyncRouter, Router, Target, route_of
from aipk_testkit.emulator import Emulator, Fault, RecordedRequest

KEY = "sk-test-0123456789abcdef"
USER = [Message.user("Hello there")]
MODES = ("sync-chat", "sync-stream", "async-chat", "async-stream")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Emulator, Emulator]]:
    with Emulator() as a, Emulator() as b:
        yield a, b


@pytest.fixture
def emus(servers: tuple[Emulator, Emulator]) -> tuple[Emulator, Emulator]:
    for emu in servers:
        emu.reset()
    return servers


def targets(emus: tuple[Emulator, Emulator], models: tuple[str, str]) -> list[Target]:
    return [Target(provider="openai", model=model, base_url=emu.url("openai"), api_key=KEY,
                   name=name)
            for emu, model, name in zip(emus, models, "ab", strict=True)]


def posts(emu: Emulator) -> list[RecordedRequest]:
    return [r for r in emu.requests if r.method == "POST"]


def route(emus: tuple[Emulator, Emulator], mode: str, *,
          models: tuple[str, str] = ("gpt-4o-mini", "gpt-4o-mini"),
          router_options: dict[str, Any] | None = None, **options: Any) -> aipk.ChatResponse:
    """One routed call in ``mode`` (sync/async x chat/stream) with per-call ``options``."""
    kwargs: dict[str, Any] = dict(router_options or {})
    client_options = kwargs.get("client_options", {})
    kwargs["client_options"] = {**client_options, "sleep": lambda _: None}
    if mode.startswith("sync"):
        with Router(targets(emus, models), **kwargs) as router:
            if mode == "sync-chat":
                return router.chat(messages=USER, **options)
            with router.stream(messages=USER, **options) as stream:
                return stream.get_response()

    async def no_sleep(_: float) -> None:
        return None

    async def go() -> aipk.ChatResponse:
        kwargs["client_options"] = {**kwargs["client_options"], "sleep": no_sleep}
        async with AsyncRouter(targets(emus, models), **kwargs) as router:
            if mode == "async-chat":
                return await router.chat(messages=USER, **options)
            async with router.stream(messages=USER, **options) as stream:
                return await stream.get_response()

    result: aipk.ChatResponse = asyncio.run(go())
    return result


@pytest.mark.parametrize("mode", MODES)
def test_headers_and_extra_body_reach_every_target_tried(emus: Any, mode: str) -> None:
    a, b = emus
    a.enqueue(Fault.status(503))  # a fails, b serves: both must have received the options
    reply = route(emus, mode, headers={"X-Trace-Id": "t-42", "X-Team": "search"},
                  extra_body={"aipk_probe": {"n": 1}, "service_tier": "flex"})
    assert reply.text == "echo: Hello there"
    assert route_of(reply).tried == ("a", "b")  # type: ignore[union-attr]
    for emu in (a, b):
        (sent,) = posts(emu)
        assert sent.headers["x-trace-id"] == "t-42"
        assert sent.headers["x-team"] == "search"
        body = sent.json()
        assert body["aipk_probe"] == {"n": 1} and body["service_tier"] == "flex"
        assert body["model"] == "gpt-4o-mini"  # the model still comes from the target


@pytest.mark.parametrize("mode", ["sync-chat", "async-stream"])
def test_per_call_headers_win_over_client_options_and_do_not_stick(emus: Any,
                                                                   mode: str) -> None:
    a, _ = emus
    client_options = {"headers": {"X-Client": "router-default", "X-Team": "a"}}
    route(emus, mode, router_options={"client_options": client_options},
          headers={"X-Client": "call"})
    route(emus, mode, router_options={"client_options": client_options})
    first, second = posts(a)
    assert (first.headers["x-client"], first.headers["x-team"]) == ("call", "a")
    assert (second.headers["x-client"], second.headers["x-team"]) == ("router-default", "a")
    assert "aipk_probe" not in second.json()


@pytest.mark.parametrize("mode", MODES)
def test_a_per_call_timeout_times_a_target_out_and_the_router_fails_over(emus: Any,
                                                                          mode: str) -> None:
    a, b = emus
    a.enqueue(Fault.slow_first_byte(2.0))
    started = time.monotonic()
    reply = route(emus, mode, timeout=0.3)
    assert time.monotonic() - started < 1.8  # a's 2 s silence was cut at 0.3 s
    info = route_of(reply)
    assert info is not None and info.served_by == "b"
    assert "RequestTimeout" in info.failures[0][1]
    assert len(posts(a)) == 1 and len(posts(b)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_check_context_refuses_a_small_window_before_sending_and_falls_back(emus: Any,
                                                                             mode: str) -> None:
    a, b = emus
    # 200,000 output tokens fit gpt-4.1-mini's ~1M window, not gpt-4o-mini's 128k.
    reply = route(emus, mode, models=("gpt-4o-mini", "gpt-4.1-mini"),
                  router_options={"fallback_on_context_window": True},
                  check_context=True, max_tokens=200_000)
    info = route_of(reply)
    assert info is not None and info.served_by == "b" and info.model == "gpt-4.1-mini"
    assert "ContextWindowExceededError" in info.failures[0][1]
    assert posts(a) == []  # refused before sending
    (sent,) = posts(b)
    assert sent.json()["max_completion_tokens"] == 200_000


def test_check_context_without_a_fallback_raises_and_sends_nothing(emus: Any) -> None:
    with pytest.raises(ContextWindowExceededError, match="context window of 128000"):
        route(emus, "sync-chat", check_context=True, max_tokens=200_000)
    assert [posts(e) for e in emus] == [[], []]
    # Without check_context the request goes out (the provider would judge it).
    route(emus, "sync-chat", max_tokens=200_000)
    assert len(posts(emus[0])) == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_credential_header_per_call_is_refused_at_once_and_nothing_is_sent(emus: Any,
                                                                             mode: str) -> None:
    with pytest.raises(InvalidRequestError, match="api_key="):
        route(emus, mode, headers={"Authorization": "Bearer sk-sneaky-0123456789"})
    assert [posts(e) for e in emus] == [[], []]


def test_every_target_failing_with_per_call_options_still_says_what_each_answered(
        emus: Any) -> None:
    a, b = emus
    a.enqueue(Fault.status(503))
    b.enqueue(Fault.status(502))
    with pytest.raises(AllTargetsFailedError) as caught:
        route(emus, "sync-chat", headers={"X-Trace-Id": "t-9"}, extra_body={"user": "u-1"})
    assert [t.name for t, _ in caught.value.failures] == ["a", "b"]
    for emu in emus:
        (sent,) = posts(emu)
        assert sent.headers["x-trace-id"] == "t-9" and sent.json()["user"] == "u-1"
