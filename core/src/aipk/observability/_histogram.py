"""A bounded latency histogram: fixed log-spaced buckets, so memory stays flat however many
values it records, and p50/p95/p99 come out within one bucket's width (about 9%).

Bucket ``i`` holds the values in ``(BOUNDS[i-1], BOUNDS[i]]`` with
``BOUNDS[i] = 0.01 * 2 ** ((i + LOWEST) / STEPS)`` seconds: eight buckets per doubling, from
about 10 µs to about 5.5 minutes, plus one for anything longer. Every OpenTelemetry GenAI duration
boundary (0.01 s x 2ⁿ) is one of them, so exporters can hand out the spec's coarse buckets
exactly. Each bucket also keeps the sum of its values, so a percentile is the mean of the
bucket it falls in: exact when the values in that bucket are equal.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence

__all__ = ["BOUNDS", "Histogram", "cumulative", "percentile"]

STEPS = 8
LOWEST = -80
HIGHEST = 120
#: The buckets' upper bounds in seconds (the last bucket, past these, is unbounded).
BOUNDS: tuple[float, ...] = tuple(0.01 * 2.0 ** (k / STEPS) for k in range(LOWEST, HIGHEST + 1))
_SIZE = len(BOUNDS) + 1



class Histogram:
    """Counts and sums per bucket, plus the exact count, sum, min and max. Not locked: the
    owner holds its own lock around `add()`. (Lists rather than arrays: a list's item
    update costs less than half an array's, and `add()` runs once per call.)"""

    __slots__ = ("count", "counts", "max", "min", "sum", "sums")

    def __init__(self) -> None:
        self.counts: list[int] = [0] * _SIZE
        self.sums: list[float] = [0.0] * _SIZE
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = 0.0

    def add(self, value: float) -> None:
        if value < 0.0:
            value = 0.0
        # the bucket: the first bound at least as large (len(BOUNDS): the last bucket), by
        # a binary search in C
        i = bisect_left(BOUNDS, value)
        self.counts[i] += 1
        self.sums[i] += value
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value


def percentile(counts: Sequence[int], sums: Sequence[float], count: int, q: float) -> float | None:
    """The ``q`` quantile (0 < q <= 1, nearest rank) of the recorded values: the mean of the
    bucket holding that rank. None when nothing was recorded."""
    if count <= 0:
        return None
    rank = max(1, math.ceil(q * count - 1e-9))
    seen = 0
    for i, n in enumerate(counts):
        if n:
            seen += n
            if seen >= rank:
                return sums[i] / n
    return None  # pragma: no cover - counts sum to count


def cumulative(counts: Sequence[int], bounds: Sequence[float]) -> list[int]:
    """How many values were at most each of ``bounds`` (ascending seconds). Exact for bounds
    that are in `BOUNDS` (all of OpenTelemetry's 0.01 s x 2ⁿ are); other bounds count
    the buckets whose upper bound is at most them."""
    out: list[int] = []
    running = 0
    i = 0
    last = len(BOUNDS)
    for bound in bounds:
        while i < last and BOUNDS[i] <= bound * (1 + 1e-9):
            running += counts[i]
            i += 1
        out.append(running)
    return out
