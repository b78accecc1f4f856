"""A small JSON Schema validator and checker for the subset aipk derives and providers accept.

Keywords understood: ``type`` (one or a list), ``properties``, ``required``, ``items``,
``enum``, ``const``, ``anyOf``, ``oneOf``, ``allOf``, ``additionalProperties`` (bool or a
schema), ``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum``,
``minLength``/``maxLength``, ``minItems``/``maxItems``, and local ``$ref`` into ``$defs`` or
``definitions``. Other keywords (``description``, ``title``, ``format``, ``default`` …) are
accepted and ignored. Nothing here imports a third-party package: the validator costs nothing
to calls that do not ask for structured output.

`problems()` lists every violation as ``(path, message)`` with a JSON path such as
``$.items[2].name``; `schema_problems()` lists what is wrong with a schema itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["KNOWN_TYPES", "problems", "schema_problems"]

KNOWN_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if _IDENT.match(key) else f"{path}[{key!r}]"


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, Mapping)
    if name == "array":
        return isinstance(value, (list, tuple))
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float))
    return True


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref is supported, not {ref!r}")
    node: Any = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        node = node[part.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, Mapping):
        raise ValueError(f"$ref {ref!r} does not point at a schema")
    return node


def problems(value: Any, schema: Mapping[str, Any] | bool,
             root: Mapping[str, Any] | None = None, path: str = "$") -> list[tuple[str, str]]:
    """Every way ``value`` violates ``schema``, as ``(json_path, message)`` pairs."""
    if schema is True:
        return []
    if schema is False:
        return [(path, "no value is allowed here")]
    if root is None:
        root = schema
    out: list[tuple[str, str]] = []
    ref = schema.get("$ref")
    if ref is not None:
        out.extend(problems(value, _resolve(ref, root), root, path))
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if not any(_is_type(value, k) for k in kinds):
            return [*out, (path, f"expected {' or '.join(kinds)}, got {_describe(value)}")]
    if "const" in schema and not _equal(value, schema["const"]):
        out.append((path, f"expected {schema['const']!r}, got {value!r}"))
    enum = schema.get("enum")
    if enum is not None and not any(_equal(value, e) for e in enum):
        out.append((path, f"{value!r} is not one of {list(enum)!r}"))
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if options is not None:
            matched = sum(1 for option in options if not problems(value, option, root, path))
            if matched == 0:
                out.append((path, f"{_describe(value)} matches none of the {key} alternatives"))
            elif key == "oneOf" and matched > 1:
                out.append((path, f"{_describe(value)} matches {matched} oneOf alternatives"))
    for option in schema.get("allOf", ()):
        out.extend(problems(value, option, root, path))
    if isinstance(value, Mapping):
        out.extend(_object_problems(value, schema, root, path))
    elif isinstance(value, (list, tuple)):
        out.extend(_array_problems(value, schema, root, path))
    elif isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append((path, f"shorter than minLength {schema['minLength']}"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append((path, f"longer than maxLength {schema['maxLength']}"))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out.extend(_number_problems(value, schema, path))
    return out


def _number_problems(value: float, schema: Mapping[str, Any], path: str) -> list[tuple[str, str]]:
    out = []
    if "minimum" in schema and value < schema["minimum"]:
        out.append((path, f"{value} is below the minimum {schema['minimum']}"))
    if "maximum" in schema and value > schema["maximum"]:
        out.append((path, f"{value} is above the maximum {schema['maximum']}"))
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        out.append((path, f"{value} is not above {schema['exclusiveMinimum']}"))
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        out.append((path, f"{value} is not below {schema['exclusiveMaximum']}"))
    return out


def _object_problems(value: Mapping[str, Any], schema: Mapping[str, Any],
                     root: Mapping[str, Any], path: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    props: Mapping[str, Any] = schema.get("properties") or {}
    for name in schema.get("required", ()):
        if name not in value:
            out.append((_child(path, name), "required property is missing"))
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        sub = props.get(key)
        if sub is not None:
            out.extend(problems(item, sub, root, _child(path, key)))
        elif extra is False:
            out.append((_child(path, key), "property is not allowed here"))
        elif isinstance(extra, Mapping):
            out.extend(problems(item, extra, root, _child(path, key)))
    return out


def _array_problems(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any],
                    path: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if "minItems" in schema and len(value) < schema["minItems"]:
        out.append((path, f"fewer than minItems {schema['minItems']} items"))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        out.append((path, f"more than maxItems {schema['maxItems']} items"))
    items = schema.get("items")
    if isinstance(items, (Mapping, bool)):
        for index, item in enumerate(value):
            out.extend(problems(item, items, root, _child(path, index)))
    return out


def _equal(a: Any, b: Any) -> bool:
    return (type(a) is type(b) and a == b) or (
        not isinstance(a, bool) and not isinstance(b, bool)
        and isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == b)


def _describe(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
             float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf")
_NON_NEGATIVE = ("minLength", "maxLength", "minItems", "maxItems")


def schema_problems(schema: Any, root: Any = None, path: str = "$") -> list[tuple[str, str]]:
    """What is wrong with ``schema`` itself (unknown types, malformed keywords, dangling
    ``$ref``), as ``(json_path, message)`` pairs; empty when it is usable."""
    if isinstance(schema, bool):
        return []
    if not isinstance(schema, Mapping):
        return [(path, f"a schema must be an object or a boolean, not {_describe(schema)}")]
    if root is None:
        root = schema
    out: list[tuple[str, str]] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else kind
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            out.append((f"{path}.type", "type must be a string or a list of strings"))
        else:
            out.extend((f"{path}.type", f"unknown type {k!r}; use one of "
                        f"{', '.join(sorted(KNOWN_TYPES))}") for k in kinds
                       if k not in KNOWN_TYPES)
    props = schema.get("properties")
    if props is not None:
        if not isinstance(props, Mapping):
            out.append((f"{path}.properties", "properties must be an object of schemas"))
        else:
            for name, sub in props.items():
                out.extend(schema_problems(sub, root, _child(f"{path}.properties", name)))
    required = schema.get("required")
    if required is not None and (not isinstance(required, list)
                                 or not all(isinstance(r, str) for r in required)):
        out.append((f"{path}.required", "required must be a list of property names"))
    for key in ("items", "additionalProperties"):
        if key in schema and not isinstance(schema[key], bool):
            out.extend(schema_problems(schema[key], root, f"{path}.{key}"))
    for key in _SCHEMA_LISTS:
        if key in schema:
            options = schema[key]
            if not isinstance(options, list) or not options:
                out.append((f"{path}.{key}", f"{key} must be a non-empty list of schemas"))
            else:
                for index, sub in enumerate(options):
                    out.extend(schema_problems(sub, root, f"{path}.{key}[{index}]"))
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        out.append((f"{path}.enum", "enum must be a non-empty list"))
    for key in _NON_NEGATIVE:
        if key in schema and (not isinstance(schema[key], int) or isinstance(schema[key], bool)
                              or schema[key] < 0):
            out.append((f"{path}.{key}", f"{key} must be a non-negative integer"))
    for key in ("$defs", "definitions"):
        defs = schema.get(key)
        if isinstance(defs, Mapping):
            for name, sub in defs.items():
                out.extend(schema_problems(sub, root, f"{path}.{key}.{name}"))
    ref = schema.get("$ref")
    if ref is not None:
        try:
            _resolve(ref, root)
        except (ValueError, KeyError, TypeError, IndexError):
            out.append((f"{path}.$ref", f"$ref {ref!r} does not resolve inside this schema"))
    return out
