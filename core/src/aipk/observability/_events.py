"""What an observer plugin receives through the ``aipk_observe`` hook: one record per call
start, end (finished, failed or cancelled), retry, failover and stream first token.

Records of one call share ``call_id`` (unique in the process). They carry ids and numbers,
never a secret: ``credential_id`` is the credential's public id (an alias or a fingerprint).
The request and response are passed as aipk's own records so an exporter can read attributes
(temperature, finish reasons…); message contents are the exporter's to record or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from aipk._messages import ChatRequest
    from aipk._responses import ChatResponse, Usage

__all__ = ["CallCancelled", "CallFailed", "CallFailedOver", "CallFinished", "CallRetried",
           "CallStarted", "FirstToken", "ObservedEvent"]


@attrs.frozen(kw_only=True, slots=True)
class CallStarted:
    """A chat call began (``chat()`` was called, or a stream was opened)."""

    #: the call's id, shared by all its records
    call_id: int
    #: the provider's name (``openai``, ``anthropic`` …)
    provider: str
    #: the requested model
    model: str
    #: True for a stream
    stream: bool
    #: the provider's base URL (for ``server.address``)
    base_url: str
    #: the request as the caller built it
    request: ChatRequest
    #: when it started, in the metrics clock's seconds
    started_at: float


@attrs.frozen(kw_only=True, slots=True)
class CallFinished:
    """The caller got a whole answer: ``chat()`` returned, or a stream ended cleanly."""

    #: the call's id
    call_id: int
    #: the provider's name
    provider: str
    #: the requested model
    model: str
    #: the id of the credential that signed the answering attempt
    credential_id: str
    #: True for a stream
    stream: bool
    #: seconds from the call's start to the last byte
    latency: float
    #: seconds from the call's start to the first stream event (None for ``chat()``)
    time_to_first_token: float | None
    #: attempts sent, including retries and failovers
    attempts: int
    #: token counts, when the provider reported them
    usage: Usage | None
    #: US dollars, when the model's prices are known
    cost: float | None
    #: the answer
    response: ChatResponse


@attrs.frozen(kw_only=True, slots=True)
class CallFailed:
    """The caller got an exception."""

    #: the call's id
    call_id: int
    #: the provider's name
    provider: str
    #: the requested model
    model: str
    #: the credential of the last attempt ("none" if no attempt was sent)
    credential_id: str
    #: True for a stream
    stream: bool
    #: seconds from the call's start to the failure
    latency: float
    #: attempts sent
    attempts: int
    #: the exception's class name (``RateLimitError``, ``NetworkError`` …)
    error_type: str
    #: the exception the caller got
    error: BaseException
    #: token counts a stream reported before it failed (None when none were)
    usage: Usage | None = None
    #: US dollars for ``usage``, when the model's prices and both counts are known
    cost: float | None = None


@attrs.frozen(kw_only=True, slots=True)
class CallCancelled:
    """The caller closed (or abandoned) a stream before its end."""

    #: the call's id
    call_id: int
    #: the provider's name
    provider: str
    #: the requested model
    model: str
    #: the credential that signed the stream
    credential_id: str
    #: seconds from the call's start to the close
    latency: float
    #: attempts sent
    attempts: int
    #: token counts the stream reported before it was closed (None when none were)
    usage: Usage | None = None
    #: US dollars for ``usage``, when the model's prices and both counts are known
    cost: float | None = None


@attrs.frozen(kw_only=True, slots=True)
class CallRetried:
    """An attempt failed and the call will try again after ``wait`` seconds."""

    #: the call's id
    call_id: int
    #: the provider's name
    provider: str
    #: the requested model
    model: str
    #: the credential of the failed attempt
    credential_id: str
    #: the failed attempt's number (1 = the first attempt)
    attempt: int
    #: seconds the call waits before the next attempt
    wait: float
    #: the failed attempt's error class name
    error_type: str
    #: the failed attempt's request id, if the provider sent one
    request_id: str | None


@attrs.frozen(kw_only=True, slots=True)
class CallFailedOver:
    """An attempt failed and the call moves at once to another credential of the pool."""

    #: the call's id
    call_id: int
    #: the provider's name
    provider: str
    #: the requested model
    model: str
    #: the credential of the failed attempt
    credential_id: str
    #: the credential the next attempt uses
    to_credential_id: str
    #: the failed attempt's error class name
    error_type: str


@attrs.frozen(kw_only=True, slots=True)
class FirstToken:
    """A stream delivered its first event."""

    #: the call's id
    call_id: int
    #: the provider's name
    provider: str
    #: the requested model
    model: str
    #: seconds from the call's start
    time_to_first_token: float


#: Any record the ``aipk_observe`` hook receives.
ObservedEvent = (CallStarted | CallFinished | CallFailed | CallCancelled | CallRetried
                 | CallFailedOver | FirstToken)
