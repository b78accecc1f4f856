"""JSON Schemas from Python types, and the one converter between JSON data and records.

`json_schema_for()` derives a JSON Schema from an attrs class, a dataclass, a pydantic model
(when pydantic is installed; it is never required) or a plain type. Record fields without a
default are ``required``; nested records are inlined. Supported field types: ``str``, ``int``,
``float``, ``bool``, ``None``, ``Optional``/``Union``/``X | Y``, ``list``/``tuple``/``set``,
``dict[str, T]``, ``Literal``, ``Enum`` subclasses, ``Any`` and nested records.

`structure()` and `unstructure()` turn decoded JSON into those records and back through one
cattrs ``converter`` (built on first use: importing cattrs costs milliseconds that a call
without structured output need not pay), or pydantic's own ``model_validate``/``model_dump``
for a pydantic model. `strict_schema()` rewrites a schema the way OpenAI's strict mode requires.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

import attrs

if typing.TYPE_CHECKING:
    import cattrs

__all__ = ["SchemaDerivationError", "drop_added_nulls", "is_record",
           "json_schema_for", "strict_schema", "structure", "unstructure"]

_converter: cattrs.Converter | None = None


def _the_converter() -> cattrs.Converter:
    """The converter between decoded JSON and records (attrs classes and dataclasses)."""
    global _converter
    if _converter is None:
        from cattrs.preconf.json import make_converter

        _converter = make_converter()
    return _converter


def __getattr__(name: str) -> Any:
    if name == "converter":  # ``aipk._schema.converter``, built on first use
        return _the_converter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

_PRIMITIVES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean",
                               type(None): "null"}
_NoneType = type(None)


def _is_pydantic(tp: Any) -> bool:
    return isinstance(tp, type) and callable(getattr(tp, "model_json_schema", None)) and (
        callable(getattr(tp, "model_validate", None)))


def is_record(tp: Any) -> bool:
    """Whether ``tp`` is a class aipk can derive a schema for and structure into."""
    return isinstance(tp, type) and (attrs.has(tp) or dataclasses.is_dataclass(tp)
                                     or _is_pydantic(tp))


class SchemaDerivationError(TypeError):
    """A type has no JSON Schema aipk can derive (raised as InvalidRequestError by callers)."""


def json_schema_for(tp: Any) -> dict[str, Any]:
    """The JSON Schema of ``tp`` (a record class, a pydantic model or a supported type)."""
    if _is_pydantic(tp):
        schema: dict[str, Any] = tp.model_json_schema()
        return schema
    return _schema(tp, ())


def _record_fields(cls: type) -> list[tuple[str, Any, bool, str]]:
    """(name, type, required, description) for each field of an attrs class or dataclass."""
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError) as exc:
        raise SchemaDerivationError(f"cannot resolve the field types of {cls.__name__}: {exc}")\
            from None
    out = []
    if attrs.has(cls):
        for field in attrs.fields(cls):
            if not field.init:
                continue
            required = field.default is attrs.NOTHING
            description = str(field.metadata.get("description", ""))
            out.append((field.alias or field.name, hints.get(field.name, field.type), required,
                        description))
    else:
        for dfield in dataclasses.fields(cls):
            if not dfield.init:
                continue
            required = (dfield.default is dataclasses.MISSING
                        and dfield.default_factory is dataclasses.MISSING)
            description = str(dfield.metadata.get("description", ""))
            out.append((dfield.name, hints.get(dfield.name, dfield.type), required, description))
    return out


def _schema(tp: Any, seen: tuple[type, ...]) -> dict[str, Any]:
    if tp is Any or tp is object:
        return {}
    if tp in _PRIMITIVES:
        return {"type": _PRIMITIVES[tp]}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [member.value for member in tp]
        kinds = sorted({_PRIMITIVES[type(v)] for v in values if type(v) in _PRIMITIVES})
        out: dict[str, Any] = {"enum": values}
        if len(kinds) == 1:
            out["type"] = kinds[0]
        return out
    if isinstance(tp, type) and (attrs.has(tp) or dataclasses.is_dataclass(tp)):
        return _record_schema(tp, seen)
    if _is_pydantic(tp):
        nested: dict[str, Any] = tp.model_json_schema()
        return nested
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        kinds = sorted({_PRIMITIVES[type(v)] for v in args if type(v) in _PRIMITIVES})
        lit: dict[str, Any] = {"enum": list(args)}
        if len(kinds) == 1:
            lit["type"] = kinds[0]
        return lit
    if origin is Union or origin is types.UnionType:
        return _union_schema(args, seen)
    if origin in (list, set, frozenset) or tp in (list, set, frozenset) or (
            origin in (typing.Sequence, typing.MutableSequence)):
        return {"type": "array", "items": _schema(args[0], seen) if args else {}}
    if origin is tuple or tp is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _schema(args[0], seen)}
        if not args:
            return {"type": "array"}
        return {"type": "array", "prefixItems": [_schema(a, seen) for a in args],
                "minItems": len(args), "maxItems": len(args)}
    if origin in (dict, typing.Mapping, typing.MutableMapping) or tp is dict:
        if args and args[0] is not str:
            raise SchemaDerivationError(f"{tp}: JSON object keys are strings; use dict[str, ...]")
        return {"type": "object", "additionalProperties": _schema(args[1], seen) if args else {}}
    raise SchemaDerivationError(
        f"no JSON Schema for {tp!r}; use str, int, float, bool, None, list, dict[str, ...], "
        f"Literal, Enum, Optional/Union, or an attrs class or dataclass of those")


def _union_schema(args: tuple[Any, ...], seen: tuple[type, ...]) -> dict[str, Any]:
    options = [_schema(a, seen) for a in args]
    if all(set(o) == {"type"} and isinstance(o["type"], str) for o in options):
        kinds = [o["type"] for o in options]
        return {"type": kinds[0] if len(kinds) == 1 else kinds}
    return {"anyOf": options}


def _record_schema(cls: type, seen: tuple[type, ...]) -> dict[str, Any]:
    if cls in seen:
        raise SchemaDerivationError(
            f"{cls.__name__} refers to itself; recursive records have no inline JSON Schema")
    seen = (*seen, cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, field_type, is_required, description in _record_fields(cls):
        sub = _schema(field_type, seen)
        if description:
            sub = {**sub, "description": description}
        properties[name] = sub
        if is_required:
            required.append(name)
    schema: dict[str, Any] = {"type": "object", "title": cls.__name__, "properties": properties,
                              "required": required, "additionalProperties": False}
    doc = inspect.getdoc(cls)
    if doc and not doc.startswith(f"{cls.__name__}("):  # dataclasses invent a signature doc
        schema["description"] = doc.split("\n\n", 1)[0].strip()
    return schema


def structure(data: Any, tp: Any) -> Any:
    """``data`` (decoded JSON) as an instance of ``tp``; raises on a mismatch."""
    if _is_pydantic(tp):
        return tp.model_validate(data)
    return _the_converter().structure(data, tp)


def unstructure(value: Any) -> Any:
    """``value`` as plain JSON data (the inverse of `structure()`)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and _is_pydantic(type(value)):
        return dump(mode="json")
    return _the_converter().unstructure(value)


def strict_schema(schema: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """``schema`` rewritten for OpenAI's strict mode, and whether strict mode can take it.

    Every object gets ``additionalProperties: false`` and lists every property as required;
    a property that was optional becomes nullable instead (`drop_added_nulls()` undoes
    that on the answer). ``default`` and ``title`` are removed. A free-form object (a
    ``dict[str, ...]`` field) cannot be strict, so the second value is then False.
    """
    ok = [True]
    return _strict(schema, ok), ok[0]


#: Keywords whose value maps names (chosen by the user) to schemas.
_NAMED = ("properties", "$defs", "definitions")


def _strict(node: Any, ok: list[bool]) -> Any:
    if isinstance(node, list):
        return [_strict(item, ok) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("default", "title"):
            continue
        if key in _NAMED and isinstance(value, Mapping):  # names, not keywords, as keys
            out[key] = {name: _strict(sub, ok) for name, sub in value.items()}
        else:
            out[key] = _strict(value, ok)
    if node.get("type") == "object" or "properties" in node:
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping) or (extra is None and not node.get("properties")):
            ok[0] = False
            return out
        props = out.get("properties") or {}
        required = set(node.get("required") or ())
        for name, sub in list(props.items()):
            if name not in required and not _nullable(sub):
                props[name] = {"anyOf": [sub, {"type": "null"}]}
        out["properties"] = props
        out["required"] = list(props)
        out["additionalProperties"] = False
    return out


def _nullable(schema: Any) -> bool:
    if not isinstance(schema, Mapping):
        return True
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_nullable(o) for o in schema.get("anyOf", ())) if "anyOf" in schema else (
        kind is None and "enum" not in schema and "const" not in schema and "$ref" not in schema)


def drop_added_nulls(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` without the ``null`` properties that `strict_schema()` made the model
    send for optional properties that do not themselves accept null."""
    if isinstance(value, list) and isinstance(schema, Mapping) and isinstance(
            schema.get("items"), Mapping):
        return [drop_added_nulls(item, schema["items"]) for item in value]
    if not isinstance(value, dict) or not isinstance(schema, Mapping):
        return value
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return value
    required = set(schema.get("required") or ())
    out = {}
    for key, item in value.items():
        sub = props.get(key)
        if item is None and key not in required and sub is not None and not _nullable(sub):
            continue
        out[key] = drop_added_nulls(item, sub) if isinstance(sub, Mapping) else item
    return out
