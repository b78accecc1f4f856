"""From the parsed document to `AipkConfig`: shorthand forms normalised,
then structured with a strict cattrs converter that reports every problem by key path.

The converter is strict where cattrs is lax by default: ``"false"`` is not a bool and ``2.9``
is not an int. Only values that came from environment variables (``${VAR}`` or
``AIPK_*`` overrides) may be strings for numbers and booleans.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from typing import Any

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)

from aipk._providers import Secret

from ._load import Document, EnvString, PathKey, Problem, render_path
from ._schema import AipkConfig

__all__ = ["structure", "suggest"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def suggest(word: str, choices: Any) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _strict_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, EnvString) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise TypeError(f"expected true or false, got {value!r}")


def _strict_int(value: Any, _: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, EnvString):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise TypeError(f"expected a whole number, got {value!r}")


def _strict_float(value: Any, _: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, EnvString):
        try:
            number = float(value.strip())
        except ValueError:
            raise TypeError(f"expected a number, got {value!r}") from None
    else:
        raise TypeError(f"expected a number, got {value!r}")
    if not math.isfinite(number):
        raise TypeError(f"expected a finite number, got {value!r}")
    return number


def _strict_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return str(value)
    raise TypeError(f"expected a string, got {value!r}")


def _secret(value: Any, _: Any) -> Secret:
    if isinstance(value, str):
        return Secret(str(value))
    raise TypeError(f"expected a string (a key, normally \"${{VAR}}\"), got {type(value).__name__}")


def _any(value: Any, _: Any) -> Any:
    return value


_BOOL_OR_MODELS = bool | dict[str, str]


def _bool_or_models(value: Any, _: Any) -> bool | dict[str, str]:
    if isinstance(value, (bool, EnvString)):
        return _strict_bool(value, bool)
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str)
                                       for k, v in value.items()):
        return {str(k): str(v) for k, v in value.items()}
    raise TypeError("expected true, false or a table {model = \"larger-model\"}")


def make_converter() -> cattrs.Converter:
    """The strict converter for config records."""
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(Secret, _secret)
    # By predicate, not by type: before Python 3.11 neither `Any` nor a `X | Y` union is a
    # class, and cattrs' dispatch by type refuses them.
    converter.register_structure_hook_func(lambda t: t is Any, _any)
    converter.register_structure_hook_func(lambda t: t == _BOOL_OR_MODELS, _bool_or_models)
    return converter


_CONVERTER: cattrs.Converter | None = None


def _converter() -> cattrs.Converter:
    global _CONVERTER
    if _CONVERTER is None:
        _CONVERTER = make_converter()
    return _CONVERTER


# -- shorthand forms -----------------------------------------------------------------------------


def normalise(data: dict[str, Any], problems: list[Problem],
              origin: Callable[[PathKey], str | None]) -> dict[str, Any]:
    """Expand the shorthand forms into tables: ``timeout = 30``, ``oauth = true``,
    ``models = ["id"]``, ``targets = ["provider/model" or alias]``, ``cooldown = false``,
    ``breaker = false``, ``state = "memory"``."""
    out = dict(data)
    found = out.get("aliases")
    aliases: dict[str, Any] = found if isinstance(found, dict) else {}
    providers = out.get("providers")
    if isinstance(providers, dict):
        out["providers"] = {name: _provider(name, entry, problems, origin)
                            for name, entry in providers.items()}
    routers = out.get("routers")
    if isinstance(routers, dict):
        out["routers"] = {name: _router(name, entry, aliases, problems, origin)
                          for name, entry in routers.items()}
    state = out.get("state")
    if isinstance(state, str):
        out["state"] = {"backend": state}
    elif isinstance(state, dict):
        rest = {k: v for k, v in state.items() if k != "backend"}
        out["state"] = {"settings": rest, **({"backend": state["backend"]}
                                             if "backend" in state else {})}
    return out


def _must_be_list(entry: dict[str, Any], key: str, path: PathKey, problems: list[Problem],
                  origin: Callable[[PathKey], str | None], example: str) -> None:
    value = entry.get(key)
    if value is not None and not isinstance(value, list):
        problems.append(Problem(path=render_path((*path, key)), origin=origin((*path, key)),
                                message=f"expected a list, e.g. {key} = {example}"))
        entry[key] = []


def _provider(name: str, entry: Any, problems: list[Problem],
              origin: Callable[[PathKey], str | None]) -> Any:
    if not isinstance(entry, dict):
        return entry
    entry = dict(entry)
    here: PathKey = ("providers", name)
    _must_be_list(entry, "api_keys", here, problems, origin, '["${KEY_1}", "${KEY_2}"]')
    _must_be_list(entry, "models", here, problems, origin, '["model-id"]')
    timeout = entry.get("timeout")
    if isinstance(timeout, (int, float, EnvString)) and not isinstance(timeout, bool):
        try:
            seconds = _strict_float(timeout, float)
        except TypeError:
            pass
        else:
            entry["timeout"] = {"read": seconds, "connect": min(seconds, 10.0)}
    oauth = entry.get("oauth")
    if oauth is True:
        entry["oauth"] = {}
    elif oauth is False:
        del entry["oauth"]
    models = entry.get("models")
    if isinstance(models, list):
        entry["models"] = [{"id": m} if isinstance(m, str) else m for m in models]
    return entry


def _router(name: str, entry: Any, aliases: dict[str, Any], problems: list[Problem],
            origin: Callable[[PathKey], str | None]) -> Any:
    if not isinstance(entry, dict):
        return entry
    entry = dict(entry)
    _must_be_list(entry, "targets", ("routers", name), problems, origin,
                  '["openai/gpt-4o-mini", "fast"]')
    for key in ("cooldown", "breaker"):
        if isinstance(entry.get(key), bool):
            entry[key] = {"enabled": entry[key]}
    targets = entry.get("targets")
    if isinstance(targets, list):
        fixed: list[Any] = []
        for index, target in enumerate(targets):
            path: PathKey = ("routers", name, "targets", index)
            if isinstance(target, str):
                text = aliases.get(target, target) if isinstance(aliases, dict) else target
                provider, slash, model = str(text).partition("/")
                if not slash or not provider or not model:
                    problems.append(Problem(
                        path=render_path(path), origin=origin(path),
                        message=f"{target!r} is neither \"provider/model\" nor an alias"
                                f"{suggest(target, aliases or ())}"))
                    continue
                fixed.append({"provider": provider, "model": model})
            else:
                if isinstance(target, dict) and isinstance(target.get("model"), str) and \
                        "provider" not in target and target["model"] in aliases:
                    provider, _, model = str(aliases[target["model"]]).partition("/")
                    target = {**target, "provider": provider, "model": model}
                fixed.append(target)
        entry["targets"] = fixed
    return entry


# -- structuring ---------------------------------------------------------------------------------


def structure(document: Document) -> tuple[AipkConfig | None, list[Problem]]:
    """The config in ``document``, and every problem found (the config is None when any
    structural problem was found)."""
    problems: list[Problem] = list(document.problems)
    data = normalise(document.data, problems, document.origin)
    shape_problems = len(problems) > len(document.problems)
    try:
        config = _converter().structure(data, AipkConfig)
    except (ClassValidationError, IterableValidationError) as group:
        problems += _problems(group, (), document)
        return None, problems
    except (TypeError, ValueError, AttributeError) as exc:  # the top level is not a table
        problems.append(Problem(path="", message=f"the file's top level is wrong: {exc}"))
        return None, problems
    return (None if shape_problems else config), problems


def _fields(cls: Any) -> list[str]:
    return [f.name for f in attrs.fields(cls)] if attrs.has(cls) else []


def _problems(exc: BaseException, path: PathKey, document: Document) -> list[Problem]:
    out: list[Problem] = []
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            step = getattr(note, "name", None)
            if step is None:
                step = getattr(note, "index", "?")
            out += _problems(sub, (*path, step if isinstance(step, (str, int)) else str(step)),
                             document)
        for sub in without:
            out += _problems(sub, path, document)
        return out
    if path in document.failed:
        return out  # its ${VAR} could not be expanded; already reported
    where = document.origin(path)
    if isinstance(exc, ForbiddenExtraKeysError):
        known = _fields(exc.cl)
        for extra in sorted(exc.extra_fields):
            key = (*path, extra)
            hint = suggest(extra, known) or f"; the keys here are {', '.join(known)}"
            out.append(Problem(path=render_path(key), origin=document.origin(key),
                               message=f"unknown key {extra!r}{hint}"))
        return out
    if isinstance(exc, KeyError):
        return [Problem(path=render_path(path), origin=where,
                        message="required, but missing; add it")]
    if isinstance(exc, AttributeError) and ("items" in str(exc) or "keys" in str(exc)):
        message = ("expected seconds or a table, e.g. { connect = 5, read = 60 }"
                   if path and path[-1] == "timeout" else "expected a table")
        return [Problem(path=render_path(path), origin=where, message=message)]
    message = str(exc) or type(exc).__name__
    if path and path[-1] in ("targets", "models") and "iterable" in message:
        message = "expected a list"
    return [Problem(path=render_path(path), origin=where, message=message)]
