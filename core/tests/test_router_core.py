"""The router's rules with scripted in-process clients and an injected clock (no network, no
plugins, no real sleeping): ordering per strategy, what fails over, cooldowns, breakers, context
window fallback, streams, the all-failed error, the metrics, and ``max_wait`` (waiting, on an
injected sleep, for the earliest target when none is available)."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import pytest

from aipk import (
    ChatRequest,
    ChatResponse,
    ConfigurationError,
    Message,
    Provider,
    ProviderSpec,
    TextDelta,
    Usage,
)
from aipk.errors import (
    AipkError,
    AuthenticationError,
    BadRequestError,
    InvalidRequestError,
    NetworkError,
    OverloadedError,
    ProviderError,
    RateLimitError,
    RequestTimeout,
    ResponseError,
    ServerError,
    StreamError,
)
from aipk.router import (
    AllTargetsFailedError,
    AsyncRouter,
    BreakerPolicy,
    CooldownPolicy,
    RouteInfo,
    Router,
    Target,
    TargetMetrics,
    classify,
    is_context_window_error,
    route_of,
)
from aipk.state import MemoryStore

USER = [Message.user("hi")]
FAKE = Provider(spec=ProviderSpec(name="fake", protocol="fake", default_base_url="http://x"),
                base_url="http://x")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def server_error(status: int = 503) -> ServerError:
    return ServerError("down", provider="fake", status=status, retryable=True)


def rate_limited(retry_after: float | None = None) -> RateLimitError:
    return RateLimitError("slow down", provider="fake", retry_after=retry_after)


def context_error() -> BadRequestError:
    return BadRequestError("This model's maximum context length is 8192 tokens", provider="fake",
                           status=400)


class Stream:
    """A scripted stream: ``events`` text deltas, then ``error`` (if any)."""

    def __init__(self, name: str, model: str, events: int, error: BaseException | None,
                 open_error: BaseException | None) -> None:
        self.name, self.model = name, model
        self.events, self.error, self.open_error = events, error, open_error
        self.closed = False

    def _gen(self) -> Iterator[TextDelta]:
        if self.open_error is not None:
            raise self.open_error
        for i in range(self.events):
            yield TextDelta(text=f"{self.name}{i} ")
        if self.error is not None:
            raise self.error

    def __iter__(self) -> Iterator[TextDelta]:
        return self._gen()

    async def _agen(self) -> AsyncIterator[TextDelta]:
        for event in self._gen():
            await asyncio.sleep(0)
            yield event

    def __aiter__(self) -> AsyncIterator[TextDelta]:
        return self._agen()

    @property
    def response(self) -> ChatResponse:
        text = "".join(f"{self.name}{i} " for i in range(self.events))
        return ChatResponse(provider="fake", model=self.model,
                            message=Message(role="assistant", content=text),
                            usage=Usage(input_tokens=1, output_tokens=self.events))

    async def get_response(self) -> ChatResponse:
        return self.response

    def close(self) -> None:
        self.closed = True


class AsyncStream(Stream):
    async def close(self) -> None:  # type: ignore[override]
        self.closed = True


class Fake:
    """A client whose answers are scripted: "ok", an exception to raise, or for streams a
    ``("stream", events, error)`` tuple. ``latency`` advances ``clock`` per call."""

    def __init__(self, name: str, *script: Any, clock: Clock | None = None,
                 latency: float = 0.0) -> None:
        self.name = name
        self.provider = FAKE
        self.script: deque[Any] = deque(script)
        self.calls: list[str] = []
        self.retry: list[Any] = []
        self.clock = clock
        self.latency = latency
        self.streams: list[Stream] = []

    def _next(self, request: ChatRequest, retry: Any) -> Any:
        self.calls.append(request.model)
        self.retry.append(retry)
        if self.clock is not None:
            self.clock.now += self.latency
        return self.script.popleft() if self.script else "ok"

    def _answer(self, request: ChatRequest, item: Any) -> ChatResponse:
        if isinstance(item, BaseException):
            raise item
        return ChatResponse(provider="fake", model=request.model,
                            message=Message(role="assistant", content=f"{self.name}:{item}"),
                            usage=Usage(input_tokens=10, output_tokens=5))

    def chat(self, request: ChatRequest, retry: Any = None) -> ChatResponse:
        return self._answer(request, self._next(request, retry))

    def stream(self, request: ChatRequest, retry: Any = None) -> Stream:
        item = self._next(request, retry)
        stream = self._make_stream(request, item)
        self.streams.append(stream)
        return stream

    def _make_stream(self, request: ChatRequest, item: Any) -> Stream:
        if isinstance(item, tuple):
            return Stream(self.name, request.model, item[1], item[2], None)
        if isinstance(item, BaseException):
            return Stream(self.name, request.model, 0, None, item)
        return Stream(self.name, request.model, 3, None, None)


class AsyncFake(Fake):
    gate: asyncio.Event | None = None

    async def chat(self, request: ChatRequest, retry: Any = None) -> ChatResponse:  # type: ignore[override]
        item = self._next(request, retry)
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        return self._answer(request, item)

    def _make_stream(self, request: ChatRequest, item: Any) -> Stream:
        base = super()._make_stream(request, item)
        return AsyncStream(base.name, base.model, base.events, base.error, base.open_error)


def target(client: Fake, model: str = "m", **kw: Any) -> Target:
    return Target(provider="fake", model=model, client=client, name=client.name,  # type: ignore[arg-type]
                  **kw)


def router(*clients: Fake, clock: Clock | None = None, **kw: Any) -> Router:
    return Router([target(c) for c in clients], clock=clock or Clock(), **kw)


# -- failover and the response ---------------------------------------------------------------


def test_failover_in_order_and_the_response_says_who_served_and_who_was_tried() -> None:
    a, b, c = Fake("a", server_error()), Fake("b", rate_limited()), Fake("c")
    r = router(a, b, c)
    reply = r.chat(messages=USER, temperature=0.5)
    assert reply.text == "c:ok"
    info = route_of(reply)
    assert info == RouteInfo(served_by="c", model="m", tried=("a", "b", "c"),
                             failures=info.failures)
    assert [name for name, _ in info.failures] == ["a", "b"]
    assert info.failures[0][1].startswith("ServerError: ")
    assert reply.extra["router"]["served_by"] == "c"
    assert (a.calls, b.calls, c.calls) == (["m"], ["m"], ["m"])
    m = r.metrics()
    assert (m["requests"], m["successes"], m["errors"]) == (1, 1, 0)
    assert m["targets"]["a"]["error_types"] == {"ServerError": 1}
    assert m["targets"]["c"]["input_tokens"] == 10 and m["targets"]["c"]["output_tokens"] == 5


def test_each_target_call_uses_the_routers_retry_policy_no_retries_inside() -> None:
    from aipk import RetryPolicy
    from aipk.router import TARGET_RETRY

    a = Fake("a")
    r = router(a)
    r.chat(messages=USER)
    own = RetryPolicy(max_retries=5)
    r.chat(messages=USER, retry=own)
    assert a.retry == [TARGET_RETRY, own] and TARGET_RETRY.max_retries == 0
    keep = router(Fake("b"), retry=None)
    keep.chat(messages=USER)
    assert keep.targets[0].client.retry == [None]  # type: ignore[union-attr]


def test_a_chat_request_is_sent_with_each_targets_model() -> None:
    a, b = Fake("a", server_error()), Fake("b")
    r = Router([target(a, "small"), target(b, "large")], clock=Clock())
    reply = r.chat(ChatRequest(model="ignored", messages=USER, max_tokens=7))
    assert a.calls == ["small"] and b.calls == ["large"] and reply.model == "large"


# -- strategies ------------------------------------------------------------------------------


def test_round_robin_rotates_the_first_target() -> None:
    clients = [Fake(n) for n in "abc"]
    r = router(*clients, strategy="round_robin")
    served = [route_of(r.chat(messages=USER)).served_by for _ in range(7)]  # type: ignore[union-attr]
    assert served == ["a", "b", "c", "a", "b", "c", "a"]


def test_round_robin_still_fails_over_to_the_rest() -> None:
    a, b = Fake("a"), Fake("b", server_error())
    r = router(a, b, strategy="round_robin", cooldown=None)
    assert route_of(r.chat(messages=USER)).served_by == "a"  # type: ignore[union-attr]
    info = route_of(r.chat(messages=USER))  # b's turn; it fails, a serves
    assert info is not None and info.tried == ("b", "a")


def test_cheapest_first_by_price_unknown_last_ties_in_order() -> None:
    clients = {n: Fake(n) for n in "wxyz"}
    targets = [
        target(clients["w"]),  # unknown price: last
        target(clients["x"], input_price=3.0, output_price=10.0),
        target(clients["y"], input_price=0.1, output_price=0.4),
        target(clients["z"], input_price=0.3, output_price=0.2),  # ties with y: y came first
    ]
    r = Router(targets, strategy="cheapest_first", clock=Clock())
    for name in "yzxw":
        info = route_of(r.chat(messages=USER))
        assert info is not None and info.served_by == name
        clients[name].script.extend([server_error()] * 10)  # now fails: the next cheapest serves


def test_lowest_latency_explores_then_prefers_the_faster() -> None:
    clock = Clock()
    slow, fast = Fake("slow", clock=clock, latency=2.0), Fake("fast", clock=clock, latency=0.5)
    r = router(slow, fast, clock=clock, strategy="lowest_latency")
    served = [route_of(r.chat(messages=USER)).served_by for _ in range(4)]  # type: ignore[union-attr]
    # slow is listed first and unmeasured; then fast is unmeasured; then fast is faster
    assert served == ["slow", "fast", "fast", "fast"]
    t = r.metrics()["targets"]
    assert t["slow"]["p50"] == pytest.approx(2.0) and t["fast"]["p95"] == pytest.approx(0.5)


# -- what fails over, and cooldowns ----------------------------------------------------------


@pytest.mark.parametrize(("error", "action", "cooldown", "breaker"), [
    (rate_limited(7.0), "failover", 7.0, "neutral"),
    (rate_limited(), "failover", 5.0, "neutral"),
    (rate_limited(99_999.0), "failover", 3600.0, "neutral"),
    (server_error(), "failover", 2.0, "failure"),
    (OverloadedError("busy", provider="p", status=529), "failover", 2.0, "failure"),
    (NetworkError("reset", provider="p"), "failover", 2.0, "failure"),
    (RequestTimeout("slow", provider="p"), "failover", 2.0, "failure"),
    (StreamError("boom", provider="p", retryable=True), "failover", 2.0, "failure"),
    (StreamError("filtered", provider="p", retryable=False), "raise", 0.0, "success"),
    (AuthenticationError("bad key", provider="p", status=401), "failover", 300.0, "failure"),
    (ResponseError("garbage", provider="p"), "failover", 2.0, "failure"),
    (BadRequestError("bad field", provider="p", status=400), "raise", 0.0, "success"),
    (BadRequestError("timeout", provider="p", status=408, retryable=True), "failover", 2.0,
     "neutral"),
    (context_error(), "context", 0.0, "success"),
])
def test_classification(error: ProviderError, action: str, cooldown: float,
                        breaker: str) -> None:
    verdict = classify(error, CooldownPolicy())
    assert (verdict.action, verdict.cooldown, verdict.breaker) == (action, cooldown, breaker)


def test_a_server_error_with_retry_after_cools_down_that_long() -> None:
    policy = CooldownPolicy()
    asked = ServerError("busy", provider="p", status=503, retry_after=30.0)
    assert classify(asked, policy).cooldown == 30.0
    brief = ServerError("busy", provider="p", status=503, retry_after=0.5)
    assert classify(brief, policy).cooldown == policy.server_error  # never below the default
    long = ServerError("busy", provider="p", status=503, retry_after=10**6)
    assert classify(long, policy).cooldown == policy.max_cooldown


def test_spent_quota_429_cools_down_long() -> None:
    quota = rate_limited()
    quota.retryable = False
    assert classify(quota, CooldownPolicy(credential=123.0)).cooldown == 123.0


@pytest.mark.parametrize("message", [
    "This model's maximum context length is 128000 tokens. However, you requested 130000",
    "prompt is too long: 208310 tokens > 200000 maximum",
    "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
    # Anthropic, when the prompt plus max_tokens does not fit
    "input length and `max_tokens` exceed context limit: 178959 + 64000 > 200000, decrease "
    "input length or `max_tokens` and try again",
    # DashScope (Qwen), code invalid_parameter_error
    "<400> InternalError.Algo.InvalidParameter: Range of input length should be [1, 983616]",
])
def test_context_window_errors_are_recognised_by_message(message: str) -> None:
    assert is_context_window_error(BadRequestError(message, provider="p", status=400))


def test_context_window_errors_are_recognised_by_code_and_not_confused() -> None:
    assert is_context_window_error(BadRequestError("x", provider="p", status=400,
                                                   code="context_length_exceeded"))
    assert not is_context_window_error(BadRequestError("unknown field 'foo'", provider="p",
                                                       status=400))
    assert not is_context_window_error(server_error())


def test_cooldown_after_429_honours_retry_after() -> None:
    clock = Clock()
    a, b = Fake("a", rate_limited(retry_after=7.0)), Fake("b")
    r = router(a, b, clock=clock)
    assert route_of(r.chat(messages=USER)).tried == ("a", "b")  # type: ignore[union-attr]
    clock.now += 6.9
    assert route_of(r.chat(messages=USER)).tried == ("b",)  # type: ignore[union-attr]
    assert r.metrics()["targets"]["a"]["cooldown_remaining"] == pytest.approx(0.1)
    clock.now += 0.1
    assert route_of(r.chat(messages=USER)).tried == ("a",)  # type: ignore[union-attr]
    assert len(a.calls) == 2 and len(r.store) == 0  # the cooldown entry expired and was purged


def test_a_shorter_cooldown_never_cuts_a_longer_one() -> None:
    clock = Clock()
    a = Fake("a", rate_limited(retry_after=30.0))
    r = router(a, Fake("b"), clock=clock)
    r.chat(messages=USER)
    state = r._core.states[0]
    r._core.set_cooldown(state, 1.0, clock.now)  # e.g. a straggler's 503
    clock.now += 29.0
    assert route_of(r.chat(messages=USER)).served_by == "b"  # type: ignore[union-attr]


def test_auth_error_fails_over_with_a_long_cooldown() -> None:
    clock = Clock()
    a = Fake("a", AuthenticationError("invalid key (check the API key)", provider="fake",
                                      status=401))
    r = router(a, Fake("b"), clock=clock)
    assert r.chat(messages=USER).text == "b:ok"
    clock.now += 299.0
    assert r.chat(messages=USER).text == "b:ok"
    clock.now += 1.0
    assert r.chat(messages=USER).text == "a:ok"


def test_bad_request_raises_at_once_without_failover() -> None:
    a, b = Fake("a", BadRequestError("unknown parameter 'foo'", provider="fake", status=400)), \
        Fake("b")
    r = router(a, b)
    with pytest.raises(BadRequestError, match="unknown parameter"):
        r.chat(messages=USER)
    assert b.calls == []
    m = r.metrics()
    assert (m["requests"], m["errors"], m["successes"]) == (1, 1, 0)
    assert m["targets"]["a"]["cooldown_remaining"] == 0.0


def test_invalid_request_and_configuration_errors_raise_at_once() -> None:
    a, b = Fake("a", InvalidRequestError("no streaming", field="stream")), Fake("b")
    r = router(a, b)
    with pytest.raises(InvalidRequestError):
        r.chat(messages=USER)
    assert b.calls == [] and r.metrics()["targets"]["a"]["errors"] == 1


# -- context window fallback -----------------------------------------------------------------


def test_context_window_error_raises_when_no_fallback_is_configured() -> None:
    a, b = Fake("a", context_error()), Fake("b")
    with pytest.raises(BadRequestError, match="context length"):
        router(a, b).chat(messages=USER)
    assert b.calls == []


def test_context_window_fallback_to_the_mapped_larger_model_on_the_same_target() -> None:
    a, b = Fake("a", context_error()), Fake("b")
    r = Router([target(a, "small"), target(b, "other")], clock=Clock(),
               fallback_on_context_window={"small": "large"})
    reply = r.chat(messages=USER)
    assert a.calls == ["small", "large"] and b.calls == []
    info = route_of(reply)
    assert info is not None and (info.served_by, info.model, info.tried) == (
        "a", "large", ("a", "a"))


def test_context_window_fallback_with_an_unmapped_model_raises() -> None:
    a = Fake("a", context_error(), context_error())
    r = Router([target(a, "small")], clock=Clock(),
               fallback_on_context_window={"small": "large"})
    with pytest.raises(BadRequestError):
        r.chat(messages=USER)
    assert a.calls == ["small", "large"]  # large also too small, and not mapped further


def test_context_window_true_tries_only_larger_windows() -> None:
    small, same, unknown, big = (Fake("small", context_error()), Fake("same"), Fake("unknown"),
                                 Fake("big"))
    r = Router([target(small, context_window=8_000), target(same, context_window=8_000),
                target(unknown), target(big, context_window=128_000)],
               clock=Clock(), fallback_on_context_window=True)
    reply = r.chat(messages=USER)
    assert reply.text == "big:ok" and same.calls == [] and unknown.calls == []
    big.script.append(context_error())
    small.script.append(context_error())
    with pytest.raises(BadRequestError, match="context"):
        r.chat(messages=USER)  # too big for everything: the provider's own error


# -- breakers --------------------------------------------------------------------------------


def test_breaker_opens_skips_the_target_then_probes_once() -> None:
    clock = Clock()
    a, b = Fake("a", *[server_error()] * 3), Fake("b")
    r = router(a, b, clock=clock, cooldown=None,
               breaker=BreakerPolicy(failure_threshold=3, open_duration=30.0))
    for _ in range(3):
        assert r.chat(messages=USER).text == "b:ok"
    assert r.metrics()["targets"]["a"]["breaker"] == "open"
    assert r.chat(messages=USER).text == "b:ok" and len(a.calls) == 3  # skipped while open
    clock.now += 30.0
    assert r.metrics()["targets"]["a"]["breaker"] == "half_open"
    assert r.chat(messages=USER).text == "a:ok"  # the probe succeeds: closed again
    assert r.metrics()["targets"]["a"]["breaker"] == "closed"


def test_only_one_request_probes_a_half_open_target_under_concurrency() -> None:
    async def scenario() -> None:
        clock = Clock()
        a, b = AsyncFake("a", *[server_error()] * 2), AsyncFake("b")
        r = AsyncRouter([target(a), target(b)], clock=clock, cooldown=None,
                        breaker=BreakerPolicy(failure_threshold=2, open_duration=10.0))
        for _ in range(2):
            await r.chat(messages=USER)
        clock.now += 10.0
        a.gate = asyncio.Event()
        tasks = [asyncio.create_task(r.chat(messages=USER)) for _ in range(50)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(a.calls) == 3  # two failures, then exactly one probe
        a.gate.set()
        replies = await asyncio.gather(*tasks)
        texts = [x.text for x in replies]
        assert texts.count("a:ok") == 1 and texts.count("b:ok") == 49
        assert r.metrics()["targets"]["a"]["breaker"] == "closed"

    asyncio.run(scenario())


def test_a_cancelled_probe_frees_the_half_open_slot() -> None:
    async def scenario() -> None:
        clock = Clock()
        a, b = AsyncFake("a", server_error()), AsyncFake("b")
        r = AsyncRouter([target(a), target(b)], clock=clock, cooldown=None,
                        breaker=BreakerPolicy(failure_threshold=1, open_duration=5.0))
        await r.chat(messages=USER)
        clock.now += 5.0
        a.gate = asyncio.Event()
        probe = asyncio.create_task(r.chat(messages=USER))
        await asyncio.sleep(0)
        assert len(a.calls) == 2
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        m = r.metrics()
        assert m["cancelled"] == 1 and m["targets"]["a"]["cancelled"] == 1
        a.gate.set()
        assert (await r.chat(messages=USER)).text == "a:ok"  # the next caller may probe

    asyncio.run(scenario())


# -- all targets failed ----------------------------------------------------------------------


def test_all_failed_error_lists_each_error_the_skips_and_the_earliest_time() -> None:
    clock = Clock()
    a, b, c = Fake("a", rate_limited(12.0)), Fake("b", server_error()), Fake("c")
    r = router(a, b, c, clock=clock)
    r._core.set_cooldown(r._core.states[2], 40.0, clock.now)  # c is already cooling down
    with pytest.raises(AllTargetsFailedError) as info:
        r.chat(messages=USER)
    err = info.value
    assert [(t.name, type(e)) for t, e in err.failures] == [("a", RateLimitError),
                                                           ("b", ServerError)]
    assert [(t.name, why) for t, why in err.skipped] == [("c", "cooling down for 40.0s")]
    assert err.retry_after == pytest.approx(2.0)  # b's server-error cooldown ends first
    assert err.available_at == pytest.approx(clock.now + 2.0)
    assert err.retryable and isinstance(err, ProviderError)
    text = str(err)
    assert "all 3 targets failed" in text and "available in 2.0s" in text
    assert "a (m): RateLimitError" in text and "c: skipped, cooling down" in text
    assert c.calls == []
    m = r.metrics()
    assert (m["requests"], m["errors"]) == (1, 1)


def test_all_skipped_raises_without_calling_anyone() -> None:
    clock = Clock()
    a = Fake("a")
    r = router(a, clock=clock)
    r._core.set_cooldown(r._core.states[0], 3.0, clock.now)
    with pytest.raises(AllTargetsFailedError) as info:
        r.chat(messages=USER)
    assert info.value.failures == () and info.value.retry_after == pytest.approx(3.0)
    assert a.calls == []


# -- streams ---------------------------------------------------------------------------------


def test_stream_fails_over_before_the_first_event() -> None:
    a = Fake("a", server_error())  # fails when opened
    b = Fake("b", ("stream", 0, NetworkError("reset", provider="fake",
                                               before_first_byte=False, retryable=False)))
    c = Fake("c", ("stream", 3, None))
    r = router(a, b, c)
    stream = r.stream(messages=USER)
    texts = list(stream.text())
    assert texts == ["c0 ", "c1 ", "c2 "]
    assert stream.route is not None and stream.route.tried == ("a", "b", "c")
    assert stream.response.text == "c0 c1 c2 " and stream.response.extra["router"]
    assert all(s.closed for s in a.streams + b.streams)
    m = r.metrics()
    assert (m["successes"], m["targets"]["c"]["output_tokens"]) == (1, 3)


def test_stream_never_fails_over_after_an_event_was_delivered() -> None:
    clock = Clock()
    a = Fake("a", ("stream", 2, NetworkError("reset mid-stream", provider="fake",
                                               before_first_byte=False, retryable=False)))
    b = Fake("b")
    r = router(a, b, clock=clock)
    got: list[str] = []
    with pytest.raises(NetworkError, match="mid-stream"):
        for event in r.stream(messages=USER):
            got.append(event.text)  # type: ignore[union-attr]
    assert got == ["a0 ", "a1 "] and b.calls == []
    m = r.metrics()
    assert (m["requests"], m["successes"], m["errors"]) == (1, 0, 1)
    assert m["targets"]["a"]["cooldown_remaining"] == pytest.approx(2.0)  # still recorded


def test_abandoning_a_stream_counts_as_cancelled_and_closes_it() -> None:
    a = Fake("a", ("stream", 5, None))
    r = router(a)
    with r.stream(messages=USER) as stream:
        first = next(iter(stream))
    assert first == TextDelta(text="a0 ") and a.streams[0].closed
    with pytest.raises(AipkError, match="closed before it finished"):
        stream.get_response()
    m = r.metrics()
    assert (m["cancelled"], m["targets"]["a"]["cancelled"], m["targets"]["a"]["in_flight"]) == (
        1, 1, 0)


def test_async_stream_failover_and_no_restart_after_events() -> None:
    async def scenario() -> None:
        a, b = AsyncFake("a", server_error()), AsyncFake("b", ("stream", 2, None))
        r = AsyncRouter([target(a), target(b)], clock=Clock())
        stream = r.stream(messages=USER)
        assert [t async for t in stream.text()] == ["b0 ", "b1 "]
        assert (await stream.get_response()).extra["router"]["tried"] == ["a", "b"]
        c = AsyncFake("c", ("stream", 1, StreamError("overloaded", provider="fake",
                                                       retryable=True)))
        d = AsyncFake("d")
        r2 = AsyncRouter([target(c), target(d)], clock=Clock())
        with pytest.raises(StreamError):
            async for _ in r2.stream(messages=USER):
                pass
        assert d.calls == []

    asyncio.run(scenario())


def test_async_chat_fails_over_like_the_sync_router() -> None:
    async def scenario() -> None:
        a, b = AsyncFake("a", rate_limited(1.0)), AsyncFake("b")
        async with AsyncRouter([target(a), target(b)], clock=Clock()) as r:
            reply = await r.chat(messages=USER)
            assert reply.text == "b:ok" and route_of(reply).tried == ("a", "b")  # type: ignore[union-attr]

    asyncio.run(scenario())


# -- metrics ---------------------------------------------------------------------------------


def test_latency_percentiles_come_from_a_bounded_ring_buffer() -> None:
    metrics = TargetMetrics(window=8)
    for i in range(1, 101):
        metrics.started()
        metrics.succeeded(float(i), Usage(input_tokens=1, output_tokens=2))
    snap = metrics.snapshot()
    assert metrics.latencies() == [float(i) for i in range(93, 101)]
    assert len(metrics._samples) == 8 and snap["latency_samples"] == 8
    assert (snap["p50"], snap["p95"], snap["p99"]) == (96.0, 100.0, 100.0)
    assert snap["requests"] == snap["successes"] == 100
    assert (snap["input_tokens"], snap["output_tokens"]) == (100, 200)


def test_router_metrics_add_up() -> None:
    a, b = Fake("a", server_error(), server_error()), Fake("b", server_error())
    r = router(a, b, cooldown=None, latency_window=4)
    with pytest.raises(AllTargetsFailedError):
        r.chat(messages=USER)  # a fails, b fails
    for _ in range(5):
        r.chat(messages=USER)  # a fails once more, then a serves
    m = r.metrics()
    assert (m["requests"], m["successes"], m["errors"]) == (6, 5, 1)
    t = m["targets"]
    assert sum(x["successes"] for x in t.values()) == m["successes"]
    for x in t.values():
        assert x["requests"] == x["successes"] + x["errors"] + x["cancelled"]
    assert (t["a"]["requests"], t["b"]["requests"]) == (6, 2)
    assert t["a"]["latency_samples"] == 4  # bounded by latency_window


# -- configuration ---------------------------------------------------------------------------


def test_configuration_errors_name_the_fix() -> None:
    from aipk.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="at least one Target"):
        Router([])
    with pytest.raises(ConfigurationError, match="unique name="):
        Router([target(Fake("a")), target(Fake("a"))])
    with pytest.raises(ConfigurationError, match="round_robin"):
        Router([target(Fake("a"))], strategy="random")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="on each Target"):
        Router([target(Fake("a"))], client_options={"api_key": "x"})
    with pytest.raises(ConfigurationError, match="drop model="):
        router(Fake("a")).chat(model="x", messages=USER)
    with pytest.raises(ConfigurationError, match="not both"):
        router(Fake("a")).chat(ChatRequest(model="m", messages=USER), temperature=1)


def test_target_defaults_and_secret_api_key() -> None:
    t = Target(provider="openai", model="gpt-4o-mini", api_key="sk-very-secret-key")
    assert t.name == "openai/gpt-4o-mini"
    assert "sk-very-secret" not in repr(t) and t.api_key is not None
    assert t.api_key.reveal() == "sk-very-secret-key"
    assert attrs.evolve(t, name="x").name == "x"


def test_state_lives_in_the_given_store() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    a = Fake("a", *[server_error()] * 2)
    r = router(a, Fake("b"), clock=clock, store=store,
               breaker=BreakerPolicy(failure_threshold=2))
    r.chat(messages=USER)
    assert store.get("aipk.cooldown", "a") == pytest.approx(clock.now + 2.0)
    assert store.get("aipk.breaker", "a").failures == 1
    # a second router sharing the store sees a's cooldown
    other = router(Fake("a"), Fake("b"), clock=clock, store=store)
    assert route_of(other.chat(messages=USER)).tried == ("b",)  # type: ignore[union-attr]


# -- max_wait: waiting for the earliest target -------------------------------------------------


class Sleeper:
    """An injected sleep that records each wait and moves ``clock`` on by it (or not, with
    ``advance=False``: a clock that never catches up, to prove the waiting is bounded)."""

    def __init__(self, clock: Clock, *, advance: bool = True) -> None:
        self.clock = clock
        self.advance = advance
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.advance:
            self.clock.now += seconds

    async def asleep(self, seconds: float) -> None:
        self(seconds)
        await asyncio.sleep(0)


def sync_router(*clients: Fake, clock: Clock, sleeper: Sleeper, **kw: Any) -> Router:
    return Router([target(c) for c in clients], clock=clock, sleep=sleeper, **kw)


# -- sync --------------------------------------------------------------------------------------


def test_default_max_wait_is_zero_and_fails_fast() -> None:
    clock = Clock()
    sleeper = Sleeper(clock)
    a = Fake("a", rate_limited(3.0))
    r = sync_router(a, clock=clock, sleeper=sleeper)
    assert r.max_wait == 0.0
    with pytest.raises(AllTargetsFailedError) as info:
        r.chat(messages=USER)
    assert sleeper.waits == [] and info.value.retry_after == pytest.approx(3.0)
    assert info.value.waited == 0.0 and "set max_wait=" in str(info.value)


def test_waits_for_the_earliest_target_then_serves() -> None:
    clock = Clock()
    sleeper = Sleeper(clock)
    a, b = Fake("a", rate_limited(3.0)), Fake("b", rate_limited(7.0))
    r = sync_router(a, b, clock=clock, sleeper=sleeper, max_wait=5.0)
    reply = r.chat(messages=USER)
    assert reply.text == "a:ok" and sleeper.waits == [pytest.approx(3.0)]
    info = route_of(reply)
    assert info is not None and info.tried == ("a", "b", "a")
    assert [name for name, _ in info.failures] == ["a", "b"]
    m = r.metrics()
    assert (m["requests"], m["successes"], m["errors"], m["waits"]) == (1, 1, 0, 1)
    assert m["waited"] == pytest.approx(3.0)
    assert m["targets"]["a"]["requests"] == 2 and m["targets"]["b"]["requests"] == 1


def test_beyond_max_wait_fails_fast_with_retry_after() -> None:
    clock = Clock()
    sleeper = Sleeper(clock)
    a = Fake("a", rate_limited(10.0))
    r = sync_router(a, clock=clock, sleeper=sleeper, max_wait=5.0)
    with pytest.raises(AllTargetsFailedError) as info:
        r.chat(messages=USER)
    err = info.value
    assert sleeper.waits == [] and err.retry_after == pytest.approx(10.0)
    assert "longer than max_wait=5s" in str(err) and "raise max_wait" in str(err)
    assert r.metrics()["errors"] == 1 and r.metrics()["waits"] == 0


def test_per_call_max_wait_overrides_the_routers() -> None:
    clock = Clock()
    sleeper = Sleeper(clock)
    a = Fake("a", rate_limited(2.0))
    r = sync_router(a, clock=clock, sleeper=sleeper)
    assert r.chat(messages=USER, max_wait=2.0).text == "a:ok"
    assert sleeper.waits == [pytest.approx(2.0)]
    waiting = sync_router(Fake("b", rate_limited(2.0)), clock=clock, sleeper=sleeper,
                          max_wait=60.0)
    with pytest.raises(AllTargetsFailedError):
        waiting.chat(messages=USER, max_wait=0)
    assert len(sleeper.waits) == 1  # no new wait


def test_waiting_is_bounded_when_the_clock_never_catches_up() -> None:
    clock = Clock()
    sleeper = Sleeper(clock, advance=False)  # the target stays unavailable however long we sleep
    a = Fake("a", rate_limited(1.0))
    r = sync_router(a, clock=clock, sleeper=sleeper, max_wait=3.5)
    with pytest.raises(AllTargetsFailedError) as info:
        r.chat(messages=USER)
    assert sleeper.waits == [pytest.approx(1.0)] * 3 and len(a.calls) == 1
    err = info.value
    assert err.waited == pytest.approx(3.0) and err.retry_after == pytest.approx(1.0)
    assert "after waiting 3.0s of max_wait=3.5s" in str(err)
    assert [t.name for t, _ in err.skipped] == ["a"]  # the last pass only, not one per pass
    assert r.metrics()["waits"] == 3


def test_without_cooldowns_passes_back_off_instead_of_spinning() -> None:
    clock = Clock()
    sleeper = Sleeper(clock)
    a = Fake("a", *[server_error()] * 20)
    r = sync_router(a, clock=clock, sleeper=sleeper, cooldown=None, breaker=None, max_wait=2.0)
    with pytest.raises(AllTargetsFailedError) as info:
        r.chat(messages=USER)
    assert sleeper.waits == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8])  # the next, 1.0, is over
    assert len(a.calls) == 6 and len(info.value.failures) == 6
    assert sum(sleeper.waits) <= 2.0


def test_breaker_open_then_half_open_probe_after_waiting() -> None:
    clock = Clock()
    sleeper = Sleeper(clock)
    a = Fake("a", server_error(), server_error())
    r = sync_router(a, clock=clock, sleeper=sleeper, cooldown=None,
                    breaker=BreakerPolicy(failure_threshold=2, open_duration=10.0))
    for _ in range(2):
        with pytest.raises(AllTargetsFailedError):
            r.chat(messages=USER)  # max_wait=0: both fail at once
    assert r.metrics()["targets"]["a"]["breaker"] == "open" and sleeper.waits == []
    clock.now += 4.0
    with pytest.raises(AllTargetsFailedError) as info:
        r.chat(messages=USER, max_wait=5.0)  # open for 6 s more: too long
    assert info.value.retry_after == pytest.approx(6.0) and sleeper.waits == []
    reply = r.chat(messages=USER, max_wait=6.0)  # waits out the breaker, then probes
    assert reply.text == "a:ok" and sleeper.waits == [pytest.approx(6.0)]
    assert r.metrics()["targets"]["a"]["breaker"] == "closed" and len(a.calls) == 3


def test_a_mapped_larger_model_is_kept_across_passes() -> None:
    clock = Clock()
    sleeper = Sleeper(clock)
    context = BadRequestError("This model's maximum context length is 8192 tokens",
                              provider="fake", status=400)
    a = Fake("a", context, server_error())
    r = Router([target(a, "small")], clock=clock, sleep=sleeper, max_wait=5.0,
               fallback_on_context_window={"small": "large"})
    reply = r.chat(messages=USER)
    assert a.calls == ["small", "large", "large"] and reply.model == "large"
    assert sleeper.waits == [pytest.approx(2.0)]  # the 503's cooldown


def test_a_request_error_is_raised_without_waiting() -> None:
    clock = Clock()
    sleeper = Sleeper(clock)
    a = Fake("a", rate_limited(1.0), BadRequestError("unknown field", provider="fake",
                                                     status=400))
    r = sync_router(a, clock=clock, sleeper=sleeper, max_wait=5.0)
    with pytest.raises(BadRequestError):
        r.chat(messages=USER)
    assert sleeper.waits == [pytest.approx(1.0)]  # waited for the 429, then the 400 is final
    m = r.metrics()
    assert (m["requests"], m["errors"], m["successes"]) == (1, 1, 0)


def test_stream_waits_before_its_first_event() -> None:
    clock = Clock()
    sleeper = Sleeper(clock)
    a = Fake("a", rate_limited(1.5), ("stream", 2, None))
    r = sync_router(a, clock=clock, sleeper=sleeper, max_wait=2.0)
    stream = r.stream(messages=USER)
    assert list(stream.text()) == ["a0 ", "a1 "]
    assert sleeper.waits == [pytest.approx(1.5)]
    assert stream.route is not None and stream.route.tried == ("a", "a")


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan, "5", True])
def test_max_wait_must_be_finite_and_not_negative(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_wait must be a finite number"):
        Router([target(Fake("a"))], max_wait=bad)
    r = Router([target(Fake("a"))])
    with pytest.raises(ConfigurationError, match="max_wait"):
        r.chat(messages=USER, max_wait=bad)
    with pytest.raises(ConfigurationError, match="max_wait"):
        r.stream(messages=USER, max_wait=bad)


# -- async, and the twins agree ----------------------------------------------------------------


def test_async_router_waits_like_the_sync_one() -> None:
    # t=0: a 429 (3 s), b 429 (4 s); wait 3: a 503 (2 s), b cooling; wait 1: b 429 (30 s);
    # wait 1: a serves. Next call: a 429 (30 s), b cooling for 29 s more: over max_wait.
    def script_a() -> list[Any]:
        return [rate_limited(3.0), server_error(), "ok", rate_limited(30.0)]

    def script_b() -> list[Any]:
        return [rate_limited(4.0), rate_limited(30.0)]

    clock = Clock()
    sleeper = Sleeper(clock)
    sync = sync_router(Fake("a", *script_a()), Fake("b", *script_b()), clock=clock,
                       sleeper=sleeper, max_wait=5.0)
    sync_routes = [route_of(sync.chat(messages=USER)).tried]  # type: ignore[union-attr]
    with pytest.raises(AllTargetsFailedError) as sync_error:
        sync.chat(messages=USER)

    async def scenario() -> tuple[list[Any], AllTargetsFailedError, list[float]]:
        aclock = Clock()
        asleeper = Sleeper(aclock)
        r = AsyncRouter([target(AsyncFake("a", *script_a())),
                         target(AsyncFake("b", *script_b()))],
                        clock=aclock, sleep=asleeper.asleep, max_wait=5.0)
        routes = [route_of(await r.chat(messages=USER)).tried]  # type: ignore[union-attr]
        with pytest.raises(AllTargetsFailedError) as info:
            await r.chat(messages=USER)
        return routes, info.value, asleeper.waits

    async_routes, async_error, async_waits = asyncio.run(scenario())
    assert sync_routes == async_routes == [("a", "b", "a", "b", "a")]
    assert sleeper.waits == async_waits == pytest.approx([3.0, 1.0, 1.0])
    for err in (sync_error.value, async_error):
        assert err.retry_after == pytest.approx(29.0)  # b's second 429 ends first
        assert [t.name for t, _ in err.failures] == ["a"]
        assert [t.name for t, _ in err.skipped] == ["b"] and err.waited == 0.0


def test_async_wait_is_cancellable_and_never_blocks_the_loop() -> None:
    async def scenario() -> None:
        clock = Clock()
        a = AsyncFake("a", rate_limited(30.0))
        # the default sleep (asyncio.sleep), for real: it must not block, and must cancel
        r = AsyncRouter([target(a)], clock=clock, max_wait=60.0)
        call = asyncio.create_task(r.chat(messages=USER))
        for _ in range(5):
            await asyncio.sleep(0)
        await asyncio.wait_for(asyncio.sleep(0.01), timeout=1.0)  # the loop is free
        assert not call.done() and len(a.calls) == 1
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        m = r.metrics()
        assert (m["requests"], m["cancelled"], m["errors"], m["waits"]) == (1, 1, 0, 1)
        assert m["targets"]["a"]["in_flight"] == 0 and m["targets"]["a"]["cancelled"] == 0

    asyncio.run(scenario())


def test_async_stream_waits_for_a_half_open_breaker() -> None:
    async def scenario() -> None:
        clock = Clock()
        sleeper = Sleeper(clock)
        a = AsyncFake("a", server_error(), ("stream", 1, None))
        r = AsyncRouter([target(a)], clock=clock, sleep=sleeper.asleep, cooldown=None,
                        breaker=BreakerPolicy(failure_threshold=1, open_duration=8.0),
                        max_wait=10.0)
        stream = r.stream(messages=USER)
        assert [t async for t in stream.text()] == ["a0 "]
        assert sleeper.waits == [pytest.approx(8.0)]
        assert r.metrics()["targets"]["a"]["breaker"] == "closed"

    asyncio.run(scenario())
