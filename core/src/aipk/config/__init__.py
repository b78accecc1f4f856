"""The config file: providers, custom OpenAI-compatible providers, routers and model aliases.

::

    import aipk

    client = aipk.Client.from_config("openai")        # [providers.openai] of the config file
    router = aipk.Router.from_config("main")          # [routers.main]

    config = aipk.config.load_config("aipk.toml")     # or find it: AIPK_CONFIG, ./aipk.toml,
    client = aipk.Client.from_config("groq", config=config)  # then the user config dir

The pipeline: find the file, parse it (TOML; YAML with PyYAML installed), expand
``${VAR}``/``${VAR:-default}``/``$$`` in string values, apply ``AIPK_SECTION__KEY`` variables,
structure it into frozen records with a strict cattrs converter, then check it against the
installed plugins. Every problem found on the way is collected and raised together as one
[`ConfigFileError`][aipk.errors.ConfigFileError]. See ``docs/configuration.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from aipk.errors import ConfigFileError
from aipk.registry import Registry

from ._build import Config, build
from ._check import STATE_BACKENDS, option_schema
from ._expand import ExpansionError, expand
from ._load import (
    ConfigWarning,
    Document,
    Problem,
    apply_env_overrides,
    default_paths,
    find_config,
    load_document,
    parse_document,
    user_config_dir,
)
from ._schema import (
    AipkConfig,
    BreakerConfig,
    CatalogConfig,
    CooldownConfig,
    LimitsConfig,
    ModelConfig,
    OAuthConfig,
    ProviderConfig,
    RetryConfig,
    RouterConfig,
    StateConfig,
    TargetConfig,
    TimeoutConfig,
)
from ._show import show_rows
from ._structure import structure

__all__ = [
    "STATE_BACKENDS",
    "AipkConfig",
    "BreakerConfig",
    "CatalogConfig",
    "Config",
    "ConfigWarning",
    "CooldownConfig",
    "Document",
    "ExpansionError",
    "LimitsConfig",
    "ModelConfig",
    "OAuthConfig",
    "Problem",
    "ProviderConfig",
    "RetryConfig",
    "RouterConfig",
    "StateConfig",
    "TargetConfig",
    "TimeoutConfig",
    "check_config",
    "default_paths",
    "expand",
    "find_config",
    "load_config",
    "option_schema",
    "parse_config",
    "show_rows",
    "user_config_dir",
]

ConfigSource = str | os.PathLike[str] | Config | None


def _empty_document() -> Document:
    return Document(path=None, data={})


def _evaluate(document: Document, registry: Registry | None,
              env: Mapping[str, str] | None) -> tuple[Config | None, list[Problem]]:
    document = apply_env_overrides(document, env)
    settings, problems = structure(document)
    if settings is None:
        return None, problems
    config, more = build(settings, document, registry, env)
    problems += more
    return (config if not problems else None), problems


def check_config(path: str | os.PathLike[str] | None = None, *,
                 registry: Registry | None = None,
                 env: Mapping[str, str] | None = None) -> tuple[Config | None, list[Problem]]:
    """Load and check a config file; return the config (None when invalid) and EVERY
    problem found. A missing explicit file, or a syntax error, still raises
    [`ConfigFileError`][aipk.errors.ConfigFileError] (nothing further can be checked)."""
    found = find_config(path)
    document = _empty_document() if found is None else load_document(found, env=env)
    return _evaluate(document, registry, env)


def load_config(path: str | os.PathLike[str] | None = None, *,
                registry: Registry | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """The config file at ``path`` (default: the first of `default_paths()` that
    exists; none at all gives an empty config). Raises
    [`ConfigFileError`][aipk.errors.ConfigFileError] listing every problem."""
    config, problems = check_config(path, registry=registry, env=env)
    if config is None:
        raise ConfigFileError(find_config(path), problems)
    return config


def parse_config(text: str, *, name: str = "aipk.toml", registry: Registry | None = None,
                 env: Mapping[str, str] | None = None) -> Config:
    """A config from ``text`` (TOML, or YAML when ``name`` ends in ``.yaml``); for tests and
    programs that hold their settings elsewhere."""
    lookup = None if env is None else env.get
    document = parse_document(text, Path(name), env=lookup)
    config, problems = _evaluate(document, registry, env)
    if config is None:
        raise ConfigFileError(Path(name), problems)
    return config


def resolve(config: ConfigSource, registry: Registry | None = None) -> Config:
    """``config`` if it is a `Config`, else the file it names (or the default one)."""
    if isinstance(config, Config):
        return config
    return load_config(config, registry=registry)
