"""Gemini's streamed answers, decoded: one decoder fed ``streamGenerateContent`` chunks (SSE
events, or the elements of one JSON array); the request and response functions it shares are
in `aipk_gemini.wire`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aipk import (
    ChatRequest,
    FinishEvent,
    Provider,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
    framing,
)
from aipk.sse import ServerSentEvent

from .parts import PartialArguments, other_part
from .status import _stream_error
from .wire import (
    _block_reason,
    _call_json,
    _first_candidate,
    _other_candidates,
    _parts,
    _unwrap,
    finish_reason,
    parse_usage,
    prompt_blocked,
    raw_finish_reason,
    stream_framing,
)

__all__ = ["GeminiStreamDecoder", "candidate_count"]




def candidate_count(request: ChatRequest) -> int:
    """How many candidates ``request`` asks for (``generationConfig.candidateCount`` in its
    ``extra``; 1 when unset or not a positive whole number)."""
    config = request.extra.get("generationConfig")
    count = config.get("candidateCount") if isinstance(config, Mapping) else None
    return count if type(count) is int and count > 1 else 1


class GeminiStreamDecoder:
    """``streamGenerateContent?alt=sse`` chunks (or Code Assist envelopes) to stream events.

    Each chunk is a whole GenerateContentResponse: text parts become TextDelta, ``thought``
    parts ReasoningDelta, each ``functionCall`` one complete ToolCallDelta (index, id, name and
    the JSON arguments); ``usageMetadata`` is a running snapshot, re-emitted when it changes;
    ``finishReason`` (or a ``promptFeedback.blockReason``) becomes the FinishEvent; source
    metadata (grounding, URL context, citations) is kept in ``extra``. Gemini sends
    no terminator event (no ``[DONE]``): the chunk carrying the finish reason is the last one,
    with the final ``usageMetadata``, and then the body ends. So that chunk is the terminator
    (``done``), and a body that ends before it was cut short. With ``candidates > 1``
    (``generationConfig.candidateCount``) the stream ends once that many candidates finished:
    one may finish after another.

    ``framing`` follows the provider's ``stream_framing`` option: ``"sse"``, or
    ``"json-array"`` for a stream requested without ``alt=sse`` (each array element is one
    chunk).
    """

    terminator = "a chunk with a finishReason"

    __slots__ = ("_calls", "_candidates", "_finished", "_loads", "_other_calls", "_partial",
                 "_provider", "_usage", "done", "extra", "framing", "model", "response_id")

    def __init__(self, provider: Provider, candidates: int = 1) -> None:
        self._provider = provider
        self._candidates = candidates  # how many must finish before the stream is done
        self._finished: set[int] = set()
        #: the core framer this stream is read with (see `stream_framing()`)
        self.framing = stream_framing(provider)
        # the JSON-array framer parsed each element already; framing.loads reuses that parse
        self._loads = json.loads if self.framing == "sse" else framing.loads
        self._calls = 0
        #: a function call whose arguments are streamed (``partialArgs``): index, arguments
        self._partial: tuple[int, PartialArguments] | None = None
        self._other_calls: dict[int, int] | None = None  # candidate -> calls so far (n > 1)
        self._usage: Usage | None = None
        self.done = False
        self.response_id: str | None = None
        self.model: str | None = None
        self.extra: dict[str, Any] = {}

    def feed(self, event: ServerSentEvent) -> Sequence[StreamEvent]:
        chunk = self._loads(event.data)
        if type(chunk) is list and len(chunk) == 1:
            chunk = chunk[0]
        if type(chunk) is not dict:
            raise ValueError(f"expected a JSON object, got {type(chunk).__name__}")
        error = chunk.get("error")
        if error:
            raise _stream_error(self._provider, error)
        chunk = _unwrap(chunk)
        if ("candidates" not in chunk and "usageMetadata" not in chunk
                and "promptFeedback" not in chunk):
            raise ValueError(
                "not a GenerateContentResponse (no candidates, usageMetadata or "
                "promptFeedback); is base_url a Gemini endpoint?")
        if self.response_id is None:
            self.response_id = chunk.get("responseId")
            self.model = chunk.get("modelVersion")
        out: list[StreamEvent] = []
        candidate = _first_candidate(chunk)
        if candidate is not None:
            for part in _parts(candidate):
                if type(part) is dict:
                    self._part(part, out)
            if ("groundingMetadata" in candidate or "citationMetadata" in candidate
                    or "urlContextMetadata" in candidate):
                self._sources(candidate)
            raw = candidate.get("finishReason")
            if type(raw) is int:  # enum-encoding=int
                raw = raw_finish_reason(raw)
            if raw and isinstance(raw, str):
                if self._partial is not None:  # a streamed call the finish closes
                    self._close_partial(out)
                if candidate.get("finishMessage"):  # why (MALFORMED_FUNCTION_CALL …)
                    self.extra["finishMessage"] = candidate["finishMessage"]
                self._finish(0)
                out.append(FinishEvent(reason=finish_reason(raw, self._calls > 0), raw=raw))
        else:
            blocked = _block_reason(chunk)
            if blocked is not None:
                raise prompt_blocked(self._provider, blocked, chunk)
        candidates = chunk.get("candidates")
        if (type(candidates) is list and len(candidates) > 1) or (
                candidate is None and candidates):
            self._others(chunk, out)
        meta = chunk.get("usageMetadata")
        if meta:
            usage = parse_usage(meta)
            if usage is not None and usage != self._usage:
                self._usage = usage
                out.append(UsageEvent(usage=usage))
        return out

    def _others(self, chunk: Mapping[str, Any], out: list[StreamEvent]) -> None:
        """Events of candidates 1, 2 … (``candidateCount > 1``), tagged with ``choice``."""
        counts = self._other_calls
        if counts is None:
            counts = self._other_calls = {}
        for which, candidate in _other_candidates(chunk):
            for part in _parts(candidate):
                if type(part) is not dict or part.get("thought"):
                    continue
                call = part.get("functionCall")
                if call is not None:
                    if type(call) is not dict or not call.get("name") or not isinstance(
                            call["name"], str):
                        raise ValueError(f"functionCall without a name: {call!r}")
                    index = counts.get(which, 0)
                    counts[which] = index + 1
                    out.append(ToolCallDelta(index=index, id=str(call.get("id") or
                                                                 f"call_{index}"),
                                             name=call["name"],
                                             arguments=_call_json(call.get("args")),
                                             choice=which))
                elif isinstance(part.get("text"), str) and part["text"]:
                    out.append(TextDelta(text=part["text"], choice=which))
            raw = raw_finish_reason(candidate.get("finishReason"))
            if raw:
                self._finish(which)
                out.append(FinishEvent(reason=finish_reason(raw, which in counts), raw=raw,
                                       choice=which))

    def _sources(self, candidate: Mapping[str, Any]) -> None:
        """Candidate 0's source metadata into ``extra``, as a whole answer has it: the latest
        ``groundingMetadata`` and ``urlContextMetadata`` (sent whole, with the last chunk), and
        every chunk's ``citationMetadata.citationSources`` joined in order."""
        for key in ("groundingMetadata", "urlContextMetadata"):
            value = candidate.get(key)
            if value:
                self.extra[key] = value
        citations = candidate.get("citationMetadata")
        sources = citations.get("citationSources") if isinstance(citations, Mapping) else None
        if isinstance(sources, list) and sources:
            kept = self.extra.setdefault("citationMetadata", {"citationSources": []})
            kept["citationSources"].extend(sources)

    def _finish(self, which: int) -> None:
        if self._candidates == 1:
            self.done = True
            return
        self._finished.add(which)
        self.done = len(self._finished) >= self._candidates

    def _part(self, part: dict[str, Any], out: list[StreamEvent]) -> None:
        signature = part.get("thoughtSignature")
        call = part.get("functionCall")
        if call is not None:
            if type(call) is dict and (call.get("willContinue") or self._partial is not None):
                self._streamed_call(call, signature, out)
                return
            if type(call) is not dict or not call.get("name") or not isinstance(
                    call["name"], str):
                raise ValueError(f"functionCall without a name: {call!r}; the answer asks "
                                 f"for a tool without saying which")
            index = self._calls
            self._calls += 1
            call_id = call.get("id") or f"call_{index}"
            out.append(ToolCallDelta(index=index, id=str(call_id), name=call["name"],
                                     arguments=_call_json(call.get("args"))))
            if signature:
                self.extra.setdefault("functionCallSignatures", {})[str(call_id)] = signature
            return
        text = part.get("text")
        if text and isinstance(text, str):
            out.append(ReasoningDelta(text=text) if part.get("thought") else TextDelta(text=text))
        elif text is None and other_part(part):
            self.extra.setdefault("other_parts", []).append(part)
        if signature:
            self.extra["thoughtSignature"] = signature

    def _streamed_call(self, call: dict[str, Any], signature: Any,
                       out: list[StreamEvent]) -> None:
        """One part of a function call whose arguments are streamed (see
        `aipk_gemini.parts`): the named part opens it (a ToolCallDelta with the name), the
        part without ``willContinue`` closes it (a ToolCallDelta with the whole arguments)."""
        name = call.get("name")
        if isinstance(name, str) and name:
            if self._partial is not None:
                raise ValueError(f"functionCall {name!r} opened before the last one closed")
            index = self._calls
            self._calls += 1
            call_id = str(call.get("id") or f"call_{index}")
            self._partial = (index, PartialArguments())
            out.append(ToolCallDelta(index=index, id=call_id, name=name))
            if signature:
                self.extra.setdefault("functionCallSignatures", {})[call_id] = signature
        elif self._partial is None:
            raise ValueError(f"functionCall without a name: {call!r}")
        index, arguments = self._partial
        if "partialArgs" in call:
            arguments.add(call["partialArgs"])
        if not call.get("willContinue"):
            self._close_partial(out)

    def _close_partial(self, out: list[StreamEvent]) -> None:
        assert self._partial is not None
        index, arguments = self._partial
        self._partial = None
        out.append(ToolCallDelta(index=index, arguments=arguments.json()))

    def close(self) -> Sequence[StreamEvent]:
        return ()
