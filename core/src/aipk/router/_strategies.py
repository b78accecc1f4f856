"""The routing strategies: the order in which one call tries the targets."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, Literal, TypeVar, get_args

from aipk.errors import ConfigurationError

Strategy = Literal["failover", "round_robin", "cheapest_first", "lowest_latency"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)

_T = TypeVar("_T")


class Ordering(Generic[_T]):
    """Orders the targets (given in the router's order) for each call by ``strategy``:

    * ``failover``: as listed;
    * ``round_robin``: as listed, rotated one step per call;
    * ``cheapest_first``: by ``price`` (``(unknown, input + output per million)``: unknown
      prices last, ties as listed), computed once;
    * ``lowest_latency``: by ``latency`` (a smoothed latency, None before the first
      measurement: unmeasured targets first, so each gets measured), ties as listed.
    """

    __slots__ = ("_cheapest", "_latency", "_price", "_rr", "_rr_lock", "strategy", "targets")

    def __init__(self, strategy: str, targets: Sequence[_T], *,
                 price: Callable[[_T], tuple[bool, float]],
                 latency: Callable[[_T], float | None]) -> None:
        if strategy not in STRATEGIES:
            raise ConfigurationError(
                f"unknown routing strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
        self.strategy = strategy
        self.targets = list(targets)
        self._price = price
        self._latency = latency
        self._rr = 0
        self._rr_lock = threading.Lock()
        self._cheapest: list[_T] | None = None

    def order(self) -> list[_T]:
        """The targets in the order this call tries them (do not modify the list)."""
        targets = self.targets
        if self.strategy == "failover":
            return targets
        if self.strategy == "round_robin":
            with self._rr_lock:
                start = self._rr
                self._rr = (start + 1) % len(targets)
            return targets[start:] + targets[:start]
        if self.strategy == "cheapest_first":
            if self._cheapest is None:
                self._cheapest = sorted(targets, key=self._price)
            return self._cheapest
        latency = self._latency
        return sorted(targets, key=lambda t: latency(t) or 0.0)  # stable: ties as listed
