"""The contract for provider stream decoders.

A decoder is a small state machine: the client feeds it each :class:`~aipk.sse.ServerSentEvent`
and yields the normalised events it returns. It raises :class:`~aipk.errors.StreamError` for an
in-band error, and :class:`~aipk.errors.ResponseError` from :meth:`StreamDecoder.close` when the
body ended before the protocol's terminator. A ``ValueError`` from ``json.loads`` may simply
propagate: the client turns it into a ResponseError carrying the provider and request id.

The body is framed as server-sent events unless the decoder has a ``framing`` attribute (class
or instance): ``"ndjson"``, ``"json-array"``, ``"sse"``, or a zero-argument callable returning a
:class:`~aipk.framing.Framer`. Every framing hands the decoder
:class:`~aipk.sse.ServerSentEvent` frames; for the JSON framings ``data`` is one JSON document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ._responses import StreamEvent
from .sse import ServerSentEvent

__all__ = ["StreamDecoder"]


@runtime_checkable
class StreamDecoder(Protocol):
    """Turns one provider's stream frames (SSE events unless it declares a ``framing``) into
    normalised stream events."""

    #: True once the protocol's terminator arrived; the client stops reading then.
    done: bool
    #: Response id and model as the provider reported them, once known.
    response_id: str | None
    model: str | None
    #: Provider data to keep on the final response (e.g. a thought signature).
    extra: dict[str, Any]

    def feed(self, event: ServerSentEvent) -> Sequence[StreamEvent]:
        """Consume one SSE event; return the events it produced (often one, maybe none)."""
        ...

    def close(self) -> Sequence[StreamEvent]:
        """The body ended: return any final events, or raise ResponseError if it was cut short."""
        ...
