"""What comes back: usage, finish reasons, the chat response and normalised stream events.

A stream yields a small set of event types, whatever the provider:

* [`TextDelta`][aipk._responses.TextDelta], [`ReasoningDelta`][aipk._responses.ReasoningDelta],
  [`RefusalDelta`][aipk._responses.RefusalDelta]: text fragments;
* [`ToolCallDelta`][aipk._responses.ToolCallDelta]: a fragment of tool call ``index``; ``id`` and
  ``name`` arrive on the first fragment of each index, ``arguments`` fragments concatenate;
* [`UsageEvent`][aipk._responses.UsageEvent]: token counts (the latest one wins);
* [`FinishEvent`][aipk._responses.FinishEvent]: why generation stopped.

[`StreamAccumulator`][aipk._responses.StreamAccumulator] folds events into the final
[`ChatResponse`][aipk._responses.ChatResponse].
"""

from __future__ import annotations

import enum
import io
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Union

import attrs

from ._messages import Message, ToolCall
from ._records import fast_record

if TYPE_CHECKING:
    from ._ratelimit import RateLimitState

__all__ = [
    "ChatResponse",
    "Choice",
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
    "json_count",
]


class FinishReason(str, enum.Enum):
    """Why the model stopped, normalised across providers.

    A plugin maps its provider's word onto one of these (keeping the word itself as
    ``raw_finish_reason`` / ``FinishEvent.raw``); a word it does not know becomes ``OTHER``.

    Attributes:
        STOP: The answer is complete (a natural end or a stop sequence).
        LENGTH: The answer hit ``max_tokens`` or the model's output limit.
        TOOL_CALLS: The model stopped to call tools.
        CONTENT_FILTER: The provider's safety filter cut the answer.
        REFUSAL: The model declined to answer.
        ERROR: The provider reported an error in the answer.
        OTHER: Any other reason (the provider's word is in the raw field).
    """

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    REFUSAL = "refusal"
    ERROR = "error"
    OTHER = "other"


@fast_record(kw_only=True)
class Usage:
    """Token counts for one call. A count the provider did not send stays None (never 0).

    Attributes:
        input_tokens: Tokens in the prompt (cached ones included); None when not reported.
        output_tokens: Tokens in the answer (reasoning included); None when not reported.
        total_tokens: The provider's total; else the sum of the counts it did report (None
            when it reported neither).
        reasoning_tokens: Output tokens spent on reasoning, where reported.
        cache_read_tokens: Input tokens read from the provider's prompt cache, where reported.
        cache_write_tokens: Input tokens written to the provider's prompt cache, where reported.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = attrs.field()
    reasoning_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None

    @total_tokens.default
    def _total(self) -> int | None:
        if self.input_tokens is None:
            return self.output_tokens
        if self.output_tokens is None:
            return self.input_tokens
        return self.input_tokens + self.output_tokens


def json_count(value: Any) -> int | None:
    """A count read from decoded JSON (``usage.prompt_tokens`` …): a non-negative whole number
    (an ``int``, or a float such as ``12.0``) as an ``int``; None for anything else, a string,
    a bool, a negative or fractional number included. For `Usage` fields in a plugin's parser;
    `parse_count()` reads the same from a header's text."""
    if type(value) is int:
        return value if value >= 0 else None
    if type(value) is float and value.is_integer() and value >= 0:
        return int(value)
    return None


def cost_of(usage: Usage | None, input_price: float | None,
            output_price: float | None) -> float | None:
    """US dollars for ``usage`` at these prices (dollars per million tokens); None when a
    price or a count it needs is unknown. Cached input is billed at the input price."""
    if usage is None or input_price is None or output_price is None:
        return None
    given, made = usage.input_tokens, usage.output_tokens
    if given is None or made is None:
        return None
    return (given * input_price + made * output_price) / 1_000_000


@fast_record(kw_only=True)
class Choice:
    """One of several answers to a request (``n > 1``).

    Attributes:
        index: The choice's position (0 is the response's own ``message``).
        message: The assistant message of this choice.
        finish_reason: Why this choice stopped, a [`FinishReason`][aipk.FinishReason] (never
            the provider's string); None when not reported.
        raw_finish_reason: The provider's own word for it.
    """

    index: int
    message: Message
    finish_reason: FinishReason | None = None
    raw_finish_reason: str | None = None


@fast_record(kw_only=True)
class ChatResponse:
    """A complete answer. ``message`` is the assistant message to append to the conversation.

    Attributes:
        provider: The provider id that answered.
        model: The model that answered, as the provider reported it.
        message: The assistant message, ready to append to the conversation.
        finish_reason: Why generation stopped, a [`FinishReason`][aipk.FinishReason] (never
            the provider's string: map it, `FinishReason.OTHER` for words you do not know);
            None when not reported.
        raw_finish_reason: The provider's own word for why generation stopped.
        usage: Token counts, when the provider reported them.
        id: The provider's id for this answer.
        request_id: The provider's request id (from the response headers), for support tickets.
        refusal: The refusal text, when the model declined to answer.
        reasoning: The model's reasoning text, where the provider exposes it.
        rate_limit: What the response headers said about the provider's limits.
        extra: Provider-specific response fields (for example ``system_fingerprint``).
        cost: What the call cost in US dollars: what the provider reported, where it does
            (OpenRouter), else from the model's prices in the plugin's static model table and
            ``usage``; None when neither is known.
        more_choices: Choices 1, 2 … when the request asked for several (``n > 1``);
            ``choices`` lists them all, choice 0 first.
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
    cost: float | None = None
    more_choices: tuple[Choice, ...] = ()
    parsed: Any = None

    @property
    def choices(self) -> tuple[Choice, ...]:
        """Every choice, in order: choice 0 (``message``, ``finish_reason``) then
        ``more_choices``."""
        first = Choice(index=0, message=self.message, finish_reason=self.finish_reason,
                       raw_finish_reason=self.raw_finish_reason)
        return (first, *self.more_choices)

    def with_transport_info(self, request_id: str | None, rate_limit: RateLimitState | None,
                            cost: float | None = None) -> ChatResponse:
        """A copy carrying the request id, rate-limit state and (when the response has none)
        ``cost`` (faster than attrs.evolve)."""
        return ChatResponse(
            provider=self.provider, model=self.model, message=self.message,
            finish_reason=self.finish_reason, raw_finish_reason=self.raw_finish_reason,
            usage=self.usage, id=self.id, request_id=request_id, refusal=self.refusal,
            reasoning=self.reasoning, rate_limit=rate_limit, extra=self.extra,
            cost=self.cost if self.cost is not None else cost, more_choices=self.more_choices,
            parsed=self.parsed,
        )

    @property
    def text(self) -> str:
        """The assistant's text ('' when it only called tools)."""
        return self.message.content or ""

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls the answer asks for (``message.tool_calls``; empty for none)."""
        return self.message.tool_calls


@fast_record(kw_only=True)
class TextDelta:
    """A fragment of the answer text.

    Attributes:
        text: The fragment.
        choice: Which choice (``n > 1``) it belongs to; 0 for the usual single answer.
    """

    text: str
    choice: int = 0


@fast_record(kw_only=True)
class ReasoningDelta:
    """A fragment of the model's reasoning, where the provider exposes it.

    Attributes:
        text: The fragment.
        choice: Which choice (``n > 1``) it belongs to; 0 for the usual single answer.
    """

    text: str
    choice: int = 0


@fast_record(kw_only=True)
class RefusalDelta:
    """A fragment of a refusal message.

    Attributes:
        text: The fragment.
        choice: Which choice (``n > 1``) it belongs to; 0 for the usual single answer.
    """

    text: str
    choice: int = 0


@fast_record(kw_only=True)
class ToolCallDelta:
    """A fragment of tool call ``index``: ``id``/``name`` on its first fragment, then arguments.

    Attributes:
        index: Which tool call of the answer this fragment belongs to.
        id: The call's id (on its first fragment).
        name: The tool's name (on its first fragment).
        arguments: The next piece of the JSON arguments text.
        choice: Which choice (``n > 1``) it belongs to; 0 for the usual single answer.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    choice: int = 0


@fast_record(kw_only=True)
class UsageEvent:
    """Token usage so far; a later UsageEvent replaces an earlier one.

    Attributes:
        usage: The token counts so far.
    """

    usage: Usage


@fast_record(kw_only=True)
class FinishEvent:
    """Generation finished, and why (``raw`` is the provider's own word).

    Attributes:
        reason: Why generation stopped, a [`FinishReason`][aipk.FinishReason] (map the
            provider's word; `FinishReason.OTHER` for words you do not know).
        raw: The provider's own word for it.
        choice: Which choice (``n > 1``) finished; 0 for the usual single answer.
    """

    reason: FinishReason
    raw: str | None = None
    choice: int = 0


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
    """Folds stream events into a `ChatResponse`; memory grows only with the text kept."""

    __slots__ = ("_calls", "_finish", "_others", "_reasoning", "_refusal", "_text", "extra", "id",
                 "model", "usage")

    def __init__(self) -> None:
        self._text = io.StringIO()
        self._reasoning: io.StringIO | None = None
        self._refusal: io.StringIO | None = None
        self._calls: dict[int, _PendingCall] = {}
        self._finish: FinishEvent | None = None
        #: choices 1, 2 … (n > 1), each folded by an accumulator of its own
        self._others: dict[int, StreamAccumulator] | None = None
        self.usage: Usage | None = None
        self.id: str | None = None
        self.model: str | None = None
        self.extra: dict[str, Any] = {}

    def add(self, event: StreamEvent) -> None:
        """Fold one event in (an event of choice 1, 2 … goes to that choice)."""
        if type(event) is not UsageEvent and event.choice:  # type: ignore[union-attr]
            self._other(event.choice).add_own(event)  # type: ignore[union-attr]
            return
        self.add_own(event)

    def _other(self, choice: int) -> StreamAccumulator:
        others = self._others
        if others is None:
            others = self._others = {}
        found = others.get(choice)
        if found is None:
            found = others[choice] = StreamAccumulator()
        return found

    def add_own(self, event: StreamEvent) -> None:
        """Fold one event in as this accumulator's own, whatever its ``choice``."""
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

    def _message(self) -> Message:
        text = self.text()
        calls = self.tool_calls()
        return Message(role="assistant", content=text if text or not calls else None,
                       tool_calls=calls, extra=dict(self.extra))

    def choices(self) -> tuple[Choice, ...]:
        """Choices 1, 2 … folded so far (empty for a single answer)."""
        if not self._others:
            return ()
        return tuple(
            Choice(index=i, message=other._message(),
                   finish_reason=other._finish.reason if other._finish else None,
                   raw_finish_reason=other._finish.raw if other._finish else None)
            for i, other in sorted(self._others.items()))

    def response(self, *, provider: str, model: str, request_id: str | None = None,
                 rate_limit: RateLimitState | None = None,
                 cost: float | None = None) -> ChatResponse:
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
            cost=cost,
            more_choices=self.choices(),
        )
