"""An OAuth token refreshed *before* a request (it is about to expire) within the call's
``Timeout(total=...)``, over real HTTP against the emulator's OAuth server and chat endpoint:
with a token endpoint that answers late, the call raises RequestTimeout at about its total
(sync and async) without sending the request, the refresh goes on to its end, and the next
call is sent with the refreshed token, without a second refresh."""

from __future__ import annotations

import asyncio
import time

import pytest

import aipk
from aipk.credentials import OAuthManager
from aipk.errors import RequestTimeout
from aipk_testkit.emulator import Emulator

from .oauth_accounts import oauth_account

USER = [aipk.Message.user("hi")]
TOTAL = 0.3
#: How long the token endpoint takes to answer: far past the total.
SLOW_TOKEN = 3.0
#: How late a call may end past its total on this loaded machine (timers, scheduling).
SLACK = 1.7


def near_expiry_accounts(emu: Emulator) -> tuple[OAuthManager, str]:
    """An OAuth account whose token (still valid at the server) expires in 10 s, inside the
    manager's ``mandatory_buffer``: the next request waits for its refresh. Also the token."""
    return oauth_account(emu, expires_in=10)


def refreshes(accounts: OAuthManager) -> int:
    counters = accounts.metrics.snapshot().get("me")
    return 0 if counters is None else counters.refreshes


def wait_for_the_refresh(accounts: OAuthManager) -> None:
    until = time.monotonic() + SLOW_TOKEN + 5
    while refreshes(accounts) < 1 and time.monotonic() < until:
        time.sleep(0.02)
    assert refreshes(accounts) == 1


def chat_requests(emu: Emulator) -> list[str]:
    """The authorization header of each chat request the emulator received."""
    return [r.headers["authorization"] for r in emu.requests
            if r.path.endswith("/chat/completions")]


def assert_bounded(error: RequestTimeout, took: float) -> None:
    assert f"aipk.Timeout(total={TOTAL:g})" in str(error), error
    assert TOTAL - 0.05 <= took < TOTAL + SLACK, took


def assert_served_by_the_refreshed_token(emu: Emulator, accounts: OAuthManager, old: str,
                                         answer: str | None) -> None:
    assert answer == "echo: hi"
    fresh = accounts.get("me").access_token.reveal()
    assert fresh != old
    assert chat_requests(emu) == [f"Bearer {fresh}"]  # the timed-out call sent nothing
    assert refreshes(accounts) == 1


def test_a_sync_call_waiting_for_a_slow_early_refresh_fails_at_its_total(
        emu: Emulator) -> None:
    accounts, old = near_expiry_accounts(emu)
    emu.delay_endpoint("token", SLOW_TOKEN)
    with aipk.Client("openai", base_url=emu.url("openai"), credentials=accounts) as client:
        started = time.monotonic()
        with pytest.raises(RequestTimeout, match="refreshing the credential before") as info:
            client.chat(model="m", messages=USER, timeout=aipk.Timeout(total=TOTAL))
        took = time.monotonic() - started
        assert chat_requests(emu) == []
        wait_for_the_refresh(accounts)  # it went on to its end in the background
        answer = client.chat(model="m", messages=USER, timeout=aipk.Timeout(total=TOTAL)).text
    assert_bounded(info.value, took)
    assert_served_by_the_refreshed_token(emu, accounts, old, answer)


def test_an_async_call_waiting_for_a_slow_early_refresh_fails_at_its_total(
        emu: Emulator) -> None:
    accounts, old = near_expiry_accounts(emu)
    emu.delay_endpoint("token", SLOW_TOKEN)

    async def scenario() -> tuple[RequestTimeout, float, str | None]:
        async with aipk.AsyncClient("openai", base_url=emu.url("openai"),
                                    credentials=accounts) as client:
            started = time.monotonic()
            with pytest.raises(RequestTimeout) as info:
                await client.chat(model="m", messages=USER, timeout=aipk.Timeout(total=TOTAL))
            took = time.monotonic() - started
            assert chat_requests(emu) == []
            until = time.monotonic() + SLOW_TOKEN + 5  # the refresh goes on in its own task
            while refreshes(accounts) < 1 and time.monotonic() < until:
                await asyncio.sleep(0.02)
            answer = (await client.chat(model="m", messages=USER,
                                        timeout=aipk.Timeout(total=TOTAL))).text
            return info.value, took, answer

    error, took, answer = asyncio.run(scenario())
    assert_bounded(error, took)
    assert_served_by_the_refreshed_token(emu, accounts, old, answer)


def test_an_early_refresh_that_answers_in_time_serves_the_same_call(emu: Emulator) -> None:
    """The bound costs nothing in outcome: a refresh within the total serves the call."""
    accounts, old = near_expiry_accounts(emu)
    with aipk.Client("openai", base_url=emu.url("openai"), credentials=accounts) as client:
        answer = client.chat(model="m", messages=USER, timeout=aipk.Timeout(total=5.0)).text
    assert_served_by_the_refreshed_token(emu, accounts, old, answer)
