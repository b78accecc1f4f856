"""The routing strategies: the order in which a call tries the targets."""

from __future__ import annotations

from typing import Literal, get_args

Strategy = Literal["failover", "round_robin", "cheapest_first", "lowest_latency"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
