"""Active health checks: probe each provider (a cheap model listing) on an interval, record
latency and status, tell callbacks about changes, and keep unhealthy targets out of the way.

`HealthChecker` runs in a thread, `AsyncHealthChecker` in an asyncio task; both
stop cleanly (``stop()`` / ``await stop()`` or ``with``/``async with``) and leave nothing
running. A probe goes through the client's credential source, so a key pool hears of its
failures (the key backs off) like with a user request; probes are not counted in
``client.metrics()``. Given a ``router``, an unhealthy target is cooled down there for one
interval, so user calls skip it. States follow Envoy's thresholds: ``unhealthy_threshold``
failures in a row make a target unhealthy, fewer make it degraded, and so does a probe slower
than ``degraded_latency``; one success makes it healthy again.

A probe has its own timeout (``probe_timeout``, default `PROBE_TIMEOUT` seconds to
connect and for each read), not the client's long read timeout, and is not retried: one probe
is one sample, and ``unhealthy_threshold`` absorbs a stray failure. A probe that timed out says
so and names the setting to raise (``probe_timeout=``, or ``aipk health --timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from ._http import check_seconds
from ._retry import RetryPolicy
from .errors import ConfigurationError, ProviderError, RequestTimeout

if TYPE_CHECKING:
    from ._async_client import AsyncClient
    from ._client import Client

__all__ = ["PROBE_TIMEOUT", "AsyncHealthChecker", "HealthChecker", "HealthState",
           "TargetHealth", "check_providers"]

#: Seconds a probe waits to connect and for each read, unless ``probe_timeout=`` says otherwise.
PROBE_TIMEOUT = 10.0
#: Probes are not retried (a failed key still fails over to the next one in a pool).
_PROBE_RETRY = RetryPolicy(max_retries=0)
#: The fix a client's timeout error names; a probe's timeout is set elsewhere.
_CLIENT_TIMEOUT_FIX = "raise timeout="

HealthState = Literal["unknown", "healthy", "degraded", "unhealthy"]


@attrs.frozen(kw_only=True)
class TargetHealth:
    """The last probe of one target."""

    #: the name the checker was given for the target (a router target's name, or the provider)
    target: str
    #: the provider's name
    provider: str
    #: ``unknown`` before the first probe, then ``healthy``, ``degraded`` or ``unhealthy``
    state: HealthState = "unknown"
    #: the last probe's seconds (None before the first)
    latency: float | None = None
    #: the last probe's error (its class and message; never a secret)
    error: str | None = None
    #: failed probes in a row
    consecutive_failures: int = 0
    #: when the last probe ended (the checker's clock)
    checked_at: float | None = None
    #: the remaining share (0..1) of the request rate limit the provider last reported
    headroom: float | None = None


class _Cooling(Protocol):
    def cool_down(self, name: str, seconds: float) -> None: ...


ChangeCallback = Callable[[TargetHealth, TargetHealth], object]


def _headroom(client: Client | AsyncClient, model: str | None) -> float | None:
    state = client.rate_limits("") or (client.rate_limits(model) if model else None)
    window = state.requests if state is not None else None
    if window is None or not window.limit or window.remaining is None:
        return None
    return max(0.0, min(1.0, window.remaining / window.limit))


class _Core:
    """What both checkers share: settings, the states, and judging one probe."""

    def __init__(self, targets: Mapping[str, Client | AsyncClient] | Sequence[
                     Client | AsyncClient], *, interval: float, jitter: float,
                 unhealthy_threshold: int, degraded_latency: float | None,
                 on_change: ChangeCallback | None, router: _Cooling | None,
                 clock: Callable[[], float], headroom_model: str | None,
                 probe_timeout: float) -> None:
        if interval <= 0:
            raise ConfigurationError(f"interval must be positive seconds, not {interval!r}")
        #: seconds a probe waits to connect and for each read
        self.probe_timeout = check_seconds(probe_timeout, "probe_timeout=")
        #: the setting a timed-out probe's error tells to raise
        self.timeout_setting = "probe_timeout="
        if unhealthy_threshold < 1:
            raise ConfigurationError("unhealthy_threshold must be at least 1")
        named = (dict(targets) if isinstance(targets, Mapping)
                 else {c.provider_name: c for c in targets})
        if not named:
            raise ConfigurationError("give the health checker at least one client to check")
        #: name -> Client (HealthChecker) or AsyncClient (AsyncHealthChecker)
        self.clients: dict[str, Any] = named
        self.interval = interval
        self.jitter = jitter
        self.unhealthy_threshold = unhealthy_threshold
        self.degraded_latency = degraded_latency
        self.router = router
        self.clock = clock
        self.headroom_model = headroom_model
        self.callbacks: list[ChangeCallback] = [on_change] if on_change else []
        self.lock = threading.Lock()
        self.health = {name: TargetHealth(target=name, provider=c.provider_name)
                       for name, c in named.items()}

    def failure(self, exc: ProviderError) -> str:
        """A failed probe's error message; a timeout names the probe's timeout setting."""
        text = str(exc)
        if not isinstance(exc, RequestTimeout):
            return text
        head, found, tail = text.rpartition(_CLIENT_TIMEOUT_FIX)
        fix = f"raise {self.timeout_setting} (now {self.probe_timeout:g}s)"
        return f"{head}{fix}{tail}" if found else f"{text}; {fix}"

    def probe(self, client: Client) -> tuple[bool, float, str | None]:
        """One probe (a model listing): healthy, seconds taken, error."""
        start = time.monotonic()
        try:
            client.models(timeout=self.probe_timeout, retry=_PROBE_RETRY)
        except ProviderError as exc:
            return False, time.monotonic() - start, self.failure(exc)
        return True, time.monotonic() - start, None

    async def aprobe(self, client: AsyncClient) -> tuple[bool, float, str | None]:
        """`probe()` for an asyncio client."""
        start = time.monotonic()
        try:
            await client.models(timeout=self.probe_timeout, retry=_PROBE_RETRY)
        except ProviderError as exc:
            return False, time.monotonic() - start, self.failure(exc)
        return True, time.monotonic() - start, None

    def delay(self) -> float:
        return self.interval * (1.0 + self.jitter * (2.0 * random.random() - 1.0))

    def judge(self, name: str, healthy: bool, latency: float, error: str | None,
              headroom: float | None) -> TargetHealth:
        with self.lock:
            old = self.health[name]
            failures = 0 if healthy else old.consecutive_failures + 1
            state: HealthState
            if not healthy:
                state = "unhealthy" if failures >= self.unhealthy_threshold else "degraded"
            elif self.degraded_latency is not None and latency > self.degraded_latency:
                state = "degraded"
            else:
                state = "healthy"
            new = attrs.evolve(old, state=state, latency=latency, error=error,
                               consecutive_failures=failures, checked_at=self.clock(),
                               headroom=headroom)
            self.health[name] = new
        if state == "unhealthy" and self.router is not None:
            self.router.cool_down(name, self.interval)
        if new.state != old.state:
            for callback in list(self.callbacks):
                callback(old, new)
        return new

    def statuses(self) -> list[TargetHealth]:
        with self.lock:
            return list(self.health.values())


class HealthChecker:
    """Checks synchronous clients from a background thread every ``interval`` seconds (±
    ``jitter`` as a fraction). ``targets`` is ``{name: client}`` (names as the router's
    targets when ``router`` is given) or a list of clients (named by provider).
    ``on_change(old, new)`` and `add_callback()` callbacks run on state changes, in the
    checker's thread. Headroom is read from the rate limits the model listing reported, else
    from those of ``headroom_model`` (the model your calls use). ``probe_timeout`` (seconds,
    default `PROBE_TIMEOUT`) bounds a probe's connect and each read, whatever the
    client's timeout; a probe that times out is a failed one."""

    def __init__(self, targets: Mapping[str, Client] | Sequence[Client], *,
                 interval: float = 300.0, jitter: float = 0.1, unhealthy_threshold: int = 2,
                 degraded_latency: float | None = None,
                 on_change: ChangeCallback | None = None, router: _Cooling | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 headroom_model: str | None = None,
                 probe_timeout: float = PROBE_TIMEOUT) -> None:
        self._core = _Core(targets, interval=interval, jitter=jitter,
                           unhealthy_threshold=unhealthy_threshold,
                           degraded_latency=degraded_latency, on_change=on_change,
                           router=router, clock=clock, headroom_model=headroom_model,
                           probe_timeout=probe_timeout)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_callback(self, callback: ChangeCallback) -> None:
        """Call ``callback(old, new)`` whenever a target's state changes."""
        self._core.callbacks.append(callback)

    def statuses(self) -> list[TargetHealth]:
        """Every target's last probe."""
        return self._core.statuses()

    def check_once(self) -> list[TargetHealth]:
        """Probe every target now (in this thread) and return their states."""
        for name, client in self._core.clients.items():
            healthy, latency, error = self._core.probe(client)
            self._core.judge(name, healthy, latency, error,
                             _headroom(client, self._core.headroom_model))
        return self.statuses()

    def start(self) -> None:
        """Probe now and then every interval, in a daemon thread, until `stop()`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="aipk-health", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check_once()
            self._stop.wait(self._core.delay())

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread and wait for it (a probe under way finishes first)."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> HealthChecker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class AsyncHealthChecker:
    """The asyncio twin of `HealthChecker` over [`AsyncClient`][aipk.AsyncClient] clients:
    a task started by `start()` (or ``async with``), cancelled by ``await stop()``.
    Probes run concurrently, each bounded by ``probe_timeout``."""

    def __init__(self, targets: Mapping[str, AsyncClient] | Sequence[AsyncClient], *,
                 interval: float = 300.0, jitter: float = 0.1, unhealthy_threshold: int = 2,
                 degraded_latency: float | None = None,
                 on_change: ChangeCallback | None = None, router: _Cooling | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 headroom_model: str | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 probe_timeout: float = PROBE_TIMEOUT) -> None:
        self._core = _Core(targets, interval=interval, jitter=jitter,
                           unhealthy_threshold=unhealthy_threshold,
                           degraded_latency=degraded_latency, on_change=on_change,
                           router=router, clock=clock, headroom_model=headroom_model,
                           probe_timeout=probe_timeout)
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    def add_callback(self, callback: ChangeCallback) -> None:
        """Call ``callback(old, new)`` whenever a target's state changes."""
        self._core.callbacks.append(callback)

    def statuses(self) -> list[TargetHealth]:
        """Every target's last probe."""
        return self._core.statuses()

    async def check_once(self) -> list[TargetHealth]:
        """Probe every target now, concurrently, and return their states."""
        names = list(self._core.clients)
        clients = [self._core.clients[n] for n in names]
        results = await asyncio.gather(*(self._core.aprobe(c) for c in clients))
        for name, client, (healthy, latency, error) in zip(names, clients, results, strict=True):
            self._core.judge(name, healthy, latency, error,
                             _headroom(client, self._core.headroom_model))
        return self.statuses()

    def start(self) -> None:
        """Start the checking task on the running loop (probes now, then every interval)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="aipk-health")

    async def _run(self) -> None:
        while True:
            await self.check_once()
            await self._sleep(self._core.delay())

    async def stop(self) -> None:
        """Cancel the task and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def __aenter__(self) -> AsyncHealthChecker:
        self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


def check_providers(providers: Sequence[str], *, base_url: str | None = None,
                    out: Callable[[str], object] = print,
                    timeout: float = PROBE_TIMEOUT) -> int:
    """What ``aipk health`` does: probe each provider once (``name`` or ``name=base_url``;
    ``base_url`` is the default for the others; each probe bounded by ``timeout`` seconds),
    print a table of status, latency and rate-limit headroom, and return 1 if any is
    unhealthy (else 0)."""
    from ._client import Client
    from .errors import AipkError

    rows: list[TargetHealth] = []
    for entry in providers:
        name, _, url = entry.partition("=")
        try:
            client = Client(name, base_url=url or base_url)
        except AipkError as exc:
            rows.append(TargetHealth(target=entry, provider=name, state="unhealthy",
                                     error=f"{type(exc).__name__}: {exc}"))
            continue
        with client:
            checker = HealthChecker({name: client}, unhealthy_threshold=1,
                                    probe_timeout=timeout)
            checker._core.timeout_setting = "aipk health --timeout"
            (row,) = checker.check_once()
        rows.append(row)
    width = max(8, *(len(r.target) for r in rows))
    out(f"{'PROVIDER':<{width}}  {'STATUS':<9}  {'LATENCY':>8}  {'HEADROOM':>8}  ERROR")
    for r in rows:
        latency = f"{r.latency * 1000:.0f}ms" if r.latency is not None else "-"
        headroom = f"{r.headroom:.0%}" if r.headroom is not None else "-"
        out(f"{r.target:<{width}}  {r.state:<9}  {latency:>8}  {headroom:>8}  {r.error or ''}")
    return 1 if any(r.state == "unhealthy" for r in rows) else 0
