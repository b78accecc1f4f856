"""Failover and routing over several targets (provider, model, credentials).

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

from aipk._breaker import BreakerPolicy, BreakerState, CircuitBreaker, CooldownPolicy
from aipk.errors import AllTargetsFailedError
from aipk.observability._targets import TargetMetrics

from ._async import AsyncRoutedStream, AsyncRouter
from ._policy import (
    DEFAULT_BREAKER,
    DEFAULT_COOLDOWN,
    TARGET_RETRY,
    Verdict,
    classify,
    is_context_window_error,
)
from ._strategies import STRATEGIES, Strategy
from ._sync import RoutedStream, Router
from ._target import RouteInfo, Target, route_of

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

# What this package defines reads as aipk.router's own (reprs, pickles, the API reference), as
# it did when the router was one module.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith(__name__ + "._"):
        _obj.__module__ = __name__
del _name, _obj
