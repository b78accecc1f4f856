"""The Anthropic Messages API's event stream, decoded: one state machine fed server-sent events.

`AnthropicStreamDecoder` turns ``message_start`` … ``message_stop`` into aipk's stream events;
the usage and finish-reason functions it shares with whole responses are in
`aipk_anthropic.responses`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aipk import (
    FinishEvent,
    Provider,
    ReasoningDelta,
    RefusalDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageEvent,
    json_count,
)
from aipk.framing import parse_json
from aipk.sse import ServerSentEvent

from .responses import _reasoning_tokens, _refusal, _usage, finish_reason
from .status import _stream_error

__all__ = ["AnthropicStreamDecoder"]


class AnthropicStreamDecoder:
    """Messages API events to stream events; ``message_stop`` ends the stream.

    ``tool_use`` blocks are numbered 0, 1, 2… in order (text, thinking and server-tool blocks
    in between do not count), and their ``input_json_delta`` fragments become
    [`ToolCallDelta`][aipk.ToolCallDelta] arguments. Usage is cumulative: the one UsageEvent, at
    ``message_delta``, merges it with the input counts of ``message_start`` (whose counts alone
    make the UsageEvent at ``message_stop`` when no ``message_delta`` came). ``ping`` and
    unknown events are ignored; ``error`` raises StreamError. ``citations_delta`` citations
    are collected in ``extra["citations"]``; other content blocks (``server_tool_use``,
    ``web_search_tool_result`` …) are kept whole in ``extra["other_blocks"]``, a server
    tool's streamed input parsed into its ``input``. ``message_stop`` is the
    terminator: a body that ends before it was cut short.
    """

    terminator = "message_stop"

    __slots__ = ("_blocks", "_cache_read", "_cache_write", "_handlers", "_input", "_loads",
                 "_others", "_output", "_provider", "_reasoning", "_start_inputs", "_thinking",
                 "_tools", "_usage_sent", "done", "extra", "model", "response_id")

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self._loads = parse_json  # json.loads, minus its Python layers
        self._tools: dict[Any, int] = {}  # content block index -> tool-call ordinal
        #: a tool_use block's non-empty input given at its start, until a delta replaces it
        self._start_inputs: dict[Any, str] = {}
        self._blocks: dict[Any, str] = {}  # content block index -> block type
        self._thinking: dict[Any, tuple[dict[str, Any], list[str]]] = {}
        #: other blocks (server tools and their results), kept whole, and their input fragments
        self._others: dict[Any, tuple[dict[str, Any], list[str]]] = {}
        self._input: int | None = None
        self._output: int | None = None
        self._cache_read: int | None = None
        self._cache_write: int | None = None
        self._reasoning: int | None = None
        self._usage_sent = False
        self.done = False
        self.response_id: str | None = None
        self.model: str | None = None
        self.extra: dict[str, Any] = {}
        self._handlers = {
            "content_block_delta": self._block_delta,
            "content_block_start": self._block_start,
            "content_block_stop": self._block_stop,
            "message_start": self._message_start,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "error": self._error,
        }

    def feed(self, event: ServerSentEvent) -> Sequence[StreamEvent]:
        name = event.event
        if name is not None and name not in self._handlers:
            return ()  # ping, and event types newer than this plugin
        if name == "error":
            try:
                data = self._loads(event.data)
            except ValueError:
                data = {"error": event.data}
            raise _stream_error(self._provider, data.get("error") if type(data) is dict
                                else data)
        data = self._loads(event.data)
        if type(data) is not dict:
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        handler = self._handlers.get(name or data.get("type"))  # type: ignore[arg-type]
        if handler is None:
            return ()
        out = handler(data)
        if out and not self._usage_sent and (self._input is not None or
                                             self._output is not None):
            # message_start's counts (the prompt is billed from there), ahead of the first
            # content: a stream cut after it still counts its input tokens
            return (self._usage_event(), *out)
        return out

    def _message_start(self, data: dict[str, Any]) -> Sequence[StreamEvent]:
        message = data["message"]
        self.response_id = message.get("id")
        self.model = message.get("model")
        usage = message.get("usage")
        if usage:
            self._take_usage(usage)
        return ()

    def _take_usage(self, usage: Mapping[str, Any]) -> None:
        """Usage fields are cumulative: each one present overwrites the last."""
        value = json_count(usage.get("input_tokens"))
        if value is not None:
            self._input = value
        value = json_count(usage.get("output_tokens"))
        if value is not None:
            self._output = value
        value = json_count(usage.get("cache_read_input_tokens"))
        if value is not None:
            self._cache_read = value
        value = json_count(usage.get("cache_creation_input_tokens"))
        if value is not None:
            self._cache_write = value
        value = _reasoning_tokens(usage)
        if value is not None:
            self._reasoning = value

    def _block_start(self, data: dict[str, Any]) -> Sequence[StreamEvent]:
        index = data["index"]
        block = data["content_block"]
        kind = block["type"]
        self._blocks[index] = kind
        if kind == "text":
            text = block.get("text")
            return (TextDelta(text=text),) if text and type(text) is str else ()
        if kind == "tool_use":
            ordinal = self._tools[index] = len(self._tools)
            call_id, name = block["id"], block["name"]
            if type(call_id) is not str or type(name) is not str or not name:
                raise ValueError(f"tool_use block without a string id and a tool name "
                                 f"(name: {name!r}); the answer asks for a tool without "
                                 f"saying which")
            given = block.get("input")
            if given:  # the API sends {} and then deltas; a whole input here stands alone
                self._start_inputs[index] = json.dumps(given, ensure_ascii=False)
            return (ToolCallDelta(index=ordinal, id=call_id, name=name),)
        if kind == "thinking":
            text = block.get("thinking") or ""
            entry = {"type": "thinking", "thinking": text, "signature": block.get("signature")
                     or ""}
            self.extra.setdefault("thinking_blocks", []).append(entry)
            self._thinking[index] = (entry, [text] if type(text) is str else [])
            return (ReasoningDelta(text=text),) if text and type(text) is str else ()
        if kind == "redacted_thinking":
            self.extra.setdefault("thinking_blocks", []).append(dict(block))
        elif isinstance(block, dict):  # server_tool_use, web_search_tool_result …
            entry = dict(block)
            self.extra.setdefault("other_blocks", []).append(entry)
            self._others[index] = (entry, [])
        return ()

    def _block_delta(self, data: dict[str, Any]) -> Sequence[StreamEvent]:
        delta = data["delta"]
        kind = delta["type"]
        if kind == "text_delta":
            text = delta["text"]
            if type(text) is not str:
                raise ValueError("text_delta without text")
            return (TextDelta(text=text),) if text else ()
        if kind == "input_json_delta":
            index = data["index"]
            ordinal = self._tools.get(index)
            if ordinal is None:
                if index in self._blocks:  # input of a server tool (web search…): kept
                    other = self._others.get(index)
                    fragment = delta.get("partial_json")
                    if other is not None and type(fragment) is str:
                        other[1].append(fragment)
                    return ()
                raise ValueError(f"input_json_delta for content block {index!r} before its "
                                 f"content_block_start")
            fragment = delta["partial_json"]
            if type(fragment) is not str:
                raise ValueError("input_json_delta without partial_json")
            if self._start_inputs and fragment:
                self._start_inputs.pop(index, None)  # the deltas carry the input
            return (ToolCallDelta(index=ordinal, arguments=fragment),) if fragment else ()
        if kind == "thinking_delta":
            text = delta["thinking"]
            if type(text) is not str:
                raise ValueError("thinking_delta without thinking")
            pending = self._thinking.get(data["index"])
            if pending is not None:
                pending[1].append(text)
            return (ReasoningDelta(text=text),) if text else ()
        if kind == "signature_delta":
            pending = self._thinking.get(data["index"])
            if pending is not None:
                pending[0]["signature"] = delta["signature"]
        elif kind == "citations_delta":
            citation = delta.get("citation")
            if citation:
                self.extra.setdefault("citations", []).append(citation)
        return ()  # newer delta types

    def _block_stop(self, data: dict[str, Any]) -> Sequence[StreamEvent]:
        index = data["index"]
        pending = self._thinking.pop(index, None)
        if pending is not None:
            pending[0]["thinking"] = "".join(pending[1])
        if self._others:
            other = self._others.pop(index, None)
            if other is not None and "".join(other[1]).strip():
                text = "".join(other[1])
                try:
                    other[0]["input"] = json.loads(text)
                except ValueError:
                    other[0]["input"] = text  # not JSON after all: kept as sent
        if self._start_inputs:
            given = self._start_inputs.pop(index, None)
            if given is not None:
                return (ToolCallDelta(index=self._tools[index], arguments=given),)
        return ()

    def _message_delta(self, data: dict[str, Any]) -> Sequence[StreamEvent]:
        usage = data.get("usage")
        if usage:
            self._take_usage(usage)
        out: list[StreamEvent] = []
        delta = data.get("delta") or {}
        raw = delta.get("stop_reason")
        if raw is not None:
            if type(raw) is not str:
                raise ValueError(f"stop_reason {raw!r} is not a string")
            if delta.get("stop_sequence") is not None:
                self.extra["stop_sequence"] = delta["stop_sequence"]
            details = delta.get("stop_details")
            if details is not None:
                self.extra["stop_details"] = details
            if raw == "refusal":
                out.append(RefusalDelta(text=_refusal(details)))
            out.append(FinishEvent(reason=finish_reason(raw), raw=raw))
        out.append(self._usage_event())
        return out

    def _usage_event(self) -> UsageEvent:
        self._usage_sent = True
        return UsageEvent(usage=_usage(self._input, self._output, self._cache_read,
                                       self._cache_write, self._reasoning))

    def _message_stop(self, data: dict[str, Any]) -> Sequence[StreamEvent]:
        for entry, parts in self._thinking.values():
            entry["thinking"] = "".join(parts)
        self._thinking.clear()
        self.done = True
        if not self._usage_sent and (self._input is not None or self._output is not None):
            return (self._usage_event(),)  # no message_delta came: message_start's counts
        return ()

    def _error(self, data: dict[str, Any]) -> Sequence[StreamEvent]:
        raise _stream_error(self._provider, data.get("error"))

    def close(self) -> Sequence[StreamEvent]:
        return ()
