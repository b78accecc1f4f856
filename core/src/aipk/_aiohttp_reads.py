"""aiohttp's per-read timeout (``ClientTimeout.sock_read``, aipk's ``Timeout.read``) on one
timer per connection instead of two timers per request.

aiohttp's connection protocol bounds each wait for bytes by cancelling its read timer and
scheduling a new one (``loop.call_later``) when a request has been written and again whenever
bytes arrive; an answer read in one piece costs two timer handles and two cancellations, and
the cancelled handles stay in the event loop's heap until it is rebuilt. `LazyReadTimer`
keeps the same bound with a deadline instead: arriving bytes only move the deadline, and the
connection's one timer, when it fires, either times the read out (the deadline has passed)
or sleeps on until the deadline. A read times out exactly when aiohttp's own timer would
have. An idle connection keeps its armed timer (it fires once and finds nothing to do); a
closed connection's is cancelled, and stays in the event loop's heap, as aiohttp's cancelled
timers do, until asyncio sweeps cancelled timers: at most a live and a cancelled timer per
connection.

The same protocol skips aiohttp's resume of a connection that is not paused. aiohttp's
stream reader asks the protocol to resume reading for every piece of the body it hands out
(every HTTP chunk of a stream: one per event), and the protocol then feeds its parser an
empty read and resumes the transport, both of which find nothing to do unless reading was
paused: about 5k instructions per event. Reading is held only by a pause the protocol made
(``pause_reading``, when the body's buffer is full: the parser then keeps its unparsed bytes,
or ``_pause_reading_for_buffer``), and both set a flag; `LazyReadTimer` resumes when either
is set, as aiohttp does, and skips the call otherwise. Only over aiohttp versions whose
protocol resumes that way (``_RESUMES_ON_EVERY_READ``); elsewhere aiohttp's own
``resume_reading`` runs.

Loaded only by `aipk.transports.AiohttpTransport` for the sessions it creates (a session
you pass in keeps aiohttp's own protocol), and only over the aiohttp versions whose protocol
it knows (`read_timer_connector()` checks).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import aiohttp
from aiohttp.client_proto import ResponseHandler

__all__ = ["LazyReadTimer", "read_timer_connector"]

#: what `LazyReadTimer` takes over from aiohttp's protocol (present in aiohttp 3.9 to 3.x)
_OVERRIDDEN = ("_reschedule_timeout", "_drop_timeout", "_on_read_timeout")
#: aiohttp's protocol resumes its parser (``resume_reading(resume_parser)``) and holds reading
#: for a buffer too (``_buffer_paused``), and its stream reader calls ``resume_reading`` for
#: every piece of the body it hands out: `LazyReadTimer` skips that when nothing is paused
_RESUMES_ON_EVERY_READ = (
    "resume_parser" in ResponseHandler.resume_reading.__code__.co_varnames
    and hasattr(ResponseHandler, "_buffer_paused") and hasattr(ResponseHandler, "_reading_paused"))


class LazyReadTimer(ResponseHandler):
    """aiohttp's connection protocol, its read timeout kept by a moving deadline (see the
    module)."""

    _read_deadline: float | None = None  # the read times out at this loop time (None: idle)
    _read_timer_at = 0.0  # when the connection's timer (``_read_timeout_handle``) fires

    def _reschedule_timeout(self) -> None:
        timeout = self._read_timeout
        if not timeout:
            self._read_deadline = None
            return
        deadline = self._read_deadline = self._loop.time() + timeout
        handle = self._read_timeout_handle
        if handle is None or self._read_timer_at > deadline:  # none, or too late (shorter)
            if handle is not None:
                handle.cancel()
            self._arm(deadline)

    def _drop_timeout(self) -> None:
        # the timer stays armed and finds nothing to do (a cancellation costs as much as
        # the next request's new timer would)
        self._read_deadline = None

    def _arm(self, when: float) -> None:
        self._read_timer_at = when
        self._read_timeout_handle = self._loop.call_at(when, self._read_timer_fired)

    def _read_timer_fired(self) -> None:
        self._read_timeout_handle = None
        deadline = self._read_deadline
        if deadline is None:  # no read waiting
            return
        if self._loop.time() < deadline:  # bytes came meanwhile: wait until the new deadline
            self._arm(deadline)
            return
        self._read_deadline = None
        self._on_read_timeout()

    if _RESUMES_ON_EVERY_READ:
        def resume_reading(self, resume_parser: bool = True) -> None:
            # Nothing paused: the parser holds no bytes and the transport reads (see the module).
            if self._reading_paused or self._buffer_paused:
                super().resume_reading(resume_parser)

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        handle = self._read_timeout_handle
        if handle is not None:  # let the closed connection go now, not at its timer
            handle.cancel()
            self._read_timeout_handle = None


def read_timer_connector(limit: int) -> aiohttp.TCPConnector:
    """A ``TCPConnector`` of ``limit`` connections whose protocol is `LazyReadTimer`, when
    this aiohttp's connector and protocol are the ones it was written for (else aiohttp's
    own protocol: the same timeouts, at aiohttp's cost)."""
    connector = aiohttp.TCPConnector(limit=limit)
    factory = getattr(connector, "_factory", None)
    if (isinstance(factory, functools.partial) and factory.func is ResponseHandler
            and all(callable(getattr(ResponseHandler, name, None)) for name in _OVERRIDDEN)):
        protocol: Callable[..., ResponseHandler] = LazyReadTimer
        connector._factory = functools.partial(protocol, *factory.args, **factory.keywords)
    return connector
