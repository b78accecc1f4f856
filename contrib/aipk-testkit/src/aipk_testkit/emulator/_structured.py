"""Structured output in the emulator: what a request asks for, and an answer that follows it.

When a chat request asks for JSON (OpenAI ``response_format``, Anthropic ``output_config`` or a
forced tool, Gemini ``generationConfig.responseMimeType``/``responseJsonSchema``/
``responseSchema``) and no reply is scripted, the emulator answers with `sample()` of the
schema: a deterministic instance that follows it (every property present, the first enum value,
minimums respected), as JSON text, or as the forced tool's arguments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._types import Reply, ToolCallSpec

__all__ = ["Structured", "sample", "structured_reply"]


@dataclass(frozen=True)
class Structured:
    """What a request asked for: JSON text (``schema`` None is plain JSON mode), or a call to
    the forced tool ``tool`` with arguments following ``schema``."""

    schema: Any = None
    tool: str | None = None


def _resolve(ref: str, root: Mapping[str, Any]) -> Any:
    node: Any = root
    for part in ref.lstrip("#").split("/"):
        if part:
            node = node[part]
    return node


def sample(schema: Any, root: Any = None) -> Any:
    """A deterministic value following ``schema`` (JSON Schema, or Gemini's OpenAPI subset)."""
    if not isinstance(schema, Mapping):
        return {}
    root = schema if root is None else root
    if "$ref" in schema:
        return sample(_resolve(schema["$ref"], root), root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key) and "type" not in schema and "properties" not in schema:
            return sample(schema[key][0], root)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = sample(part, root)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    kind = kind.lower() if isinstance(kind, str) else kind
    if kind == "object":
        return {name: sample(sub, root) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [sample(schema.get("items", {}), root) for _ in range(count)]
    if kind == "string":
        return "x" * max(4, int(schema.get("minLength", 0)))
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {}


def structured_reply(wanted: Structured) -> Reply:
    """The reply an unscripted request for structured output gets."""
    value = sample(wanted.schema) if wanted.schema is not None else {"answer": "echo"}
    if wanted.tool is not None:
        return Reply(tool_calls=[ToolCallSpec(name=wanted.tool, arguments=value)],
                     finish_reason=None)
    return Reply(text=json.dumps(value))


def openai_structured(data: Mapping[str, Any]) -> Structured | None:
    """What an OpenAI chat body's ``response_format`` asks for."""
    fmt = data.get("response_format")
    if not isinstance(fmt, Mapping):
        return None
    if fmt.get("type") == "json_schema":
        inner = fmt.get("json_schema") or {}
        return Structured(schema=inner.get("schema") or {})
    if fmt.get("type") != "json_object":
        return None
    return Structured(schema=_prompted_schema(data.get("messages")))


def _prompted_schema(messages: Any) -> Any:
    """A JSON Schema a system message gives after ``JSON Schema:`` (JSON mode requests that
    describe the answer in the prompt get an answer following it, as a real model would)."""
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if message.get("role") == "system" and isinstance(content, str) and (
                _MARK in content):
            try:
                return json.loads(content.split(_MARK, 1)[1])
            except ValueError:
                return None
    return None


_MARK = "JSON Schema:"


def anthropic_structured(data: Mapping[str, Any]) -> Structured | None:
    """What an Anthropic Messages body asks for: ``output_config.format`` or a forced tool."""
    config = data.get("output_config")
    if isinstance(config, Mapping) and isinstance(config.get("format"), Mapping):
        return Structured(schema=config["format"].get("schema") or {})
    choice = data.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "tool":
        for tool in data.get("tools") or ():
            if isinstance(tool, Mapping) and tool.get("name") == choice.get("name"):
                return Structured(schema=tool.get("input_schema") or {}, tool=tool["name"])
    return None


def gemini_structured(data: Mapping[str, Any]) -> Structured | None:
    """What a Gemini body's ``generationConfig`` asks for."""
    config = data.get("generationConfig")
    if not isinstance(config, Mapping) or config.get("responseMimeType") != "application/json":
        return None
    return Structured(schema=config.get("responseJsonSchema") or config.get("responseSchema"))


def ollama_structured(data: Mapping[str, Any]) -> Structured | None:
    """What an Ollama ``/api/chat`` body's ``format`` asks for: ``"json"`` or a JSON Schema."""
    fmt = data.get("format")
    if fmt == "json":
        return Structured(schema=None)
    if isinstance(fmt, Mapping):
        return Structured(schema=fmt)
    return None
