"""Gemini answer parts that need more than a field read: parts aipk has no field for, and
function-call arguments streamed piece by piece.

Streamed arguments (Vertex AI, ``toolConfig.functionCallingConfig.streamFunctionCallArguments``)
come as a run of ``functionCall`` parts: ``{"name", "willContinue": true}`` opens the call,
``{"partialArgs": [{"jsonPath", "stringValue" | "numberValue" | "boolValue" | "nullValue",
"willContinue"}], "willContinue": true}`` parts fill it in (a string arrives in pieces for the
same path), ``{"willContinue": true}`` parts separate values, and a part without
``willContinue`` (usually ``{}``) closes it. `PartialArguments` rebuilds the JSON object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["OTHER_PARTS", "PartialArguments", "other_part"]

#: part kinds with no aipk field (code execution, generated files and images), kept in
#: ``extra["other_parts"]`` as Gemini sent them
OTHER_PARTS = ("executableCode", "codeExecutionResult", "inlineData", "fileData")

_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\[(?:'([^']*)'|\"([^\"]*)\")\]")
_VALUES = ("stringValue", "numberValue", "boolValue", "nullValue")


def other_part(part: Mapping[str, Any]) -> bool:
    """True for a part of a kind in `OTHER_PARTS`."""
    return any(kind in part for kind in OTHER_PARTS)


def _steps(path: str) -> list[str | int]:
    """``$.a.b[0]['c d']`` as ``["a", "b", 0, "c d"]``; ValueError for anything else."""
    if not path.startswith("$"):
        raise ValueError(f"partialArgs jsonPath {path!r} does not start with $")
    steps: list[str | int] = []
    at = 1
    while at < len(path):
        match = _STEP.match(path, at)
        if match is None:
            raise ValueError(f"partialArgs jsonPath {path!r} is not a simple path")
        key, index, single, double = match.groups()
        steps.append(int(index) if index is not None else
                     key if key is not None else single if single is not None else double)
        at = match.end()
    return steps


class PartialArguments:
    """The arguments of one function call streamed as ``partialArgs``, rebuilt."""

    __slots__ = ("_root",)

    def __init__(self) -> None:
        self._root: dict[str, Any] = {}

    def add(self, fragments: Any) -> None:
        """Apply one part's ``partialArgs`` list."""
        if not isinstance(fragments, list):
            raise ValueError(f"partialArgs {fragments!r} is not a list")
        for fragment in fragments:
            if not isinstance(fragment, Mapping) or not isinstance(fragment.get("jsonPath"),
                                                                   str):
                raise ValueError(f"partialArgs entry {fragment!r} has no jsonPath")
            for kind in _VALUES:
                if kind in fragment:
                    self._set(_steps(fragment["jsonPath"]), kind, fragment[kind])
                    break

    def _set(self, steps: list[str | int], kind: str, value: Any) -> None:
        if not steps:
            raise ValueError("partialArgs jsonPath $ alone names no argument")
        node: Any = self._root
        for step, following in zip(steps, [*steps[1:], None], strict=True):
            if following is None:
                break
            child: Any = [] if isinstance(following, int) else {}
            node = self._child(node, step, child)
        last = steps[-1]
        if kind == "nullValue":
            value = None
        elif kind == "stringValue":
            if not isinstance(value, str):
                raise ValueError(f"partialArgs stringValue {value!r} is not a string")
            before = self._get(node, last)
            if isinstance(before, str):
                value = before + value  # the next piece of a streamed string
        self._put(node, last, value)

    @staticmethod
    def _get(node: Any, step: str | int) -> Any:
        if isinstance(node, dict):
            return node.get(step)
        return node[step] if isinstance(step, int) and step < len(node) else None

    @classmethod
    def _child(cls, node: Any, step: str | int, empty: Any) -> Any:
        existing = cls._get(node, step)
        if existing is not None:
            return existing
        cls._put(node, step, empty)
        return empty

    @staticmethod
    def _put(node: Any, step: str | int, value: Any) -> None:
        if isinstance(node, dict) and isinstance(step, str):
            node[step] = value
        elif isinstance(node, list) and isinstance(step, int):
            node.extend([None] * (step + 1 - len(node)))
            node[step] = value
        else:
            raise ValueError(f"partialArgs path step {step!r} does not fit {type(node).__name__}")

    def json(self) -> str:
        """The arguments as compact JSON, as Gemini's whole ``args`` are encoded."""
        return json.dumps(self._root, ensure_ascii=False, separators=(",", ":"))
