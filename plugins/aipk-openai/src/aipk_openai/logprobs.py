"""Token log probabilities (``logprobs``) of chat completions, kept in ``extra["logprobs"]``.

A request asks for them with ``extra={"logprobs": True}`` (and ``"top_logprobs": N``). A whole
answer keeps choice 0's ``logprobs`` object as sent (``{"content": [...], "refusal": ...}``);
a stream's per-chunk objects are joined into one of the same shape, each list (``content``,
``refusal``) the concatenation of its pieces in order. Streams that did not ask for them are
decoded by the plain decoders: the joining costs nothing on their chunks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aipk import ChatRequest, StreamEvent
from aipk.sse import ServerSentEvent

from .wire import OpenAIStreamDecoder

__all__ = ["LogprobsStreamDecoder", "join_logprobs", "wants_logprobs"]


def wants_logprobs(request: ChatRequest) -> bool:
    """True when ``request`` asks for log probabilities (``logprobs`` or ``top_logprobs`` in
    its ``extra``)."""
    extra = request.extra
    return bool(extra) and bool(extra.get("logprobs") or extra.get("top_logprobs"))


def join_logprobs(joined: dict[str, Any], piece: Any) -> None:
    """Add one chunk's ``logprobs`` object to ``joined``: list values are appended to the
    lists gathered so far, other values (``null``) kept only where nothing was gathered."""
    if not isinstance(piece, Mapping):
        return
    for key, value in piece.items():
        if isinstance(value, list):
            gathered = joined.get(key)
            if isinstance(gathered, list):
                gathered.extend(value)
            else:
                joined[key] = list(value)
        elif key not in joined:
            joined[key] = value


class LogprobsStreamDecoder(OpenAIStreamDecoder):
    """The OpenAI decoder for a stream that asked for ``logprobs``: choice 0's per-chunk
    ``logprobs`` objects are joined into ``extra["logprobs"]`` (see `join_logprobs()`).

    Put it first among the bases of a compatible provider's own decoder to give that one the
    same (``class Mine(LogprobsStreamDecoder, MyStreamDecoder)``)."""

    __slots__ = ()

    def feed(self, event: ServerSentEvent) -> Sequence[StreamEvent]:
        events = super().feed(event)
        data = event.data
        if '"logprobs"' in data:
            chunk = self._loads(data)
            choices = chunk.get("choices") if type(chunk) is dict else None
            for choice in choices if type(choices) is list else ():
                if type(choice) is dict and not choice.get("index") and choice.get("logprobs"):
                    join_logprobs(self.extra.setdefault("logprobs", {}), choice["logprobs"])
        return events
