"""Rate-limit state, the value parsers plugins share, and the tracker that merges updates.

A plugin's ``aipk_parse_rate_limits`` hook turns response headers into a
[`RateLimitState`][aipk._ratelimit.RateLimitState] using the parsers here (`parse_duration()`,
`parse_reset()`, `parse_retry_after()`). Every reset is stored as an absolute time (seconds
since the epoch), so state can be merged and compared later. Nonsense values (negative, huge,
garbage dates, the ``-1``/``0`` sentinel limits some deployments send) are ignored with a debug log
line, never raised.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from ._records import fast_record, record_builder
from .state import MemoryStore, StateStore

__all__ = [
    "MAX_RESET_SECONDS",
    "RateLimitState",
    "RateLimitTracker",
    "RateLimitWindow",
    "parse_count",
    "parse_duration",
    "parse_reset",
    "parse_retry_after",
]

log = logging.getLogger("aipk.ratelimit")

#: Resets and retry-after values further out than this are treated as nonsense and ignored.
MAX_RESET_SECONDS = 7 * 24 * 3600.0

_DIGITS = frozenset("0123456789")
#: a duration's units, the two-letter ones first (``1ms`` is a millisecond, ``1m5s`` a minute)
_TWO_LETTER_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3}
_ONE_LETTER_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str) -> float | None:
    """Seconds from a Go-style duration (``1s``, ``6m0s``, ``1m26.4s``, ``12ms``, ``1h2m3s``)
    or a bare number of seconds; None for anything else."""
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        parsed = _duration_parts(text)
        if parsed is None:
            return None
        seconds = parsed
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_RESET_SECONDS:
        return None
    return seconds


def _duration_parts(text: str) -> float | None:
    """The seconds of ``text`` read as Go duration parts (an ASCII number, ``1``, ``1.5``,
    ``1.`` or ``.5``, then its unit), one after another to the end; None otherwise."""
    seconds = 0.0
    i, end = 0, len(text)
    while i < end:
        start = i
        while i < end and text[i] in _DIGITS:
            i += 1
        whole = i > start
        if i < end and text[i] == ".":
            i += 1
            fraction = i
            while i < end and text[i] in _DIGITS:
                i += 1
            if not whole and i == fraction:
                return None
        elif not whole:
            return None
        number = float(text[start:i])
        unit = text[i:i + 2]
        scale = _TWO_LETTER_UNITS.get(unit)
        if scale is None:
            unit = text[i:i + 1]
            scale = _ONE_LETTER_UNITS.get(unit)
            if scale is None:
                return None
        seconds += number * scale
        i += len(unit)
    return seconds


def parse_count(value: str | None) -> int | None:
    """A non-negative integer header value; None for missing, garbage, or negative sentinels."""
    if value is None:
        return None
    try:
        number = int(value)  # int() and float() ignore surrounding whitespace themselves
    except ValueError:
        try:
            as_float = float(value)
        except ValueError:
            log.debug("ignoring rate-limit count %r: not a number", value)
            return None
        if not math.isfinite(as_float) or as_float != int(as_float):
            log.debug("ignoring rate-limit count %r: not a whole number", value)
            return None
        number = int(as_float)
    if number < 0:
        log.debug("ignoring rate-limit count %r: negative sentinel", value)
        return None
    return number


#: A relative reset this far ahead or less is in range whatever ``now`` is (a second of margin
#: for the rounding of ``now + seconds``), so `parse_reset()` returns it without the checks.
_SURELY_IN_RANGE = MAX_RESET_SECONDS - 1.0


#: relative reset texts already read (``"6ms"``: 0.006) whose seconds are surely in range: a
#: dict lookup costs less than the `_reset_of` cache's call (at most 1024 kept)
_RELATIVE: dict[str | None, float] = {}


def parse_reset(value: str | None, now: float) -> float | None:
    """An absolute reset time (epoch seconds) from a relative duration (``"6ms"``,
    ``"1m30s"``, ``"20"``), unix seconds or milliseconds, an RFC 3339 timestamp or an HTTP
    date; None when the value makes no sense.

    A time more than a second before ``now``, or more than seven days after it, is out of
    range and gives None (so a test with a fixed ``now`` must pass a ``now`` near the
    timestamps it parses); a time up to a second in the past gives ``now``."""
    seconds = _RELATIVE.get(value)
    if seconds is not None:  # the usual relative reset, read before
        return now + seconds
    if value is None:
        return None
    parsed = _reset_of(value)
    if parsed is None:
        return None
    absolute, number = parsed
    if not absolute and 0.0 <= number < _SURELY_IN_RANGE:  # the usual relative reset
        if len(_RELATIVE) >= 1024:
            _RELATIVE.clear()
        _RELATIVE[value] = number
        return now + number
    at = number if absolute else now + number
    if at < now - 1.0 or at - now > MAX_RESET_SECONDS:
        log.debug("ignoring rate-limit reset %r: out of range", value)
        return None
    return at if at > now else now


@functools.lru_cache(maxsize=1024)
def _reset_of(value: str) -> tuple[bool, float] | None:
    """What a reset header's text says, independent of the time: ``(absolute, seconds)``.

    Cached: providers repeat a small set of values (``6ms``, ``1s``, ``20s``) on every
    response, and parsing a duration costs two failed ``float()`` calls and a regex."""
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number):
        if number > 1e12:  # epoch milliseconds (OpenRouter)
            return True, number / 1000.0
        if number > 1e9:  # epoch seconds
            return True, number
        return False, number
    seconds = parse_duration(text)
    if seconds is not None:
        return False, seconds
    at = _parse_timestamp(text)
    if at is None:
        log.debug("ignoring rate-limit reset %r: unrecognised format", value)
        return None
    return True, at


def _parse_timestamp(text: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        import email.utils  # deferred: costs ~10 ms at import and is rarely needed

        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed.tzinfo is None:  # no zone given (or "-0000"): UTC, never this machine's local time
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from ``retry-after-ms``, then ``retry-after`` (seconds or HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            ms = float(raw_ms)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and 0 <= ms <= MAX_RESET_SECONDS * 1000:
            return ms / 1000.0
        log.debug("ignoring retry-after-ms %r", raw_ms)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        at = _parse_timestamp(raw.strip())
        if at is None:
            log.debug("ignoring retry-after %r: neither seconds nor an HTTP date", raw)
            return None
        seconds = at - now
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_RESET_SECONDS:
        log.debug("ignoring retry-after %r: out of range", raw)
        return None
    return seconds


@fast_record(kw_only=True)
class RateLimitWindow:
    """One limit: its size, what is left, and when it resets (absolute, epoch seconds).

    Attributes:
        limit: The window's size.
        remaining: What is left in the window.
        reset_at: When the window resets (epoch seconds).
    """

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None

    @classmethod
    def from_values(cls, limit: str | None, remaining: str | None,
                    reset_at: float | None) -> RateLimitWindow | None:
        """A window from raw limit/remaining header values and an already parsed reset; None
        when they say nothing. A limit of 0 is a sentinel some deployments send: no
        information, so limit and remaining are dropped."""
        if limit is None and remaining is None and reset_at is None:
            return None
        # The usual header (plain digits) through int() at once: `parse_count()` starts with
        # the same int() and differs only for what int() refuses or a negative number.
        if limit is None:
            limit_n: int | None = None
        elif (limit_n := _LIMITS.get(limit)) is None:  # a window's size repeats: converted once
            try:
                limit_n = int(limit)
            except ValueError:
                limit_n = parse_count(limit)
            else:
                if limit_n < 0:
                    limit_n = parse_count(limit)  # None, logged as a negative sentinel
            if limit_n is not None:
                if len(_LIMITS) >= 256:
                    _LIMITS.clear()
                _LIMITS[limit] = limit_n
        if remaining is None:
            remaining_n: int | None = None
        else:
            try:
                remaining_n = int(remaining)
            except ValueError:
                remaining_n = parse_count(remaining)
            else:
                if remaining_n < 0:
                    remaining_n = parse_count(remaining)
        if not limit_n:  # no limit, or the 0 sentinel (which drops remaining too)
            if limit_n == 0:
                limit_n = remaining_n = None
            if remaining_n is None and reset_at is None:
                return None
        if cls is RateLimitWindow:
            # `_window()`, inline: this runs for every window of every response
            window: Any = _WindowBuilder()
            window.limit = limit_n
            window.remaining = remaining_n
            window.reset_at = reset_at
            window.__class__ = RateLimitWindow
            return window  # type: ignore[no-any-return]
        return cls(limit=limit_n, remaining=remaining_n, reset_at=reset_at)

    def merge(self, newer: RateLimitWindow | None) -> RateLimitWindow:
        """This window updated by ``newer``: each field ``newer`` sets wins, the rest are
        kept."""
        if newer is None:
            return self
        if newer.limit is not None and newer.remaining is not None and (
                newer.reset_at is not None):  # the usual update says everything
            return newer
        return RateLimitWindow(
            limit=newer.limit if newer.limit is not None else self.limit,
            remaining=newer.remaining if newer.remaining is not None else self.remaining,
            reset_at=newer.reset_at if newer.reset_at is not None else self.reset_at,
        )

    def exhausted(self, now: float, need: int = 1) -> bool:
        """True when fewer than ``need`` remain and the window has not reset yet."""
        if self.remaining is None or self.remaining >= need:
            return False
        return self.reset_at is None or self.reset_at > now

    def used_fraction(self) -> float | None:
        """The share of the limit used (0.0 to 1.0); None without a limit or a remaining
        count."""
        if not self.limit or self.remaining is None:
            return None
        return 1.0 - min(self.remaining, self.limit) / self.limit


def _callable_builder(cls: type) -> type[Any]:
    """``cls``'s builder (`record_builder`), callable with no arguments: ``maker()`` is a new
    record to fill in with plain stores, then switch to ``cls``; for less than
    ``object.__new__(builder)``, whose wrapper copies its arguments."""
    builder = record_builder(cls)
    metaclass: Any = type(builder)
    return metaclass(cls.__name__, (builder,), {  # type: ignore[no-any-return]
        "__slots__": (), "__init__": object.__init__, "__module__": cls.__module__,
        "__qualname__": cls.__qualname__})


#: RateLimitWindow's builder (`_callable_builder`): a new window is filled in with plain stores
_WindowBuilder = _callable_builder(RateLimitWindow)


def _window(limit: int | None, remaining: int | None, reset_at: float | None) -> (
        RateLimitWindow):
    """``RateLimitWindow(limit=limit, remaining=remaining, reset_at=reset_at)``, built without
    the keyword call through the class (which packs and unpacks the keywords: a third of the
    record's cost). A test checks that it sets every field."""
    window: Any = _WindowBuilder()
    window.limit = limit
    window.remaining = remaining
    window.reset_at = reset_at
    window.__class__ = RateLimitWindow
    return window  # type: ignore[no-any-return]


#: limit header texts already converted (sizes repeat on every response; at most 256 kept)
_LIMITS: dict[str, int] = {}

_WINDOWS = ("requests", "tokens", "input_tokens", "output_tokens", "daily_requests",
            "daily_tokens")


@fast_record(kw_only=True)
class RateLimitState:
    """What the provider last said about its limits. ``not_before`` is absolute (epoch seconds).

    Attributes:
        requests: The requests-per-window limit.
        tokens: The tokens-per-window limit.
        input_tokens: The input-tokens-per-window limit, where reported separately.
        output_tokens: The output-tokens-per-window limit, where reported separately.
        daily_requests: The requests-per-day limit.
        daily_tokens: The tokens-per-day limit.
        not_before: No request should be sent before this time (epoch seconds), from ``retry-
            after``.
        credits_remaining: Prepaid credit left, where the provider reports it.
        observed_at: When the headers were read (epoch seconds).
    """

    requests: RateLimitWindow | None = None
    tokens: RateLimitWindow | None = None
    input_tokens: RateLimitWindow | None = None
    output_tokens: RateLimitWindow | None = None
    daily_requests: RateLimitWindow | None = None
    daily_tokens: RateLimitWindow | None = None
    not_before: float | None = None
    credits_remaining: float | None = None
    observed_at: float = 0.0

    def merge(self, newer: RateLimitState) -> RateLimitState:
        """This state updated by ``newer``: fields ``newer`` sets win, the rest are kept;
        except ``not_before``, the later of the two (a provider's wait only extends)."""
        if (type(self) is RateLimitState and type(newer) is RateLimitState
                and self.not_before is None and self.credits_remaining is None
                and newer.observed_at >= self.observed_at
                # `_complete()` inline for the two windows nearly every provider reports
                and (self.requests is None or (
                    (window := newer.requests) is not None and window.limit is not None
                    and window.remaining is not None and window.reset_at is not None))
                and (self.tokens is None or (
                    (window := newer.tokens) is not None and window.limit is not None
                    and window.remaining is not None and window.reset_at is not None))
                and (self.input_tokens is None or _complete(newer.input_tokens))
                and (self.output_tokens is None or _complete(newer.output_tokens))
                and (self.daily_requests is None or _complete(newer.daily_requests))
                and (self.daily_tokens is None or _complete(newer.daily_tokens))):
            # The usual update (every response's headers): ``newer`` says all this state
            # says, so the merge equals ``newer`` field for field.
            return newer
        changes: dict[str, object] = {
            "not_before": (self.not_before if newer.not_before is None
                           else newer.not_before if self.not_before is None
                           else max(self.not_before, newer.not_before)),
            "credits_remaining": (newer.credits_remaining
                                  if newer.credits_remaining is not None
                                  else self.credits_remaining),
            "observed_at": max(self.observed_at, newer.observed_at),
        }
        for name in _WINDOWS:
            old: RateLimitWindow | None = getattr(self, name)
            new: RateLimitWindow | None = getattr(newer, name)
            changes[name] = new if old is None else old.merge(new)
        if type(self) is not RateLimitState:  # a subclass may have more fields
            return attrs.evolve(self, **changes)  # type: ignore[arg-type]
        return RateLimitState(**changes)  # type: ignore[arg-type]

    @classmethod
    def from_windows(cls, requests: RateLimitWindow | None, tokens: RateLimitWindow | None,
                     now: float, retry_after: float | None = None) -> RateLimitState | None:
        """The state most providers' headers make: a requests and a tokens window (from
        `RateLimitWindow.from_values`) and a ``retry-after`` in seconds, read at ``now``;
        None when all three are None. Equal to ``RateLimitState(requests=requests,
        tokens=tokens, not_before=now + retry_after, observed_at=now)`` (``not_before`` None
        without a ``retry_after``), and cheaper: built without the keyword call."""
        if requests is None and tokens is None and retry_after is None:
            return None
        if cls is not RateLimitState:
            return cls(requests=requests, tokens=tokens, observed_at=now,
                       not_before=None if retry_after is None else now + retry_after)
        state: Any = _StateBuilder()
        state.requests = requests
        state.tokens = tokens
        state.input_tokens = state.output_tokens = None
        state.daily_requests = state.daily_tokens = None
        state.not_before = None if retry_after is None else now + retry_after
        state.credits_remaining = None
        state.observed_at = now
        state.__class__ = RateLimitState
        return state  # type: ignore[no-any-return]

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], now: float,
                     requests: tuple[str, str, str], tokens: tuple[str, str, str],
                     retry_after: float | None = None) -> RateLimitState | None:
        """The state of a requests and a tokens window read from ``headers`` at ``now``, each
        window from the headers its ``(limit, remaining, reset)`` names give; None when they
        say nothing and there is no ``retry_after`` (seconds). Equal to
        ``from_windows(RateLimitWindow.from_values(headers.get(limit), headers.get(remaining),
        parse_reset(headers.get(reset), now)), …tokens…, now, retry_after)``, for less work:
        its caller makes one call per response instead of five."""
        get = headers.get
        return cls.from_windows(_header_window(get, requests, now),
                                _header_window(get, tokens, now), now, retry_after)

    def _merged_onto(self, old: RateLimitState | None) -> RateLimitState:
        """``old`` updated by this state (this state when there is none): the tracker's
        update, a bound method rather than a closure made per update."""
        if old is None:
            return self
        # `old.merge(self)`'s fast path, inline: the tracker runs this for every response
        if (type(old) is RateLimitState and type(self) is RateLimitState
                and old.not_before is None and old.credits_remaining is None
                and self.observed_at >= old.observed_at
                and (old.requests is None or (
                    (window := self.requests) is not None and window.limit is not None
                    and window.remaining is not None and window.reset_at is not None))
                and (old.tokens is None or (
                    (window := self.tokens) is not None and window.limit is not None
                    and window.remaining is not None and window.reset_at is not None))
                and (old.input_tokens is None or _complete(self.input_tokens))
                and (old.output_tokens is None or _complete(self.output_tokens))
                and (old.daily_requests is None or _complete(self.daily_requests))
                and (old.daily_tokens is None or _complete(self.daily_tokens))):
            return self
        return old.merge(self)

    def windows(self) -> dict[str, RateLimitWindow]:
        """The windows the provider reported, by field name (``"requests"``, ``"tokens"``
        …)."""
        return {n: w for n in _WINDOWS if (w := getattr(self, n)) is not None}

    def wait_time(self, now: float, estimated_tokens: int = 0) -> float:
        """Seconds until a request of ``estimated_tokens`` may go; 0 when it may go now."""
        wait = 0.0
        if self.not_before is not None and self.not_before > now:
            wait = self.not_before - now
        # each window by hand, not through windows() and exhausted(), nor a loop: this runs
        # before every request; a request needs one of each request window, its tokens of the
        # others. (``reset_at - now > wait`` is ``reset_at > now`` and the max() at once.)
        window = self.requests
        if window is not None and window.remaining is not None and window.remaining < 1 and (
                window.reset_at is not None and window.reset_at - now > wait):
            wait = window.reset_at - now
        window = self.daily_requests
        if window is not None and window.remaining is not None and window.remaining < 1 and (
                window.reset_at is not None and window.reset_at - now > wait):
            wait = window.reset_at - now
        if not estimated_tokens:
            return wait
        # the token windows by hand too: a loop over the four costs four times as much
        window = self.tokens
        if window is not None and window.remaining is not None and (
                window.remaining < estimated_tokens) and (
                window.reset_at is not None and window.reset_at - now > wait):
            wait = window.reset_at - now
        window = self.input_tokens
        if window is not None and window.remaining is not None and (
                window.remaining < estimated_tokens) and (
                window.reset_at is not None and window.reset_at - now > wait):
            wait = window.reset_at - now
        window = self.output_tokens
        if window is not None and window.remaining is not None and (
                window.remaining < estimated_tokens) and (
                window.reset_at is not None and window.reset_at - now > wait):
            wait = window.reset_at - now
        window = self.daily_tokens
        if window is not None and window.remaining is not None and (
                window.remaining < estimated_tokens) and (
                window.reset_at is not None and window.reset_at - now > wait):
            wait = window.reset_at - now
        return wait

    def can_send(self, now: float, estimated_tokens: int = 0) -> bool:
        """True when nothing the provider said stops a request of ``estimated_tokens`` now."""
        if self.not_before is not None and self.not_before > now:
            return False
        for name, window in self.windows().items():
            need = estimated_tokens if "tokens" in name else 1
            if need and window.exhausted(now, need):
                return False
        return True

    def should_throttle(self, threshold: float = 0.8) -> bool:
        """True when any window has used at least ``threshold`` of its limit."""
        return any(
            (used := w.used_fraction()) is not None and used >= threshold
            for w in self.windows().values()
        )


#: RateLimitState's builder (`_callable_builder`): a new state is filled in with plain stores
_StateBuilder = _callable_builder(RateLimitState)


def _complete(window: RateLimitWindow | None) -> bool:
    """``window`` sets every field (so merging it into another window gives it)."""
    return window is not None and window.limit is not None and (
        window.remaining is not None and window.reset_at is not None)


def _header_window(get: Callable[[str], str | None], names: tuple[str, str, str],
                   now: float) -> RateLimitWindow | None:
    """`RateLimitState.from_headers()`'s window of the headers ``names`` gives
    (``(limit, remaining, reset)``), read through ``get``."""
    limit_name, remaining_name, reset_name = names
    limit = get(limit_name)
    remaining = get(remaining_name)
    reset = get(reset_name)
    seconds = _RELATIVE.get(reset)  # `parse_reset()`'s fast path, inline
    reset_at = now + seconds if seconds is not None else parse_reset(reset, now)
    # `RateLimitWindow.from_values()`'s usual case, inline: a size seen before (not the 0
    # sentinel) and a remaining count in plain digits; the rest goes through it
    if limit is not None and remaining is not None and (limit_n := _LIMITS.get(limit)):
        try:
            remaining_n = int(remaining)
        except ValueError:
            remaining_n = -1
        if remaining_n >= 0:
            window: Any = _WindowBuilder()
            window.limit = limit_n
            window.remaining = remaining_n
            window.reset_at = reset_at
            window.__class__ = RateLimitWindow
            return window  # type: ignore[no-any-return]
    return RateLimitWindow.from_values(limit, remaining, reset_at)


TrackerKey = tuple[str, str, str]


class RateLimitTracker:
    """Latest rate-limit state per (provider, credential id, model), merged update by update.

    The states live in a `StateStore` (namespace ``"aipk.ratelimit"``, key
    ``provider``, ``credential id`` and ``model`` joined by ``\\x1f``); a private
    `MemoryStore` unless you pass one.
    """

    NAMESPACE = "aipk.ratelimit"

    __slots__ = ("_memory", "_names", "_store")

    def __init__(self, store: StateStore | None = None) -> None:
        self._store: StateStore = MemoryStore() if store is None else store
        #: a `MemoryStore`'s own dict, read directly by `wait_time()` (before every request)
        self._memory = self._store._data if type(self._store) is MemoryStore else None
        #: each key's name in the store, joined once (`_named()`)
        self._names: dict[TrackerKey, str] = {}

    def _named(self, key: TrackerKey) -> str:
        """The store's name for ``key`` (its parts joined by ``\\x1f``), kept for the next
        update or wait (a cache of at most 4096 keys, emptied when full)."""
        names = self._names
        if len(names) >= 4096:
            names.clear()
        name = names[key] = "\x1f".join(key)
        return name

    @property
    def store(self) -> StateStore:
        return self._store

    def update(self, key: TrackerKey, state: RateLimitState) -> RateLimitState:
        name = self._names.get(key) or self._named(key)
        merged = self._store.update(self.NAMESPACE, name, state._merged_onto)
        return state if merged is None else merged

    def get(self, key: TrackerKey) -> RateLimitState | None:
        value = self._store.get(self.NAMESPACE, "\x1f".join(key))
        return value if isinstance(value, RateLimitState) else None

    def wait_time(self, key: TrackerKey, now: float, estimated_tokens: int = 0) -> float:
        name = self._names.get(key) or self._named(key)
        memory = self._memory
        if memory is not None:
            # `MemoryStore.get()`, inline, for a value that never expires (the tracker's own)
            entry = memory.get((self.NAMESPACE, name))
            if entry is None:
                return 0.0
            state = entry[0] if entry[1] is None else self._store.get(self.NAMESPACE, name)
        else:
            state = self._store.get(self.NAMESPACE, name)  # `get()`, inline
        return state.wait_time(now, estimated_tokens) if isinstance(
            state, RateLimitState) else 0.0

