"""Checks that need the installed plugins: every provider named exists (or says which package
to install), custom providers are complete, keys are not empty, plugin options match the
schema their plugin contributes (hook ``aipk_config_options``), routers and aliases point at
known providers, and the state backend is installed. Every problem is collected."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import attrs

from aipk._providers import Capabilities, ModelInfo, ProviderSpec, Secret
from aipk._secrets import credential_problem
from aipk.registry import Registry

from ._load import Document, PathKey, Problem, render_path
from ._schema import AipkConfig, ModelConfig, ProviderConfig
from ._structure import _converter, _fields, suggest

__all__ = ["STATE_BACKENDS", "check", "custom_spec", "model_info", "option_schema",
           "state_backends"]

#: The entry-point group where packages register state backends for ``state = {backend=...}``:
#: the entry point's name is the backend name, its object a factory called with the table's
#: other keys as keyword arguments, returning a `StateStore`.
STATE_BACKENDS = "aipk.state_backends"

_STRATEGIES = ("failover", "round_robin", "cheapest_first", "lowest_latency")


def state_backends() -> dict[str, Any]:
    """Installed state backends by name (entry points, not loaded)."""
    from importlib import metadata

    return {ep.name: ep for ep in metadata.entry_points(group=STATE_BACKENDS)}


def model_info(provider: str, model: ModelConfig) -> ModelInfo:
    """A model entry of the config as a [`ModelInfo`][aipk.ModelInfo]; the flags it sets are also
    kept in ``extra["flags"]`` so that they win over the plugin's data in the catalog."""
    flags = {name: getattr(model, name) for name in
             ("tools", "vision", "json_mode", "reasoning", "streaming")
             if getattr(model, name) is not None}
    caps = None
    if flags or model.context_window or model.max_output_tokens:
        caps = Capabilities(**flags, context_window=model.context_window,
                            max_output_tokens=model.max_output_tokens)
    return ModelInfo(id=model.id, provider=provider, capabilities=caps,
                     input_price=model.input_price, output_price=model.output_price,
                     extra={"source": "config", "flags": flags})


def custom_spec(name: str, entry: ProviderConfig) -> ProviderSpec:
    """The [`ProviderSpec`][aipk.ProviderSpec] of a custom provider defined by config alone."""
    return ProviderSpec(
        name=name, protocol=str(entry.protocol), display_name=name,
        default_base_url=entry.base_url or "",
        env_vars=(entry.api_key_env,) if entry.api_key_env else (),
        models=tuple(model_info(name, m) for m in entry.models),
        default_model=entry.default_model,
    )


def option_schema(registry: Registry, spec: ProviderSpec) -> dict[str, Any]:
    """{option name: type} the installed plugins declare for ``spec`` (empty: not declared)."""
    schema: dict[str, Any] = {}
    for answer in registry.hook.aipk_config_options(provider=spec) or ():
        if answer is None:
            continue
        if isinstance(answer, type) and attrs.has(answer):
            attrs.resolve_types(answer)
            schema.update({f.name: f.type for f in attrs.fields(answer)})
        elif isinstance(answer, Mapping):
            schema.update(answer)
    return schema


def _install_line(name: str) -> str:
    return f"pip install aipk-{name}"


def check(config: AipkConfig, document: Document, registry: Registry,
          installed: Mapping[str, ProviderSpec], env: Mapping[str, str] | None = None) -> (
        list[Problem]):
    """Every problem with ``config`` that the plugins in ``registry`` reveal. ``installed``
    holds the specs of the installed providers (custom ones excluded)."""
    env = os.environ if env is None else env
    problems: list[Problem] = []

    def add(path: PathKey, message: str) -> None:
        problems.append(Problem(path=render_path(path), message=message,
                                origin=document.origin(path)))

    protocols = {spec.protocol for spec in installed.values()}
    for name, entry in config.providers.items():
        here: PathKey = ("providers", name)
        spec = _check_provider(name, entry, here, installed, protocols, add)
        _check_keys(entry, here, document, env, add)
        if entry.base_url is not None and not entry.base_url.startswith(("http://", "https://")):
            add((*here, "base_url"), f"{entry.base_url!r} must start with http:// or https://")
        _check_numbers(entry, here, add)
        if spec is not None and entry.options:
            _check_options(registry, spec, entry.options, (*here, "options"), add)
    for name, router in config.routers.items():
        _check_router(config, name, router, installed, add)
    for alias, target in config.aliases.items():
        provider, slash, model = target.partition("/")
        if not slash or not model:
            add(("aliases", alias), f"{target!r} must be \"provider/model\"")
        elif provider not in config.providers and provider not in installed:
            add(("aliases", alias), _unknown_provider(provider, config, installed))
    if config.catalog.ttl <= 0:
        add(("catalog", "ttl"), "must be a positive number of seconds (86400 is one day)")
    backend = config.state.backend
    installed_backends = state_backends()
    if backend != "memory" and backend not in installed_backends:
        known = ["memory", *sorted(installed_backends)]
        hint = suggest(backend, known)
        add(("state", "backend"), (
            f"no state backend {backend!r} is installed (entry-point group {STATE_BACKENDS}; "
            f"installed: {', '.join(known)}){hint}{' Otherwise i' if hint else '; i'}nstall the "
            f"package that provides it (aipk-redis for \"redis\") or use backend = \"memory\""))
    return problems


def _unknown_provider(name: str, config: AipkConfig, installed: Mapping[str, ProviderSpec]) -> str:
    known = sorted({*config.providers, *installed})
    return (f"no provider {name!r} in [providers] or installed{suggest(name, known)}; "
            f"if a plugin exists for it: {_install_line(name)}")


def _check_provider(name: str, entry: ProviderConfig, here: PathKey,
                    installed: Mapping[str, ProviderSpec], protocols: set[str],
                    add: Any) -> ProviderSpec | None:
    if entry.protocol is not None:
        if entry.provider is not None:
            add((*here, "provider"), "a custom provider (protocol = ...) cannot also name an "
                                      "installed provider; remove one of the two")
        if name in installed:
            add(here, f"{name!r} is an installed provider; drop protocol to configure it, "
                      f"or give the custom provider another name")
        if entry.protocol not in protocols:
            hint = suggest(entry.protocol, sorted(protocols))
            add((*here, "protocol"), f"no installed plugin speaks protocol {entry.protocol!r}"
                                     f"{hint}; for OpenAI-compatible services: pip install "
                                     f"aipk-openai and set protocol = \"openai\"")
        if not entry.base_url:
            add((*here, "base_url"), "a custom provider needs base_url, e.g. "
                                     "\"https://api.example.com/v1\"")
        return custom_spec(name, entry)
    target = entry.provider or name
    spec = installed.get(target)
    if spec is None:
        where = (*here, "provider") if entry.provider else here
        hint = suggest(target, sorted(installed))
        add(where, f"provider {target!r} is not installed{hint}; {_install_line(target)} "
                   f"(installed: {', '.join(sorted(installed)) or 'none'}); for an "
                   f"OpenAI-compatible service add protocol = \"openai\" and base_url")
    return spec


def _check_keys(entry: ProviderConfig, here: PathKey, document: Document,
                env: Mapping[str, str], add: Any) -> None:
    def empty(path: PathKey) -> None:
        if path in document.failed:
            return
        origin = document.origin(path) or ""
        names = [part[1:] for part in origin.replace(",", " ").split() if part.startswith("$")]
        if names:
            refs = ", ".join(f"${{{n}}}" for n in names)
            add(path, f"empty after expanding {refs}; set {' and '.join(names)}")
        else:
            add(path, "empty; set a key (normally \"${VAR}\") or remove the line")

    def malformed(path: PathKey, key: Secret) -> None:
        problem = credential_problem(key.reveal())
        if problem is None or path in document.failed:
            return
        origin = document.origin(path) or ""
        names = [part[1:] for part in origin.replace(",", " ").split() if part.startswith("$")]
        if names:
            refs = ", ".join(f"${{{n}}}" for n in names)
            add(path, f"the key (from {refs}) {problem}; set {' and '.join(names)} to the key "
                      "alone, one line of printable ASCII characters")
        else:
            add(path, f"the key {problem}; write the key alone, one line of printable ASCII "
                      "characters (better: \"${VAR}\" with the key in the environment)")

    if entry.api_key is not None:
        if not entry.api_key:
            empty((*here, "api_key"))
        else:
            malformed((*here, "api_key"), entry.api_key)
    for index, key in enumerate(entry.api_keys or ()):
        if not key:
            empty((*here, "api_keys", index))
        else:
            malformed((*here, "api_keys", index), key)
    if entry.api_keys is not None and not entry.api_keys:
        add((*here, "api_keys"), "an empty list; list at least one key or remove the line")
    given = [k for k in ("api_key", "api_keys", "api_key_env", "oauth")
             if getattr(entry, k) is not None]
    if len(given) > 1:
        add(here, f"set only one of {', '.join(given)}")
    if entry.api_key_env is not None and not env.get(entry.api_key_env, "").strip():
        add((*here, "api_key_env"), f"{entry.api_key_env} is not set; set {entry.api_key_env}")


def _check_numbers(entry: ProviderConfig, here: PathKey, add: Any) -> None:
    checks: list[tuple[PathKey, Any, bool, str]] = []
    if entry.timeout is not None:
        for field in ("connect", "read", "total"):
            value = getattr(entry.timeout, field)
            checks.append(((*here, "timeout", field), value, value is None or value > 0,
                           "must be a positive number of seconds"))
    if entry.retry is not None:
        for field in attrs.fields(type(entry.retry)):
            value = getattr(entry.retry, field.name)
            checks.append(((*here, "retry", field.name), value, value is None or value >= 0,
                           "must be zero or more"))
        jitter = entry.retry.jitter
        checks.append(((*here, "retry", "jitter"), jitter, jitter is None or jitter <= 1,
                       "must be between 0 and 1"))
    if entry.max_retries is not None:
        checks.append(((*here, "max_retries"), entry.max_retries, entry.max_retries >= 0,
                       "must be zero or more"))
    if entry.limits is not None:
        for field in attrs.fields(type(entry.limits)):
            value = getattr(entry.limits, field.name)
            checks.append(((*here, "limits", field.name), value, value is None or value > 0,
                           "must be positive (remove the line for no limit)"))
    for path, value, ok, message in checks:
        if not ok:
            add(path, f"{message}, got {value!r}")


def _check_options(registry: Registry, spec: ProviderSpec, options: Mapping[str, Any],
                   here: PathKey, add: Any) -> None:
    schema = option_schema(registry, spec)
    if not schema:
        return  # the plugin declares no schema: options pass through unchecked
    schema = {**dict.fromkeys(_LIMIT_KEYS, float), **schema}  # the core reads these for all
    for key, value in options.items():
        if key not in schema:
            hint = suggest(key, schema) or "; the options are " + ", ".join(sorted(schema))
            add((*here, key), f"unknown option {key!r} for {spec.name}{hint}")
            continue
        problem = _option_problem(value, schema[key])
        if problem is not None:
            add((*here, key), problem)


def _table_problem(value: Any, kind: type) -> str | None:
    """Why ``value`` is not a table of the attrs class ``kind``'s fields, or None."""
    if not isinstance(value, Mapping):
        return f"expected a table with the keys {', '.join(_fields(kind))}"
    attrs.resolve_types(kind)
    fields = {f.name: f for f in attrs.fields(kind)}
    for key in value:
        if key not in fields:
            hint = suggest(str(key), list(fields)) or f"; the keys are {', '.join(fields)}"
            return f"unknown key {key!r}{hint}"
    for name, field in fields.items():
        if name not in value:
            if field.default is attrs.NOTHING:
                return f"{name}: required, but missing; add it"
            continue
        problem = _option_problem(value[name], field.type)
        if problem is not None:
            return f"{name}: {problem}"
    return None


#: provider options every provider has: the client-side limits (`ClientLimits.from_options`)
_LIMIT_KEYS = ("requests_per_minute", "tokens_per_minute", "requests_per_day")


def _option_problem(value: Any, kind: Any) -> str | None:
    """Why ``value`` is not a ``kind`` (a union such as ``str | list[str]``: none of its
    members; an attrs class: a table of its fields, the first wrong key named), or None."""
    if isinstance(kind, type) and attrs.has(kind):
        return _table_problem(value, kind)
    if get_origin(kind) is Literal:
        allowed = get_args(kind)
        if value in allowed:
            return None
        hint = suggest(value, [str(a) for a in allowed]) if isinstance(value, str) else None
        return (f"{value!r} is not one of {', '.join(repr(a) for a in allowed)}"
                f"{hint or ''}")
    kinds = get_args(kind) if get_origin(kind) in (Union, UnionType) else (kind,)
    problems = []
    for member in kinds:
        try:
            _converter().structure(value, member)
        except Exception as exc:  # noqa: BLE001 - any conversion failure is a config problem
            problems.append(str(exc))
        else:
            return None
    return problems[0] if len(problems) == 1 else (
        f"{value!r} is none of {' | '.join(getattr(k, '__name__', str(k)) for k in kinds)}")


def _check_router(config: AipkConfig, name: str, router: Any,
                  installed: Mapping[str, ProviderSpec], add: Any) -> None:
    from aipk._breaker import BreakerPolicy, CooldownPolicy

    here: PathKey = ("routers", name)
    if router.strategy not in _STRATEGIES:
        hint = suggest(router.strategy, _STRATEGIES) or f"; use one of {', '.join(_STRATEGIES)}"
        add((*here, "strategy"), f"unknown strategy {router.strategy!r}{hint}")
    if not router.targets:
        add((*here, "targets"), "a router needs at least one target")
    seen: set[str] = set()
    for index, target in enumerate(router.targets):
        path: PathKey = (*here, "targets", index)
        if target.provider not in config.providers and target.provider not in installed:
            add((*path, "provider"), _unknown_provider(target.provider, config, installed))
        label = target.name or f"{target.provider}/{target.model}"
        if label in seen:
            add(path, f"two targets are named {label!r}; give one a unique name")
        seen.add(label)
    if router.max_wait is not None and router.max_wait < 0:
        add((*here, "max_wait"), f"must be zero or more seconds, got {router.max_wait!r}")
    for key, policy_cls, section in (("cooldown", CooldownPolicy, router.cooldown),
                                     ("breaker", BreakerPolicy, router.breaker)):
        if section is None or not section.enabled:
            continue
        values = {f.name: getattr(section, f.name) for f in attrs.fields(type(section))
                  if f.name != "enabled" and getattr(section, f.name) is not None}
        try:
            policy_cls(**values)
        except (ValueError, TypeError) as exc:
            add((*here, key), f"{exc}")
