"""Single-flight refreshes: one refresh runs, every waiting thread and task gets its outcome."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._oauthtoken import OAuthCredential


class _Flight:
    """One refresh in progress: threads wait on an Event, tasks on futures of their loop."""

    __slots__ = ("_done", "_lock", "_waiters", "error", "result", "task")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.result: OAuthCredential | None = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    def finish(self, result: OAuthCredential | None, error: BaseException | None) -> None:
        with self._lock:
            self.result, self.error = result, error
            self._done.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there
                loop.call_soon_threadsafe(_resolve, future)

    def _outcome(self) -> OAuthCredential:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def wait(self, timeout: float) -> OAuthCredential | None:
        """The outcome, or None after ``timeout`` seconds."""
        if not self._done.wait(timeout):
            return None
        return self._outcome()

    async def await_(self, timeout: float) -> OAuthCredential | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if not self._done.is_set():
                self._waiters.append((loop, future))
            else:
                future.set_result(None)
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            return None
        return self._outcome()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

