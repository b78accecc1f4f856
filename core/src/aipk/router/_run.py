"""One routed request, sans-IO: the attempts in order, each outcome recorded, and the waits
between passes over the targets."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import attrs

from aipk._messages import ChatRequest
from aipk._responses import ChatResponse
from aipk.errors import AllTargetsFailedError, ProviderError, RequestTimeout, TransportError
from aipk.observability._routers import DEFAULT_ROUTER_NAME

from ._core import _Call, _Core, _TargetState
from ._policy import classify, is_context_window_error
from ._target import RouteInfo

#: The shortest wait between two passes over the targets (seconds); it doubles with each
#: further pass of the same call, up to ``_MAX_STEP``, so a call whose targets fail with no
#: cooldown (``cooldown=None``) backs off instead of spinning.
_MIN_STEP = 0.05
_MAX_STEP = 1.0
#: How early a target's failure may come and still count as after the call's total (its
#: client's timer for the time left is not exact).
_DEADLINE_SLACK = 0.005


def _summary(error: BaseException) -> str:
    text = str(error)
    if len(text) > 300:
        text = text[:300] + "…"
    return f"{type(error).__name__}: {text}"


class _Run:
    """One routed request: hands out attempts in order, records each outcome and, when a pass
    over the targets leaves none, decides whether to wait (``max_wait``) and pass again.
    With the call's ``Timeout(total=...)`` it keeps one deadline for all of it: each attempt
    gets the time left, and running out raises RequestTimeout."""

    __slots__ = ("call", "core", "current", "deadline", "failures", "log", "max_wait",
                 "min_window", "passes", "queue", "request", "skipped", "started", "tried",
                 "upgraded", "waited")

    def __init__(self, core: _Core, call: _Call) -> None:
        self.core = core
        self.call = call
        total = call.total
        #: when the call's total passes (``time.monotonic()``), or None
        self.deadline = None if total is None else time.monotonic() + total
        self.request = call.request
        self.max_wait = call.max_wait
        self.waited = 0.0
        self.passes = 1
        self.upgraded: dict[int, str] = {}  # target index -> the larger model it moved to
        self.queue: deque[tuple[_TargetState, str, bool]] = deque()
        self._fill()
        self.failures: list[tuple[_TargetState, str, ProviderError]] = []
        self.skipped: list[tuple[_TargetState, str, str]] = []  # (state, kind, why)
        self.tried: list[str] = []
        self.log: list[str] = []  # what happened, in order, for the all-failed message
        self.current: tuple[_TargetState, str] | None = None
        self.started = 0.0
        self.min_window: int | None = None
        core.totals.started()

    def __enter__(self) -> _Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """The call ended with ``exc``: anything but a provider error (already recorded) is
        recorded as `aborted()`; the exception goes on."""
        if exc is not None and not isinstance(exc, ProviderError):
            self.aborted(exc)

    def _fill(self) -> None:
        upgraded = self.upgraded
        self.queue.extend((s, upgraded.get(s.index, s.target.model), s.index in upgraded)
                          for s in self.core.order())

    def step(self) -> tuple[_TargetState, ChatRequest] | float | None:
        """The next attempt; else the seconds to sleep before the next pass over the targets;
        else None: give up and raise `exhausted()`. RequestTimeout once the call's total has
        passed."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise self.timed_out("before the next target was tried")
        attempt = self.next()
        return attempt if attempt is not None else self.pause()

    def next(self) -> tuple[_TargetState, ChatRequest] | None:
        """The next target to try and the request to send it, or None when none is left."""
        core = self.core
        while self.queue:
            state, model, forced = self.queue.popleft()
            if self.min_window is not None and not forced:
                window = core.window(state, model)
                if window is None or window <= self.min_window:
                    self._skip(state, "window", f"context window {window or 'unknown'} is not "
                                                f"larger than {self.min_window}")
                    continue
            now = core.clock()
            until = core.cooling_until(state, now)
            if until is not None:
                self._skip(state, "cooldown", f"cooling down for {until - now:.1f}s")
                continue
            breaker = core.breaker
            if breaker is not None and not breaker.allow(state.name):
                self._skip(state, "breaker", "circuit breaker open")
                continue
            state.metrics.started()
            self.tried.append(state.name)
            self.current = (state, model)
            self.started = core.clock()
            request = self.request
            if request.model != model:
                request = attrs.evolve(request, model=model)
            return state, request
        return None

    def options(self) -> Mapping[str, Any]:
        """The per-call options of the attempt about to be sent: the call's, with a total cut
        to the time the call has left (RequestTimeout when none is left)."""
        deadline = self.deadline
        if deadline is None:
            return self.call.options
        left = deadline - time.monotonic()
        if left <= 0:
            raise self.timed_out("before the next target was tried")
        options = dict(self.call.options)
        options["timeout"] = attrs.evolve(options["timeout"], total=left)
        return options

    def _skip(self, state: _TargetState, kind: str, why: str) -> None:
        self.skipped.append((state, kind, why))
        self.log.append(f"{state.name}: skipped, {why}")

    def _available_at(self, now: float) -> float | None:
        """When the earliest target that could take this request is available (None: none
        can, every one is too small for it)."""
        too_small = {s.index for s, kind, _ in self.skipped if kind == "window"}
        times = [self.core.available_at(s, now) for s in self.core.states
                 if s.index not in too_small]
        return min(times) if times else None

    def pause(self) -> float | None:
        """A pass left no target: the seconds to wait for the earliest one and set up the next
        pass, or None when that is not within what is left of ``max_wait``."""
        if self.max_wait <= 0 or self._too_big_everywhere():
            return None
        core = self.core
        now = core.clock()
        at = self._available_at(now)
        if at is None:
            return None
        floor = min(_MIN_STEP * 2.0 ** (self.passes - 1), _MAX_STEP)
        step = max(at - now, floor)
        if self.waited + step > self.max_wait + 1e-9:
            return None
        if self.deadline is not None and time.monotonic() + step >= self.deadline:
            raise self.timed_out(f"before a wait of {step:.2f}s for a target to become "
                                 f"available, which would end past it")
        self.waited += step
        self.passes += 1
        self.log.append(f"waited {step:.2f}s")
        self.skipped.clear()
        self._fill()
        core.totals.wait(step)
        return step

    def _too_big_everywhere(self) -> bool:
        return bool(self.failures) and all(
            is_context_window_error(e) for _, _, e in self.failures) and all(
            kind == "window" for _, kind, _ in self.skipped)

    def failed(self, error: ProviderError, *, committed: bool = False) -> bool:
        """Record ``error`` from the current attempt; True to try the next target, False when
        the caller must raise it (always once a stream has delivered events: ``committed``).
        An error the router would fail over from that comes once the call's total has passed
        raises RequestTimeout instead (from the error), neither cooling the target down nor
        counting against its breaker."""
        core = self.core
        state, model = self._take()
        verdict = classify(error, core.cooldown)
        state.metrics.failed(error)
        if (self.deadline is not None and not committed and verdict.action != "raise"
                and time.monotonic() >= self.deadline - _DEADLINE_SLACK):
            core.breaker_verdict(state, "neutral")
            raise self.timed_out(f"while target {state.name!r} was answering", error)
        core.breaker_verdict(state, verdict.breaker)
        if verdict.action == "failover":
            core.set_cooldown(state, verdict.cooldown, core.clock())
            go_on = True
        elif verdict.action == "context":
            go_on = not committed and self._context_fallback(state, model)
        else:
            go_on = False
        go_on = go_on and not committed
        if go_on:
            self.failures.append((state, model, error))
            self.log.append(f"{state.name} ({model}): {_summary(error)}")
        else:
            core.totals.failed()
        return go_on

    def _context_fallback(self, state: _TargetState, model: str) -> bool:
        fallback = self.core.fallback
        if fallback is False:
            return False
        if fallback is True:
            window = self.core.window(state, model) or 0
            self.min_window = max(self.min_window or 0, window)
            return True
        bigger = fallback.get(model)
        used = {m for s, m, _ in self.failures if s is state} | {model}
        if bigger is None or bigger in used:
            return False
        self.upgraded[state.index] = bigger  # a later pass sends the larger model too
        self.queue.appendleft((state, bigger, True))
        return True

    def succeeded(self, response: ChatResponse) -> ChatResponse:
        core = self.core
        state, model = self._take()
        state.metrics.succeeded(core.clock() - self.started, response.usage)
        core.breaker_verdict(state, "success")
        core.totals.succeeded()
        info = RouteInfo(served_by=state.name, model=model, tried=tuple(self.tried),
                         failures=tuple((s.name, _summary(e)) for s, _, e in self.failures))
        return attrs.evolve(response, extra={**response.extra, "router": info.to_dict()})

    def aborted(self, exc: BaseException) -> None:
        """The attempt (or the whole call, or its wait) ended with something other than a
        provider error: a bug, a configuration error, or cancellation."""
        core = self.core
        cancelled = not isinstance(exc, Exception)
        if self.current is not None:
            state, _ = self._take()
            if cancelled:
                state.metrics.was_cancelled()
            else:
                state.metrics.failed(exc)
            core.breaker_verdict(state, "neutral")
        if cancelled:
            core.totals.was_cancelled()
        else:
            core.totals.failed()

    def timed_out(self, what: str, cause: ProviderError | None = None) -> RequestTimeout:
        """The RequestTimeout for a call whose total passed ``what`` (where it was), from
        ``cause`` (else the last target's error, if any); the attempt in flight, if any,
        ends without counting against its target."""
        core = self.core
        error = cause if cause is not None else (self.failures[-1][2] if self.failures
                                                 else None)
        before = error.before_first_byte if isinstance(error, TransportError) else True
        tried = "; ".join(self.log)
        named = "the router" if core.name == DEFAULT_ROUTER_NAME else f"router {core.name!r}"
        timeout = RequestTimeout(
            f"no answer from {named} within the call's total timeout, "
            f"aipk.Timeout(total={self.call.total:g}) (it ran out {what}"
            f"{'; before: ' + tried if tried else ''}); raise total in timeout=, or leave it "
            f"unset to bound only each target's waits (connect, read)",
            provider="router", retryable=True, before_first_byte=before)
        timeout.__cause__ = error
        timeout.__suppress_context__ = True
        if self.current is not None:  # sent nothing yet
            state, _ = self._take()
            state.metrics.failed(timeout)
            core.breaker_verdict(state, "neutral")
        core.totals.failed()
        return timeout

    def _take(self) -> tuple[_TargetState, str]:
        current = self.current
        assert current is not None, "no attempt in flight"
        self.current = None
        return current

    def exhausted(self) -> ProviderError:
        """The error to raise when no target is left (and no more waiting is allowed)."""
        core = self.core
        core.totals.failed()
        if self._too_big_everywhere():
            return self.failures[-1][2]  # too big for every model that could take it
        now = core.clock()
        at = self._available_at(now)
        if at is None:
            at = min(core.available_at(s, now) for s in core.states)
        wait = max(0.0, at - now)
        when = "one is available now" if wait <= 0 else f"the earliest is available in {wait:.1f}s"
        if self.max_wait > 0:
            budget = (f" (after waiting {self.waited:.1f}s of max_wait={self.max_wait:g}s)"
                      if self.waited else f" (longer than max_wait={self.max_wait:g}s)")
            fix = "retry then, raise max_wait, or add targets to the router"
        else:
            budget = ""
            fix = "retry then, set max_wait= to let the router wait, or add targets to it"
        message = (f"all {len(core.states)} targets failed or were unavailable{budget}; {when}: "
                   f"{fix}. " + "; ".join(self.log))
        return AllTargetsFailedError(
            message, failures=[(s.target, e) for s, _, e in self.failures],
            skipped=[(s.target, why) for s, _, why in self.skipped], available_at=at,
            retry_after=wait, waited=self.waited)
