"""What comes back: usage, finish reasons, the chat response and normalised stream events.

A stream yields a small set of event types, whatever the provider:

* :class:`TextDelta`, :class:`ReasoningDelta`, :class:`RefusalDelta`: text fragments;
* :class:`ToolCallDelta`: a fragment of tool call ``index``; ``id`` and ``name`` arrive on the
  first fragment of each index, ``arguments`` fragments concatenate;
* :class:`UsageEvent`: token counts (the latest one wins);
* :class:`FinishEvent`: why generation stopped.

:class:`StreamAccumulator` folds events into the final :class:`ChatResponse`.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Union

import attrs

from ._messages import Message, ToolCall

if TYPE_CHECKING:
    from ._ratelimit import RateLimitState

__all__ = [
    "ChatResponse",
    "FinishEvent",
    "FinishReason",
    "ReasoningDelta",
    "RefusalDelta",
    "StreamAccumulator",
    "StreamEvent",
    "TextDelta",
    "ToolCallDelta",
    "Usage",
    "UsageEvent",
]


class FinishReason(str, enum.Enum):
    """Why the model stopped, normalised across providers."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    REFUSAL = "refusal"
    ERROR = "error"
    OTHER = "other"


@attrs.frozen(kw_only=True)
class Usage:
    """Token counts for one call. ``total_tokens`` defaults to input + output.

    Attributes:
        input_tokens: Tokens in the prompt (cached ones included).
        output_tokens: Tokens in the answer (reasoning included).
        total_tokens: Input plus output, unless the provider reported another total.
        reasoning_tokens: Output tokens spent on reasoning, where reported.
        cache_read_tokens: Input tokens read from the provider's prompt cache, where reported.
        cache_write_tokens: Input tokens written to the provider's prompt cache, where reported.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = attrs.field()
    reasoning_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None

    @total_tokens.default
    def _total(self) -> int:
        return self.input_tokens + self.output_tokens


@attrs.frozen(kw_only=True)
class ChatResponse:
    """A complete answer. ``message`` is the assistant message to append to the conversation.

    Attributes:
        provider: The provider id that answered.
        model: The model that answered, as the provider reported it.
        message: The assistant message, ready to append to the conversation.
        finish_reason: Why generation stopped, normalised; None when not reported.
        raw_finish_reason: The provider's own word for why generation stopped.
        usage: Token counts, when the provider reported them.
        id: The provider's id for this answer.
        request_id: The provider's request id (from the response headers), for support tickets.
        refusal: The refusal text, when the model declined to answer.
        reasoning: The model's reasoning text, where the provider exposes it.
        rate_limit: What the response headers said about the provider's limits.
        extra: Provider-specific response fields (for example ``system_fingerprint``).
        parsed: For a ``response_format=`` request: the answer decoded from JSON, validated,
            and structured into the requested class when one was given; None otherwise.
    """

    provider: str
    model: str
    message: Message
    finish_reason: FinishReason | None = None
    raw_finish_reason: str | None = None
    usage: Usage | None = None
    id: str | None = None
    request_id: str | None = None
    refusal: str | None = None
    reasoning: str | None = None
    rate_limit: RateLimitState | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    parsed: Any = None

    def with_transport_info(self, request_id: str | None,
                            rate_limit: RateLimitState | None) -> ChatResponse:
        """A copy carrying the request id and rate-limit state (faster than attrs.evolve)."""
        return ChatResponse(
            provider=self.provider, model=self.model, message=self.message,
            finish_reason=self.finish_reason, raw_finish_reason=self.raw_finish_reason,
            usage=self.usage, id=self.id, request_id=request_id, refusal=self.refusal,
            reasoning=self.reasoning, rate_limit=rate_limit, extra=self.extra,
            parsed=self.parsed,
        )

    @property
    def text(self) -> str:
        """The assistant's text ('' when it only called tools)."""
        return self.message.content or ""

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return self.message.tool_calls


@attrs.frozen(kw_only=True, slots=True)
class TextDelta:
    """A fragment of the answer text.

    Attributes:
        text: The fragment.
    """

    text: str


@attrs.frozen(kw_only=True, slots=True)
class ReasoningDelta:
    """A fragment of the model's reasoning, where the provider exposes it.

    Attributes:
        text: The fragment.
    """

    text: str


@attrs.frozen(kw_only=True, slots=True)
class RefusalDelta:
    """A fragment of a refusal message.

    Attributes:
        text: The fragment.
    """

    text: str


@attrs.frozen(kw_only=True, slots=True)
class ToolCallDelta:
    """A fragment of tool call ``index``: ``id``/``name`` on its first fragment, then arguments.

    Attributes:
        index: Which tool call of the answer this fragment belongs to.
        id: The call's id (on its first fragment).
        name: The tool's name (on its first fragment).
        arguments: The next piece of the JSON arguments text.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@attrs.frozen(kw_only=True, slots=True)
class UsageEvent:
    """Token usage so far; a later UsageEvent replaces an earlier one.

    Attributes:
        usage: The token counts so far.
    """

    usage: Usage


@attrs.frozen(kw_only=True, slots=True)
class FinishEvent:
    """Generation finished, and why (``raw`` is the provider's own word).

    Attributes:
        reason: Why generation stopped, normalised.
        raw: The provider's own word for it.
    """

    reason: FinishReason
    raw: str | None = None


#: Any event a stream yields.
StreamEvent = Union[  # noqa: UP007 - a runtime alias must work on Python 3.10 too
    TextDelta, ReasoningDelta, RefusalDelta, ToolCallDelta, UsageEvent, FinishEvent
]


class _PendingCall:
    __slots__ = ("args", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.args = io.StringIO()


class StreamAccumulator:
    """Folds stream events into a :class:`ChatResponse`; memory grows only with the text kept."""

    __slots__ = ("_calls", "_finish", "_reasoning", "_refusal", "_text", "extra", "id", "model",
                 "usage")

    def __init__(self) -> None:
        self._text = io.StringIO()
        self._reasoning: io.StringIO | None = None
        self._refusal: io.StringIO | None = None
        self._calls: dict[int, _PendingCall] = {}
        self._finish: FinishEvent | None = None
        self.usage: Usage | None = None
        self.id: str | None = None
        self.model: str | None = None
        self.extra: dict[str, Any] = {}

    def add(self, event: StreamEvent) -> None:
        """Fold one event in."""
        cls = type(event)
        if cls is TextDelta:
            self._text.write(event.text)  # type: ignore[union-attr]
        elif cls is ToolCallDelta:
            self._add_call(event)  # type: ignore[arg-type]
        elif cls is UsageEvent:
            self.usage = event.usage  # type: ignore[union-attr]
        elif cls is FinishEvent:
            self._finish = event  # type: ignore[assignment]
        elif cls is ReasoningDelta:
            if self._reasoning is None:
                self._reasoning = io.StringIO()
            self._reasoning.write(event.text)  # type: ignore[union-attr]
        elif cls is RefusalDelta:
            if self._refusal is None:
                self._refusal = io.StringIO()
            self._refusal.write(event.text)  # type: ignore[union-attr]

    def _add_call(self, delta: ToolCallDelta) -> None:
        call = self._calls.get(delta.index)
        if call is None:
            call = self._calls[delta.index] = _PendingCall()
        if delta.id:
            call.id = delta.id
        if delta.name:
            call.name = delta.name
        if delta.arguments:
            call.args.write(delta.arguments)

    def text_writer(self) -> Callable[[str], int]:
        """What ``add(TextDelta(text=t))`` does with ``t``, for per-chunk loops that have
        already looked at the event's type."""
        return self._text.write

    @property
    def finished(self) -> bool:
        return self._finish is not None

    def text(self) -> str:
        return self._text.getvalue()

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(id=c.id or f"call_{i}", name=c.name or "", arguments=c.args.getvalue() or "{}")
            for i, c in sorted(self._calls.items())
        )

    def response(self, *, provider: str, model: str, request_id: str | None = None,
                 rate_limit: RateLimitState | None = None) -> ChatResponse:
        """The aggregated response so far."""
        text = self.text()
        calls = self.tool_calls()
        return ChatResponse(
            provider=provider,
            model=self.model or model,
            message=Message(role="assistant", content=text if text or not calls else None,
                            tool_calls=calls, extra=dict(self.extra)),
            finish_reason=self._finish.reason if self._finish else None,
            raw_finish_reason=self._finish.raw if self._finish else None,
            usage=self.usage,
            id=self.id,
            request_id=request_id,
            refusal=self._refusal.getvalue() if self._refusal else None,
            reasoning=self._reasoning.getvalue() if self._reasoning else None,
            rate_limit=rate_limit,
            extra=dict(self.extra),
        )
