"""A router call's ``Timeout(total=...)`` bounds the whole routed call, over real HTTP against
the emulator, for the sync and the async router.

* Each target's call gets the time the routed call has left, not the whole total: a failover
  after a slow failure ends at the total, with the router's ``RequestTimeout`` (naming the
  configured total) from the last target's error.
* A wait for a cooling-down target that would end past the total is not made; one that fits
  is.
* A stream is bounded until its first event, never after it.
* A target that ran out of the call's time is neither cooled down nor counted against its
  breaker.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

import aipk
from aipk.errors import RateLimitError, RequestTimeout
from aipk.router import AsyncRouter, Router, Target, route_of
from aipk_testkit.emulator import Emulator, Fault, Reply

USER = [aipk.Message.user("hi")]
KEY_A, KEY_B = "sk-target-a-0001", "sk-target-b-0002"
HOW = ["sync", "async"]
#: How late a call may end past its total on this loaded machine (timers, scheduling).
SLACK = 1.5


def targets(emu: Emulator) -> list[Target]:
    """Two targets on one emulator, told apart by their keys."""
    return [Target(provider="openai", model="m", base_url=emu.url("openai"), api_key=key,
                   name=name) for key, name in ((KEY_A, "a"), (KEY_B, "b"))]


def routed(emu: Emulator, how: str, *, stream: bool = False, router_options: Any = None,
           **call: Any) -> tuple[aipk.ChatResponse | BaseException, float, dict[str, Any]]:
    """One routed chat (or stream) call: its response (or the error it raised), how long it
    took, and the router's metrics after it."""
    options = router_options or {}
    if how == "sync":
        with Router(targets(emu), **options) as router:
            started = time.monotonic()
            try:
                if stream:
                    with router.stream(messages=USER, **call) as answer:
                        for _event in answer:
                            pass
                    outcome: aipk.ChatResponse | BaseException = answer.response
                else:
                    outcome = router.chat(messages=USER, **call)
            except aipk.AipkError as exc:
                outcome = exc
            return outcome, time.monotonic() - started, router.metrics()

    async def scenario() -> tuple[aipk.ChatResponse | BaseException, float, dict[str, Any]]:
        async with AsyncRouter(targets(emu), **options) as router:
            started = time.monotonic()
            try:
                if stream:
                    async with router.stream(messages=USER, **call) as answer:
                        async for _event in answer:
                            pass
                    outcome: aipk.ChatResponse | BaseException = await answer.get_response()
                else:
                    outcome = await router.chat(messages=USER, **call)
            except aipk.AipkError as exc:
                outcome = exc
            return outcome, time.monotonic() - started, router.metrics()

    return asyncio.run(scenario())


def requests_with(emu: Emulator, key: str) -> int:
    return sum(r.headers.get("authorization") == f"Bearer {key}" for r in emu.requests)


def assert_router_timeout(outcome: object, took: float, total: float) -> RequestTimeout:
    assert isinstance(outcome, RequestTimeout), outcome
    assert outcome.provider == "router" and outcome.retryable
    message = str(outcome)
    assert f"aipk.Timeout(total={total:g})" in message and "raise total" in message, message
    assert took <= total + SLACK, took
    return outcome


def given_total(error: BaseException) -> float:
    """The total a target's client was given, from its own RequestTimeout's message."""
    found = re.search(r"aipk\.Timeout\(total=([0-9.e-]+)\)", str(error))
    assert found is not None, error
    return float(found.group(1))


@pytest.mark.parametrize("how", HOW)
def test_a_failover_after_a_slow_failure_gets_only_the_time_left(
        aipk_emulator: Emulator, how: str) -> None:
    total = 0.8
    aipk_emulator.enqueue_for_key(KEY_A, Fault.slow_first_byte(0.4, then=Fault.status(503)))
    aipk_emulator.enqueue_for_key(KEY_B, Fault.trickle(0.05))  # would outlast any total
    outcome, took, metrics = routed(aipk_emulator, how, timeout=aipk.Timeout(total=total))
    error = assert_router_timeout(outcome, took, total)
    assert took >= total - 0.05
    assert "while target 'b' was answering" in str(error)
    assert "a (m): ServerError" in str(error)  # what happened before it
    cause = error.__cause__
    assert isinstance(cause, RequestTimeout)  # b's client's own, from the time left
    assert given_total(cause) <= total - 0.35  # b got what a left, not the whole total
    assert requests_with(aipk_emulator, KEY_A) == requests_with(aipk_emulator, KEY_B) == 1
    assert metrics["errors"] == 1 and metrics["targets"]["b"]["errors"] == 1
    assert metrics["targets"]["a"]["cooldown_remaining"] > 0  # a's 503 counted
    assert metrics["targets"]["b"]["cooldown_remaining"] == 0  # b only ran out of time


@pytest.mark.parametrize("how", HOW)
def test_a_first_target_that_uses_the_whole_total_leaves_none_for_the_next(
        aipk_emulator: Emulator, how: str) -> None:
    aipk_emulator.enqueue_for_key(KEY_A, Fault.trickle(0.05))
    outcome, took, metrics = routed(aipk_emulator, how, timeout=aipk.Timeout(total=0.4))
    error = assert_router_timeout(outcome, took, 0.4)
    assert "while target 'a' was answering" in str(error)
    assert isinstance(error.__cause__, RequestTimeout)
    assert requests_with(aipk_emulator, KEY_B) == 0  # no time was left to try b
    assert metrics["targets"]["a"]["cooldown_remaining"] == 0
    assert metrics["targets"]["a"]["breaker"] == "closed"


@pytest.mark.parametrize("how", HOW)
def test_a_failover_that_fits_the_total_is_answered(aipk_emulator: Emulator, how: str) -> None:
    aipk_emulator.enqueue_for_key(KEY_A, Fault.status(503))
    outcome, _took, _ = routed(aipk_emulator, how, timeout=aipk.Timeout(total=5))
    assert isinstance(outcome, aipk.ChatResponse), outcome
    assert outcome.text == "echo: hi"
    route = route_of(outcome)
    assert route is not None and route.served_by == "b" and route.tried == ("a", "b")


@pytest.mark.parametrize("how", HOW)
def test_a_wait_for_a_cooling_target_that_would_end_past_the_total_is_not_made(
        aipk_emulator: Emulator, how: str) -> None:
    for key in (KEY_A, KEY_B):
        aipk_emulator.enqueue_for_key(key, Fault.status(429, retry_after=5))
    outcome, took, _ = routed(aipk_emulator, how, timeout=aipk.Timeout(total=1),
                              router_options={"max_wait": 30})
    error = assert_router_timeout(outcome, took, 1)
    assert took < 1  # raised at once, not after sleeping to the total
    assert "before a wait of" in str(error) and "for a target to become available" in str(error)
    assert isinstance(error.__cause__, RateLimitError)  # the last target's error
    assert requests_with(aipk_emulator, KEY_A) == requests_with(aipk_emulator, KEY_B) == 1


@pytest.mark.parametrize("how", HOW)
def test_a_wait_for_a_cooling_target_that_fits_the_total_is_made(
        aipk_emulator: Emulator, how: str) -> None:
    for key in (KEY_A, KEY_B):
        aipk_emulator.enqueue_for_key(key, Fault.status(429, retry_after=0.2))
    outcome, took, metrics = routed(aipk_emulator, how, timeout=aipk.Timeout(total=5),
                                    router_options={"max_wait": 30})
    assert isinstance(outcome, aipk.ChatResponse), outcome
    assert outcome.text == "echo: hi"
    assert metrics["waits"] == 1
    assert 0.15 <= took < 5


@pytest.mark.parametrize("how", HOW)
def test_a_stream_whose_first_event_trickles_fails_at_the_total(
        aipk_emulator: Emulator, how: str) -> None:
    aipk_emulator.enqueue_for_key(KEY_A, Fault.status(500))
    aipk_emulator.enqueue_for_key(KEY_B, Fault.trickle(0.05))
    outcome, took, _ = routed(aipk_emulator, how, stream=True,
                              timeout=aipk.Timeout(total=0.5))
    error = assert_router_timeout(outcome, took, 0.5)
    assert isinstance(error.__cause__, RequestTimeout)
    assert "a (m): ServerError" in str(error)


@pytest.mark.parametrize("how", HOW)
def test_a_routed_stream_that_started_is_never_cut_by_the_total(
        aipk_emulator: Emulator, how: str) -> None:
    aipk_emulator.enqueue_for_key(KEY_A, Fault.status(500))
    aipk_emulator.enqueue_for_key(
        KEY_B, Fault.trickle(0.002, after_events=2, reply=Reply(text="a long answer")))
    outcome, took, _ = routed(aipk_emulator, how, stream=True,
                              timeout=aipk.Timeout(total=0.3, read=5))
    assert isinstance(outcome, aipk.ChatResponse), outcome
    assert outcome.text == "a long answer"
    assert took > 0.3


@pytest.mark.parametrize("how", HOW)
def test_an_error_that_does_not_fail_over_is_raised_as_it_is(
        aipk_emulator: Emulator, how: str) -> None:
    aipk_emulator.enqueue_for_key(KEY_A, Fault.status(400))
    outcome, _took, _ = routed(aipk_emulator, how, timeout=aipk.Timeout(total=5))
    assert isinstance(outcome, aipk.BadRequestError), outcome


def test_a_retry_within_a_target_gets_the_time_left_too(aipk_emulator: Emulator) -> None:
    """With a retry policy per target, a target's retries share the call's one total."""
    aipk_emulator.enqueue_for_key(KEY_A, Fault.status(503, retry_after=0.1),
                                  Fault.trickle(0.05))
    outcome, took, _ = routed(aipk_emulator, "sync", timeout=aipk.Timeout(total=0.6),
                              retry=aipk.RetryPolicy(max_retries=3))
    error = assert_router_timeout(outcome, took, 0.6)
    assert isinstance(error.__cause__, RequestTimeout)
    assert requests_with(aipk_emulator, KEY_A) == 2 and requests_with(aipk_emulator, KEY_B) == 0
