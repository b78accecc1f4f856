"""A clock tests hand to clients and key pools (``clock=``, ``sleep=``): epoch-like time that
moves only when someone sleeps, so backoffs and waits pass at once and can be asserted."""

from __future__ import annotations

import time


class FakeClock:
    """Epoch-like time that only moves when someone sleeps; ``sleeps`` lists each sleep."""

    def __init__(self) -> None:
        self.now = time.time()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
