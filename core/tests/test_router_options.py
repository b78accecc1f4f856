"""The router passes a call's per-call options to each target's client exactly as given, and
only those given (in-process recording clients; tests/test_router_call_options.py checks what
real servers receive)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from aipk import ChatRequest, ChatResponse, Message, Provider, ProviderSpec, TextDelta, Timeout
from aipk.errors import ServerError
from aipk.router import AsyncRouter, Router, Target, route_of

USER = [Message.user("hi")]
FAKE = Provider(spec=ProviderSpec(name="fake", protocol="fake", default_base_url="http://x"),
                base_url="http://x")
OPTIONS: dict[str, Any] = {"headers": {"X-Trace-Id": "t-1"}, "timeout": Timeout(read=3.0),
                           "extra_body": {"service_tier": "flex"}, "check_context": False}


def reply(request: ChatRequest) -> ChatResponse:
    return ChatResponse(provider="fake", model=request.model,
                        message=Message(role="assistant", content="ok"))


class Recorder:
    """Records the keyword options of every call; fails the first ``failures`` calls."""

    provider = FAKE

    def __init__(self, failures: int = 0) -> None:
        self.seen: list[dict[str, Any]] = []
        self.failures = failures

    def _record(self, options: dict[str, Any]) -> None:
        self.seen.append(options)
        if self.failures:
            self.failures -= 1
            raise ServerError("down", provider="fake", status=503, retryable=True)

    def chat(self, request: ChatRequest, retry: Any = None, **options: Any) -> ChatResponse:
        self._record(options)
        return reply(request)

    def stream(self, request: ChatRequest, retry: Any = None, **options: Any) -> Stream:
        self._record(options)
        return Stream(request)


class Stream:
    def __init__(self, request: ChatRequest) -> None:
        self.response = reply(request)

    def __iter__(self) -> Iterator[TextDelta]:
        yield TextDelta(text="ok")

    async def _agen(self) -> AsyncIterator[TextDelta]:
        yield TextDelta(text="ok")

    def __aiter__(self) -> AsyncIterator[TextDelta]:
        return self._agen()

    async def get_response(self) -> ChatResponse:
        return self.response

    def close(self) -> None:
        pass


class AsyncRecorder(Recorder):
    async def chat(self, request: ChatRequest, retry: Any = None,  # type: ignore[override]
                   **options: Any) -> ChatResponse:
        self._record(options)
        return reply(request)

    def stream(self, request: ChatRequest, retry: Any = None, **options: Any) -> Stream:
        self._record(options)
        return AsyncStream(request)


class AsyncStream(Stream):
    async def close(self) -> None:  # type: ignore[override]
        pass


def targets(a: Recorder, b: Recorder) -> list[Target]:
    return [Target(provider="fake", model="m", client=a, name="a"),  # type: ignore[arg-type]
            Target(provider="fake", model="m", client=b, name="b")]  # type: ignore[arg-type]


def run(mode: str, a: Recorder, b: Recorder, **options: Any) -> ChatResponse:
    if mode.startswith("sync"):
        router = Router(targets(a, b))
        if mode == "sync-chat":
            return router.chat(messages=USER, **options)
        return router.stream(messages=USER, **options).get_response()

    async def go() -> ChatResponse:
        router = AsyncRouter(targets(a, b))
        if mode == "async-chat":
            return await router.chat(messages=USER, **options)
        return await router.stream(messages=USER, **options).get_response()

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync-chat", "sync-stream", "async-chat", "async-stream"])
def test_every_attempt_gets_the_options_as_given_and_calls_without_get_none(mode: str) -> None:
    maker = AsyncRecorder if mode.startswith("async") else Recorder
    a, b = maker(failures=1), maker()
    assert route_of(run(mode, a, b, **OPTIONS)).tried == ("a", "b")  # type: ignore[union-attr]
    assert a.seen == [OPTIONS] and b.seen == [OPTIONS]
    a2, b2 = maker(), maker()
    run(mode, a2, b2, headers={"X-Only": "this"})
    assert a2.seen == [{"headers": {"X-Only": "this"}}] and b2.seen == []
    a3, b3 = maker(), maker()
    run(mode, a3, b3)
    assert a3.seen == [{}]  # nothing is passed on when nothing is given
