"""OpenAI's streamed chat completions, decoded: the one stream decoder OpenAI-compatible
plugins share (`aipk_openai.wire` re-exports it); the request and response functions
it uses are in `aipk_openai.wire`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aipk import (
    FinishReason,
    Provider,
    ReasoningDelta,
    RefusalDelta,
    StreamEvent,
    ToolCallDelta,
)
from aipk.framing import parse_json
from aipk.sse import ServerSentEvent

from .status import _flat_error, _stream_error
from .wire import _finish_event, _text_delta, _usage_event, finish_reason, parse_usage

__all__ = ["OpenAIStreamDecoder"]


class OpenAIStreamDecoder:
    """Chat-completion chunks to stream events; ``data: [DONE]`` ends the stream.

    Every choice is streamed (``n > 1``): events of choice 1, 2 … carry ``choice``. Tool-call
    fragments are keyed by their ``index``; ``id`` and ``name`` come on the first fragment
    (fragments without an index are numbered by their ``id``: each new id is the next call;
    a new id at an index whose call had another one is the next call too).
    A chunk carrying ``error`` raises StreamError, even when it also carries choices
    (OpenRouter), and so does a flat error object in place of a chunk (Cerebras:
    ``{"message", "type", "param", "code"}``). ``[DONE]`` is the terminator: OpenAI and every
    compatible server send it last, after the finish reason and (when requested with
    ``stream_options.include_usage``) the usage chunk, so a body that ends without it was cut
    short even if a finish reason came.
    """

    terminator = "[DONE]"

    __slots__ = ("_called", "_ids", "_loads", "_named", "_provider", "_refused", "_slots",
                 "_texted", "done", "extra", "model", "response_id")

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self._loads = parse_json  # json.loads, minus its Python layers
        self._refused = False  # a refusal and no text: "stop" means REFUSAL, as in chat()
        self._texted = False
        self._called: set[int] | None = None  # the choices that called tools
        self._ids: list[str] | None = None  # ids of tool calls sent without an index
        #: (choice, tool call index) -> whether a fragment named the tool
        self._named: dict[tuple[int, int], bool] | None = None
        #: wire index -> [the call's index, its id], for servers that reuse an index
        self._slots: dict[int, list[Any]] | None = None
        self.done = False
        self.response_id: str | None = None
        self.model: str | None = None
        self.extra: dict[str, Any] = {}

    def feed(self, event: ServerSentEvent) -> Sequence[StreamEvent]:
        data = event.data
        if data[:6] == "[DONE]":
            self.done = True
            if self._named is not None and not all(self._named.values()):
                self._nameless()
            return ()
        chunk = self._loads(data)
        if type(chunk) is not dict:
            raise ValueError(f"expected a JSON object, got {type(chunk).__name__}")
        if chunk.get("error"):
            raise _stream_error(self._provider, chunk["error"])
        if "choices" not in chunk and "usage" not in chunk:
            if _flat_error(chunk):
                raise _stream_error(self._provider, chunk)
            raise ValueError(
                f"not a chat.completion.chunk (type {chunk.get('type')!r}); is base_url a "
                f"chat-completions endpoint?"
            )
        if not self.response_id:  # Azure's first chunk (prompt_filter_results) has id ""
            self.response_id = chunk.get("id")
            self.model = chunk.get("model")
        out: list[StreamEvent] = []
        for choice in chunk.get("choices") or ():
            which = choice.get("index") or 0
            if type(which) is not int:
                raise ValueError(f"choice index {which!r} is not an integer")
            delta = choice.get("delta")
            if delta:
                text = delta.get("content")
                if text:
                    if which:
                        out.append(_text_delta(text=text, choice=which))
                    else:
                        self._texted = True
                        out.append(_text_delta(text=text))
                    if len(delta) == 1:  # the usual chunk: text and nothing else
                        delta = None
            if delta:
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if reasoning:
                    out.append(ReasoningDelta(text=reasoning, choice=which))
                refusal = delta.get("refusal")
                if refusal:
                    self._refused = self._refused or not which
                    out.append(RefusalDelta(text=refusal, choice=which))
                calls = delta.get("tool_calls")
                if calls:
                    self._note_call(which)
                    for call in calls:
                        fn = call.get("function") or call.get("custom") or {}
                        index = call.get("index")
                        if index is None:
                            index = self._unindexed(call.get("id"))
                        elif type(index) is not int:
                            raise ValueError(f"tool call index {index!r} is not an integer")
                        elif not which:
                            index = self._indexed(index, call.get("id"))
                        name = fn.get("name")
                        self._name_seen(which, index, name)
                        out.append(ToolCallDelta(index=index, id=call.get("id"), name=name,
                                                 arguments=(fn.get("arguments")
                                                            or fn.get("input") or ""),
                                                 choice=which))
                elif delta.get("function_call"):
                    self._note_call(which)
                    out.append(self._legacy_call(delta["function_call"], which))
                if not which and (delta.get("annotations") or delta.get("audio")
                                  or delta.get("images")):
                    self._keep(delta)
            raw = choice.get("finish_reason")
            if raw:
                if raw == "error" and choice.get("error"):  # OpenRouter: the upstream failed
                    raise _stream_error(self._provider, choice["error"])
                reason = finish_reason(raw)
                if reason is FinishReason.STOP and (self._refused or self._called is not None):
                    reason = self._stop_reason(which)
                out.append(_finish_event(reason=reason, raw=raw, choice=which))
                if not chunk.get("usage") and type(chunk.get("x_groq")) is dict:
                    self._groq_usage(chunk["x_groq"], out)
        usage = chunk.get("usage")
        if usage:
            out.append(_usage_event(usage=parse_usage(usage)))
        return out

    def _note_call(self, which: int) -> None:
        called = self._called
        if called is None:
            called = self._called = set()
        called.add(which)

    def _stop_reason(self, which: int) -> FinishReason:
        """What ``stop`` means for choice ``which``: REFUSAL after a refusal and no text (as
        in chat()), TOOL_CALLS after tool calls (gpt-4o with a forced ``tool_choice``, Gemini's
        and older Ollama's OpenAI-compatible APIs say ``stop`` then), else STOP."""
        if self._refused and not self._texted and not which:
            return FinishReason.REFUSAL
        if self._called is not None and which in self._called:
            return FinishReason.TOOL_CALLS
        return FinishReason.STOP

    @staticmethod
    def _groq_usage(groq: dict[str, Any], out: list[StreamEvent]) -> None:
        """Groq puts the stream's usage in ``x_groq.usage`` of the chunk with the finish
        reason (a usage chunk after it, if any, wins: the latest UsageEvent counts)."""
        usage = groq.get("usage")
        if type(usage) is dict and usage:
            out.append(_usage_event(usage=parse_usage(usage)))

    def _legacy_call(self, call: Any, which: int) -> ToolCallDelta:
        """A fragment of the deprecated ``function_call`` (one call per answer): tool call 0;
        the fragment naming the function also gets the id ``call_0`` (the wire has none)."""
        if type(call) is not dict:
            raise ValueError(f"function_call {call!r} is not an object")
        name = call.get("name")
        self._name_seen(which, 0, name)
        return ToolCallDelta(index=0, id="call_0" if name else None, name=name or None,
                             arguments=call.get("arguments") or "", choice=which)

    def _name_seen(self, which: int, index: int, name: Any) -> None:
        """Note whether tool call ``index`` of choice ``which`` has been named yet."""
        named = self._named
        if named is None:
            named = self._named = {}
        if name and type(name) is str:
            named[which, index] = True
        elif (which, index) not in named:
            named[which, index] = False

    def _nameless(self) -> None:
        """ValueError (a ResponseError to the caller) for a stream that ended with a tool
        call whose fragments never named the tool: a call the client cannot run."""
        missing = sorted(key for key, named in (self._named or {}).items() if not named)
        which, index = missing[0]
        raise ValueError(f"tool call {index} (choice {which}) ended without a tool name; the "
                         f"answer asks for a tool without saying which")

    def _keep(self, delta: Mapping[str, Any]) -> None:
        """What choice 0's delta carries beside text, reasoning, refusals and tool calls,
        gathered into ``extra`` as a whole answer has it: url citations, audio output (its
        ``transcript`` and base64 ``data`` pieces joined) and generated images."""
        annotations = delta.get("annotations")
        if annotations and type(annotations) is list:
            self.extra.setdefault("annotations", []).extend(annotations)
        images = delta.get("images")
        if images and type(images) is list:
            self.extra.setdefault("images", []).extend(images)
        audio = delta.get("audio")
        if audio and type(audio) is dict:
            kept = self.extra.setdefault("audio", {})
            for key, value in audio.items():
                if key in ("transcript", "data") and type(value) is str:
                    kept[key] = kept.get(key, "") + value
                elif value is not None:
                    kept[key] = value

    def _indexed(self, index: int, call_id: Any) -> int:
        """The index of a tool-call fragment sent with ``index``: that index, unless the
        fragment brings a new id at an index whose call had another one (Ollama's
        OpenAI-compatible API sends every call of a turn as index 0): then the next free
        index, so two calls are never merged into one."""
        slots = self._slots
        if slots is None:
            slots = self._slots = {}
        slot = slots.get(index)
        if slot is None:
            taken = {own for own, _ in slots.values()}
            own: int = index if index not in taken else max(taken) + 1
            slots[index] = [own, call_id or None]
            return own
        if isinstance(call_id, str) and call_id:
            if slot[1] is None:
                slot[1] = call_id  # the id came after the first fragment
            elif call_id != slot[1]:  # another call at a reused index
                own = max(taken for taken, _ in slots.values()) + 1
                slots[index] = [own, call_id]
                return own
        return int(slot[0])

    def _unindexed(self, call_id: Any) -> int:
        """The index of a tool-call fragment sent without one: a new id is the next call (some
        compatible servers send each call whole, none with an index), a known id its own, no
        id the last call's."""
        ids = self._ids
        if ids is None:
            ids = self._ids = []
        if isinstance(call_id, str) and call_id:
            if call_id not in ids:
                ids.append(call_id)
            return ids.index(call_id)
        return max(len(ids) - 1, 0)

    def close(self) -> Sequence[StreamEvent]:
        return ()
