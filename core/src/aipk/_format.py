"""``response_format=``: ask for JSON, optionally following a JSON Schema.

[`ResponseFormat`][aipk._format.ResponseFormat] is what a [`ChatRequest`][aipk.ChatRequest] carries;
`as_response_format()` builds it from what callers write: ``"json"`` (JSON mode), a JSON Schema
dict, an OpenAI-style ``{"type": "json_schema", "json_schema": {...}}`` or ``{"type":
"json_object"}`` dict, an attrs class, a dataclass or a pydantic model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from ._records import record
from .errors import InvalidRequestError

__all__ = ["ResponseFormat", "as_response_format"]

#: what a schema name may not hold (compiled by ``re`` on first use)
_NAME = r"[^A-Za-z0-9_-]"


@record(kw_only=True)
class ResponseFormat:
    """JSON output for a request: plain JSON mode (``schema`` None) or a JSON Schema.

    Attributes:
        schema: The JSON Schema the answer must follow; None asks only for some JSON object.
        name: The schema's name, sent where the provider wants one (letters, digits, ``_``, ``-``).
        strict: Ask the provider to enforce the schema exactly; None uses strict mode where the
            provider has it and the schema allows it.
        type: The class the answer is structured into (``response.parsed``); None keeps the
            decoded JSON.
    """

    schema: Mapping[str, Any] | None = None
    name: str = "response"
    strict: bool | None = None
    type: Any = None
    _strict_cache: list[Any] = attrs.field(factory=list, init=False, repr=False, eq=False,
                                           alias="_strict_cache")

    @classmethod
    def json(cls) -> ResponseFormat:
        """Plain JSON mode: the answer is a JSON object, with no schema."""
        return cls()

    def strict_schema(self) -> tuple[dict[str, Any], bool]:
        """The schema rewritten for strict mode, and whether strict mode can take it (cached)."""
        if not self._strict_cache:
            assert self.schema is not None
            from . import _schema

            self._strict_cache.append(_schema.strict_schema(self.schema))
        result: tuple[dict[str, Any], bool] = self._strict_cache[0]
        return result


def _name(text: str) -> str:
    return re.sub(_NAME, "_", text)[:64] or "response"


def as_response_format(value: Any) -> ResponseFormat | None:
    """A `ResponseFormat` from any form ``response_format=`` accepts (None stays None)."""
    if value is None or isinstance(value, ResponseFormat):
        return value
    from ._schema import SchemaDerivationError, is_record, json_schema_for

    if isinstance(value, str):
        if value in ("json", "json_object"):
            return ResponseFormat()
        raise InvalidRequestError(
            f"response_format={value!r} is not understood; use 'json', a JSON Schema dict, or "
            f"a record class (attrs, dataclass, pydantic)", field="response_format")
    if isinstance(value, Mapping):
        return _from_mapping(value)
    if is_record(value):
        try:
            schema = json_schema_for(value)
        except SchemaDerivationError as exc:
            raise InvalidRequestError(f"response_format: {exc}", field="response_format") from None
        return ResponseFormat(schema=schema, name=_name(value.__name__), type=value)
    raise InvalidRequestError(
        f"response_format must be 'json', a JSON Schema dict or a record class, not "
        f"{type(value).__name__}", field="response_format")


def _from_mapping(value: Mapping[str, Any]) -> ResponseFormat:
    kind = value.get("type")
    if kind == "json_object" and "properties" not in value:
        return ResponseFormat()
    if kind == "json_schema" and isinstance(value.get("json_schema"), Mapping):
        inner = value["json_schema"]
        schema = inner.get("schema") or {}
        return ResponseFormat(schema=_checked(schema), name=_name(str(inner.get("name") or
                                                                        "response")),
                              strict=inner.get("strict"))
    return ResponseFormat(schema=_checked(value), name=_name(str(value.get("title") or
                                                                  "response")))


def _checked(schema: Any) -> Mapping[str, Any]:
    from ._jsonschema import schema_problems

    found = schema_problems(schema)
    if found:
        path, message = found[0]
        raise InvalidRequestError(
            f"response_format schema is not a usable JSON Schema at {path}: {message}",
            field="response_format")
    result: Mapping[str, Any] = schema
    return result
