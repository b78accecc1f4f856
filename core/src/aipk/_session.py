"""One stream being decoded: bytes in, stream events out, the answer accumulated.

`StreamSession` is fed a response body's chunks by either client: its framer (SSE unless the
provider's decoder declares another framing) splits them into frames, the provider's decoder
turns frames into events, and the accumulator folds the events into the answer. It does no
I/O; [`Engine.open_stream()`][aipk._core.Engine.open_stream] makes one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ._decoding import IncompleteStreamError, StreamDecoder
from ._messages import ChatRequest
from ._providers import Provider
from ._ratelimit import RateLimitState
from ._responses import ChatResponse, StreamAccumulator, StreamEvent, TextDelta, Usage
from ._secrets import masked, redact_error
from ._sniff import SniffingFramer, not_a_stream
from ._structured import with_parsed
from .errors import ProviderError, ResponseError
from .framing import Framer, make_framer

__all__ = ["StreamOwner", "StreamSession"]

class StreamOwner(Protocol):
    """What a session needs of the engine that opened it: the provider, and the price of the
    usage it reports."""

    @property
    def provider(self) -> Provider: ...

    @property
    def telemetry(self) -> Any: ...

    def cost(self, model: str, usage: Usage | None,
             answered_by: str | None = None) -> float | None: ...


class StreamSession:
    """One stream being decoded: the framer (SSE unless the decoder declares another
    ``framing``), the provider's decoder, and the accumulator."""

    __slots__ = ("_add", "_backlog", "_decoder", "_engine", "_failed", "_request", "_sse",
                 "_sse_feed", "_write_text", "accumulator", "delivered", "done", "rate_limit",
                 "request_id")

    def __init__(self, engine: StreamOwner, decoder: StreamDecoder, request: ChatRequest,
                 request_id: str | None, rate_limit: RateLimitState | None,
                 framer: Framer | None = None) -> None:
        self._engine = engine
        self._decoder = decoder
        self._request = request
        self._sse = framer if framer is not None else make_framer(None)
        self._sse_feed = self._sse.feed
        self.accumulator = StreamAccumulator()
        self._add = self.accumulator.add
        self._write_text = self.accumulator.text_writer()
        self.request_id = request_id
        self.rate_limit = rate_limit
        self.delivered = False
        #: the decoder saw the stream's terminator (the client reads no further)
        self.done = False
        #: frames `first()` read but did not decode yet (`backlog()` decodes them)
        self._backlog: Sequence[Any] = ()
        #: an error met after other events of the same read: raised once those are handed out
        self._failed: ProviderError | None = None

    def first(self, chunk: bytes) -> list[StreamEvent]:
        """`feed()` for the chunks before the stream's first events: decodes the chunk's
        frames only until one gives events and keeps the rest for `backlog()`, so the first
        event goes out as soon as its bytes are in, not once the whole read is decoded (one
        read often holds the whole short answer, or hundreds of events of a long one). Call
        `backlog()` after delivering its events, before feeding the next chunk."""
        try:
            sse_events = self._sse_feed(chunk)
        except ValueError as exc:  # SSEDecodeError, FramingError, or a plugin framer's own
            raise masked(self._bad(str(exc)), exc) from None
        for index in range(len(sse_events)):
            events = self._events(sse_events[index:index + 1])
            if events or self.done:
                if not self.done:
                    self._backlog = sse_events[index + 1:]
                return events
        return []

    def backlog(self) -> list[StreamEvent]:
        """The events of the frames `first()` kept (none: an empty list)."""
        pending = self._backlog
        if not pending:
            if self._failed is not None:
                raise self._failed
            return []
        self._backlog = ()
        return self._events(pending)

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """Decode one body chunk into the events it completes. An error in a frame after
        others that gave events is raised by the next call (`feed()`, `backlog()` or
        `finish()`), so the events before it are handed out first."""
        if self._failed is not None:
            raise self._failed
        try:
            sse_events = self._sse_feed(chunk)
        except ValueError as exc:  # SSEDecodeError, FramingError, or a plugin framer's own
            raise masked(self._bad(str(exc)), exc) from None
        if not sse_events:
            return []
        return self._events(sse_events)

    def finish(self) -> list[StreamEvent]:
        """The body ended: decode what is left; without the protocol's terminator, raise
        `IncompleteStreamError` carrying the answer received so far."""
        decoder = self._decoder
        out: list[StreamEvent] = self.backlog()
        if self._failed is not None:
            raise self._failed
        if not decoder.done:
            cut = False
            try:
                out += self._events(self._sse.close())
            except (ValueError, ResponseError):  # framing errors (SSEDecodeError too) included
                cut = True  # the body ended inside an event, which is dropped
            if not decoder.done:
                raise self._incomplete(cut)
        try:
            tail = decoder.close()
        except ProviderError as exc:
            raise self._stamp(exc) from None
        for event in tail:
            self.accumulator.add(event)
            out.append(event)
        return out

    def _incomplete(self, cut: bool) -> ResponseError:
        """The one end-of-stream rule for every protocol: no terminator, no answer; what did
        arrive goes on the error."""
        sniffed = self._sse
        if type(sniffed) is SniffingFramer and sniffed.kind in ("json", "text"):
            return not_a_stream(sniffed, self._engine.provider.name, self.request_id)
        partial = self.response()
        terminator = getattr(self._decoder, "terminator", None) or "its end-of-stream marker"
        where = "in the middle of an event" if cut else "early"
        received = (f"{len(partial.text)} characters of text, {len(partial.tool_calls)} tool "
                    f"call(s), usage {'included' if partial.usage else 'not yet sent'}")
        return IncompleteStreamError(
            f"the stream ended {where}, before its terminator ({terminator}): the connection "
            f"was closed or the provider stopped sending. The answer received so far "
            f"({received}) is on this error's .partial; retry the request for the whole answer",
            provider=self._engine.provider.name, partial=partial, request_id=self.request_id,
        )

    def _events(self, sse_events: Sequence[Any]) -> list[StreamEvent]:
        decoder = self._decoder
        add = self._add
        write_text = self._write_text
        out: list[StreamEvent] = []
        frames = iter(sse_events)
        while True:
            try:
                for sse in frames:
                    for event in decoder.feed(sse):
                        if type(event) is TextDelta and not event.choice:  # the common case
                            write_text(event.text)
                        else:
                            add(event)
                        out.append(event)
                    if decoder.done:
                        self.done = True
                        break
                break
            except ProviderError as exc:
                return self._fail(self._stamp(exc), out)
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                if not (isinstance(exc, ValueError) and not sse.data.strip()):
                    kind = type(decoder)
                    return self._fail(masked(self._bad(
                        f"{type(exc).__name__}: {exc}",
                        decoder=f"{kind.__module__}.{kind.__qualname__}"), exc), out)
                # an event with no data ("data:" alone, a keep-alive some servers send) is
                # skipped: go on with the next frame
        if out:
            self.delivered = True
        return out

    def _fail(self, error: ProviderError, out: list[StreamEvent]) -> list[StreamEvent]:
        """Raise ``error`` now, or, when frames before it gave events, hand those out first
        and raise it at the next call: nothing the provider sent before an error is lost."""
        error.__suppress_context__ = True  # as `raise ... from None`: the cause is in the text
        if not out:
            raise error
        self._failed = error
        self.delivered = True
        self._backlog = ()
        return out

    def _stamp(self, exc: ProviderError) -> ProviderError:
        if exc.request_id is None:
            exc.request_id = self.request_id
        redact_error(exc)
        return exc

    def _bad(self, detail: str, *, decoder: str | None = None) -> ResponseError:
        blame = (f" by {decoder}; the provider or a proxy sent something that is not its "
                 f"event stream, or that stream decoder (of the provider's plugin) has a bug"
                 if decoder else "; the provider or a proxy sent something that is not its "
                 "event stream")
        return ResponseError(
            f"the stream could not be decoded ({detail}){blame}",
            provider=self._engine.provider.name, request_id=self.request_id,
        )

    def cost(self) -> float | None:
        """US dollars for the answer so far: what the provider reported (the decoder's
        ``cost``), else its usage at the plugin's static prices; None when neither is known."""
        reported = getattr(self._decoder, "cost", None)
        if reported is not None:
            return float(reported)
        acc = self.accumulator
        engine = self._engine
        if acc.usage is None or not engine.telemetry.prices:
            return None
        return engine.cost(self._request.model, acc.usage, acc.model or self._decoder.model)

    def response(self) -> ChatResponse:
        acc = self.accumulator
        acc.id = acc.id or self._decoder.response_id
        acc.model = acc.model or self._decoder.model
        acc.extra.update(self._decoder.extra)
        engine = self._engine
        cost = self.cost()
        response = acc.response(provider=engine.provider.name, model=self._request.model,
                                request_id=self.request_id, rate_limit=self.rate_limit,
                                cost=cost)
        if self._request.response_format is not None:
            return with_parsed(response, self._request.response_format)
        return response
