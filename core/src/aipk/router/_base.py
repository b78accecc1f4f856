"""What the sync and async routers share: construction, configuration, and the calls that do
no I/O."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from aipk._breaker import BreakerPolicy, CircuitBreaker, CooldownPolicy
from aipk._responses import ChatResponse
from aipk._retry import RetryPolicy
from aipk.errors import AipkError, ConfigurationError
from aipk.observability._model import Metrics
from aipk.observability._routers import DEFAULT_ROUTER_NAME
from aipk.state import StateStore

from ._config import _config_kwargs
from ._core import _Call, _Core
from ._policy import DEFAULT_BREAKER, DEFAULT_COOLDOWN, TARGET_RETRY
from ._strategies import Strategy
from ._target import RouteInfo, Target, route_of

if TYPE_CHECKING:
    from aipk.registry import Registry


_RouterT = TypeVar("_RouterT", bound="_RouterBase")


class _RouterBase:
    #: True for the async router: its config-built clients are AsyncClients.
    _asynchronous: ClassVar[bool] = False

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
        metrics: Metrics | None = None,
        name: str = DEFAULT_ROUTER_NAME,
    ) -> None:
        self._core = _Core(targets, strategy=strategy, cooldown=cooldown, breaker=breaker,
                           fallback=fallback_on_context_window, store=store, clock=clock,
                           retry=retry, registry=registry, client_options=client_options,
                           latency_window=latency_window, max_wait=max_wait, metrics=metrics,
                           name=name)
        self._init_sleep(sleep)
        self._check_clients()

    @classmethod
    def from_config(cls: type[_RouterT], name: str, *, config: Any = None,
                    **overrides: Any) -> _RouterT:
        """A router for the entry ``[routers.NAME]`` of a config file (``config``: a path, a
        loaded `aipk.config.Config`, or None to find the file); its targets' clients
        are built from the config's provider entries; the router is named ``NAME`` (its totals in
        the metrics model). Keyword arguments override the file."""
        from aipk.config import resolve

        loaded = resolve(config, overrides.get("registry"))
        kwargs = _config_kwargs(loaded, name, asynchronous=cls._asynchronous,
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

    @property
    def name(self) -> str:
        """The router's name: its totals live under it in the metrics model
        (`aipk.observability.Metrics.router()`)."""
        return self._core.name

    def metrics(self) -> dict[str, Any]:
        """Router totals (``requests``, ``successes``, ``errors``, ``cancelled``, and the
        ``waits`` taken for ``max_wait`` with the seconds ``waited``) and, under ``targets``,
        each target's counters, tokens, latency percentiles (p50/p95/p99 of its recent
        successes), breaker mode and remaining cooldown. The totals are the model's for the
        router's `name` (they include other routers sharing the model and the name)."""
        return self._core.metrics()

    @property
    def metrics_model(self) -> Metrics:
        """The metrics model holding the targets' statistics, which the clients the router
        builds record their calls into (``metrics=``; default a new one)."""
        return self._core.metrics_model

    def __repr__(self) -> str:
        names = ", ".join(s.name for s in self._core.states)
        return (f"<{type(self).__name__} name={self._core.name!r} "
                f"strategy={self._core.strategy!r} targets=[{names}]>")


_Router = TypeVar("_Router", bound=_RouterBase)


class _RoutedStreamBase(Generic[_Router]):
    """What the sync and async routed streams share: the call, and its outcome."""

    def __init__(self, router: _Router, call: _Call) -> None:
        self._router = router
        self._call = call
        self.request = call.request
        self._response: ChatResponse | None = None

    @property
    def route(self) -> RouteInfo | None:
        """Who served the stream (None until it finished)."""
        return None if self._response is None else route_of(self._response)

    def _finished(self) -> ChatResponse:
        if self._response is None:
            raise AipkError("the stream was closed before it finished, so there is no "
                            "response; read it to the end before asking for the response")
        return self._response
