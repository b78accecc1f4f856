"""The contract for provider stream decoders, and the error for a stream that ended early.

A decoder is a small state machine: the client feeds it each
[`ServerSentEvent`][aipk.sse.ServerSentEvent] and yields the normalised events it returns. It sets
``done`` when the protocol's terminator arrives; if the body ends while ``done`` is still False, the
client (not the decoder) raises `IncompleteStreamError` carrying the answer received so far.
A decoder raises [`StreamError`][aipk.errors.StreamError] for an in-band error. A ``ValueError``
from ``json.loads`` may simply propagate: the client turns it into a ResponseError carrying the
provider and request id.

The body is framed as server-sent events unless the decoder has a ``framing`` attribute (class
or instance): ``"ndjson"``, ``"json-array"``, ``"sse"``, or a zero-argument callable returning a
`Framer`. Every framing hands the decoder
[`ServerSentEvent`][aipk.sse.ServerSentEvent] frames; for the JSON framings ``data`` is one JSON
document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ._responses import ChatResponse, StreamEvent
from .errors import ResponseError
from .sse import ServerSentEvent

__all__ = ["IncompleteStreamError", "StreamDecoder"]


@runtime_checkable
class StreamDecoder(Protocol):
    """Turns one provider's stream frames (SSE events unless it declares a ``framing``) into
    normalised stream events.

    A decoder may also name its terminator in a class attribute ``terminator`` (for example
    ``"data: [DONE]"``); the error for a stream that ended without it quotes the name. A
    ``framing`` attribute (``"sse"`` by default, ``"ndjson"``, ``"json-array"`` or a class
    returning a `Framer`) says how the core splits the body into frames.

    Attributes:
        done: True once the protocol's terminator arrived: the stream is complete, the client
            stops reading, and a body that ends while this is still False is an
            `IncompleteStreamError`.
        response_id: The response id as the provider reported it, once known.
        model: The model as the provider reported it, once known.
        extra: Provider data to keep on the final response (e.g. a thought signature).

    A decoder may also set ``cost``: the US dollars the provider reported for this answer
    (OpenRouter does), once known; the final response's ``cost`` and the call's metrics then
    use it instead of pricing the usage at the plugin's static prices.
    """

    done: bool
    response_id: str | None
    model: str | None
    extra: dict[str, Any]

    def feed(self, event: ServerSentEvent) -> Sequence[StreamEvent]:
        """Consume one frame (an SSE event, or one unit of the declared ``framing``: read
        ``event.data``); return the events it produced (often one, maybe none)."""
        ...

    def close(self) -> Sequence[StreamEvent]:
        """The body ended after the terminator: return any final events (usually none)."""
        ...


class IncompleteStreamError(ResponseError):
    """A stream whose body ended before the protocol's terminator (the connection was closed
    early, or the provider or a proxy stopped sending).

    ``partial`` is the answer received until then, as a [`ChatResponse`][aipk.ChatResponse]: the
    text, reasoning and tool calls so far (the last tool call's arguments may be cut off), and the
    usage if the provider had reported it. Retryable: a new request gets the whole answer.
    """

    def __init__(self, message: str, *, provider: str, partial: ChatResponse,
                 request_id: str | None = None) -> None:
        super().__init__(message, provider=provider, request_id=request_id, retryable=True)
        #: The answer received before the stream ended.
        self.partial = partial
