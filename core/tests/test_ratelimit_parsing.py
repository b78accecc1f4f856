"""Rate-limit header parsers, RateLimitState merging and decisions, and the tracker."""

from __future__ import annotations

import email.utils
import math
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aipk._ratelimit import (
    MAX_RESET_SECONDS,
    RateLimitState,
    RateLimitTracker,
    RateLimitWindow,
    parse_count,
    parse_duration,
    parse_reset,
    parse_retry_after,
)

NOW = 1696004797.0  # Fri, 29 Sep 2023 16:26:37 GMT, the instant openai-python's tests freeze
_nows = st.floats(min_value=1.2e9, max_value=4e9)
_header_text = st.text(max_size=40) | st.sampled_from(
    ["inf", "-inf", "nan", "1e400", "-0", "1_000", " 12 ", "\x00", "١٢", "1e12", "1e13", "-1",
     "2024-10-15T09:49:10Z", "Fri, 29 Sep 2023 16:26:57 GMT", "0001-01-01", "9999-12-31",
     "Mon, 1 Jan 9999 23:59:59 -0000", "1 Jan 10000 00:00 GMT", "31 Dec 9999 23:59:59 -2359"]
)


# --- parse_duration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("1m26.4s", 86.4),
        ("12ms", 0.012),
        ("20ms", 0.02),
        ("1h2m3s", 3723.0),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("0s", 0.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("500μs", 0.0005),  # Go accepts the Greek mu as well as the micro sign
        ("1500ns", 1.5e-6),
        ("7.66s", 7.66),
        ("0", 0.0),
        ("17", 17.0),
        ("2.5", 2.5),
        ("  3s  ", 3.0),
    ],
)
def test_parse_duration_accepts(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-12)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "abc", "1x", "-1s", "-1", "s", "ms", "1h 2m", "1.5.5s", "+-1s", "1s2",
     "inf", "nan", "infs", "8d", "169h", "604801", "604801s", "1e400", "99999999999h"],
)
def test_parse_duration_rejects(text: str) -> None:
    assert parse_duration(text) is None


def test_parse_duration_limit_is_inclusive() -> None:
    assert parse_duration(f"{int(MAX_RESET_SECONDS)}s") == MAX_RESET_SECONDS
    assert parse_duration("168h") == MAX_RESET_SECONDS
    assert parse_duration("168h1ms") is None


@st.composite
def _go_duration(draw: st.DrawFn) -> tuple[str, float]:
    """A Go-formatted duration from random h/m/s/ms parts, with its value in seconds."""
    parts: list[tuple[str, float, str]] = []
    if draw(st.booleans()):
        h = draw(st.integers(0, 150))
        parts.append((str(h), h * 3600.0, "h"))
    if draw(st.booleans()):
        m = draw(st.integers(0, 59))
        parts.append((str(m), m * 60.0, "m"))
    if draw(st.booleans()):
        whole, frac = draw(st.integers(0, 59)), draw(st.integers(0, 999))
        digits = draw(st.integers(0, 3))
        text = str(whole) if digits == 0 else f"{whole}.{frac:03d}"[: len(str(whole)) + 1 + digits]
        parts.append((text, float(text), "s"))
    if draw(st.booleans()) or not parts:
        ms = draw(st.integers(0, 999))
        parts.append((str(ms), ms / 1000.0, "ms"))
    return "".join(t + u for t, _, u in parts), sum(v for _, v, _ in parts)


@settings(max_examples=300, deadline=None)
@given(_go_duration())
def test_parse_duration_sums_composed_parts(duration: tuple[str, float]) -> None:
    text, seconds = duration
    parsed = parse_duration(text)
    if seconds > MAX_RESET_SECONDS:
        assert parsed is None
    else:
        assert parsed == pytest.approx(seconds, rel=1e-9, abs=1e-9)


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from("0123456789.nuµμmshdx "), max_size=12))
def test_parse_duration_reads_the_go_duration_grammar(text: str) -> None:
    """Any text is read as the grammar ``(\\d+(\\.\\d*)?|\\.\\d+)(ns|us|µs|μs|ms|s|m|h|d)``
    repeated to the end says (or as a bare number of seconds)."""
    import re

    stripped = text.strip()
    try:
        expected: float | None = float(stripped)
    except ValueError:
        parts = re.fullmatch(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h|d))+", stripped)
        scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                 "m": 60.0, "h": 3600.0, "d": 86400.0}
        expected = None if parts is None else sum(
            float(n) * scale[u]
            for n, u in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)", stripped))
    if expected is not None and not 0 <= expected <= MAX_RESET_SECONDS:
        expected = None
    assert parse_duration(text) == expected


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=MAX_RESET_SECONDS))
def test_parse_duration_bare_and_seconds_suffix(seconds: float) -> None:
    assert parse_duration(repr(seconds)) == seconds
    assert parse_duration(f"{seconds:.6f}s") == pytest.approx(seconds, abs=1e-6)


@settings(max_examples=500, deadline=None)
@given(_header_text)
def test_parse_duration_never_raises_and_stays_in_range(text: str) -> None:
    result = parse_duration(text)
    assert result is None or (isinstance(result, float) and 0 <= result <= MAX_RESET_SECONDS)


# --- parse_count -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count"),
    [("0", 0), ("5", 5), (" 42 ", 42), ("5.0", 5), ("1e3", 1000), ("-1", None), ("-0.0", 0),
     ("5.5", None), ("", None), ("abc", None), ("inf", None), ("nan", None), (None, None),
     ("-100", None)],
)
def test_parse_count(text: str | None, count: int | None) -> None:
    result = parse_count(text)
    assert result == count
    assert result is None or type(result) is int


@given(st.integers(min_value=0, max_value=10**15))
def test_parse_count_roundtrips_non_negative_integers(n: int) -> None:
    assert parse_count(str(n)) == n
    assert parse_count(f"{n}.0") == n


@given(st.integers(max_value=-1))
def test_parse_count_rejects_negative_sentinels(n: int) -> None:
    assert parse_count(str(n)) is None


@settings(max_examples=300, deadline=None)
@given(_header_text | st.text(st.sampled_from("0123456789.-e "), max_size=6000))
def test_parse_count_never_raises(text: str) -> None:
    result = parse_count(text)
    assert result is None or (type(result) is int and result >= 0)


# --- parse_retry_after -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        # openai-python's test_parse_retry_after_header vectors (now = 1696004797); aipk's parser
        # has no 60 s cap of its own (RetryPolicy applies that), and accepts 0.
        ("20", 20.0),
        ("0", 0.0),
        ("-10", None),
        ("60", 60.0),
        ("61", 61.0),
        ("Fri, 29 Sep 2023 16:26:57 GMT", 20.0),
        ("Fri, 29 Sep 2023 16:26:37 GMT", 0.0),
        ("Fri, 29 Sep 2023 16:26:27 GMT", None),
        ("Fri, 29 Sep 2023 16:27:37 GMT", 60.0),
        ("Fri, 29 Sep 2023 16:27:38 GMT", 61.0),
        ("99999999999999999999999999999999999", None),
        ("Zun, 29 Sep 2023 16:26:27 GMT", None),
        ("", None),
        # and more
        ("inf", None),
        ("-inf", None),
        ("nan", None),
        ("1.5", 1.5),
        (" 7 ", 7.0),
        ("soon", None),
        ("2023-09-29T16:27:07Z", 30.0),
        (str(MAX_RESET_SECONDS + 1), None),
    ],
)
def test_parse_retry_after_vectors(value: str, seconds: float | None) -> None:
    result = parse_retry_after({"retry-after": value}, NOW)
    if seconds is None:
        assert result is None
    else:
        assert result == pytest.approx(seconds)


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "20"}, NOW) == 1.5
    assert parse_retry_after({"retry-after-ms": "1500"}, NOW) == 1.5
    assert parse_retry_after({"retry-after-ms": "0"}, NOW) == 0.0


@pytest.mark.parametrize(
    "bad_ms", ["abc", "-5", "inf", "nan", "", str(MAX_RESET_SECONDS * 1000 + 1)]
)
def test_invalid_retry_after_ms_falls_back_to_retry_after(bad_ms: str) -> None:
    assert parse_retry_after({"retry-after-ms": bad_ms, "retry-after": "20"}, NOW) == 20.0
    assert parse_retry_after({"retry-after-ms": bad_ms}, NOW) is None


def test_no_retry_headers() -> None:
    assert parse_retry_after({}, NOW) is None
    assert parse_retry_after({"x-ratelimit-reset": "5"}, NOW) is None


@given(st.floats(min_value=0, max_value=MAX_RESET_SECONDS * 1000))
def test_retry_after_ms_in_range_is_exact(ms: float) -> None:
    assert parse_retry_after({"retry-after-ms": repr(ms), "retry-after": "9"}, NOW) == ms / 1000


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=int(MAX_RESET_SECONDS)), _nows)
def test_retry_after_http_date_roundtrip(offset: int, now: float) -> None:
    now = float(int(now))
    date = email.utils.formatdate(now + offset, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now) == pytest.approx(offset)


@settings(max_examples=400, deadline=None)
@given(st.none() | _header_text, st.none() | _header_text, _nows)
def test_parse_retry_after_never_raises_and_stays_in_range(
    ms: str | None, value: str | None, now: float
) -> None:
    headers = {k: v for k, v in (("retry-after-ms", ms), ("retry-after", value)) if v is not None}
    result = parse_retry_after(headers, now)
    assert result is None or 0 <= result <= MAX_RESET_SECONDS


# --- parse_reset -------------------------------------------------------------------------------

RESET_NOW = datetime(2024, 10, 15, 9, 49, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("value", "offset"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("1m26.4s", 86.4),
        ("20ms", 0.02),
        ("0", 0.0),
        ("30", 30.0),
        ("2.5", 2.5),
        ("2024-10-15T09:49:10Z", 10.0),
        ("2024-10-15T09:49:10+00:00", 10.0),
        ("2024-10-15T11:49:10+02:00", 10.0),
        ("2024-10-15T04:19:10-05:30", 10.0),
        ("2024-10-15T09:49:10.500Z", 10.5),
        ("2024-10-15T09:49:10", 10.0),  # no offset: UTC
        (str(int(RESET_NOW) + 45), 45.0),  # epoch seconds
        (str(int(RESET_NOW * 1000) + 45_500), 45.5),  # epoch milliseconds (OpenRouter)
        ("Tue, 15 Oct 2024 09:50:00 GMT", 60.0),
        ("Tue, 15 Oct 2024 09:50:00 -0000", 60.0),
        ("Tue, 15 Oct 2024 11:50:00 +0200", 60.0),
        ("-0.5", 0.0),  # up to a second in the past counts as "now"
    ],
)
def test_parse_reset_formats(value: str, offset: float) -> None:
    assert parse_reset(value, RESET_NOW) == pytest.approx(RESET_NOW + offset)


@pytest.mark.parametrize(
    "value",
    [None, "", "  ", "soon", "garbage", "1x", "-5", "-5s", "inf", "nan",
     "2020-01-01T00:00:00Z",  # past
     "2024-10-15T09:48:00Z",  # a minute ago
     "2030-01-01T00:00:00Z",  # far future
     "8d", "604801",
     str(int(RESET_NOW) - 60),  # epoch seconds in the past
     str(int(RESET_NOW) + 8 * 86400),  # epoch seconds too far out
     str(int(RESET_NOW * 1000) - 60_000),  # epoch ms in the past
     "Mon, 14 Oct 2024 09:50:00 GMT",
     "Tue, 45 Oct 2024 09:50:00 GMT",
     "9999-12-31T23:59:59Z"],
)
def test_parse_reset_rejects(value: str | None) -> None:
    assert parse_reset(value, RESET_NOW) is None


def test_parse_reset_does_not_depend_on_local_timezone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Zone-less timestamps are UTC whatever the machine's timezone is (regression)."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    expected = RESET_NOW + 10
    try:
        for tz in ("America/New_York", "Asia/Kolkata", "UTC"):
            monkeypatch.setenv("TZ", tz)
            time.tzset()
            assert parse_reset("2024-10-15T09:49:10", RESET_NOW) == expected
            assert parse_reset("Tue, 15 Oct 2024 09:49:10 -0000", RESET_NOW) == expected
            assert parse_retry_after({"retry-after": "Tue, 15 Oct 2024 09:49:10"}, RESET_NOW) == 10
    finally:
        monkeypatch.undo()
        time.tzset()


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=MAX_RESET_SECONDS - 1), _nows)
def test_parse_reset_relative_and_absolute_agree(offset: float, now: float) -> None:
    target = now + offset
    assert parse_reset(repr(offset), now) == pytest.approx(target)
    assert parse_reset(f"{offset:.3f}s", now) == pytest.approx(target, abs=1e-3)
    assert parse_reset(repr(target), now) == pytest.approx(target)
    assert parse_reset(str(round(target * 1000)), now) == pytest.approx(target, abs=1e-3)
    iso = datetime.fromtimestamp(target, tz=timezone.utc).isoformat()
    assert parse_reset(iso, now) == pytest.approx(target, abs=1e-5)
    shifted = datetime.fromtimestamp(target, tz=timezone(timedelta(hours=-7, minutes=-30)))
    assert parse_reset(shifted.isoformat(), now) == pytest.approx(target, abs=1e-5)
    zulu = datetime.fromtimestamp(target, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert parse_reset(zulu, now) == pytest.approx(target, abs=1e-5)


@given(st.sampled_from(["6ms", "1s", "6m0s", "1m26.4s", "20", "0.5"]), _nows, _nows)
def test_a_repeated_relative_reset_moves_with_now(value: str, now: float, later: float) -> None:
    # Reset texts are parsed once and cached; the cache must not keep the time of that parse.
    first, second = parse_reset(value, now), parse_reset(value, later)
    assert first is not None and second is not None
    assert second - first == pytest.approx(later - now)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=int(MAX_RESET_SECONDS)), _nows)
def test_parse_reset_http_date(offset: int, now: float) -> None:
    now = float(int(now))
    date = email.utils.formatdate(now + offset, usegmt=True)
    assert parse_reset(date, now) == now + offset


@settings(max_examples=150, deadline=None)
@given(st.floats(min_value=1.01, max_value=1e8), _nows)
def test_parse_reset_rejects_past_and_far_future(delta: float, now: float) -> None:
    past = now - delta
    assume(past > 1e9)  # stays in the epoch-seconds range
    assert parse_reset(repr(past), now) is None
    if delta > MAX_RESET_SECONDS + 1:
        assert parse_reset(repr(now + delta), now) is None


@settings(max_examples=500, deadline=None)
@given(st.none() | _header_text, _nows)
def test_parse_reset_never_raises_and_stays_in_range(value: str | None, now: float) -> None:
    result = parse_reset(value, now)
    assert result is None or now <= result <= now + MAX_RESET_SECONDS


# --- RateLimitWindow / RateLimitState ----------------------------------------------------------


def test_window_merge_keeps_unset_and_takes_set_fields() -> None:
    old = RateLimitWindow(limit=100, remaining=50, reset_at=10.0)
    assert old.merge(RateLimitWindow(remaining=49)) == RateLimitWindow(
        limit=100, remaining=49, reset_at=10.0
    )
    assert old.merge(RateLimitWindow(limit=200, reset_at=20.0)) == RateLimitWindow(
        limit=200, remaining=50, reset_at=20.0
    )
    assert old.merge(RateLimitWindow(remaining=0)).remaining == 0  # 0 is a value, not unset
    assert old.merge(None) is old


def test_state_merge() -> None:
    old = RateLimitState(
        requests=RateLimitWindow(limit=100, remaining=50, reset_at=NOW + 60),
        tokens=RateLimitWindow(limit=10_000, remaining=9_000, reset_at=NOW + 30),
        credits_remaining=12.5,
        observed_at=NOW,
    )
    newer = RateLimitState(
        requests=RateLimitWindow(remaining=49),
        daily_requests=RateLimitWindow(limit=1000, remaining=999),
        not_before=NOW + 5,
        observed_at=NOW + 1,
    )
    merged = old.merge(newer)
    assert merged.requests == RateLimitWindow(limit=100, remaining=49, reset_at=NOW + 60)
    assert merged.tokens == old.tokens
    assert merged.daily_requests == RateLimitWindow(limit=1000, remaining=999)
    assert merged.input_tokens is None
    assert merged.not_before == NOW + 5
    # A later, shorter retry-after does not shorten the wait (concurrent 429s).
    assert merged.merge(RateLimitState(not_before=NOW + 0.1)).not_before == NOW + 5
    assert merged.credits_remaining == 12.5
    assert merged.observed_at == NOW + 1
    # An older observation does not move observed_at backwards.
    assert merged.merge(RateLimitState(observed_at=NOW - 100)).observed_at == NOW + 1


_opt_int = st.none() | st.integers(0, 1000)
_opt_time = st.none() | st.floats(0, 1e10, allow_nan=False)
_windows = st.none() | st.builds(RateLimitWindow, limit=_opt_int, remaining=_opt_int,
                                 reset_at=_opt_time)
_states = st.builds(
    RateLimitState,
    requests=_windows, tokens=_windows, input_tokens=_windows, output_tokens=_windows,
    daily_requests=_windows, daily_tokens=_windows, not_before=_opt_time,
    credits_remaining=st.none() | st.floats(0, 1e6), observed_at=st.floats(0, 1e10),
)
_WINDOW_NAMES = ("requests", "tokens", "input_tokens", "output_tokens", "daily_requests",
                 "daily_tokens")


@settings(max_examples=200, deadline=None)
@given(_states, _states)
def test_state_merge_property(old: RateLimitState, new: RateLimitState) -> None:
    merged = old.merge(new)
    for name in _WINDOW_NAMES:
        o, n, m = getattr(old, name), getattr(new, name), getattr(merged, name)
        if n is None:
            assert m == o
            continue
        if o is None:
            assert m == n
            continue
        for attr in ("limit", "remaining", "reset_at"):
            nv = getattr(n, attr)
            assert getattr(m, attr) == (getattr(o, attr) if nv is None else nv)
    nv = new.credits_remaining
    assert merged.credits_remaining == (old.credits_remaining if nv is None else nv)
    # A provider's wait only extends: the later not_before wins, whichever came last.
    befores = [t for t in (old.not_before, new.not_before) if t is not None]
    assert merged.not_before == (max(befores) if befores else None)
    assert merged.observed_at == max(old.observed_at, new.observed_at)
    # Merging the same update twice changes nothing more.
    assert merged.merge(new) == merged


def test_exhausted_window_with_future_reset_blocks() -> None:
    state = RateLimitState(requests=RateLimitWindow(limit=10, remaining=0, reset_at=NOW + 5))
    assert state.wait_time(NOW) == pytest.approx(5.0)
    assert not state.can_send(NOW)
    assert state.wait_time(NOW + 2) == pytest.approx(3.0)


def test_exhausted_window_with_past_reset_does_not_block() -> None:
    state = RateLimitState(requests=RateLimitWindow(limit=10, remaining=0, reset_at=NOW - 1))
    assert state.wait_time(NOW) == 0.0
    assert state.can_send(NOW)
    assert state.can_send(NOW + 5, estimated_tokens=10)


def test_window_with_remaining_does_not_block() -> None:
    state = RateLimitState(requests=RateLimitWindow(limit=10, remaining=1, reset_at=NOW + 50))
    assert state.wait_time(NOW) == 0.0
    assert state.can_send(NOW)


def test_not_before_is_honoured() -> None:
    state = RateLimitState(not_before=NOW + 7)
    assert state.wait_time(NOW) == pytest.approx(7.0)
    assert not state.can_send(NOW)
    assert state.wait_time(NOW + 7) == 0.0
    assert state.can_send(NOW + 7)
    assert state.can_send(NOW + 8)


def test_token_windows_need_estimated_tokens() -> None:
    state = RateLimitState(
        tokens=RateLimitWindow(limit=10_000, remaining=100, reset_at=NOW + 9),
        requests=RateLimitWindow(limit=10, remaining=5, reset_at=NOW + 30),
    )
    # Without an estimate the token window cannot block.
    assert state.can_send(NOW)
    assert state.wait_time(NOW) == 0.0
    assert state.can_send(NOW, estimated_tokens=100)
    assert not state.can_send(NOW, estimated_tokens=101)
    assert state.wait_time(NOW, estimated_tokens=101) == pytest.approx(9.0)


def test_wait_time_is_the_longest_block() -> None:
    state = RateLimitState(
        requests=RateLimitWindow(remaining=0, reset_at=NOW + 3),
        input_tokens=RateLimitWindow(remaining=0, reset_at=NOW + 12),
        daily_requests=RateLimitWindow(remaining=0, reset_at=NOW + 8),
        not_before=NOW + 10,
    )
    assert state.wait_time(NOW, estimated_tokens=1) == pytest.approx(12.0)
    assert state.wait_time(NOW) == pytest.approx(10.0)


@settings(max_examples=200, deadline=None)
@given(_states, st.floats(0, 1e10), st.integers(0, 2000))
def test_wait_time_and_can_send_agree(state: RateLimitState, now: float, tokens: int) -> None:
    wait = state.wait_time(now, tokens)
    assert wait >= 0
    assert math.isfinite(wait)
    if wait > 0:
        assert not state.can_send(now, tokens)
    if state.can_send(now, tokens):
        assert wait == 0


@pytest.mark.parametrize(
    ("limit", "remaining", "throttle"),
    [(100, 20, True), (100, 21, False), (100, 0, True), (100, 100, False), (100, 500, False),
     (None, 0, False), (0, 0, False), (100, None, False)],
)
def test_should_throttle_default_threshold(
    limit: int | None, remaining: int | None, throttle: bool
) -> None:
    state = RateLimitState(tokens=RateLimitWindow(limit=limit, remaining=remaining))
    assert state.should_throttle() is throttle


def test_should_throttle_custom_threshold_and_any_window() -> None:
    state = RateLimitState(
        requests=RateLimitWindow(limit=10, remaining=9),
        tokens=RateLimitWindow(limit=100, remaining=40),
    )
    assert not state.should_throttle()
    assert state.should_throttle(0.6)
    assert not state.should_throttle(0.61)
    assert not RateLimitState().should_throttle(0.0)


# --- RateLimitTracker --------------------------------------------------------------------------


def test_tracker_keys_are_separate_and_updates_merge() -> None:
    tracker = RateLimitTracker()
    a = ("openai", "key-1", "gpt-4o")
    b = ("openai", "key-2", "gpt-4o")
    c = ("openai", "key-1", "gpt-4o-mini")
    d = ("groq", "key-1", "gpt-4o")
    assert tracker.get(a) is None
    assert tracker.wait_time(a, NOW) == 0.0

    first = RateLimitState(requests=RateLimitWindow(limit=10, remaining=0, reset_at=NOW + 4))
    assert tracker.update(a, first) == first
    assert tracker.wait_time(a, NOW) == pytest.approx(4.0)
    for other in (b, c, d):
        assert tracker.get(other) is None
        assert tracker.wait_time(other, NOW) == 0.0

    merged = tracker.update(a, RateLimitState(tokens=RateLimitWindow(limit=500, remaining=400)))
    assert merged.requests == first.requests
    assert merged.tokens == RateLimitWindow(limit=500, remaining=400)
    assert tracker.get(a) == merged

    tracker.update(b, RateLimitState(not_before=NOW + 2))
    assert tracker.wait_time(b, NOW) == pytest.approx(2.0)
    assert tracker.wait_time(a, NOW) == pytest.approx(4.0)
    tracker.update(a, RateLimitState(requests=RateLimitWindow(remaining=9)))
    assert tracker.wait_time(a, NOW) == 0.0
    assert tracker.get(a).requests == RateLimitWindow(limit=10, remaining=9, reset_at=NOW + 4)


def test_window_from_values_shared_by_every_plugin() -> None:
    from aipk import RateLimitWindow

    assert RateLimitWindow.from_values("60", "59", 123.0) == RateLimitWindow(
        limit=60, remaining=59, reset_at=123.0)
    assert RateLimitWindow.from_values(None, None, None) is None
    assert RateLimitWindow.from_values("garbage", "-1", None) is None
    # a 0 limit is a sentinel: limit and remaining dropped, a real reset kept
    assert RateLimitWindow.from_values("0", "0", None) is None
    assert RateLimitWindow.from_values("0", "5", 9.0) == RateLimitWindow(reset_at=9.0)
