"""The shared, sans-IO core of the sync and async routers: targets' state, model information,
ordering, availability, and the bookkeeping after each attempt."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from aipk._breaker import BreakerPolicy, CircuitBreaker, CooldownPolicy
from aipk._http import Timeout
from aipk._messages import ChatRequest, Message
from aipk._providers import ModelInfo, ProviderSpec
from aipk._retry import RetryPolicy
from aipk._structured import check_output_retries
from aipk.errors import AipkError, ConfigurationError
from aipk.observability._model import Metrics
from aipk.observability._routers import check_router_name
from aipk.observability._targets import TargetMetrics
from aipk.state import MemoryStore, StateStore

from ._cooldowns import Cooldowns
from ._policy import _NO_COOLDOWN, BreakerVerdict, _wait_budget
from ._strategies import Ordering
from ._target import Target

if TYPE_CHECKING:
    from aipk._async_client import AsyncClient
    from aipk._client import Client
    from aipk.registry import Registry


class _TargetState:
    __slots__ = ("client", "index", "info", "info_loaded", "metrics", "name", "owned", "target",
                 "windows")

    def __init__(self, target: Target, index: int, window: int, model: Metrics) -> None:
        self.target = target
        self.name = target.name
        self.index = index
        self.metrics: TargetMetrics = model.target(target.name, window)
        self.client: Client | AsyncClient | None = target.client
        self.owned = False
        self.info: ModelInfo | None = None
        self.info_loaded = False
        self.windows: dict[str, int | None] = {}


#: A call without per-call options passes none to its targets' clients.
_NO_OPTIONS: Mapping[str, Any] = MappingProxyType({})


@attrs.frozen(slots=True)
class _Call:
    """One call's settings: the request, the retry policy of each attempt, how long the call
    may wait for a target (``max_wait``), the per-call options every attempt passes on to
    its target's client (``headers``, ``timeout``, ``extra_body``, ``check_context``,
    ``output_retries``; only those given), and ``total``: the seconds the whole routed call
    may take (a per-call ``Timeout(total=...)``), or None."""

    request: ChatRequest
    retry: RetryPolicy | None
    max_wait: float
    options: Mapping[str, Any]
    total: float | None = None


def _smoothed_latency(state: _TargetState) -> float | None:
    return state.metrics.ewma


class _Core:
    """Everything the sync and async routers share: ordering, availability, classification,
    and the bookkeeping after each attempt. No I/O."""

    def __init__(self, targets: Sequence[Target], *, strategy: str, cooldown: CooldownPolicy |
                 None, breaker: BreakerPolicy | None, fallback: Mapping[str, str] | bool,
                 store: StateStore | None, clock: Callable[[], float],
                 retry: RetryPolicy | None, registry: Registry | None,
                 client_options: Mapping[str, Any] | None, latency_window: int,
                 max_wait: float, metrics: Metrics | None = None, name: str) -> None:
        targets = list(targets)
        if not targets:
            raise ConfigurationError("a router needs at least one Target")
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
        self.name = check_router_name(name)
        self.strategy = strategy
        self.cooldown = cooldown if cooldown is not None else _NO_COOLDOWN
        self.fallback = fallback
        self.clock = clock
        self.store: StateStore = store if store is not None else MemoryStore(clock=clock)
        self.breaker = (CircuitBreaker(breaker, store=self.store, clock=clock)
                        if breaker is not None else None)
        self.retry = retry
        self.registry = registry
        #: the one metrics model of the router's targets and the clients it builds
        self.metrics_model = metrics or options.get("metrics") or Metrics()
        options.setdefault("metrics", self.metrics_model)
        self.client_options = options
        self.states = [_TargetState(t, i, latency_window, self.metrics_model)
                       for i, t in enumerate(targets)]
        self.by_name = {s.name: s for s in self.states}
        #: the router's totals, in the model under its name
        self.totals = self.metrics_model.router(self.name)
        self.ordering = Ordering(strategy, self.states, price=self._price,
                                 latency=_smoothed_latency)
        self.cooldowns = Cooldowns(self.store)
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

    def call(self, request: ChatRequest | None, fields: dict[str, Any], *,
             retry: RetryPolicy | None, max_wait: float | None,
             headers: Mapping[str, str] | None, timeout: Timeout | float | None,
             extra_body: Mapping[str, Any] | None, check_context: bool | None,
             output_retries: int = 0) -> _Call:
        """One call's settings from ``chat``'s or ``stream``'s arguments (checked)."""
        options: Mapping[str, Any] = _NO_OPTIONS
        total = None
        if headers is not None or timeout is not None or extra_body is not None or (
                check_context is not None or output_retries):
            retries = check_output_retries(output_retries) if output_retries else None
            given = {"headers": headers, "timeout": timeout, "extra_body": extra_body,
                     "check_context": check_context, "output_retries": retries}
            options = {name: value for name, value in given.items() if value is not None}
            if isinstance(timeout, Timeout):  # its total bounds the whole routed call
                total = timeout.total
        return _Call(self.request(request, fields), retry if retry is not None else self.retry,
                     self.max_wait if max_wait is None else _wait_budget(max_wait), options,
                     total)

    # -- model information -----------------------------------------------------------------

    def _spec(self, state: _TargetState) -> ProviderSpec | None:
        client = state.client
        if client is not None:
            return client.provider.spec
        try:
            from aipk.registry import default_registry

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
        return self.ordering.order()

    def cooling_until(self, state: _TargetState, now: float) -> float | None:
        return self.cooldowns.until(state.name, now)

    def available_at(self, state: _TargetState, now: float) -> float:
        at = self.cooling_until(state, now) or now
        if self.breaker is not None:
            opens = self.breaker.available_at(state.name)
            if opens is not None:
                at = max(at, opens)
        return at

    def set_cooldown(self, state: _TargetState, seconds: float, now: float) -> None:
        self.cooldowns.extend(state.name, seconds, now)

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

    def release_owned(self) -> list[Client | AsyncClient]:
        """Forget the clients the router created (not the ones it was given) and return them
        for the caller to close."""
        owned: list[Client | AsyncClient] = []
        for s in self.states:
            if s.owned and s.client is not None:
                owned.append(s.client)
                s.client = None
                s.owned = False
        return owned

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
        c = self.totals.snapshot()
        return {"requests": c.requests, "successes": c.successes, "errors": c.errors,
                "cancelled": c.cancelled, "waits": c.waits, "waited": c.waited,
                "targets": targets}
