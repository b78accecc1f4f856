"""An in-stream error of an OpenAI-compatible server whose code says the server failed for a
moment (Azure's ``ServiceUnavailable``, ``internal_error`` …), served over real HTTP
(tests/rawserver.py): retried while nothing was delivered, handed to the caller as a
retryable StreamError once content was (a stream is never restarted)."""

from __future__ import annotations

from typing import Any

import pytest

import aipk
from aipk.errors import StreamError

from .rawserver import openai_text_chunk, raw_server, sse_events
from .test_captures_over_http import MODES, call, streamed


def _error(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": "The service is temporarily unavailable."}}


TRANSIENT = ["ServiceUnavailable", "InternalServerError", "internal_error", "server_error",
             "overloaded", "Overloaded"]
RETRY = aipk.RetryPolicy(max_retries=1, initial_delay=0.0, jitter=0.0)
OK = sse_events(openai_text_chunk("Hello", "stop"), "[DONE]")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("code", TRANSIENT)
def test_a_transient_in_stream_error_before_content_is_retried(mode: str, code: str) -> None:
    with raw_server(streamed(sse_events(_error(code)), "text/event-stream", 0),
                    streamed(OK, "text/event-stream", 0)) as server:
        result = call(server, mode, "openai", stream=True, retry=RETRY, max_retries=None)
        served = len(server.requests)
    assert isinstance(result, aipk.ChatResponse), result
    assert result.text == "Hello" and served == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("code", TRANSIENT)
def test_a_transient_in_stream_error_after_content_is_not_retried(
        mode: str, code: str) -> None:
    body = sse_events(openai_text_chunk("Hel"), _error(code))
    with raw_server(streamed(body, "text/event-stream", 0),
                    streamed(OK, "text/event-stream", 0)) as server:
        result = call(server, mode, "openai", stream=True, retry=RETRY, max_retries=None)
        served = len(server.requests)
    assert type(result) is StreamError, result
    assert result.retryable and result.code == code and served == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_request_error_in_stream_stays_not_retryable(mode: str) -> None:
    with raw_server(streamed(sse_events(_error("invalid_prompt")), "text/event-stream", 0),
                    streamed(OK, "text/event-stream", 0)) as server:
        result = call(server, mode, "openai", stream=True, retry=RETRY, max_retries=None)
        served = len(server.requests)
    assert type(result) is StreamError and not result.retryable and served == 1, result


