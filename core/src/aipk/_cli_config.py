"""The ``aipk config`` and ``aipk models`` commands (registered by `aipk.cli`).

* ``aipk config show [--config PATH]``: the merged settings, secrets masked, each with its
  origin (``file:line``, ``file:line via $VAR``, ``env VAR`` or ``default``).
* ``aipk config check [--config PATH]``: validate; list EVERY problem and exit 1 if any.
* ``aipk models [PROVIDER] [filters] [--json]``: search models across the configured and
  installed providers by capability, context window and price.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .errors import AipkError, ConfigFileError

if TYPE_CHECKING:
    from ._providers import ModelInfo, ProviderSpec
    from .catalog import ModelCatalog
    from .config import Config

__all__ = ["add_config_parser", "add_models_parser"]


def add_config_parser(sub: Any) -> None:
    """Register ``aipk config show|check``."""
    config = sub.add_parser("config", help="show or check the config file")
    verbs = config.add_subparsers(dest="verb", required=True)
    show = verbs.add_parser("show", help="print the merged settings and where each came from")
    show.add_argument("--config", help="the config file (default: AIPK_CONFIG, ./aipk.toml, "
                                       "the user config directory)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_show)
    check = verbs.add_parser("check", help="validate the config file; list every problem")
    check.add_argument("--config", help="the config file (default: as for show)")
    check.set_defaults(func=_check)


def add_models_parser(sub: Any) -> None:
    """Register ``aipk models``."""
    models = sub.add_parser("models", help="list and search models across providers")
    models.add_argument("provider", nargs="?", help="only this provider (or config entry)")
    models.add_argument("--base-url")
    models.add_argument("--config", help="the config file (default: found as usual)")
    models.add_argument("--static", action="store_true",
                        help="the plugins' built-in tables only: no request, no key")
    models.add_argument("--refresh", action="store_true", help="list live, ignoring the cache")
    for flag, what in (("tools", "tool calls"), ("vision", "image input"),
                       ("structured", "JSON / structured output"),
                       ("reasoning", "reasoning"), ("streaming", "streaming")):
        models.add_argument(f"--{flag}", action="store_true", help=f"must support {what}")
    models.add_argument("--min-context", type=int, metavar="TOKENS")
    models.add_argument("--max-input-price", type=float, metavar="USD",
                        help="per million input tokens")
    models.add_argument("--max-output-price", type=float, metavar="USD",
                        help="per million output tokens")
    models.add_argument("--search", metavar="TEXT", help="model id contains TEXT")
    models.add_argument("--json", action="store_true", help="print JSON for scripts")
    models.set_defaults(func=_models)


# -- config ---------------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    from .config import check_config, find_config

    path = find_config(args.config)
    if path is None:
        print("aipk: no config file found (looked at AIPK_CONFIG, ./aipk.toml, ./aipk.yaml and "
              "the user config directory); nothing to check", file=sys.stderr)
        return 1
    try:
        config, problems = check_config(path)
    except ConfigFileError as exc:
        print(f"aipk: error: {exc}", file=sys.stderr)
        return 1
    if problems or config is None:
        print(str(ConfigFileError(path, problems)), file=sys.stderr)
        return 1
    counts = (f"{len(config.settings.providers)} providers, {len(config.settings.routers)} "
              f"routers, {len(config.settings.aliases)} aliases")
    print(f"{path}: OK ({counts})")
    return 0


def _show(args: argparse.Namespace) -> int:
    from .config import load_config, show_rows

    config = load_config(args.config)
    rows = show_rows(config)
    if args.json:
        print(json.dumps([{"key": k, "value": v, "origin": o} for k, v, o in rows], indent=2))
        return 0
    print(f"# {config.path or 'no config file: defaults only'}")
    width = max((len(k) for k, _, _ in rows), default=0)
    value_width = min(max((len(v) for _, v, _ in rows), default=0), 48)
    for key, value, origin in rows:
        print(f"{key:<{width}}  {value:<{value_width}}  # {origin}")
    return 0


# -- models ---------------------------------------------------------------------------------------


def _catalog(config: Config | None, static: bool) -> ModelCatalog:
    from .catalog import ModelCatalog

    if config is None:
        return ModelCatalog(disk=not static)
    settings = config.settings.catalog
    return ModelCatalog(ttl=settings.ttl, disk=settings.disk_cache and not static,
                        cache_dir=settings.cache_dir)


def _overrides(config: Config | None, name: str) -> list[ModelInfo]:
    from .config._check import model_info

    if config is None or name not in config.settings.providers:
        return []
    entry = config.settings.providers[name]
    return [model_info(config.spec_name(name), m) for m in entry.models]


def _listing(args: argparse.Namespace, config: Config | None, name: str,
             catalog: ModelCatalog) -> tuple[list[ModelInfo], ProviderSpec]:
    from ._client import Client
    from .catalog import merge_models
    from .registry import default_registry

    configured = config is not None and name in config.settings.providers
    registry = config.registry if config is not None else default_registry()
    spec = registry.spec(config.spec_name(name) if config is not None and configured else name)
    overrides = _overrides(config, name)
    live = not args.static and (configured or args.provider is not None)
    if not live:
        return merge_models(None, spec, overrides), spec
    try:
        client = (Client.from_config(name, config=config) if config is not None and configured
                  else Client(name, base_url=args.base_url))
    except ConfigFileError:
        raise
    except AipkError as exc:
        print(f"aipk: warning: cannot list {name} models live ({exc}); showing the plugin's "
              f"static list", file=sys.stderr)
        return merge_models(None, spec, overrides), spec
    with client:
        return catalog.models(client, refresh=args.refresh, overrides=overrides), spec


def _models(args: argparse.Namespace) -> int:
    from .catalog import ModelQuery, capabilities_of
    from .config import find_config, load_config
    from .registry import default_registry

    path = find_config(args.config)
    config = load_config(path) if path is not None else None
    registry = config.registry if config is not None else default_registry()
    if args.provider is not None:
        names = [args.provider]
    else:
        configured = list(config.settings.providers) if config is not None else []
        used = {config.spec_name(n) for n in configured} if config is not None else set()
        names = configured + sorted(n for n in registry.specs() if n not in used
                                    and n not in configured)
    query = ModelQuery(tools=args.tools, vision=args.vision, json_mode=args.structured,
                       reasoning=args.reasoning, streaming=args.streaming,
                       min_context=args.min_context, max_input_price=args.max_input_price,
                       max_output_price=args.max_output_price, text=args.search)
    catalog = _catalog(config, args.static)
    found: list[tuple[str, ModelInfo, ProviderSpec]] = []
    for name in names:
        models, spec = _listing(args, config, name, catalog)
        found += [(name, m, spec) for m in models if query.matches(m, spec)]
    if args.json:
        print(json.dumps([_json_row(name, m, capabilities_of(m, spec))
                          for name, m, spec in found], indent=2))
        return 0
    _table([(name, m, capabilities_of(m, spec)) for name, m, spec in found])
    return 0


def _json_row(name: str, model: ModelInfo, caps: Any) -> dict[str, Any]:
    return {"provider": name, "id": model.id, "display_name": model.display_name,
            "context_window": caps.context_window, "max_output_tokens": caps.max_output_tokens,
            "input_price": model.input_price, "output_price": model.output_price,
            "tools": caps.tools, "vision": caps.vision, "json_mode": caps.json_mode,
            "reasoning": caps.reasoning, "streaming": caps.streaming,
            "source": model.extra.get("source")}


def _number(value: int | None) -> str:
    return f"{value:,}" if value else "-"


def _price(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _table(rows: list[tuple[str, ModelInfo, Any]]) -> None:
    if not rows:
        print("no models match")
        return
    header = ("PROVIDER", "MODEL", "CONTEXT", "OUTPUT", "IN $/M", "OUT $/M", "CAPS", "SOURCE")
    lines = [header]
    for name, model, caps in rows:
        flags = "".join(letter if getattr(caps, field) else "-" for letter, field in
                        (("t", "tools"), ("v", "vision"), ("j", "json_mode"),
                         ("r", "reasoning"), ("s", "streaming")))
        lines.append((name, model.id, _number(caps.context_window),
                      _number(caps.max_output_tokens), _price(model.input_price),
                      _price(model.output_price), flags, str(model.extra.get("source", ""))))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {2, 3, 4, 5}
    for line in lines:
        print("  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                        for i, cell in enumerate(line)).rstrip())
    print("CAPS: t tools, v vision, j JSON/structured output, r reasoning, s streaming")
