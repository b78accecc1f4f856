"""Router cooldowns combine like every wait on one key (docs/reliability.md, "How waits on one
key combine"): each is an absolute deadline and a target keeps the latest deadline it was
given, so a shorter wait that arrives later never cuts a longer one short. Property tests on an
injected clock: on the cooldown store alone, and through a router whose requests to one target
were all in flight when their answers (429s with any ``retry-after``, 5xx, timeouts, 401s, a
health checker's ``cool_down``) arrive in any order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipk import ChatRequest, ChatResponse, Message, Provider, ProviderSpec, Usage
from aipk.errors import (
    AuthenticationError,
    ProviderError,
    RateLimitError,
    RequestTimeout,
    ServerError,
)
from aipk.router import AsyncRouter, CooldownPolicy, Target, classify, route_of
from aipk.router._cooldowns import Cooldowns, later_deadline
from aipk.state import MemoryStore

USER = [Message.user("hi")]
FAKE = Provider(spec=ProviderSpec(name="fake", protocol="fake", default_base_url="http://x"),
                base_url="http://x")
POLICY = CooldownPolicy(rate_limit=5.0, server_error=2.0, network=1.0, credential=300.0,
                        max_cooldown=50.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


seconds = st.floats(min_value=0.0, max_value=120.0, allow_nan=False)


@given(st.lists(st.tuples(st.floats(min_value=0.0, max_value=30.0), seconds), max_size=30))
def test_the_cooldown_store_keeps_the_latest_deadline(steps: list[tuple[float, float]]) -> None:
    clock = Clock()
    cooldowns = Cooldowns(MemoryStore(clock=clock))
    deadline: float | None = None
    for advance, wait in steps:
        clock.now += advance
        cooldowns.extend("a", wait, clock.now)
        if wait > 0:
            deadline = later_deadline(deadline, clock.now + wait)
        expected = deadline if deadline is not None and deadline > clock.now else None
        assert cooldowns.until("a", clock.now) == expected
    if deadline is not None:  # it ends exactly then, not before
        clock.now = deadline
        assert cooldowns.until("a", clock.now) is None


def test_later_deadline_keeps_the_stored_value_itself_when_it_is_not_earlier() -> None:
    stored = 1010.0
    assert later_deadline(stored, 1005.0) is stored  # the store then leaves its entry alone
    assert later_deadline(stored, 1020.0) == 1020.0
    assert later_deadline(None, 1001.0) == 1001.0


# -- through the router: answers of requests that were all in flight ----------------------------


class InFlight:
    """An async client whose calls all wait until the test answers them."""

    provider = FAKE

    def __init__(self) -> None:
        self.waiting: list[asyncio.Future[BaseException]] = []

    async def chat(self, request: ChatRequest, retry: Any = None) -> ChatResponse:
        future: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        raise await future


class Ok:
    provider = FAKE

    async def chat(self, request: ChatRequest, retry: Any = None) -> ChatResponse:
        return ChatResponse(provider="fake", model=request.model,
                            message=Message(role="assistant", content="ok"),
                            usage=Usage(input_tokens=1, output_tokens=1))


def failure(kind: str, wait: float | None) -> ProviderError:
    if kind == "rate_limit":
        return RateLimitError("slow down", provider="fake", retry_after=wait)
    if kind == "server_error":
        return ServerError("down", provider="fake", status=503, retryable=True)
    if kind == "timeout":
        return RequestTimeout("timed out", provider="fake")
    return AuthenticationError("invalid key", provider="fake", status=401)


answer = st.one_of(
    st.tuples(st.just("rate_limit"), st.none() | seconds),
    st.tuples(st.sampled_from(["server_error", "timeout", "auth", "cool_down"]), seconds),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=0.0, max_value=20.0), answer), min_size=1,
                max_size=8))
def test_a_target_keeps_the_longest_cooldown_its_in_flight_answers_gave(
        answers: list[tuple[float, tuple[str, float | None]]]) -> None:
    clock = Clock()
    slow = InFlight()
    router = AsyncRouter(
        [Target(provider="fake", model="m", client=slow, name="a"),  # type: ignore[arg-type]
         Target(provider="fake", model="m", client=Ok(), name="b")],  # type: ignore[arg-type]
        clock=clock, cooldown=POLICY, breaker=None)

    async def go() -> None:
        calls = [asyncio.create_task(router.chat(messages=USER))
                 for kind, _ in (a for _, a in answers) if kind != "cool_down"]
        while len(slow.waiting) < len(calls):  # every call is in flight at a
            await asyncio.sleep(0)
        pending = iter(slow.waiting)
        deadline = clock.now
        for advance, (kind, wait) in answers:
            clock.now += advance
            if kind == "cool_down":
                assert wait is not None
                router.cool_down("a", wait)
                cooldown = wait
            else:
                error = failure(kind, wait)
                cooldown = classify(error, POLICY).cooldown
                next(pending).set_result(error)
                for _ in range(5):
                    await asyncio.sleep(0)
            deadline = max(deadline, clock.now + cooldown) if cooldown > 0 else deadline
            remaining = router.metrics()["targets"]["a"]["cooldown_remaining"]
            assert remaining == pytest.approx(max(0.0, deadline - clock.now))
        for call in calls:  # each failed over to b
            assert route_of(await call).served_by == "b"  # type: ignore[union-attr]
        if deadline > clock.now:  # the longest wait stands until its very end
            clock.now = deadline - 1e-6
            assert router.metrics()["targets"]["a"]["cooldown_remaining"] > 0
            assert route_of(await router.chat(messages=USER)).tried == ("b",)  # type: ignore[union-attr]
        clock.now = max(deadline, clock.now)
        assert router.metrics()["targets"]["a"]["cooldown_remaining"] == 0.0

    asyncio.run(go())
