"""Values of the state store as JSON bytes, and back.

A shared store must serialise what aipk keeps (floats, strings, tuples, and frozen attrs
records such as ``RateLimitState``, ``HealthState`` and ``BreakerState``). Pickle would let
anyone who can write to Redis run code in every process, so values are JSON: an attrs record is
``{"@": "module:QualName", field: value, ...}`` and is rebuilt only if its class is an attrs
class defined in an ``aipk`` module (``aipk``, ``aipk.*``, ``aipk_*``); a tuple is
``{"@t": [...]}``. Anything else is refused when written (`ValueError`) and ignored when
read (another version's or a foreign value: treated as absent).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["decode", "encode"]

_ALLOWED_PREFIXES = ("aipk.", "aipk_")


def _allowed(module: str) -> bool:
    return module == "aipk" or module.startswith(_ALLOWED_PREFIXES)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"@t": [_plain(v) for v in value]}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("@"):
                raise ValueError(f"cannot store a mapping with key {key!r} (str keys only)")
            out[key] = _plain(item)
        return out
    cls = type(value)
    if attrs.has(cls) and _allowed(cls.__module__):
        record: dict[str, Any] = {"@": f"{cls.__module__}:{cls.__qualname__}"}
        for field in attrs.fields(cls):
            if field.init:
                record[field.alias or field.name] = _plain(getattr(value, field.name))
        return record
    raise ValueError(f"cannot store a {cls.__module__}.{cls.__qualname__} in a shared state "
                     f"store (only numbers, strings, lists, tuples, dicts and aipk records)")


def encode(value: Any) -> bytes:
    """JSON bytes for ``value`` (ValueError when it cannot be stored)."""
    return json.dumps(_plain(value), separators=(",", ":"), allow_nan=False).encode()


def _record_class(name: str) -> type | None:
    module_name, _, qualname = name.partition(":")
    if not _allowed(module_name) or not qualname:
        return None
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj if isinstance(obj, type) and attrs.has(obj) else None


def _rebuild(value: Any) -> Any:
    if isinstance(value, list):
        return [_rebuild(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "@t" in value:
        return tuple(_rebuild(v) for v in value["@t"])
    name = value.get("@")
    if name is None:
        return {k: _rebuild(v) for k, v in value.items()}
    cls = _record_class(str(name))
    if cls is None:
        raise ValueError(f"unknown record type {name!r}")
    return cls(**{k: _rebuild(v) for k, v in value.items() if k != "@"})


def decode(raw: bytes) -> Any:
    """The value `encode()` wrote (ValueError/TypeError when it is not one)."""
    return _rebuild(json.loads(raw))
