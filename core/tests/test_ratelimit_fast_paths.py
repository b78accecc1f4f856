"""The rate-limit state's fast paths give what the general rules give.

`RateLimitState.merge` returns the newer state itself when it says everything the older one
says (the usual update, on every response; the tracker's `_merged_onto` too);
`RateLimitState.wait_time` checks its six windows by hand; `parse_reset` returns a relative
reset that is surely in range without its range checks; `RateLimitWindow.from_values` converts
counts with `int()` at once and builds its window, and `RateLimitState.from_windows` its state,
without the keyword call; the tracker replaces an in-memory store's state in place and reads
its wait inline. Each is compared here with the general rules written out plainly.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipk import MemoryStore
from aipk._ratelimit import (
    MAX_RESET_SECONDS,
    RateLimitState,
    RateLimitTracker,
    RateLimitWindow,
    _reset_of,
    parse_count,
    parse_reset,
)
from aipk._ratelimit import (
    _window as build_window,
)

_WINDOWS = ("requests", "tokens", "input_tokens", "output_tokens", "daily_requests",
            "daily_tokens")

_opt_int = st.none() | st.integers(-5, 1000)
_opt_time = st.none() | st.floats(0, 1e10, allow_nan=False)
_complete = st.builds(RateLimitWindow, limit=st.integers(0, 1000),
                      remaining=st.integers(0, 1000), reset_at=st.floats(0, 1e10))
_window = st.none() | _complete | st.builds(RateLimitWindow, limit=_opt_int,
                                            remaining=_opt_int, reset_at=_opt_time)
#: states that often take the fast path: no not_before or credits, complete windows
_states = st.builds(
    RateLimitState,
    **{name: _window for name in _WINDOWS},
    not_before=st.none() | _opt_time,
    credits_remaining=st.none() | st.none() | st.floats(0, 1e6),
    observed_at=st.floats(0, 1e10) | st.just(1e9),
)


def _merged(old: RateLimitState, new: RateLimitState) -> RateLimitState:
    """The general merge, field by field."""
    def window(o: RateLimitWindow | None, n: RateLimitWindow | None) -> RateLimitWindow | None:
        if o is None or n is None:
            return n if o is None else o
        return RateLimitWindow(
            limit=o.limit if n.limit is None else n.limit,
            remaining=o.remaining if n.remaining is None else n.remaining,
            reset_at=o.reset_at if n.reset_at is None else n.reset_at)

    befores = [t for t in (old.not_before, new.not_before) if t is not None]
    return RateLimitState(
        **{name: window(getattr(old, name), getattr(new, name)) for name in _WINDOWS},
        not_before=max(befores) if befores else None,
        credits_remaining=(old.credits_remaining if new.credits_remaining is None
                           else new.credits_remaining),
        observed_at=max(old.observed_at, new.observed_at))


def _wait(state: RateLimitState, now: float, tokens: int) -> float:
    """The general wait: the longest block of not_before and every exhausted window."""
    wait = 0.0
    if state.not_before is not None and state.not_before > now:
        wait = state.not_before - now
    for name in _WINDOWS:
        window = getattr(state, name)
        need = tokens if "tokens" in name else 1
        if window is not None and need and window.exhausted(now, need) and (
                window.reset_at is not None):
            wait = max(wait, window.reset_at - now)
    return wait


@settings(max_examples=400, deadline=None)
@given(_states, _states)
def test_merge_equals_the_general_merge(old: RateLimitState, new: RateLimitState) -> None:
    assert old.merge(new) == _merged(old, new)


@settings(max_examples=200, deadline=None)
@given(_states, st.data())
def test_the_usual_update_takes_the_fast_path_and_equals_the_general_merge(
        old: RateLimitState, data: st.DataObject) -> None:
    old = attrs.evolve(old, not_before=None, credits_remaining=None)
    windows = {name: data.draw(_complete) if getattr(old, name) is not None
               else data.draw(st.none() | _complete) for name in _WINDOWS}
    new = RateLimitState(**windows, observed_at=old.observed_at + data.draw(st.floats(0, 60)))
    merged = old.merge(new)
    assert merged is new  # the fast path: nothing of the older state survives
    assert merged == _merged(old, new)


@settings(max_examples=400, deadline=None)
@given(_states, _states)
def test_the_trackers_update_equals_merge(old: RateLimitState, new: RateLimitState) -> None:
    assert new._merged_onto(old) == old.merge(new) == _merged(old, new)
    assert new._merged_onto(None) is new


@settings(max_examples=100, deadline=None)
@given(_states, st.data())
def test_the_trackers_usual_update_keeps_the_newer_state_itself(
        old: RateLimitState, data: st.DataObject) -> None:
    old = attrs.evolve(old, not_before=None, credits_remaining=None)
    windows = {name: data.draw(_complete) if getattr(old, name) is not None
               else data.draw(st.none() | _complete) for name in _WINDOWS}
    new = RateLimitState(**windows, observed_at=old.observed_at + data.draw(st.floats(0, 60)))
    assert new._merged_onto(old) is new


class _GeneralStore(MemoryStore):
    """A MemoryStore the tracker does not read directly (it reads the store's `get()`)."""


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), _states,
                          st.none() | st.floats(0.5, 5)), max_size=12),
       st.integers(1, 4))
def test_the_trackers_update_in_its_own_store_equals_the_general_store(
        updates: list[tuple[str, RateLimitState, float | None]], max_entries: int) -> None:
    """Updates (some keys first written with a TTL by another writer) give the same answers
    and leave the same entries, in the same order, as in a store the tracker reads through
    its methods."""
    now = [0.0]
    stores = [MemoryStore(clock=lambda: now[0], max_entries=max_entries),
              _GeneralStore(clock=lambda: now[0], max_entries=max_entries)]
    trackers = [RateLimitTracker(store) for store in stores]
    assert trackers[0]._memory is not None and trackers[1]._memory is None
    for model, state, ttl in updates:
        key = ("openai", "k1", model)
        if ttl is not None:  # another writer's entry, which expires
            for store in stores:
                store.set(RateLimitTracker.NAMESPACE, "\x1f".join(key), state, ttl=ttl)
        now[0] += 1.0
        fast, general = (tracker.update(key, state) for tracker in trackers)
        assert fast == general
        assert list(stores[0]._data.items()) == list(stores[1]._data.items())


class _Subclass(RateLimitState):
    pass


def test_a_subclass_keeps_the_general_merge() -> None:
    complete = RateLimitWindow(limit=10, remaining=5, reset_at=100.0)
    old = _Subclass(requests=complete, observed_at=1.0)
    merged = old.merge(RateLimitState(requests=complete, observed_at=2.0))
    assert type(merged) is _Subclass and merged.observed_at == 2.0


@settings(max_examples=400, deadline=None)
@given(_states, st.floats(0, 1e10), st.integers(0, 2000))
def test_wait_time_equals_the_general_wait(state: RateLimitState, now: float,
                                           tokens: int) -> None:
    assert state.wait_time(now, tokens) == _wait(state, now, tokens)


@settings(max_examples=300, deadline=None)
@given(_states, st.data(), st.integers(0, 2000))
def test_wait_time_at_the_states_own_times_equals_the_general_wait(
        state: RateLimitState, data: st.DataObject, tokens: int) -> None:
    times = [w.reset_at for w in state.windows().values() if w.reset_at is not None]
    times += [state.not_before] if state.not_before is not None else []
    now = data.draw(st.sampled_from(times) if times else st.just(0.0))
    for at in (now, now - 1.0, float("inf"), float("-inf")):
        assert state.wait_time(at, tokens) == _wait(state, at, tokens)


@settings(max_examples=300, deadline=None)
@given(_states, st.data(), st.integers(0, 2000))
def test_the_trackers_wait_time_equals_the_general_wait(
        state: RateLimitState, data: st.DataObject, tokens: int) -> None:
    """The tracker's wait for a state read directly from an in-memory store, as a state in
    another store or of a subclass gives."""
    times = [w.reset_at for w in state.windows().values() if w.reset_at is not None]
    times += [state.not_before] if state.not_before is not None else []
    now = data.draw(st.sampled_from(times) if times else st.just(0.0))
    key = ("openai", "k1", "m")
    for store in (MemoryStore(), _GeneralStore()):
        tracker = RateLimitTracker(store)
        assert tracker.wait_time(key, now, tokens) == 0.0  # nothing tracked yet
        store.set(RateLimitTracker.NAMESPACE, "\x1f".join(key), state)
        for at in (now, now - 1.0, float("inf"), float("-inf")):
            assert tracker.wait_time(key, at, tokens) == _wait(state, at, tokens)
    subclassed = _Subclass(**attrs.asdict(state, recurse=False))
    store = MemoryStore()
    store.set(RateLimitTracker.NAMESPACE, "\x1f".join(key), subclassed)
    assert RateLimitTracker(store).wait_time(key, now, tokens) == _wait(state, now, tokens)


@settings(max_examples=400, deadline=None)
@given(st.none() | st.text(max_size=25) | st.text("0123456789١٢²", max_size=30)
       | st.integers(-10**30, 10**30).map(str)
       | st.sampled_from(["9" * 5000, "9" * 19, "9" * 20, " 12 ", "+5", "-0", "1_000", "1.0",
                          "1.5", "-3", "\t7\n", "1e3", "inf", "nan", "", "٣"]))
def test_window_counts_are_what_parse_count_makes_of_them(value: str | None) -> None:
    window = RateLimitWindow.from_values(value, value, 5.0)
    assert window is not None
    count = parse_count(value)
    expected = None if count == 0 else count  # a zero limit is a sentinel: both dropped
    assert (window.limit, window.remaining) == (expected, expected)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.none() | st.text("0123456789 -.x", max_size=8)
                | st.integers(-5, 400).map(str), min_size=1, max_size=600))
def test_a_limit_seen_before_gives_what_parse_count_makes_of_it(values: list[str | None]) -> None:
    for value in values + values:  # the second time from the cache (refilled past 256 values)
        window = RateLimitWindow.from_values(value, None, 5.0)
        count = parse_count(value)
        assert window is not None and window.limit == (None if count == 0 else count)


def _reset(value: str, now: float) -> float | None:
    """The general reset: whatever the text says, checked against the range."""
    parsed = _reset_of(value)
    if parsed is None:
        return None
    absolute, number = parsed
    at = number if absolute else now + number
    if at < now - 1.0 or at - now > MAX_RESET_SECONDS:
        return None
    return max(at, now)


@settings(max_examples=400, deadline=None)
@given(st.floats(-5.0, MAX_RESET_SECONDS + 5.0) | st.floats(MAX_RESET_SECONDS - 2.0,
                                                            MAX_RESET_SECONDS + 1.0)
       | st.sampled_from([0.0, -0.0, -0.5, -1.0, MAX_RESET_SECONDS, MAX_RESET_SECONDS - 1.0]),
       st.floats(0.0, 2e9) | st.just(1765432109.987654))
def test_a_relative_reset_is_what_the_range_checks_make_of_it(seconds: float,
                                                               now: float) -> None:
    for text in (repr(seconds), f"{seconds}s" if seconds >= 0 else repr(seconds)):
        assert parse_reset(text, now) == _reset(text, now)
        # read again (the usual relative reset from the cache), at another time
        assert parse_reset(text, now + 7.5) == _reset(text, now + 7.5)


@given(st.none() | st.integers(0, 10**6), st.none() | st.integers(0, 10**6),
       st.none() | st.floats(0, 1e10))
def test_a_window_built_directly_equals_the_keyword_built(
        limit: int | None, remaining: int | None, reset_at: float | None) -> None:
    assert [f.name for f in attrs.fields(RateLimitWindow)] == ["limit", "remaining", "reset_at"]
    built = build_window(limit, remaining, reset_at)
    assert type(built) is RateLimitWindow
    assert built == RateLimitWindow(limit=limit, remaining=remaining, reset_at=reset_at)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.limit = 1  # type: ignore[misc]


@settings(max_examples=300, deadline=None)
@given(_window, _window, st.floats(0, 2e9),
       st.none() | st.floats(0, MAX_RESET_SECONDS))
def test_from_windows_equals_the_keyword_built_state(
        requests: RateLimitWindow | None, tokens: RateLimitWindow | None, now: float,
        retry_after: float | None) -> None:
    state = RateLimitState.from_windows(requests, tokens, now, retry_after)
    if requests is None and tokens is None and retry_after is None:
        assert state is None
        return
    expected = RateLimitState(
        requests=requests, tokens=tokens, observed_at=now,
        not_before=None if retry_after is None else now + retry_after)
    assert state is not None and type(state) is RateLimitState and state == expected
    assert [getattr(state, f.name) for f in attrs.fields(RateLimitState)] == [
        getattr(expected, f.name) for f in attrs.fields(RateLimitState)]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        state.observed_at = 1.0  # type: ignore[misc]


def test_a_state_subclass_gets_its_own_class_from_windows() -> None:
    window = RateLimitWindow(limit=10, remaining=5, reset_at=100.0)
    state = _Subclass.from_windows(window, None, 50.0, 2.0)
    assert state is not None and type(state) is _Subclass
    assert state == _Subclass(requests=window, not_before=52.0, observed_at=50.0)


class _Window(RateLimitWindow):
    pass


def test_a_window_subclass_gets_its_own_class() -> None:
    window = _Window.from_values("10", "5", 1.0)
    assert type(window) is _Window and window.remaining == 5


try:  # aiohttp's case-insensitive headers, where installed (the core alone has no aiohttp)
    from multidict import CIMultiDict, CIMultiDictProxy
except ImportError:  # pragma: no cover - the core package's own test run
    CIMultiDict = CIMultiDictProxy = None

_REQUESTS = ("x-limit-requests", "x-remaining-requests", "x-reset-requests")
_TOKENS = ("x-limit-tokens", "x-remaining-tokens", "x-reset-tokens")
#: header values as providers send them, and what they should not send
_header_value = (st.none() | st.integers(-3, 10**7).map(str)
                 | st.sampled_from(["0", "-1", "6ms", "1m30s", "0s", " 42 ", "+5", "1.0", "x", "",
                                    "inf", "nan", "1e3", "1765432199", "1765432199000",
                                    "2025-12-11T05:50:00Z", "Thu, 11 Dec 2025 05:50:00 GMT"])
                 | st.text("0123456789.msh -", max_size=8))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_REQUESTS + _TOKENS), _header_value), max_size=8),
       st.floats(1.7e9, 1.8e9) | st.just(1765432109.987654),
       st.none() | st.floats(0, MAX_RESET_SECONDS),
       st.booleans() if CIMultiDict is not None else st.just(False))
def test_from_headers_equals_from_windows_of_from_values(
        pairs: list[tuple[str, str | None]], now: float, retry_after: float | None,
        multidict: bool) -> None:
    """`RateLimitState.from_headers` gives what the five calls it stands for give, on a plain
    dict and on aiohttp's case-insensitive headers, the first time a text is read and again
    (its sizes and resets from the caches)."""
    values = {name: value for name, value in pairs if value is not None}
    headers: Any = CIMultiDictProxy(CIMultiDict(values)) if multidict else values

    def plain() -> RateLimitState | None:
        windows = [RateLimitWindow.from_values(
            headers.get(limit), headers.get(remaining), parse_reset(headers.get(reset), now))
            for limit, remaining, reset in (_REQUESTS, _TOKENS)]
        return RateLimitState.from_windows(windows[0], windows[1], now, retry_after)

    for _ in range(2):
        state = RateLimitState.from_headers(headers, now, _REQUESTS, _TOKENS, retry_after)
        expected = plain()
        assert state == expected
        if state is not None:
            assert type(state) is RateLimitState
            assert [type(w) for w in (state.requests, state.tokens)] == [
                type(w) for w in (expected.requests, expected.tokens)]  # type: ignore[union-attr]


def test_from_headers_reads_openai_style_headers_and_keeps_a_subclass() -> None:
    headers = {"x-limit-requests": "100", "x-remaining-requests": "99",
               "x-reset-requests": "6ms", "x-limit-tokens": "0", "x-remaining-tokens": "5"}
    state = RateLimitState.from_headers(headers, 1000.0, _REQUESTS, _TOKENS)
    assert state == RateLimitState(
        requests=RateLimitWindow(limit=100, remaining=99, reset_at=1000.006),
        observed_at=1000.0)  # the 0 limit is a sentinel: that window says nothing
    assert RateLimitState.from_headers({}, 1000.0, _REQUESTS, _TOKENS) is None
    assert RateLimitState.from_headers({}, 1000.0, _REQUESTS, _TOKENS, 2.0) == RateLimitState(
        not_before=1002.0, observed_at=1000.0)
    sub = _Subclass.from_headers(headers, 1000.0, _REQUESTS, _TOKENS, 1.0)
    assert type(sub) is _Subclass and sub == _Subclass(
        requests=state.requests, not_before=1001.0, observed_at=1000.0)  # type: ignore[union-attr]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        state.requests.limit = 1  # type: ignore[misc,union-attr]
