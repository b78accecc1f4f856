"""The public `Emulator`: owns the event loop (in a background thread, or the caller's
thread for `Emulator.serve_forever()`) and the scripted state the loop reads."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType

from ._app import App, KeyFault, State
from ._http import Connection
from ._protocol import ProtocolHandler, registered
from ._ratelimit import RateLimiter
from ._types import Fault, RecordedRequest, Reply


class Emulator:
    """A loopback HTTP/1.1 server speaking provider wire protocols, scriptable from tests.

    ``models`` replaces the ids listed by the model endpoints; ``protocols`` limits which
    registered protocols are served (default: all); ``record=False`` stops keeping
    `requests` (for long benchmark runs).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 models: Sequence[str] | None = None,
                 protocols: Iterable[str] | None = None, record: bool = True) -> None:
        available = registered()
        names = list(available) if protocols is None else list(protocols)
        unknown = [n for n in names if n not in available]
        if unknown or not names:
            raise ValueError(f"unknown protocols {unknown}; registered: {sorted(available)}. "
                             "A third-party protocol is served once its ProtocolHandler "
                             "subclass is decorated with @aipk_testkit.emulator.register "
                             "(import its module, e.g. from conftest.py, before creating "
                             "the Emulator)")
        self._handlers: dict[str, ProtocolHandler] = {n: available[n](models) for n in names}
        self._state = State(record=record)
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start serving in a background thread; returns once the port is bound."""
        if self._loop is not None:
            raise RuntimeError("the emulator is already running")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self._serve(ready.set)
            except BaseException as exc:  # start() re-raises a start-up failure
                if ready.is_set():
                    raise
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name="aipk-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def stop(self) -> None:
        """Stop serving: close the listener and every connection, then join the thread."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
            self._thread = None

    def serve_forever(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve in the calling (main) thread until SIGTERM or SIGINT; ``on_ready(base_url)``
        is called once the port is bound."""

        def ready() -> None:
            loop = self._loop
            assert loop is not None
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, loop.stop)
            if on_ready is not None:
                on_ready(self.base_url)

        self._serve(ready)

    def _serve(self, on_ready: Callable[[], None]) -> None:
        loop = asyncio.new_event_loop()
        connections: set[Connection] = set()
        app = App(list(self._handlers.values()), self._state)
        server: asyncio.Server | None = None
        try:
            server = loop.run_until_complete(loop.create_server(
                lambda: Connection(app, connections), self._host, self._port))
            self._port = server.sockets[0].getsockname()[1]
            self._loop = loop
            on_ready()
            loop.run_forever()
        finally:
            self._loop = None
            if server is not None:
                server.close()
            for conn in list(connections):
                if conn.transport is not None:
                    conn.transport.abort()
            loop.run_until_complete(asyncio.sleep(0))  # let connection_lost callbacks run
            loop.close()

    # -- addresses --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port (the ephemeral one when started with ``port=0``)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``, without a trailing slash."""
        return f"http://{self._host}:{self._port}"

    def url(self, protocol: str) -> str:
        """The base URL a client of ``protocol`` uses, e.g. ``http://127.0.0.1:PORT/v1``."""
        try:
            return self.base_url + self._handlers[protocol].mount
        except KeyError:
            raise ValueError(f"unknown protocol {protocol!r}; "
                             f"served: {sorted(self._handlers)}. A third-party protocol is "
                             "served once its ProtocolHandler subclass is decorated with "
                             "@aipk_testkit.emulator.register (import its module, e.g. from "
                             "conftest.py, before creating the Emulator)") from None

    # -- scripting --------------------------------------------------------------------------

    def enqueue(self, *items: Reply | Fault) -> None:
        """Queue replies and faults; each chat request takes the next one (FIFO).

        With the queue empty, a request gets the sticky default (`set_default()`) or,
        without one, a reply echoing its last user message: ``"echo: <text>"``.
        """
        for item in items:
            if not isinstance(item, (Reply, Fault)):
                raise TypeError(f"expected a Reply or Fault, got {type(item).__name__}")
        self._state.queue.extend(items)

    def set_default(self, reply: Reply | None) -> None:
        """Serve ``reply`` to every chat request the queue does not script (``None``: echo).

        Its bytes are encoded once per (model, stream, options, prompt size) and cached, so
        serving it costs no JSON encoding.
        """
        self._state.sticky = None if reply is None else (reply, {})

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order (the live list; ``clear()`` it freely)."""
        return self._state.requests

    def require_api_key(self, key: str | None) -> None:
        """From now on, answer 401 (in the protocol's shape) unless a request carries ``key``
        as its protocol expects (OpenAI: ``Authorization: Bearer <key>``); ``None`` turns the
        check off."""
        if key is None:
            self._state.accepts = None
        else:
            self.require_api_keys(key)

    def require_api_keys(self, *keys: str, oauth: bool = False) -> None:
        """Like `require_api_key()`, accepting any of ``keys``; with ``oauth=True`` also
        any access token the emulator's OAuth server issued that is neither expired nor
        revoked (so refresh-on-401 flows can be tested end to end)."""
        from ._oauth import oauth_server

        accepted = frozenset(keys)
        valid = oauth_server(self).access_token_valid if oauth else None

        def accepts(presented: str) -> bool:
            return presented in accepted or (valid is not None and valid(presented))

        self._state.accepts = accepts

    def fail_key(self, key: str, fault: Fault | Sequence[Fault] | None, *, rate: float = 1.0,
                 seed: int | None = None) -> None:
        """Answer every chat request presenting ``key`` with ``fault`` (e.g.
        ``Fault.status(429, retry_after=30)``) until called again with ``None``; other keys
        are served normally. For testing key pools and failover.

        With ``rate`` below 1, only that fraction of the key's requests fail (at random,
        reproducible with ``seed``); a sequence of faults picks one at random per failure.
        The rest take the queue or the default reply as usual.
        """
        if fault is None:
            self._state.key_faults.pop(key, None)
            return
        faults = (fault,) if isinstance(fault, Fault) else tuple(fault)
        if not faults or not all(isinstance(f, Fault) for f in faults):
            raise TypeError("fail_key takes a Fault, a non-empty sequence of them, or None")
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"rate is a fraction in (0, 1], not {rate!r}")
        self._state.key_faults[key] = KeyFault(faults, rate, random.Random(seed))

    def enqueue_for_key(self, key: str, *items: Reply | Fault) -> None:
        """Queue replies and faults for the requests presenting ``key`` only: each of them
        takes the next one before anything `fail_key()` or `enqueue()` scripted. For
        scripting what concurrent requests to one key get, in their order of arrival."""
        for item in items:
            if not isinstance(item, (Reply, Fault)):
                raise TypeError(f"expected a Reply or Fault, got {type(item).__name__}")
        self._state.key_queues.setdefault(key, deque()).extend(items)

    def delay_endpoint(self, endpoint: str, seconds: float | None) -> None:
        """Answer every request to the non-chat ``endpoint`` (``"models"``, the listing
        health probes use; ``"count_tokens"`` …) ``seconds`` late, until called again with
        ``None``. For testing timeouts of requests that are not chat calls."""
        if seconds is None:
            self._state.endpoint_delays.pop(endpoint, None)
            return
        if not seconds >= 0:
            raise ValueError(f"seconds must be 0 or more, not {seconds!r}")
        self._state.endpoint_delays[endpoint] = float(seconds)

    def set_rate_limit(self, requests: int, tokens: int, window: float = 60.0) -> None:
        """Budget ``requests`` and ``tokens`` per ``window`` seconds, starting now.

        Every routed response then carries the protocol's rate-limit headers, counting down
        per request and per token of each reply; once the requests (or tokens) are used up,
        requests get a 429 with ``retry-after`` = the seconds until the window resets.
        """
        self._state.limiter = RateLimiter(requests, tokens, window)

    def reset(self) -> None:
        """Clear the queues, the recorded requests, the key requirement and faults, the rate
        limit and the sticky default."""
        state = self._state
        state.queue.clear()
        state.requests.clear()
        state.accepts = None
        state.key_faults.clear()
        state.key_queues.clear()
        state.limiter = None
        state.sticky = None
        state.endpoint_delays.clear()
