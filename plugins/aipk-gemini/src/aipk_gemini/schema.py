"""JSON Schema (what [`aipk.Tool`][aipk.Tool] carries) to Gemini's function-declaration ``Schema``.

Gemini's ``parameters`` field takes a subset of OpenAPI 3 schema. This module converts
faithfully where it can and refuses loudly where it cannot:

* **kept**: ``type``, ``properties``, ``required``, ``items``, ``enum`` (strings), ``anyOf``,
  ``description``, ``title``, ``nullable``, ``default``, ``example``, ``minimum``/``maximum``,
  ``minItems``/``maxItems``, ``minLength``/``maxLength``, ``pattern``, ``minProperties``/
  ``maxProperties``, ``propertyOrdering``, and ``format`` values Gemini knows;
* **rewritten**: local ``$ref`` into ``$defs``/``definitions`` is inlined; ``oneOf`` becomes
  ``anyOf``; ``{"type": "null"}`` members and ``["string", "null"]`` type lists become
  ``nullable``; ``const`` becomes a one-value ``enum``; a single-member ``allOf`` is merged;
* **stripped** (annotations and constraints Gemini rejects, whose loss only loosens validation):
  ``additionalProperties``, ``$schema``, ``$id``, ``$comment``, ``examples``, ``readOnly``,
  ``writeOnly``, ``deprecated``, ``uniqueItems``, ``exclusiveMinimum``/``exclusiveMaximum``,
  ``multipleOf``, ``unevaluatedProperties``, ``content*``, unknown ``format`` values, ``x-*``;
* **refused** with [`aipk.errors.InvalidRequestError`][aipk.errors.InvalidRequestError]
  (``field="tools"``) naming the tool, keyword and path: recursive ``$ref``, remote ``$ref``,
  ``not``, ``if``/``then``/``else``, ``patternProperties``, tuple ``items``/``prefixItems``,
  multi-member ``allOf``, non-string ``enum``/``const``, several non-null types, and nested objects
  without ``properties`` (Gemini rejects an OBJECT with no properties). The provider option
  ``parameters_json_schema=True`` sends the schema untouched as ``parametersJsonSchema`` instead
  (newer Gemini models only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aipk.errors import InvalidRequestError

__all__ = ["to_gemini_schema"]

_KEEP = frozenset({
    "description", "title", "nullable", "required", "minItems", "maxItems", "minimum", "maximum",
    "minLength", "maxLength", "pattern", "minProperties", "maxProperties", "propertyOrdering",
    "default", "example",
})
_STRIP = frozenset({
    "$schema", "$id", "$comment", "$anchor", "additionalProperties", "unevaluatedProperties",
    "examples", "readOnly", "writeOnly", "deprecated", "strict", "uniqueItems",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "contentMediaType", "contentEncoding",
    "contentSchema", "$defs", "definitions",
})
_FORMATS = frozenset({"enum", "date-time", "float", "double", "int32", "int64"})
_MAX_DEPTH = 64


class _Converter:
    __slots__ = ("defs", "tool")

    def __init__(self, tool: str, root: Mapping[str, Any]) -> None:
        self.tool = tool
        defs: dict[str, Any] = {}
        for key in ("definitions", "$defs"):
            table = root.get(key)
            if isinstance(table, Mapping):
                defs.update({f"#/{key}/{name}": value for name, value in table.items()})
        self.defs = defs

    def fail(self, path: str, why: str) -> InvalidRequestError:
        return InvalidRequestError(
            f"tool {self.tool!r}: {why} (at {path}); Gemini function declarations cannot "
            f"express it. Simplify the schema, or pass parameters_json_schema=True to the "
            f"client to send it as parametersJsonSchema (newer models only)",
            provider="gemini", field="tools",
        )

    def convert(self, node: Any, path: str, refs: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(node, Mapping):
            if node is True:
                return {}
            raise self.fail(path, f"a schema must be an object, not {type(node).__name__}")
        if len(refs) > _MAX_DEPTH or path.count(".") > _MAX_DEPTH * 2:
            raise self.fail(path, "the schema nests too deeply")
        ref = node.get("$ref")
        if ref is not None:
            if not isinstance(ref, str) or ref not in self.defs:
                raise self.fail(path, f"$ref {ref!r} does not point into $defs/definitions")
            if ref in refs:
                raise self.fail(path, f"recursive $ref {ref!r}")
            target = self.defs[ref]
            if not isinstance(target, Mapping):
                raise self.fail(path, f"$ref {ref!r} is not a schema object")
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return self.convert(merged, path, (*refs, ref))
        out: dict[str, Any] = {}
        for key, value in node.items():
            where = f"{path}.{key}"
            if key == "type":
                self._type(value, where, out)
            elif key == "properties":
                if not isinstance(value, Mapping):
                    raise self.fail(where, "properties must be an object")
                out["properties"] = {str(name): self.convert(sub, f"{where}.{name}", refs)
                                     for name, sub in value.items()}
            elif key == "items":
                if isinstance(value, (list, tuple)):
                    raise self.fail(where, "tuple-style items (a list of schemas)")
                out["items"] = self.convert(value, where, refs)
            elif key in ("anyOf", "oneOf"):
                self._any_of(value, where, refs, out)
            elif key == "allOf":
                if not isinstance(value, (list, tuple)) or len(value) != 1:
                    raise self.fail(where, "allOf with more than one schema")
                for sub_key, sub_value in self.convert(value[0], where, refs).items():
                    out.setdefault(sub_key, sub_value)
            elif key == "enum":
                self._enum(value, where, out)
            elif key == "const":
                self._enum([value], where, out)
            elif key == "format":
                if value in _FORMATS:
                    out["format"] = value
            elif key in _KEEP:
                out[key] = list(value) if key == "required" and isinstance(value, (list, tuple)) \
                    else value
            elif key in _STRIP or (isinstance(key, str) and key.startswith("x-")):
                continue
            else:
                raise self.fail(where, f"the JSON Schema keyword {key!r}")
        if out.get("type") == "object" and not out.get("properties") and path != "parameters":
            raise self.fail(path, "an object with no properties (a free-form map)")
        return out

    def _type(self, value: Any, where: str, out: dict[str, Any]) -> None:
        if isinstance(value, (list, tuple)):
            types = [t for t in value if t != "null"]
            if len(value) != len(types):
                out["nullable"] = True
            if len(types) != 1:
                raise self.fail(where, f"type {list(value)!r}: one non-null type is needed")
            value = types[0]
        if not isinstance(value, str) or value == "null":
            raise self.fail(where, f"type {value!r}")
        out["type"] = value

    def _any_of(self, value: Any, where: str, refs: tuple[str, ...],
                out: dict[str, Any]) -> None:
        if not isinstance(value, (list, tuple)) or not value:
            raise self.fail(where, "anyOf/oneOf must be a non-empty list")
        members = []
        for index, sub in enumerate(value):
            if isinstance(sub, Mapping) and sub.get("type") == "null" and len(sub) == 1:
                out["nullable"] = True
                continue
            members.append(self.convert(sub, f"{where}[{index}]", refs))
        if len(members) == 1:
            for sub_key, sub_value in members[0].items():
                out.setdefault(sub_key, sub_value)
        elif members:
            out["anyOf"] = members

    def _enum(self, value: Any, where: str, out: dict[str, Any]) -> None:
        if not isinstance(value, (list, tuple)):
            raise self.fail(where, "enum must be a list")
        if None in value:
            out["nullable"] = True
        values = [v for v in value if v is not None]
        if not all(isinstance(v, str) for v in values):
            raise self.fail(where, f"enum/const with non-string values {values!r}")
        out["enum"] = values
        out.setdefault("type", "string")


def to_gemini_schema(tool: str, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
    """Gemini's ``parameters`` for a tool, or None when it takes no arguments (Gemini rejects
    an OBJECT schema with empty ``properties``). Raises InvalidRequestError naming ``tool``."""
    converter = _Converter(tool, parameters)
    converted = converter.convert(parameters, "parameters")
    if not converted.get("properties"):
        return None
    return converted
