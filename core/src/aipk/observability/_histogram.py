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
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

__all__ = ["BOUNDS", "FOLD_AT", "Histogram", "cumulative", "percentile"]

STEPS = 8
LOWEST = -80
HIGHEST = 120
#: The buckets' upper bounds in seconds (the last bucket, past these, is unbounded).
BOUNDS: tuple[float, ...] = tuple(0.01 * 2.0 ** (k / STEPS) for k in range(LOWEST, HIGHEST + 1))
_SIZE = len(BOUNDS) + 1
#: How many values a histogram keeps unsorted at most (see `Histogram.fold()`).
FOLD_AT = 256



class Histogram:
    """Counts and sums per bucket, plus the exact count, sum, min and max. Not locked: the
    owner holds its own lock around `add()` and the reads. (Lists rather than arrays: a
    list's item update costs less than half an array's.)

    `add()` only appends the value to ``pending`` (what a call pays: an append, not a
    search for its bucket); `fold()` sorts the values into the buckets, all at once, every
    `FOLD_AT` values and before any read of the counts."""

    __slots__ = ("_count", "_counts", "_max", "_min", "_sum", "_sums", "pending")

    def __init__(self) -> None:
        self._counts: list[int] = [0] * _SIZE
        self._sums: list[float] = [0.0] * _SIZE
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = 0.0
        #: values added and not yet in the buckets (see `fold()`)
        self.pending: list[float] = []

    def add(self, value: float) -> None:
        pending = self.pending
        pending.append(value)
        if len(pending) >= FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Sort the ``pending`` values into the buckets. The counts and the extremes come
        out exactly as adding each value at once would make them; the sums add the values
        in ascending order rather than in the order they came (the last bit may differ)."""
        pending = self.pending
        if not pending:
            return
        values = sorted(pending)  # (floats sort in C without a Python comparison each)
        if values[0] < 0.0:  # a negative value counts as 0
            values = [0.0 if value < 0.0 else value for value in values]
        total = sum(values, self._sum)
        if total != total:  # a NaN, which sorts nowhere
            self._fold_each()
            return
        counts, sums = self._counts, self._sums
        size, last = len(values), len(BOUNDS)
        lo = 0
        while lo < size:  # one bucket at a time: the bucket of the least value left
            i = bisect_left(BOUNDS, values[lo])
            hi = size if i == last else bisect_right(values, BOUNDS[i], lo)
            counts[i] += hi - lo
            sums[i] = sum(values[lo:hi], sums[i])
            lo = hi
        if values[0] < self._min:
            self._min = values[0]
        if values[-1] > self._max:
            self._max = values[-1]
        self._count += size
        self._sum = total
        pending.clear()

    def _fold_each(self) -> None:
        """`fold()` one value at a time, in the order they came."""
        counts, sums = self._counts, self._sums
        for value in self.pending:
            if value < 0.0:
                value = 0.0
            # the bucket: the first bound at least as large (len(BOUNDS): the last bucket)
            i = bisect_left(BOUNDS, value)
            counts[i] += 1
            sums[i] += value
            self._count += 1
            self._sum += value
            if value < self._min:
                self._min = value
            if value > self._max:
                self._max = value
        self.pending.clear()

    @property
    def counts(self) -> list[int]:
        """Values per bucket."""
        self.fold()
        return self._counts

    @property
    def sums(self) -> list[float]:
        """The sum of the values in each bucket."""
        self.fold()
        return self._sums

    @property
    def count(self) -> int:
        self.fold()
        return self._count

    @property
    def sum(self) -> float:
        self.fold()
        return self._sum

    @property
    def min(self) -> float:
        self.fold()
        return self._min

    @property
    def max(self) -> float:
        self.fold()
        return self._max


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
