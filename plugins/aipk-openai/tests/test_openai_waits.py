"""The wait a 429's message names ("Please try again in 4.428s."), used as ``retry_after``
when no ``retry-after`` header came: OpenAI's and Groq's rate-limit bodies, as reported in
public issues, and any Go-style duration."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aipk_openai.plugin
from aipk import ProviderSpec
from aipk.errors import RateLimitError
from aipk_openai import GROQ, OPENAI
from aipk_openai.waits import wait_in_message
from aipk_testkit.fixtures import make_engine

OPENAI_TPM = ("Rate limit reached for gpt-4 in organization org-REDACTED on tokens per min "
              "(TPM): Limit 10000, Used 9714, Requested 1024. Please try again in 4.428s. "
              "Visit https://platform.openai.com/account/rate-limits to learn more.")
GROQ_TPD = ("Rate limit reached for model `llama-3.3-70b-versatile` in organization "
            "`org_REDACTED` service tier `on_demand` on tokens per day (TPD): Limit 100000, "
            "Used 99865, Requested 1196. Please try again in 15m17.568s. Need more tokens? "
            "Upgrade to Dev Tier today at https://console.groq.com/settings/billing")


@pytest.mark.parametrize(("message", "wait"), [
    (OPENAI_TPM, 4.428),
    (GROQ_TPD, 15 * 60 + 17.568),
    ("Rate limit reached for requests. Please try again in 750ms.", 0.75),
    ("Please try again in 1h2m3s.", 3723.0),
    ("Please try again in a few minutes.", None),
    ("Rate limit reached.", None),
    (None, None),
])
def test_the_wait_a_message_names(message: str | None, wait: float | None) -> None:
    assert wait_in_message(message) == (pytest.approx(wait) if wait is not None else None)


@given(st.integers(0, 30), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
def test_any_go_duration_is_read_whole(hours: int, minutes: int, seconds: int,
                                       millis: int) -> None:
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (
        f"{seconds}.{millis:03d}s" if seconds or millis or not (hours or minutes) else "")
    expected = hours * 3600 + minutes * 60 + seconds + millis / 1000
    assert wait_in_message(f"Limit 3, Used 3. Please try again in {text}. Visit …") == (
        pytest.approx(expected))


@pytest.mark.parametrize("spec", [OPENAI, GROQ], ids=["openai", "groq"])
def test_a_429_without_a_header_waits_what_its_message_says(spec: ProviderSpec) -> None:
    engine = make_engine(spec, {"openai": aipk_openai.plugin})
    body = {"error": {"message": OPENAI_TPM, "type": "tokens", "param": None,
                      "code": "rate_limit_exceeded"}}
    error = engine.error(429, {}, json.dumps(body).encode())
    assert isinstance(error, RateLimitError) and error.retryable
    assert error.retry_after == pytest.approx(4.428)
    headed = engine.error(429, {"retry-after": "2"}, json.dumps(body).encode())
    assert isinstance(headed, RateLimitError) and headed.retry_after == 2.0  # the header wins
