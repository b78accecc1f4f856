"""Failover and routing over several targets (provider, model, credentials).

::

    from aipk.router import Router, Target

    with Router([Target(provider="openai", model="gpt-4o-mini"),
                 Target(provider="anthropic", model="claude-3-5-haiku-latest")]) as router:
        reply = router.chat(messages=[aipk.Message.user("Hello")])
        print(reply.text, reply.extra["router"]["served_by"])

Each call walks the targets in the strategy's order (``failover``, ``round_robin``,
``cheapest_first``, ``lowest_latency``), skips targets that are cooling down or whose circuit
breaker is open, and tries the next one after a rate limit, a server error, a network error or
a refused credential. Requests that are wrong everywhere (400s, invalid requests) raise at
once. When every target fails, [`AllTargetsFailedError`][aipk.router.AllTargetsFailedError] says
what each one answered and when the earliest becomes available; with ``max_wait`` the router first
waits for that moment (when it is close enough) and tries again.
[`AsyncRouter`][aipk.router.AsyncRouter] is the async twin. See ``docs/routing.md`` for the rules
and defaults.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, get_args

import attrs

from ._breaker import BreakerPolicy, BreakerState, CircuitBreaker, CooldownPolicy
from ._errormap import is_context_window
from ._messages import ChatRequest, Message
from ._providers import ModelInfo, ProviderSpec, Secret, check_api_key
from ._responses import ChatResponse, StreamEvent, TextDelta, Usage
from ._retry import RetryPolicy
from .errors import (
    AipkError,
    AllTargetsFailedError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContextWindowExceededError,
    ProviderError,
    RateLimitError,
    ResponseError,
    ServerError,
    StatusError,
    StreamError,
    TransportError,
)
from .state import MemoryStore, StateStore

if TYPE_CHECKING:
    from ._async_client import AsyncChatStream, AsyncClient
    from ._client import Client
    from .config import Config
    from .registry import Registry

__all__ = [
    "DEFAULT_BREAKER",
    "DEFAULT_COOLDOWN",
    "STRATEGIES",
    "TARGET_RETRY",
    "AllTargetsFailedError",
    "AsyncRoutedStream",
    "AsyncRouter",
    "BreakerPolicy",
    "BreakerState",
    "CircuitBreaker",
    "CooldownPolicy",
    "RouteInfo",
    "RoutedStream",
    "Router",
    "Strategy",
    "Target",
    "TargetMetrics",
    "Verdict",
    "classify",
    "is_context_window_error",
    "route_of",
]

Strategy = Literal["failover", "round_robin", "cheapest_first", "lowest_latency"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)

#: The retry policy each call to a target uses by default: no retries inside a target (the
#: router is the retry loop, across targets) and no client-side wait over 1 s before sending
#: (the router fails over instead).
TARGET_RETRY = RetryPolicy(max_retries=0, max_retry_after=1.0)

_COOLDOWN_NS = "aipk.cooldown"

#: The shortest wait between two passes over the targets (seconds); it doubles with each
#: further pass of the same call, up to ``_MAX_STEP``, so a call whose targets fail with no
#: cooldown (``cooldown=None``) backs off instead of spinning.
_MIN_STEP = 0.05
_MAX_STEP = 1.0


def _wait_budget(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0 <= value < math.inf):
        raise ConfigurationError(
            f"max_wait must be a finite number of seconds, 0 or more (0 fails at once when no "
            f"target is available), got {value!r}")
    return float(value)


DEFAULT_COOLDOWN = CooldownPolicy()
_NO_COOLDOWN = CooldownPolicy(rate_limit=0, server_error=0, network=0, credential=0)
DEFAULT_BREAKER = BreakerPolicy()


def _secret_or_none(value: Secret | str | None) -> Secret | None:
    """A target's ``api_key=`` checked like a client's (surrounding whitespace stripped;
    ConfigurationError for an empty key, a line break, a control or non-ASCII character)."""
    if value is None:
        return None
    return check_api_key(value, "a router Target's api_key= argument")


def _default_name(target: Target) -> str:
    return f"{target.provider}/{target.model}"


@attrs.frozen(kw_only=True, slots=True)
class Target:
    """One place a request can go: a provider, a model, and optionally credentials.

    ``client`` is a ready [`Client`][aipk.Client] (or [`AsyncClient`][aipk.AsyncClient] for
    [`AsyncRouter`][aipk.router.AsyncRouter]); without one the router creates one on first use from
    ``provider``, ``api_key`` and ``base_url``, and reuses it. ``name`` (default
    ``"provider/model"``) identifies the target in metrics, errors and the state store, so it must
    be unique. ``input_price``/``output_price`` (USD per million tokens) and ``context_window``
    override the provider's static model information.

    Attributes:
        provider: The provider id.
        model: The model to request.
        client: A ready client; None lets the router create one on first use.
        api_key: The key for a client the router creates.
        base_url: The base URL for a client the router creates.
        name: The target's unique name in metrics, errors and the state store (default
            ``provider/model``).
        input_price: US dollars per million input tokens (overrides the provider's model list).
        output_price: US dollars per million output tokens (overrides the provider's model list).
        context_window: The model's context window in tokens (overrides the provider's model list).
    """

    provider: str
    model: str
    client: Client | AsyncClient | None = attrs.field(default=None, eq=False, repr=False)
    api_key: Secret | None = attrs.field(default=None, converter=_secret_or_none)
    base_url: str | None = None
    name: str = attrs.field(default=attrs.Factory(_default_name, takes_self=True))
    input_price: float | None = None
    output_price: float | None = None
    context_window: int | None = None


@attrs.frozen(kw_only=True, slots=True)
class RouteInfo:
    """How a response was routed: who served it, with which model, and who was tried first
    (``tried`` ends with ``served_by``; ``failures`` pairs a target name with its error).

    Attributes:
        served_by: The name of the target that answered.
        model: The model it answered with.
        tried: The targets tried, in order, ending with ``served_by``.
        failures: (target name, error) pairs for the targets that failed.
    """

    served_by: str
    model: str
    tried: tuple[str, ...]
    failures: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as stored in ``response.extra["router"]``."""
        return {"served_by": self.served_by, "model": self.model, "tried": list(self.tried),
                "failures": [{"target": t, "error": e} for t, e in self.failures]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouteInfo:
        return cls(served_by=data["served_by"], model=data["model"],
                   tried=tuple(data["tried"]),
                   failures=tuple((f["target"], f["error"]) for f in data["failures"]))


def route_of(response: ChatResponse) -> RouteInfo | None:
    """The `RouteInfo` of a response a router returned (None for other responses)."""
    data = response.extra.get("router")
    return RouteInfo.from_dict(data) if isinstance(data, Mapping) else None


def is_context_window_error(error: BaseException) -> bool:
    """True for a provider's "the request does not fit the model's context window" error: a
    [`ContextWindowExceededError`][aipk.errors.ContextWindowExceededError], or a BadRequestError
    whose code or text says so (errors built by hand or by an older plugin)."""
    if isinstance(error, ContextWindowExceededError):
        return True
    if not isinstance(error, BadRequestError):
        return False
    return is_context_window(error.code, error.message)


Action = Literal["raise", "failover", "context"]
BreakerVerdict = Literal["success", "failure", "neutral"]


@attrs.frozen(slots=True)
class Verdict:
    """What the router does about one target's error: ``action`` (raise it, fail over, or the
    context-window fallback), the target's ``cooldown`` in seconds, and what it tells the
    breaker.

    Attributes:
        action: ``raise``, ``failover`` or ``context`` (the context-window fallback).
        cooldown: Seconds to skip the target.
        breaker: What the breaker records: ``success``, ``failure`` or ``neutral``.
    """

    action: Action
    cooldown: float = 0.0
    breaker: BreakerVerdict = "neutral"


def classify(error: ProviderError, cooldown: CooldownPolicy = DEFAULT_COOLDOWN) -> Verdict:
    """What the router does about ``error`` from one target (see docs/routing.md)."""
    c = cooldown
    if isinstance(error, RateLimitError):
        if error.retry_after is not None:
            wait = error.retry_after
        else:
            wait = c.rate_limit if error.retryable else c.credential  # a spent quota: long
        return Verdict("failover", min(wait, c.max_cooldown), "neutral")
    if isinstance(error, AuthenticationError):
        return Verdict("failover", min(c.credential, c.max_cooldown), "failure")
    if isinstance(error, BadRequestError):
        if is_context_window_error(error):
            return Verdict("context", 0.0, "success")
        if error.retryable:  # 408, 409: transient
            return Verdict("failover", min(c.server_error, c.max_cooldown), "neutral")
        return Verdict("raise", 0.0, "success")
    if isinstance(error, (ServerError, StatusError, ResponseError)):
        return Verdict("failover", min(c.server_error, c.max_cooldown), "failure")
    if isinstance(error, TransportError):
        return Verdict("failover", min(c.network, c.max_cooldown), "failure")
    if isinstance(error, StreamError):
        if error.retryable:
            return Verdict("failover", min(c.server_error, c.max_cooldown), "failure")
        return Verdict("raise", 0.0, "success")
    if isinstance(error, AllTargetsFailedError):  # a router used as a target's client
        return Verdict("failover", min(error.retry_after, c.max_cooldown), "neutral")
    return Verdict("raise", 0.0, "neutral")


# -- metrics -------------------------------------------------------------------------------


def _percentile(ordered: Sequence[float], p: float) -> float:
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(p * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class TargetMetrics:
    """Counters for one target, and the latencies of its last ``window`` successful calls (a
    fixed ring buffer: memory never grows). ``ewma`` is the smoothed latency
    ``lowest_latency`` ranks by (None before the first success)."""

    __slots__ = ("_count", "_lock", "_next", "_samples", "cancelled", "error_types", "errors",
                 "ewma", "input_tokens", "output_tokens", "requests", "successes")

    ALPHA = 0.3

    def __init__(self, window: int = 1024) -> None:
        if window < 1:
            raise ValueError("the latency window needs at least one slot")
        self._lock = threading.Lock()
        self._samples = [0.0] * window
        self._next = 0
        self._count = 0
        self.requests = 0
        self.successes = 0
        self.errors = 0
        self.cancelled = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.ewma: float | None = None
        self.error_types: dict[str, int] = {}

    def started(self) -> None:
        with self._lock:
            self.requests += 1

    def succeeded(self, latency: float, usage: Usage | None) -> None:
        with self._lock:
            self.successes += 1
            samples = self._samples
            samples[self._next] = latency
            self._next = (self._next + 1) % len(samples)
            self._count = min(self._count + 1, len(samples))
            self.ewma = latency if self.ewma is None else (
                self.ALPHA * latency + (1.0 - self.ALPHA) * self.ewma)
            if usage is not None:
                self.input_tokens += usage.input_tokens or 0
                self.output_tokens += usage.output_tokens or 0

    def failed(self, error: BaseException) -> None:
        name = type(error).__name__
        with self._lock:
            self.errors += 1
            self.error_types[name] = self.error_types.get(name, 0) + 1

    def was_cancelled(self) -> None:
        with self._lock:
            self.cancelled += 1

    def latencies(self) -> list[float]:
        """The kept latency samples (at most ``window``), oldest first."""
        with self._lock:
            samples, count, nxt = self._samples, self._count, self._next
            if count < len(samples):
                return samples[:count]
            return samples[nxt:] + samples[:nxt]

    def snapshot(self) -> dict[str, Any]:
        """The counters and latency percentiles (seconds) as a plain dict."""
        with self._lock:
            kept = self._samples[:self._count]
            out: dict[str, Any] = {
                "requests": self.requests, "successes": self.successes, "errors": self.errors,
                "cancelled": self.cancelled,
                "in_flight": self.requests - self.successes - self.errors - self.cancelled,
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "error_types": dict(self.error_types), "ewma_latency": self.ewma,
            }
        kept.sort()
        out.update(latency_samples=len(kept), p50=_percentile(kept, 0.50),
                   p95=_percentile(kept, 0.95), p99=_percentile(kept, 0.99),
                   mean_latency=sum(kept) / len(kept) if kept else 0.0)
        return out


class _Counters:
    __slots__ = ("_lock", "cancelled", "errors", "requests", "successes", "waited", "waits")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = self.successes = self.errors = self.cancelled = self.waits = 0
        self.waited = 0.0

    def add(self, field: str) -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + 1)

    def wait(self, seconds: float) -> None:
        with self._lock:
            self.waits += 1
            self.waited += seconds


# -- the shared, sans-IO core --------------------------------------------------------------


class _TargetState:
    __slots__ = ("client", "index", "info", "info_loaded", "metrics", "name", "owned", "target",
                 "windows")

    def __init__(self, target: Target, index: int, window: int) -> None:
        self.target = target
        self.name = target.name
        self.index = index
        self.metrics = TargetMetrics(window)
        self.client: Client | AsyncClient | None = target.client
        self.owned = False
        self.info: ModelInfo | None = None
        self.info_loaded = False
        self.windows: dict[str, int | None] = {}


class _Core:
    """Everything the sync and async routers share: ordering, availability, classification,
    and the bookkeeping after each attempt. No I/O."""

    def __init__(self, targets: Sequence[Target], *, strategy: str, cooldown: CooldownPolicy |
                 None, breaker: BreakerPolicy | None, fallback: Mapping[str, str] | bool,
                 store: StateStore | None, clock: Callable[[], float],
                 retry: RetryPolicy | None, registry: Registry | None,
                 client_options: Mapping[str, Any] | None, latency_window: int,
                 max_wait: float) -> None:
        targets = list(targets)
        if not targets:
            raise ConfigurationError("a router needs at least one Target")
        if strategy not in STRATEGIES:
            raise ConfigurationError(
                f"unknown routing strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
        seen: set[str] = set()
        for t in targets:
            if not isinstance(t, Target):
                raise ConfigurationError(f"targets must be aipk.router.Target records, not "
                                         f"{type(t).__name__}")
            if t.name in seen:
                raise ConfigurationError(
                    f"two targets are named {t.name!r}; give each a unique name= "
                    f"(e.g. Target(..., name='{t.name}#2'))")
            seen.add(t.name)
        if not isinstance(fallback, (bool, Mapping)):
            raise ConfigurationError("fallback_on_context_window takes True/False or a dict "
                                     "{model: larger_model}")
        options = dict(client_options or {})
        clash = {"provider", "api_key", "base_url", "registry"} & set(options)
        if clash:
            raise ConfigurationError(f"set {', '.join(sorted(clash))} on each Target, not in "
                                     f"client_options")
        self.max_wait = _wait_budget(max_wait)
        self.strategy = strategy
        self.cooldown = cooldown if cooldown is not None else _NO_COOLDOWN
        self.fallback = fallback
        self.clock = clock
        self.store: StateStore = store if store is not None else MemoryStore(clock=clock)
        self.breaker = (CircuitBreaker(breaker, store=self.store, clock=clock)
                        if breaker is not None else None)
        self.retry = retry
        self.registry = registry
        self.client_options = options
        self.states = [_TargetState(t, i, latency_window) for i, t in enumerate(targets)]
        self.by_name = {s.name: s for s in self.states}
        self.counters = _Counters()
        self._rr = 0
        self._rr_lock = threading.Lock()
        self._cheapest: list[_TargetState] | None = None
        self.client_lock = threading.Lock()

    # -- requests --------------------------------------------------------------------------

    def request(self, request: ChatRequest | None, fields: dict[str, Any]) -> ChatRequest:
        if request is not None:
            if fields:
                raise ConfigurationError(
                    "pass either a ChatRequest or keyword fields (messages=…), not both")
            return request
        if fields.pop("model", None) is not None:
            raise ConfigurationError(
                "the router takes the model from each Target: drop model= from the call")
        messages: Sequence[Message | Mapping[str, Any]] = fields.pop("messages", ())
        return ChatRequest(model=self.states[0].target.model, messages=messages, **fields)

    def policy(self, retry: RetryPolicy | None) -> RetryPolicy | None:
        return retry if retry is not None else self.retry

    def wait_budget(self, max_wait: float | None) -> float:
        return self.max_wait if max_wait is None else _wait_budget(max_wait)

    # -- model information -----------------------------------------------------------------

    def _spec(self, state: _TargetState) -> ProviderSpec | None:
        client = state.client
        if client is not None:
            return client.provider.spec
        try:
            from .registry import default_registry

            return (self.registry or default_registry()).spec(state.target.provider)
        except AipkError:
            return None

    def model_info(self, state: _TargetState) -> ModelInfo | None:
        if not state.info_loaded:
            spec = self._spec(state)
            if spec is not None:
                state.info = next((m for m in spec.models if m.id == state.target.model), None)
            state.info_loaded = True
        return state.info

    def window(self, state: _TargetState, model: str) -> int | None:
        if model == state.target.model and state.target.context_window is not None:
            return state.target.context_window
        if model not in state.windows:
            spec = self._spec(state)
            found: int | None = None
            if spec is not None:
                info = next((m for m in spec.models if m.id == model), None)
                found = (info.context_window if info is not None else None) or (
                    spec.capabilities.context_window)
            state.windows[model] = found
        return state.windows[model]

    def _price(self, state: _TargetState) -> tuple[bool, float]:
        t = state.target
        info = self.model_info(state) if t.input_price is None or t.output_price is None else None
        inp = t.input_price if t.input_price is not None else (info.input_price if info else None)
        out = (t.output_price if t.output_price is not None
               else (info.output_price if info else None))
        if inp is None or out is None:
            return (True, 0.0)
        return (False, inp + out)

    # -- ordering and availability ---------------------------------------------------------

    def order(self) -> list[_TargetState]:
        states = self.states
        if self.strategy == "failover":
            return states
        if self.strategy == "round_robin":
            with self._rr_lock:
                start = self._rr
                self._rr = (start + 1) % len(states)
            return states[start:] + states[:start]
        if self.strategy == "cheapest_first":
            if self._cheapest is None:
                self._cheapest = sorted(states, key=self._price)
            return self._cheapest
        # lowest_latency: unobserved targets first (so they get measured), then fastest
        return sorted(states, key=lambda s: (s.metrics.ewma or 0.0, s.index))

    def cooling_until(self, state: _TargetState, now: float) -> float | None:
        until = self.store.get(_COOLDOWN_NS, state.name)
        if isinstance(until, (int, float)) and until > now:
            return float(until)
        return None

    def available_at(self, state: _TargetState, now: float) -> float:
        at = self.cooling_until(state, now) or now
        if self.breaker is not None:
            opens = self.breaker.available_at(state.name)
            if opens is not None:
                at = max(at, opens)
        return at

    def set_cooldown(self, state: _TargetState, seconds: float, now: float) -> None:
        if seconds <= 0:
            return
        until = now + seconds

        def later(old: float | None) -> float | None:
            return old if old is not None and old >= until else until

        self.store.update(_COOLDOWN_NS, state.name, later, ttl=seconds)

    def breaker_verdict(self, state: _TargetState, verdict: BreakerVerdict) -> None:
        breaker = self.breaker
        if breaker is None:
            return
        if verdict == "success":
            breaker.record_success(state.name)
        elif verdict == "failure":
            breaker.record_failure(state.name)
        else:
            breaker.release(state.name)

    # -- clients ---------------------------------------------------------------------------

    def install_client(self, state: _TargetState,
                       make: Callable[[Target], Client | AsyncClient]) -> (
            tuple[Client | AsyncClient, Client | AsyncClient | None]):
        """The target's client, creating it (outside the lock) on first use. Returns the client
        and a surplus one a racing thread created, for the caller to close."""
        client = state.client
        if client is not None:
            return client, None
        fresh = make(state.target)
        with self.client_lock:
            if state.client is None:
                state.client = fresh
                state.owned = True
                return fresh, None
            return state.client, fresh

    def client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_retries": 0, **self.client_options}
        if self.registry is not None:
            kwargs["registry"] = self.registry
        return kwargs

    # -- metrics ---------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        now = self.clock()
        targets: dict[str, Any] = {}
        for s in self.states:
            snap = s.metrics.snapshot()
            until = self.cooling_until(s, now)
            snap["cooldown_remaining"] = 0.0 if until is None else until - now
            snap["breaker"] = self.breaker.mode(s.name) if self.breaker is not None else "off"
            targets[s.name] = snap
        c = self.counters
        return {"requests": c.requests, "successes": c.successes, "errors": c.errors,
                "cancelled": c.cancelled, "waits": c.waits, "waited": c.waited,
                "targets": targets}


def _summary(error: BaseException) -> str:
    text = str(error)
    if len(text) > 300:
        text = text[:300] + "…"
    return f"{type(error).__name__}: {text}"


class _Run:
    """One routed request: hands out attempts in order, records each outcome and, when a pass
    over the targets leaves none, decides whether to wait (``max_wait``) and pass again."""

    __slots__ = ("core", "current", "failures", "log", "max_wait", "min_window", "passes",
                 "queue", "request", "skipped", "started", "tried", "upgraded", "waited")

    def __init__(self, core: _Core, request: ChatRequest, max_wait: float = 0.0) -> None:
        self.core = core
        self.request = request
        self.max_wait = max_wait
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
        core.counters.add("requests")

    def _fill(self) -> None:
        upgraded = self.upgraded
        self.queue.extend((s, upgraded.get(s.index, s.target.model), s.index in upgraded)
                          for s in self.core.order())

    def step(self) -> tuple[_TargetState, ChatRequest] | float | None:
        """The next attempt; else the seconds to sleep before the next pass over the targets;
        else None: give up and raise `exhausted()`."""
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
        self.waited += step
        self.passes += 1
        self.log.append(f"waited {step:.2f}s")
        self.skipped.clear()
        self._fill()
        core.counters.wait(step)
        return step

    def _too_big_everywhere(self) -> bool:
        return bool(self.failures) and all(
            is_context_window_error(e) for _, _, e in self.failures) and all(
            kind == "window" for _, kind, _ in self.skipped)

    def failed(self, error: ProviderError, *, committed: bool = False) -> bool:
        """Record ``error`` from the current attempt; True to try the next target, False when
        the caller must raise it (always once a stream has delivered events: ``committed``)."""
        core = self.core
        state, model = self._take()
        verdict = classify(error, core.cooldown)
        state.metrics.failed(error)
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
            core.counters.add("errors")
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
        core.counters.add("successes")
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
        core.counters.add("cancelled" if cancelled else "errors")

    def _take(self) -> tuple[_TargetState, str]:
        current = self.current
        assert current is not None, "no attempt in flight"
        self.current = None
        return current

    def exhausted(self) -> ProviderError:
        """The error to raise when no target is left (and no more waiting is allowed)."""
        core = self.core
        core.counters.add("errors")
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


# -- the routers ---------------------------------------------------------------------------


def _closed_early() -> AipkError:
    return AipkError("the stream was closed before it finished, so there is no response; "
                     "read it to the end before asking for the response")



_RouterT = TypeVar("_RouterT", bound="_RouterBase")


class _RouterBase:
    def __init__(
        self,
        targets: Sequence[Target],
        *,
        strategy: Strategy = "failover",
        cooldown: CooldownPolicy | None = DEFAULT_COOLDOWN,
        breaker: BreakerPolicy | None = DEFAULT_BREAKER,
        fallback_on_context_window: Mapping[str, str] | bool = False,
        store: StateStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry: RetryPolicy | None = TARGET_RETRY,
        registry: Registry | None = None,
        client_options: Mapping[str, Any] | None = None,
        latency_window: int = 1024,
        max_wait: float = 0.0,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self._core = _Core(targets, strategy=strategy, cooldown=cooldown, breaker=breaker,
                           fallback=fallback_on_context_window, store=store, clock=clock,
                           retry=retry, registry=registry, client_options=client_options,
                           latency_window=latency_window, max_wait=max_wait)
        self._init_sleep(sleep)
        self._check_clients()

    @classmethod
    def from_config(cls: type[_RouterT], name: str, *, config: Any = None,
                    **overrides: Any) -> _RouterT:
        """A router for the entry ``[routers.NAME]`` of a config file (``config``: a path, a
        loaded `aipk.config.Config`, or None to find the file); its targets' clients
        are built from the config's provider entries. Keyword arguments override the file."""
        from .config import resolve

        loaded = resolve(config, overrides.get("registry"))
        kwargs = _config_kwargs(loaded, name, asynchronous=issubclass(cls, AsyncRouter),
                                overrides=overrides)
        router = cls(kwargs.pop("targets"), **kwargs)
        for state in router._core.states:  # the clients built here close with the router
            if state.client is not None:
                state.owned = True
        return router

    def _init_sleep(self, sleep: Callable[[float], Any] | None) -> None:
        raise NotImplementedError

    def _check_clients(self) -> None:
        raise NotImplementedError

    @property
    def targets(self) -> tuple[Target, ...]:
        return tuple(s.target for s in self._core.states)

    @property
    def store(self) -> StateStore:
        """Where cooldowns and breaker states live."""
        return self._core.store

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self._core.breaker

    @property
    def max_wait(self) -> float:
        """Seconds a call may sleep, in all, for a target to become available (0: never)."""
        return self._core.max_wait

    def cool_down(self, name: str, seconds: float) -> None:
        """Skip the target ``name`` for ``seconds`` from now (a health checker does this with
        an unhealthy target, so user calls skip it before one fails there)."""
        for state in self._core.states:
            if state.name == name:
                self._core.set_cooldown(state, seconds, self._core.clock())
                return
        names = ", ".join(s.name for s in self._core.states)
        raise ConfigurationError(f"the router has no target named {name!r}; its targets are: "
                                 f"{names}")

    def metrics(self) -> dict[str, Any]:
        """Router totals (``requests``, ``successes``, ``errors``, ``cancelled``, and the
        ``waits`` taken for ``max_wait`` with the seconds ``waited``) and, under ``targets``,
        each target's counters, tokens, latency percentiles (p50/p95/p99 of its recent
        successes), breaker mode and remaining cooldown."""
        return self._core.metrics()

    def __repr__(self) -> str:
        names = ", ".join(s.name for s in self._core.states)
        return f"<{type(self).__name__} strategy={self._core.strategy!r} targets=[{names}]>"


class Router(_RouterBase):
    """Routes chat and stream calls over `Target` records with synchronous clients.

    ``strategy`` orders the targets per call; ``cooldown`` and ``breaker`` (None turns either
    off) decide when a target is skipped; ``fallback_on_context_window`` is False (raise),
    True (try only targets with a larger known context window) or ``{model: larger_model}``
    (retry the same target with the larger model). ``store`` holds cooldown and breaker state
    (a private `MemoryStore` by default), ``clock`` measures cooldowns and
    latency. ``retry`` is the policy for each call to a target (default `TARGET_RETRY`:
    no retries inside a target); None keeps each client's own. Clients the router creates get
    ``max_retries=0`` plus ``client_options``; close them with `close()` or ``with``.

    ``max_wait`` (seconds, default 0: fail at once) lets a call whose targets are all cooling
    down, breaker-open or rate limited sleep until the earliest is available and try again,
    as long as its sleeps add up to no more than ``max_wait``; ``sleep`` (default
    `time.sleep()`) is how it sleeps. Both can be given per call.
    """

    _sleep: Callable[[float], object]

    def _init_sleep(self, sleep: Callable[[float], Any] | None) -> None:
        self._sleep = sleep if sleep is not None else time.sleep

    def _check_clients(self) -> None:
        from ._async_client import AsyncClient

        for s in self._core.states:
            if isinstance(s.client, AsyncClient):
                raise ConfigurationError(
                    f"target {s.name!r} has an AsyncClient; use aipk.router.AsyncRouter, or give "
                    f"it an aipk.Client")

    def __enter__(self) -> Router:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the clients the router created (not the ones you passed in)."""
        for s in self._core.states:
            if s.owned and s.client is not None:
                cast("Client", s.client).close()
                s.client = None
                s.owned = False

    def _client(self, state: _TargetState) -> Client:
        def make(target: Target) -> Client:
            from ._client import Client

            return Client(target.provider, api_key=target.api_key, base_url=target.base_url,
                          **self._core.client_kwargs())

        client, surplus = self._core.install_client(state, make)
        if surplus is not None:
            cast("Client", surplus).close()
        return cast("Client", client)

    def chat(self, request: ChatRequest | None = None, /, *, retry: RetryPolicy | None = None,
             max_wait: float | None = None, **fields: Any) -> ChatResponse:
        """Send the request to the first target that answers; the response's
        ``extra["router"]`` says who served it and who was tried (`route_of()`).
        ``max_wait`` overrides the router's for this call."""
        core = self._core
        req = core.request(request, fields)
        policy = core.policy(retry)
        run = _Run(core, req, core.wait_budget(max_wait))
        try:
            while (attempt := run.step()) is not None:
                if isinstance(attempt, float):
                    self._sleep(attempt)
                    continue
                state, sent = attempt
                try:
                    client = self._client(state)
                    run.started = core.clock()
                    response = client.chat(sent, retry=policy)
                except ProviderError as exc:
                    if run.failed(exc):
                        continue
                    raise
                return run.succeeded(response)
        except ProviderError:
            raise
        except BaseException as exc:
            run.aborted(exc)
            raise
        raise run.exhausted()

    def stream(self, request: ChatRequest | None = None, /, *, retry: RetryPolicy | None = None,
               max_wait: float | None = None, **fields: Any) -> RoutedStream:
        """Stream from the first target that starts answering. Failover (and waiting, with
        ``max_wait``) happens only before the first event; an error after it reaches you."""
        core = self._core
        return RoutedStream(self, core.request(request, fields), core.policy(retry),
                            core.wait_budget(max_wait))


class RoutedStream:
    """A routed streaming answer: iterate it for events; `response` then holds the
    aggregated response (with ``extra["router"]``) and `route` who served it."""

    def __init__(self, router: Router, request: ChatRequest, retry: RetryPolicy | None,
                 max_wait: float = 0.0) -> None:
        self._router = router
        self.request = request
        self._retry = retry
        self._max_wait = max_wait
        self._iterator: Iterator[StreamEvent] | None = None
        self._response: ChatResponse | None = None

    def __enter__(self) -> RoutedStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamEvent]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    def _events(self) -> Iterator[StreamEvent]:
        router = self._router
        run = _Run(router._core, self.request, self._max_wait)
        try:
            while (attempt := run.step()) is not None:
                if isinstance(attempt, float):
                    router._sleep(attempt)
                    continue
                state, sent = attempt
                client = router._client(state)
                run.started = run.core.clock()
                stream = client.stream(sent, retry=self._retry)
                events = iter(stream)
                try:
                    first = next(events)
                except StopIteration:
                    self._response = run.succeeded(stream.response)
                    return
                except ProviderError as exc:
                    stream.close()
                    if run.failed(exc):
                        continue
                    raise
                try:
                    yield first
                    yield from events
                except ProviderError as exc:
                    run.failed(exc, committed=True)
                    raise
                finally:
                    stream.close()
                self._response = run.succeeded(stream.response)
                return
        except ProviderError:
            raise
        except BaseException as exc:
            run.aborted(exc)
            raise
        raise run.exhausted()

    def text(self) -> Iterator[str]:
        """Only the answer's text fragments."""
        for event in self:
            if type(event) is TextDelta:
                yield event.text

    @property
    def route(self) -> RouteInfo | None:
        """Who served the stream (None until it finished)."""
        return None if self._response is None else route_of(self._response)

    @property
    def response(self) -> ChatResponse:
        """The aggregated response; reads the rest of the stream first if needed."""
        return self.get_response()

    def get_response(self) -> ChatResponse:
        if self._response is None:
            for _ in self:
                pass
        if self._response is None:
            raise _closed_early()
        return self._response

    def close(self) -> None:
        """Stop reading and release the connection."""
        if self._iterator is not None:
            self._iterator.close()  # type: ignore[attr-defined]


class AsyncRouter(_RouterBase):
    """The async twin of [`Router`][aipk.router.Router] (same settings): ``await router.chat(...)``,
    ``async for event in router.stream(...)``. Targets need [`AsyncClient`][aipk.AsyncClient]
    clients, or none (created on first use). Waits for ``max_wait`` use ``sleep``, an async
    callable (default `asyncio.sleep()`): they never block the event loop and cancelling
    the call cancels the wait."""

    _sleep: Callable[[float], Awaitable[object]]

    def _init_sleep(self, sleep: Callable[[float], Any] | None) -> None:
        self._sleep = sleep if sleep is not None else asyncio.sleep

    def _check_clients(self) -> None:
        from ._client import Client

        for s in self._core.states:
            if isinstance(s.client, Client):
                raise ConfigurationError(
                    f"target {s.name!r} has a synchronous Client; use aipk.router.Router, or give "
                    f"it an aipk.AsyncClient")

    async def __aenter__(self) -> AsyncRouter:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the clients the router created (not the ones you passed in)."""
        for s in self._core.states:
            if s.owned and s.client is not None:
                client = cast("AsyncClient", s.client)
                s.client = None
                s.owned = False
                await client.close()

    async def _client(self, state: _TargetState) -> AsyncClient:
        def make(target: Target) -> AsyncClient:
            from ._async_client import AsyncClient

            return AsyncClient(target.provider, api_key=target.api_key,
                               base_url=target.base_url, **self._core.client_kwargs())

        client, surplus = self._core.install_client(state, make)
        if surplus is not None:
            await cast("AsyncClient", surplus).close()
        return cast("AsyncClient", client)

    async def chat(self, request: ChatRequest | None = None, /, *,
                   retry: RetryPolicy | None = None, max_wait: float | None = None,
                   **fields: Any) -> ChatResponse:
        """Send the request to the first target that answers (see `Router.chat()`)."""
        core = self._core
        req = core.request(request, fields)
        policy = core.policy(retry)
        run = _Run(core, req, core.wait_budget(max_wait))
        try:
            while (attempt := run.step()) is not None:
                if isinstance(attempt, float):
                    await self._sleep(attempt)
                    continue
                state, sent = attempt
                try:
                    client = await self._client(state)
                    run.started = core.clock()
                    response = await client.chat(sent, retry=policy)
                except ProviderError as exc:
                    if run.failed(exc):
                        continue
                    raise
                return run.succeeded(response)
        except ProviderError:
            raise
        except BaseException as exc:
            run.aborted(exc)
            raise
        raise run.exhausted()

    def stream(self, request: ChatRequest | None = None, /, *, retry: RetryPolicy | None = None,
               max_wait: float | None = None, **fields: Any) -> AsyncRoutedStream:
        """Stream from the first target that starts answering (see `Router.stream()`)."""
        core = self._core
        return AsyncRoutedStream(self, core.request(request, fields), core.policy(retry),
                                 core.wait_budget(max_wait))


class AsyncRoutedStream:
    """The async twin of `RoutedStream`: ``async for`` over it, then
    ``await stream.get_response()``."""

    def __init__(self, router: AsyncRouter, request: ChatRequest,
                 retry: RetryPolicy | None, max_wait: float = 0.0) -> None:
        self._router = router
        self.request = request
        self._retry = retry
        self._max_wait = max_wait
        self._iterator: AsyncIterator[StreamEvent] | None = None
        self._response: ChatResponse | None = None

    async def __aenter__(self) -> AsyncRoutedStream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    async def _events(self) -> AsyncIterator[StreamEvent]:
        router = self._router
        run = _Run(router._core, self.request, self._max_wait)
        try:
            while (attempt := run.step()) is not None:
                if isinstance(attempt, float):
                    await router._sleep(attempt)
                    continue
                state, sent = attempt
                stream: AsyncChatStream | None = None
                try:
                    client = await router._client(state)
                    run.started = run.core.clock()
                    stream = client.stream(sent, retry=self._retry)
                    events = stream.__aiter__()
                    first = await events.__anext__()
                except StopAsyncIteration:
                    assert stream is not None
                    self._response = run.succeeded(await stream.get_response())
                    return
                except ProviderError as exc:
                    if stream is not None:
                        await stream.close()
                    if run.failed(exc):
                        continue
                    raise
                try:
                    yield first
                    async for event in events:
                        yield event
                except ProviderError as exc:
                    run.failed(exc, committed=True)
                    raise
                finally:
                    await stream.close()
                self._response = run.succeeded(await stream.get_response())
                return
        except ProviderError:
            raise
        except BaseException as exc:
            run.aborted(exc)
            raise
        raise run.exhausted()

    async def text(self) -> AsyncIterator[str]:
        """Only the answer's text fragments."""
        async for event in self:
            if type(event) is TextDelta:
                yield event.text

    @property
    def route(self) -> RouteInfo | None:
        """Who served the stream (None until it finished)."""
        return None if self._response is None else route_of(self._response)

    async def get_response(self) -> ChatResponse:
        """The aggregated response; reads the rest of the stream first if needed."""
        if self._response is None:
            async for _ in self:
                pass
        if self._response is None:
            raise _closed_early()
        return self._response

    async def close(self) -> None:
        """Stop reading and release the connection."""
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]


def _config_kwargs(config: Config, name: str, *, asynchronous: bool,
                   overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``Router(...)``/``AsyncRouter(...)`` from the router entry
    ``name`` of a loaded config: targets (with clients built from the provider entries they
    name) and policies."""
    from ._async_client import AsyncClient
    from ._client import Client
    from .config._build import set_fields

    entry = config.router_entry(name)
    targets = []
    for target in entry.targets:
        provider, client = target.provider, None
        if provider in config.settings.providers:
            maker = AsyncClient if asynchronous else Client
            client = maker.from_config(provider, config=config, max_retries=0)
            provider = config.spec_name(target.provider)
        targets.append(Target(
            provider=provider, model=target.model, client=client,
            name=target.name or f"{target.provider}/{target.model}",
            input_price=target.input_price, output_price=target.output_price,
            context_window=target.context_window))
    kwargs: dict[str, Any] = {"strategy": entry.strategy,
                              "fallback_on_context_window": entry.fallback_on_context_window,
                              "registry": config.registry}
    cooldown, breaker = entry.cooldown, entry.breaker
    if cooldown is None:
        kwargs["cooldown"] = DEFAULT_COOLDOWN
    else:
        kwargs["cooldown"] = CooldownPolicy(**set_fields(cooldown)) if cooldown.enabled else None
    if breaker is None:
        kwargs["breaker"] = DEFAULT_BREAKER
    else:
        kwargs["breaker"] = BreakerPolicy(**set_fields(breaker)) if breaker.enabled else None
    if entry.max_wait is not None:
        kwargs["max_wait"] = entry.max_wait
    store = config.store()
    if store is not None:
        kwargs["store"] = store
    kwargs.update(overrides or {})
    kwargs["targets"] = targets
    return kwargs
