"""Tools: the `Tool` record, and `as_tool()`, which builds one from any accepted form.

A tool can be given as an [`aipk.Tool`][aipk.Tool], an OpenAI-style dict
(``{"type": "function", "function": {"name", "description", "parameters"}}``, or the flat
``{"name", "description", "parameters"}`` / Anthropic ``input_schema`` form), an attrs class or
dataclass (its fields are the arguments), a pydantic model, or a plain typed Python function:
its parameters, their types and defaults give the schema, its docstring the description and
each parameter's description (Google ``Args:``, NumPy ``Parameters`` or reST ``:param x:``).

Every tool's parameter schema is checked when the tool is built: a broken JSON Schema is an
[`InvalidRequestError`][aipk.errors.InvalidRequestError] naming the tool and the path, not a
provider 400.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._records import record
from .errors import InvalidRequestError, ToolArgumentsError

__all__ = ["Tool", "as_tool", "function_schema", "parse_docstring"]


def _default_parameters() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


def _bad(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, field="tools")


@record(kw_only=True)
class Tool:
    """A function the model may call. ``parameters`` is a JSON Schema object.

    Build one directly, or with [`as_tool()`][aipk._tools.as_tool] from a function, a record class
    or a dict.

    Attributes:
        name: The function name the model calls (letters, digits, ``_`` and ``-``, at most 64).
        description: What the function does, for the model.
        parameters: A JSON Schema object describing the arguments (checked when built).
        strict: Ask the provider to enforce the schema exactly; None leaves its default.
        function: The Python callable run by the tool loop ([`aipk.run_tools()`][aipk.run_tools]),
            when the tool was built from one; never sent.
        cache: Mark the tool definitions up to and including this one for the provider's
            prompt cache (Anthropic ``cache_control``); ignored by providers that cache on
            their own.
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = attrs.field(factory=_default_parameters)
    strict: bool | None = None
    function: Callable[..., Any] | None = attrs.field(default=None, eq=False, repr=False)
    cache: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.name or len(self.name) > 64 or not all(
                c.isascii() and (c.isalnum() or c in "_-") for c in self.name):
            raise _bad(f"tool name {self.name!r} must be non-empty and use only letters, "
                       f"digits, _ and - (at most 64)")
        if not isinstance(self.parameters, Mapping) or (
                self.parameters.get("type", "object") != "object"):
            raise _bad(f"tool {self.name!r}: parameters must be a JSON Schema with type 'object'")
        from ._jsonschema import schema_problems  # loaded with the first tool

        found = schema_problems(self.parameters)
        if found:
            path, message = found[0]
            raise _bad(f"tool {self.name!r}: parameters is not a usable JSON Schema at "
                       f"{path.replace('$', 'parameters', 1)}: {message}")

    @classmethod
    def coerce(cls, value: Any) -> Tool:
        """A Tool from any form `as_tool()` accepts (a Tool comes back as it is)."""
        return as_tool(value)

    def validate_arguments(self, arguments: str | Mapping[str, Any], *,
                           strict: bool = True) -> dict[str, Any]:
        """The call's arguments decoded and checked against ``parameters``.

        ``strict`` also rejects arguments the schema does not list; lenient mode
        (``strict=False``) ignores them, even where the schema forbids extra properties.
        Raises [`ToolArgumentsError`][aipk.errors.ToolArgumentsError] naming the tool and the first
        offending argument.
        """
        text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
        try:
            value = json.loads(text or "{}")
        except ValueError as exc:
            raise ToolArgumentsError(
                f"tool {self.name!r}: the arguments are not valid JSON ({exc}); ask the model "
                f"again or repair them", tool=self.name, arguments=text) from None
        if not isinstance(value, dict):
            raise ToolArgumentsError(
                f"tool {self.name!r}: the arguments must be a JSON object, not "
                f"{type(value).__name__}", tool=self.name, arguments=text)
        from ._jsonschema import problems

        schema = _closed(self.parameters, strict)
        found = problems(value, schema)
        if found:
            path, message = found[0]
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise ToolArgumentsError(
                f"tool {self.name!r}: argument {path[2:] or '(all)'}: {message}{more}",
                tool=self.name, arguments=text, path=path, problems=found)
        return value


def _closed(schema: Any, strict: bool) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that lists properties
    and does not say otherwise (``strict``), or with every ``false`` removed (lenient)."""
    from ._schema import _NAMED

    if isinstance(schema, list):
        return [_closed(item, strict) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {key: {name: _closed(sub, strict) for name, sub in value.items()}
           if key in _NAMED and isinstance(value, Mapping) else _closed(value, strict)
           for key, value in schema.items()}
    if strict and "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    elif not strict and schema.get("additionalProperties") is False:
        del out["additionalProperties"]
    return out


def as_tool(obj: Any) -> Tool:
    """A `Tool` from a Tool, a dict, a record class, a pydantic model or a function."""
    if isinstance(obj, Tool):
        return obj
    if isinstance(obj, Mapping):
        return _from_mapping(obj)
    from ._schema import SchemaDerivationError, is_record, json_schema_for

    if is_record(obj):
        try:
            schema = json_schema_for(obj)
        except SchemaDerivationError as exc:
            raise _bad(f"tool {obj.__name__!r}: {exc}") from None
        schema = {k: v for k, v in schema.items() if k not in ("title", "description")}
        return Tool(name=obj.__name__, description=_summary(inspect.getdoc(obj) or ""),
                    parameters=schema)
    if callable(obj) and not isinstance(obj, type):
        description, parameters = function_schema(obj)
        return Tool(name=getattr(obj, "__name__", type(obj).__name__),
                    description=description, parameters=parameters, function=obj)
    raise _bad(f"tools must be aipk.Tool objects or dicts, not {type(obj).__name__} (record "
               f"classes, pydantic models and typed functions work too); e.g. "
               f"aipk.Tool(name='get_weather', parameters={{...}})")


def _from_mapping(value: Mapping[str, Any]) -> Tool:
    """A Tool from OpenAI's ``{"type": "function", "function": {...}}`` or the flat
    ``{"name", "description", "parameters"}`` dict (``input_schema`` as Anthropic names it)."""
    spec: Mapping[str, Any] = value
    if "function" in value or value.get("type") == "function":
        function = value.get("function")
        if not isinstance(function, Mapping):
            raise _bad("a tool dict with type 'function' needs a 'function' dict: {'type': "
                       "'function', 'function': {'name': ..., 'description': ..., "
                       "'parameters': {...}}}")
        spec = function
    if "name" not in spec:
        raise _bad(f"a tool dict is missing the key 'name' (it has {sorted(map(str, spec))}); "
                   f"give {{'name': ..., 'description': ..., 'parameters': {{...}}}} or "
                   f"aipk.Tool(name=...)")
    if not isinstance(spec["name"], str):
        raise _bad(f"a tool dict's 'name' must be a string, not {type(spec['name']).__name__}")
    parameters = spec.get("parameters", spec.get("input_schema"))
    if parameters is not None and not isinstance(parameters, Mapping):
        raise _bad(f"tool {spec['name']!r}: 'parameters' must be a JSON Schema dict, not "
                   f"{type(parameters).__name__}")
    description = spec.get("description")
    return Tool(name=spec["name"], description="" if description is None else str(description),
                parameters=_default_parameters() if parameters is None else parameters,
                strict=spec.get("strict"))


def _summary(doc: str) -> str:
    return doc.split("\n\n", 1)[0].strip() if doc else ""


def function_schema(function: Callable[..., Any]) -> tuple[str, dict[str, Any]]:
    """The description and the parameter schema of a typed Python function."""
    from ._schema import SchemaDerivationError
    from ._schema import _schema as _type_schema

    name = getattr(function, "__name__", "function")
    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function)
    except (TypeError, ValueError, NameError) as exc:
        raise _bad(f"tool {name!r}: cannot read its signature ({exc})") from None
    doc = inspect.getdoc(function) or ""
    summary, described = parse_docstring(doc)
    properties: dict[str, Any] = {}
    required: list[str] = []
    closed = True
    for param in signature.parameters.values():
        if param.name in ("self", "cls"):
            continue
        if param.kind is param.VAR_POSITIONAL:
            raise _bad(f"tool {name!r}: *{param.name} cannot be given by name; use a list "
                       f"parameter instead")
        if param.kind is param.VAR_KEYWORD:
            closed = False
            continue
        if param.kind is param.POSITIONAL_ONLY:
            raise _bad(f"tool {name!r}: parameter {param.name!r} is positional-only; tools are "
                       f"called with keyword arguments")
        try:
            sub = _type_schema(hints.get(param.name, Any), ())
        except SchemaDerivationError as exc:
            raise _bad(f"tool {name!r}, parameter {param.name!r}: {exc}") from None
        if param.name in described:
            sub = {**sub, "description": described[param.name]}
        properties[param.name] = sub
        if param.default is param.empty:
            required.append(param.name)
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if closed:
        schema["additionalProperties"] = False
    return summary, schema


# docstring patterns, compiled by ``re`` when a docstring is first read
_GOOGLE = r"^(Args|Arguments|Parameters|Params):\s*$"
_SECTION = r"^[A-Z][A-Za-z ]*:\s*$"
_GOOGLE_ITEM = r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$"
_REST = r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$"
_NUMPY_ITEM = r"^(\w+)\s*(:.*)?$"


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary paragraph and each parameter's description, from a Google, NumPy or reST
    style docstring."""
    lines = inspect.cleandoc(doc).splitlines() if doc else []
    params: dict[str, str] = {}
    body: list[str] = []
    i = 0
    current: str | None = None
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        rest = re.match(_REST, stripped)
        if rest:
            current = rest.group(1)
            params[current] = rest.group(2).strip()
        elif re.match(_GOOGLE, stripped) or (
                stripped in ("Parameters", "Args") and i + 1 < len(lines)
                and set(lines[i + 1].strip()) == {"-"}):
            numpy = not stripped.endswith(":")
            i += 2 if numpy else 1
            i = _section(lines, i, numpy, params)
            current = None
            continue
        elif current is not None and line.startswith((" ", "\t")) and stripped:
            params[current] += " " + stripped
        elif stripped.startswith(":"):
            current = None
        else:
            current = None
            body.append(line)
        i += 1
    return _summary("\n".join(body).strip()), params


def _section(lines: list[str], i: int, numpy: bool, params: dict[str, str]) -> int:
    """Read one Args/Parameters section into ``params``; the index after it."""
    current: str | None = None
    base: int | None = None
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
            if numpy and i < len(lines) and set(lines[i].strip()[:3]) == {"-"}:
                break
            continue
        indent = len(line) - len(line.lstrip())
        if numpy:
            if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
                break  # the next section's title
            if indent == 0:
                item = re.match(_NUMPY_ITEM, stripped)
                if item is None:
                    break
                current = item.group(1)
                params[current] = ""
            elif current is not None:
                params[current] = (params[current] + " " + stripped).strip()
        else:
            if indent == 0 and re.match(_SECTION, stripped):
                break
            if base is None:
                base = indent
            item = re.match(_GOOGLE_ITEM, stripped) if indent <= base else None
            if item is not None:
                current = item.group(1).lstrip("*")
                params[current] = item.group(3).strip()
            elif current is not None:
                params[current] = (params[current] + " " + stripped).strip()
            if indent < base:
                break
        i += 1
    return i
