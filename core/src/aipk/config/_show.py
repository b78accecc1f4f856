"""``aipk config show``: the merged settings, redacted, with where each value came from."""

from __future__ import annotations

import os
from typing import Any

import attrs

from aipk._providers import Secret

from ._build import Config
from ._load import PathKey, render_path

__all__ = ["REDACTED", "show_rows"]

REDACTED = "****"
_SECRET_HEADERS = ("authorization", "api-key", "x-api-key", "token", "secret", "cookie")


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return REDACTED
    if attrs.has(type(value)):
        return {f.name: _plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _leaves(value: Any, path: PathKey, defaults: Any) -> list[tuple[PathKey, Any, bool]]:
    """(path, value, is_default) for every set leaf."""
    out: list[tuple[PathKey, Any, bool]] = []
    if isinstance(value, dict) and value:
        for key, child in value.items():
            default = defaults.get(key) if isinstance(defaults, dict) else None
            out += _leaves(child, (*path, key), default)
    elif isinstance(value, list) and value:
        for index, child in enumerate(value):
            out += _leaves(child, (*path, index), None)
    elif value is not None and value != {} and value != []:
        out.append((path, value, value == defaults))
    return out


def show_rows(config: Config) -> list[tuple[str, str, str]]:
    """``(key path, value, origin)`` rows: every value the file (or an ``AIPK_*`` variable)
    sets, redacted, plus each provider's effective base URL and default model with their
    origin (the file, an environment variable, or the plugin's default)."""
    document = config.document
    settings = _plain(config.settings)
    rows: list[tuple[str, str, str]] = []
    for path, value, _ in _leaves(settings, (), None):
        if len(path) >= 4 and path[2] == "headers" and any(
                word in str(path[3]).lower() for word in _SECRET_HEADERS):
            value = REDACTED
        where = _file_path(path)
        origin = (document.origins.get(where) or _near(document.origins, where) or "default"
                  if _in_data(document.data, where) else "default")
        rows.append((render_path(path), _text(value), origin))
    seen = {row[0] for row in rows}
    for name, entry in config.settings.providers.items():
        try:
            spec = config.registry.spec(config.spec_name(name))
        except Exception:  # noqa: BLE001 - an uninstalled provider: config check reports it
            continue
        base = ("providers", name, "base_url")
        if spec.base_url_env and os.environ.get(spec.base_url_env, "").strip():
            rows = [r for r in rows if r[0] != render_path(base)]
            rows.append((render_path(base), os.environ[spec.base_url_env].strip(),
                         f"env {spec.base_url_env}"))
        elif render_path(base) not in seen:
            rows.append((render_path(base), spec.default_base_url, "default (plugin)"))
        model = ("providers", name, "default_model")
        if render_path(model) not in seen and spec.default_model:
            rows.append((render_path(model), spec.default_model, "default (plugin)"))
        if entry.api_key is None and entry.api_keys is None and entry.api_key_env is None \
                and entry.oauth is None:
            found = next((v for v in spec.env_vars if os.environ.get(v, "").strip()), None)
            rows.append((render_path(("providers", name, "api_key")),
                         REDACTED if found else "(none)",
                         f"env {found}" if found else
                         "default (plugin: " + (", ".join(spec.env_vars) or "no key") +
                         ", then a saved login)"))
    return sorted(rows, key=lambda row: _order(row[0]))


def _order(path: str) -> tuple[int, str]:
    sections = ["providers", "routers", "aliases", "catalog", "state"]
    head = path.split(".", 1)[0].split("[", 1)[0]
    return (sections.index(head) if head in sections else len(sections), path)


def _file_path(path: PathKey) -> PathKey:
    # state's backend settings sit beside "backend" in the file
    if path[:2] == ("state", "settings"):
        return ("state", *path[2:])
    return path


def _in_data(data: Any, path: PathKey) -> bool:
    """Whether the file (or an override) wrote ``path``, or a shorthand value that holds it."""
    node = data
    for part in path:
        if isinstance(node, dict):
            if part not in node:
                return False
            node = node[part]
        elif isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                return False
            node = node[part]
        else:
            return True
    return True


def _near(origins: dict[PathKey, str], path: PathKey) -> str | None:
    for end in range(len(path) - 1, 0, -1):
        found = origins.get(path[:end])
        if found is not None:
            return found
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
