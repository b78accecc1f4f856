"""Router totals kept in the metrics model: each router's calls by outcome, and the waits it
took for ``max_wait``, keyed by the router's name (``Router(name=...)``).

Each router name has its own [`RouterMetrics`][aipk.observability.RouterMetrics] with its own lock,
held for one or two additions per call; routers sharing a model and a name add up.
"""

from __future__ import annotations

import threading
from typing import Any

import attrs

from aipk._records import record
from aipk.errors import ConfigurationError

__all__ = ["DEFAULT_ROUTER_NAME", "RouterMetrics", "RouterTotals", "check_router_name"]

#: The name of a router built without ``name=``.
DEFAULT_ROUTER_NAME = "router"


def check_router_name(name: object) -> str:
    """``name`` if it can label a router's totals; else ConfigurationError naming the fix."""
    if not isinstance(name, str):
        raise ConfigurationError(f"a router's name= takes a string, not {type(name).__name__} "
                                 f"(e.g. Router(targets, name='chat'))")
    if not name or name != name.strip() or not name.isprintable() or len(name) > 200:
        raise ConfigurationError(
            f"a router's name= must be 1 to 200 printable characters without surrounding "
            f"spaces, not {name!r} (e.g. Router(targets, name='chat'))")
    return name


@record(kw_only=True)
class RouterTotals:
    """One router name's totals at a moment. ``requests`` counts calls that started;
    each ended one is in exactly one of ``successes``, ``errors`` or ``cancelled``.

    Attributes:
        name: The router's name (``Router(name=...)``; default ``"router"``).
        requests: Calls made through the router.
        successes: Calls that answered their caller.
        errors: Calls that raised an exception to their caller.
        cancelled: Calls cancelled (or streams closed early) by their caller.
        waits: Pauses taken for a target to become available (``max_wait``).
        waited: Seconds spent in those pauses.
    """

    name: str
    requests: int = 0
    successes: int = 0
    errors: int = 0
    cancelled: int = 0
    waits: int = 0
    waited: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return attrs.asdict(self)


class RouterMetrics:
    """The live totals of one router name (thread-safe; one small lock)."""

    __slots__ = ("_lock", "cancelled", "errors", "name", "requests", "successes", "waited",
                 "waits")

    def __init__(self, name: str) -> None:
        self._lock = threading.Lock()
        self.name = name
        self.requests = self.successes = self.errors = self.cancelled = self.waits = 0
        self.waited = 0.0

    def started(self) -> None:
        """A call began."""
        with self._lock:
            self.requests += 1

    def succeeded(self) -> None:
        """A call answered its caller."""
        with self._lock:
            self.successes += 1

    def failed(self) -> None:
        """A call raised an exception to its caller."""
        with self._lock:
            self.errors += 1

    def was_cancelled(self) -> None:
        """A call was cancelled by its caller."""
        with self._lock:
            self.cancelled += 1

    def wait(self, seconds: float) -> None:
        """A call paused ``seconds`` for a target to become available."""
        with self._lock:
            self.waits += 1
            self.waited += seconds

    def snapshot(self) -> RouterTotals:
        with self._lock:
            return RouterTotals(name=self.name, requests=self.requests,
                                successes=self.successes, errors=self.errors,
                                cancelled=self.cancelled, waits=self.waits, waited=self.waited)
