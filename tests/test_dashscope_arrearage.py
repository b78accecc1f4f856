"""DashScope's ``Arrearage`` (a 400 for an account in arrears), served over real HTTP
(tests/rawserver.py): a spent quota, as OpenAI's ``insufficient_quota`` is: a RateLimitError
that is not retried and says to add credits."""

from __future__ import annotations

import pytest

import aipk
from aipk.errors import BadRequestError, RateLimitError

from .rawserver import raw_server, reply
from .test_captures_over_http import MODES, call

RETRY = aipk.RetryPolicy(max_retries=1, initial_delay=0.0, jitter=0.0)
ARREARAGE = {"error": {"code": "Arrearage", "type": "Arrearage", "message": (
    "Access denied, please make sure your account is in good standing.")},
    "request_id": "r-1"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stream", [False, True])
def test_dashscope_arrearage_is_a_spent_quota(mode: str, stream: bool) -> None:
    with raw_server(reply(400, ARREARAGE), reply(400, ARREARAGE)) as server:
        result = call(server, mode, "dashscope", stream=stream, retry=RETRY, max_retries=None)
        served = len(server.requests)
    assert type(result) is RateLimitError, result
    assert not isinstance(result, BadRequestError)
    assert not result.retryable and result.status == 400 and result.code == "Arrearage"
    assert "good standing" in str(result) and "add credits" in str(result)
    assert served == 1


