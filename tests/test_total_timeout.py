"""``Timeout(total=...)``: the bound on a whole call until its answer arrived, over real HTTP
against the emulator, for the sync client and the async client on both transports.

* A body that trickles (never silent for long enough for the read timeout) fails with
  ``RequestTimeout`` at the total, not retried; so does a stream whose first event trickles,
  and a head that never comes.
* A stream whose first event arrived is never cut by the total, however long the rest takes.
* Retries happen within the total; one whose wait would end past it is not made.
* Unset, a trickled body is read to its end (``read`` bounds each silence only).
* A credential refresh after a 401 is bounded too; the refresh itself goes on to its end.
* The error names the configured total, on every client and transport (one of your own too).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import attrs
import pytest

import aipk
from aipk.credentials import OAuthManager
from aipk.errors import ConfigurationError, RequestTimeout, ServerError
from aipk.transports import HttpxTransport
from aipk_testkit.emulator import Emulator, Fault, Reply

from .oauth_accounts import oauth_account
from .rawserver import HOLD, chunk, head, raw_server

USER = [aipk.Message.user("hi")]
HOW = ["sync", "httpx", "aiohttp"]
TOTAL = 0.6
#: How late a call may end past its total on this loaded machine (timers, scheduling).
SLACK = 1.5


def call(emu: Emulator, how: str, *, stream: bool = False, calls: int = 1,
         **kwargs: Any) -> list[tuple[str | BaseException, float]]:
    """Make ``calls`` chat (or stream) calls on one client the way ``how`` says: each
    answer's text (or the error it raised) and how long it took."""
    results: list[tuple[str | BaseException, float]] = []
    if how == "sync":
        with aipk.Client("openai", base_url=emu.url("openai"), api_key="sk-1",
                         **kwargs) as client:
            for _ in range(calls):
                started = time.monotonic()
                try:
                    if stream:
                        with client.stream(model="m", messages=USER) as answer:
                            for _event in answer:
                                pass
                        text = answer.response.text or ""
                    else:
                        text = client.chat(model="m", messages=USER).text or ""
                    results.append((text, time.monotonic() - started))
                except aipk.AipkError as exc:
                    results.append((exc, time.monotonic() - started))
        return results

    async def scenario() -> None:
        from aipk.transports import AiohttpTransport, AsyncHttpxTransport

        transport = AiohttpTransport() if how == "aiohttp" else AsyncHttpxTransport()
        try:
            async with aipk.AsyncClient("openai", base_url=emu.url("openai"), api_key="sk-1",
                                        transport=transport, **kwargs) as client:
                for _ in range(calls):
                    started = time.monotonic()
                    try:
                        if stream:
                            async with client.stream(model="m", messages=USER) as answer:
                                async for _event in answer:
                                    pass
                            text = (await answer.get_response()).text or ""
                        else:
                            text = (await client.chat(model="m", messages=USER)).text or ""
                        results.append((text, time.monotonic() - started))
                    except aipk.AipkError as exc:
                        results.append((exc, time.monotonic() - started))
        finally:
            await transport.close()

    asyncio.run(scenario())
    return results


def assert_total_timeout(outcome: str | BaseException, took: float, total: float) -> None:
    assert isinstance(outcome, RequestTimeout), outcome
    assert f"aipk.Timeout(total={total:g})" in str(outcome), outcome  # the value, on any client
    assert "raise total" in str(outcome)
    assert total - 0.05 <= took <= total + SLACK, took


@pytest.mark.parametrize("how", HOW)
def test_a_trickled_body_fails_at_the_total_and_the_connection_pool_stays_usable(
        aipk_emulator: Emulator, how: str) -> None:
    aipk_emulator.enqueue(Fault.trickle(0.05))
    (outcome, took), (after, _) = call(aipk_emulator, how, calls=2,
                                       timeout=aipk.Timeout(total=TOTAL))
    assert_total_timeout(outcome, took, TOTAL)
    assert after == "echo: hi"  # the next call on the same client is answered
    assert len(aipk_emulator.requests) == 2  # the timed-out call was not retried


@pytest.mark.parametrize("how", HOW)
def test_a_stream_whose_first_event_trickles_fails_at_the_total(
        aipk_emulator: Emulator, how: str) -> None:
    aipk_emulator.enqueue(Fault.trickle(0.05))
    (outcome, took), (after, _) = call(aipk_emulator, how, stream=True, calls=2,
                                       timeout=aipk.Timeout(total=TOTAL))
    assert_total_timeout(outcome, took, TOTAL)
    assert after == "echo: hi"
    assert len(aipk_emulator.requests) == 2


@pytest.mark.parametrize("how", HOW)
def test_a_head_that_never_comes_fails_at_the_total(aipk_emulator: Emulator, how: str) -> None:
    aipk_emulator.enqueue(Fault.slow_first_byte(30))
    [(outcome, took)] = call(aipk_emulator, how, timeout=aipk.Timeout(total=TOTAL))
    assert_total_timeout(outcome, took, TOTAL)
    assert len(aipk_emulator.requests) == 1


@pytest.mark.parametrize("how", HOW)
def test_a_stream_that_started_is_never_cut_by_the_total(
        aipk_emulator: Emulator, how: str) -> None:
    # the first events at once, then the rest one byte every 2 ms: well past the total
    aipk_emulator.enqueue(Fault.trickle(0.002, after_events=2, reply=Reply(text="a long answer")))
    [(outcome, took)] = call(aipk_emulator, how, stream=True,
                             timeout=aipk.Timeout(total=0.3, read=5))
    assert outcome == "a long answer"
    assert took > 0.3


@pytest.mark.parametrize("how", HOW)
def test_a_silence_after_the_first_event_longer_than_the_total_is_waited_out(
        aipk_emulator: Emulator, how: str) -> None:
    """After the first event only ``read`` bounds the stream's silences."""
    aipk_emulator.enqueue(Fault.stall(1.0, after_events=2, reply=Reply(text="late rest")))
    [(outcome, took)] = call(aipk_emulator, how, stream=True,
                             timeout=aipk.Timeout(total=0.4, read=5))
    assert outcome == "late rest"
    assert took >= 1.0


@pytest.mark.parametrize("how", HOW)
def test_retries_happen_within_the_total(aipk_emulator: Emulator, how: str) -> None:
    # the first attempt times out on its read timeout, the retry is answered
    aipk_emulator.enqueue(Fault.slow_first_byte(1.0))
    [(outcome, took)] = call(aipk_emulator, how,
                             timeout=aipk.Timeout(read=0.2, total=5))
    assert outcome == "echo: hi"
    assert len(aipk_emulator.requests) == 2
    assert took < 5


@pytest.mark.parametrize("how", HOW)
def test_a_retry_whose_wait_ends_past_the_total_is_not_made(
        aipk_emulator: Emulator, how: str) -> None:
    aipk_emulator.enqueue(Fault.status(503, retry_after=3))
    [(outcome, took)] = call(aipk_emulator, how, timeout=aipk.Timeout(total=2))
    assert isinstance(outcome, ServerError) and outcome.status == 503
    assert len(aipk_emulator.requests) == 1
    assert took < 1.5  # raised at once, not after a wait

    aipk_emulator.reset()
    aipk_emulator.enqueue(Fault.status(503, retry_after=3))
    [(answer, took)] = call(aipk_emulator, how, timeout=aipk.Timeout(total=10))
    assert answer == "echo: hi"  # the same wait fits a larger total
    assert len(aipk_emulator.requests) == 2


@pytest.mark.parametrize("how", HOW)
def test_without_a_total_a_trickled_body_is_read_to_its_end(
        aipk_emulator: Emulator, how: str) -> None:
    aipk_emulator.enqueue(Fault.trickle(0.002, reply=Reply(text="slowly")))
    [(outcome, took)] = call(aipk_emulator, how, timeout=aipk.Timeout(read=0.5))
    assert outcome == "slowly"
    assert took > 0.5  # longer than the read timeout: only each silence is bounded


def test_a_wait_for_a_key_past_the_total_fails_at_the_total(aipk_emulator: Emulator) -> None:
    """The sync client's waits (here: a client-side rate limit) end by the total too."""
    from aipk.limits import ClientLimits

    limits = ClientLimits(requests_per_minute=2)
    with aipk.Client("openai", base_url=aipk_emulator.url("openai"), api_key="sk-1",
                     limits=limits, timeout=aipk.Timeout(total=TOTAL)) as client:
        for _ in range(2):
            client.chat(model="m", messages=USER)
        started = time.monotonic()
        with pytest.raises(RequestTimeout, match=r"Timeout\(total=0.6\)"):
            client.chat(model="m", messages=USER)
    assert time.monotonic() - started <= TOTAL + SLACK
    assert len(aipk_emulator.requests) == 2


STREAM = [head(200, [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")]),
          chunk(b'data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n'),
          chunk(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
                b"data: [DONE]\n\n")]


def raw_streams(url: str, how: str, count: int, timeout: aipk.Timeout) -> list[str]:
    """``count`` whole streams from the raw server at ``url``, on one client."""
    if how == "sync":
        with aipk.Client("openai", base_url=url, api_key="sk-1", timeout=timeout) as client:
            return [client.stream(model="m", messages=USER).get_response().text or ""
                    for _ in range(count)]

    async def scenario() -> list[str]:
        from aipk.transports import AiohttpTransport, AsyncHttpxTransport

        transport = AiohttpTransport() if how == "aiohttp" else AsyncHttpxTransport()
        try:
            async with aipk.AsyncClient("openai", base_url=url, api_key="sk-1",
                                        transport=transport, timeout=timeout) as client:
                out = []
                for _ in range(count):
                    async with client.stream(model="m", messages=USER) as stream:
                        out.append((await stream.get_response()).text or "")
                return out
        finally:
            await transport.close()

    return asyncio.run(scenario())


@pytest.mark.parametrize("how", HOW)
def test_with_a_total_streams_that_end_reuse_their_connection(how: str) -> None:
    with raw_server([*STREAM, chunk(b"")]) as server:
        texts = raw_streams(server.url + "/v1", how, 3, aipk.Timeout(read=5, total=5))
    assert texts == ["Hello"] * 3
    assert server.connections == 1


@pytest.mark.parametrize("how", HOW)
def test_with_a_total_a_body_kept_open_after_the_terminator_costs_only_the_grace(
        how: str) -> None:
    with raw_server([*STREAM, chunk(b": ping\n\n"), HOLD]) as server:
        started = time.monotonic()
        texts = raw_streams(server.url + "/v1", how, 1, aipk.Timeout(read=3, total=10))
    assert texts == ["Hello"]
    assert time.monotonic() - started < 2.0  # the grace, not the 3 s read timeout


@pytest.mark.parametrize("bad", [0, -1, float("inf"), "5", True])
def test_a_total_that_is_not_positive_seconds_is_a_configuration_error(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"Timeout\(total=\)"):
        aipk.Timeout(total=bad)


def test_the_total_is_unset_by_default() -> None:
    assert aipk.Timeout().total is None
    assert aipk.Timeout(total=30).total == 30


class TotalIgnoringTransport:
    """A sync transport of one's own that ignores ``timeout.total`` (the client still checks
    it between a stream's chunks before its first event)."""

    def __init__(self) -> None:
        self._inner = HttpxTransport()

    def send(self, request: aipk.HttpRequest, body: bytes | None) -> Any:
        import attrs

        assert request.timeout is not None and request.timeout.total is not None
        assert request.timeout.total <= TOTAL  # it is given the time the call has left
        untimed = attrs.evolve(request.timeout, total=None)
        return self._inner.send(attrs.evolve(request, timeout=untimed), body)

    def close(self) -> None:
        self._inner.close()


def test_a_transport_of_ones_own_gets_the_error_naming_the_total(
        aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Fault.trickle(0.05))
    with aipk.Client("openai", base_url=aipk_emulator.url("openai"), api_key="sk-1",
                     transport=TotalIgnoringTransport()) as client:
        started = time.monotonic()
        try:
            with client.stream(model="m", messages=USER,
                               timeout=aipk.Timeout(total=TOTAL)) as answer:
                for _event in answer:
                    pass
            outcome: str | BaseException = answer.response.text or ""
        except aipk.AipkError as exc:
            outcome = exc
        assert_total_timeout(outcome, time.monotonic() - started, TOTAL)


def oauth_accounts(emu: Emulator) -> OAuthManager:
    """An OAuth account whose access token the emulator's server already expired (the next
    call gets a 401 and refreshes it)."""
    return oauth_account(emu, expires_in=3600, expired_at_server=True)[0]


def refreshed(accounts: OAuthManager) -> None:
    """Wait (at most 5 s) for the refresh to have finished."""
    until = time.monotonic() + 5
    while refreshes(accounts) < 1 and time.monotonic() < until:
        time.sleep(0.02)
    assert refreshes(accounts) == 1


def refreshes(accounts: OAuthManager) -> int:
    counters = accounts.metrics.snapshot().get("me")
    return 0 if counters is None else counters.refreshes


@pytest.mark.parametrize("how", ["sync", "async"])
def test_a_slow_refresh_after_a_401_fails_at_the_total_and_serves_later_calls(
        aipk_emulator: Emulator, how: str) -> None:
    accounts = oauth_accounts(aipk_emulator)
    aipk_emulator.delay_endpoint("token", 1.5)  # the token endpoint answers late
    total = aipk.Timeout(total=0.4)
    url = aipk_emulator.url("openai")
    if how == "sync":
        with aipk.Client("openai", base_url=url, credentials=accounts,
                         timeout=total) as client:
            started = time.monotonic()
            with pytest.raises(RequestTimeout) as info:
                client.chat(model="m", messages=USER)
            took = time.monotonic() - started
            refreshed(accounts)  # the refresh went on to its end
            answer = client.chat(model="m", messages=USER).text
    else:
        async def scenario() -> tuple[RequestTimeout, float, str | None]:
            async with aipk.AsyncClient("openai", base_url=url, credentials=accounts,
                                        timeout=total) as client:
                started = time.monotonic()
                with pytest.raises(RequestTimeout) as info:
                    await client.chat(model="m", messages=USER)
                took = time.monotonic() - started
                await asyncio.to_thread(refreshed, accounts)
                return info.value, took, (await client.chat(model="m", messages=USER)).text

        error, took, answer = asyncio.run(scenario())
    assert_total_timeout(error if how == "async" else info.value, took, 0.4)
    assert answer == "echo: hi"  # with the refreshed token, and no second refresh
    assert refreshes(accounts) == 1


def test_the_refresh_after_a_401_is_named_in_the_sync_error(aipk_emulator: Emulator) -> None:
    accounts = oauth_accounts(aipk_emulator)
    aipk_emulator.delay_endpoint("token", 1.0)
    with aipk.Client("openai", base_url=aipk_emulator.url("openai"), credentials=accounts,
                     timeout=aipk.Timeout(total=0.3)) as client:
        with pytest.raises(RequestTimeout, match="refreshing the credential after a 401") as info:
            client.chat(model="m", messages=USER)
        refreshed(accounts)
    assert isinstance(info.value.__cause__, aipk.AuthenticationError)
    assert info.value.__cause__.status == 401


@pytest.mark.parametrize("how", HOW)
def test_asking_again_for_a_broken_structured_answer_shares_the_total(
        aipk_emulator: Emulator, how: str) -> None:
    """``output_retries`` asks again within the one total: two slow broken answers do not
    each get a whole total of their own (the second could only end past it)."""
    broken = Reply(text='{"name": "Oslo", "population": "many"}')
    aipk_emulator.enqueue(Fault.slow_first_byte(0.4, then=broken),
                          Fault.slow_first_byte(0.4, then=broken),
                          Reply(text='{"name": "Oslo", "population": 700000}'))
    timeout = aipk.Timeout(total=TOTAL)
    options: dict[str, Any] = {"model": "m", "messages": USER, "response_format": City,
                               "output_retries": 2, "timeout": timeout}
    started = time.monotonic()
    with pytest.raises(RequestTimeout) as caught:
        if how == "sync":
            with aipk.Client("openai", base_url=aipk_emulator.url("openai"),
                             api_key="sk-1") as client:
                client.chat(**options)
        else:
            async def main() -> None:
                transport = aipk.transports.AiohttpTransport() if how == "aiohttp" else None
                try:
                    async with aipk.AsyncClient("openai", base_url=aipk_emulator.url("openai"),
                                                api_key="sk-1", transport=transport) as client:
                        await client.chat(**options)
                finally:
                    if transport is not None:
                        await transport.close()

            asyncio.run(main())
    elapsed = time.monotonic() - started
    assert TOTAL - 0.05 <= elapsed < TOTAL + SLACK, elapsed
    assert f"aipk.Timeout(total={TOTAL:g})" in str(caught.value)
    assert len([r for r in aipk_emulator.requests if r.path.endswith("/completions")]) == 2


@attrs.frozen
class City:
    name: str
    population: int
