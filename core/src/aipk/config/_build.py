"""Clients and routers built from a loaded config.

Precedence, highest first: explicit keyword arguments > environment variables (``AIPK_*``
overrides, and the variables a plugin reads for its base URL and options, like
``OPENAI_BASE_URL``) > the config file > the plugin's defaults. Keys: a key the file names
(``api_key``, ``api_keys``, ``api_key_env``, ``oauth``) is used; without one the client looks
where it always does (the plugin's key variable, then a saved login).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs

from aipk._providers import Provider, ProviderSpec, check_api_key
from aipk.errors import ConfigFileError, ConfigurationError
from aipk.hookspecs import hookimpl
from aipk.registry import Registry, default_registry

from ._check import STATE_BACKENDS, check, custom_spec, state_backends
from ._load import Document, Problem
from ._schema import AipkConfig, ProviderConfig, RouterConfig

if TYPE_CHECKING:
    from aipk.state import StateStore

_C = TypeVar("_C")

__all__ = ["Config", "install_custom_providers"]

_PLUGIN_NAME = "aipk.config"
_install_lock = threading.Lock()


class _ConfigProviders:
    """The in-process plugin declaring the custom providers configs define."""

    def __init__(self, specs: Mapping[str, ProviderSpec]) -> None:
        self.specs = dict(specs)

    @hookimpl
    def aipk_providers(self) -> list[ProviderSpec]:
        return list(self.specs.values())


def _config_plugin(registry: Registry) -> _ConfigProviders | None:
    plugin = registry.pm.get_plugin(_PLUGIN_NAME)
    return plugin if isinstance(plugin, _ConfigProviders) else None


def installed_specs(registry: Registry) -> dict[str, ProviderSpec]:
    """The providers installed plugins declare (not the custom ones configs added)."""
    specs = dict(registry.specs())
    plugin = _config_plugin(registry)
    if plugin is not None:
        for name, spec in plugin.specs.items():
            if specs.get(name) is spec:
                del specs[name]
    return specs


def install_custom_providers(registry: Registry, specs: Mapping[str, ProviderSpec]) -> None:
    """Declare ``specs`` (custom providers from a config) in ``registry``, replacing earlier
    declarations of the same names."""
    if not specs:
        return
    with _install_lock:
        old = _config_plugin(registry)
        merged = {**(old.specs if old is not None else {}), **specs}
        if old is not None and all(old.specs.get(k) == v for k, v in specs.items()):
            return
        if old is not None:
            registry.unregister(_PLUGIN_NAME)
        registry.register(_ConfigProviders(merged), _PLUGIN_NAME)


@attrs.frozen(kw_only=True)
class Config:
    """A loaded, checked config file: build clients and routers from it.

    * ``settings``: the structured `AipkConfig`.
    * ``document``: the parsed file with each value's origin.
    * ``registry``: the plugin registry the config was checked against.
    """

    settings: AipkConfig
    document: Document
    registry: Registry = attrs.field(factory=default_registry, repr=False)
    _stores: dict[str, Any] = attrs.field(factory=dict, repr=False, alias="_stores")

    @property
    def path(self) -> Path | None:
        """The file the config came from (None when built from data)."""
        return self.document.path

    # -- lookups -----------------------------------------------------------------------------

    def provider_entry(self, name: str) -> ProviderConfig:
        """The ``[providers.NAME]`` entry; raises ConfigurationError naming the known ones."""
        entry = self.settings.providers.get(name)
        if entry is None:
            known = ", ".join(sorted(self.settings.providers)) or "none"
            raise ConfigurationError(
                f"no provider {name!r} in {self._where()} (configured: {known}); add a "
                f"[providers.{name}] table")
        return entry

    def router_entry(self, name: str) -> RouterConfig:
        """The ``[routers.NAME]`` entry; raises ConfigurationError naming the known ones."""
        entry = self.settings.routers.get(name)
        if entry is None:
            known = ", ".join(sorted(self.settings.routers)) or "none"
            raise ConfigurationError(
                f"no router {name!r} in {self._where()} (configured: {known}); add a "
                f"[routers.{name}] table")
        return entry

    def resolve_alias(self, model: str) -> tuple[str | None, str]:
        """``(provider, model)`` for an alias (``fast`` -> ``("groq", "llama-…")``); other
        names come back as ``(None, model)``."""
        target = self.settings.aliases.get(model)
        if target is None:
            return None, model
        provider, _, real = target.partition("/")
        return provider, real

    def _where(self) -> str:
        return str(self.path) if self.path is not None else "the config"

    def spec_name(self, name: str) -> str:
        """The installed (or custom) provider an entry configures."""
        entry = self.provider_entry(name)
        return name if entry.protocol is not None else (entry.provider or name)

    # -- building ----------------------------------------------------------------------------

    def client_kwargs(self, name: str, overrides: Mapping[str, Any] | None = None) -> (
            tuple[str, dict[str, Any]]):
        """The provider name and keyword arguments for ``Client(...)`` that the entry
        ``name`` describes, with ``overrides`` (explicit arguments) winning."""
        from aipk._http import Timeout
        from aipk._retry import RetryPolicy
        from aipk.limits import ClientLimits

        entry = self.provider_entry(name)
        overrides = dict(overrides or {})
        provider = self.spec_name(name)
        spec = self.registry.spec(provider)
        kwargs: dict[str, Any] = {"registry": self.registry}
        store = self.store()
        if store is not None:
            kwargs["store"] = store
        env_base = os.environ.get(spec.base_url_env, "").strip() if spec.base_url_env else ""
        if entry.base_url and not env_base:
            kwargs["base_url"] = entry.base_url
        if entry.headers:
            kwargs["headers"] = dict(entry.headers)
        if entry.timeout is not None:
            base = Timeout()
            kwargs["timeout"] = Timeout(connect=entry.timeout.connect or base.connect,
                                        read=entry.timeout.read or base.read,
                                        total=entry.timeout.total)
        if entry.retry is not None:
            values = {f.name: getattr(entry.retry, f.name) for f in attrs.fields(type(entry.retry))
                      if getattr(entry.retry, f.name) is not None}
            kwargs["retry"] = RetryPolicy(**values)
        if entry.max_retries is not None:
            kwargs["max_retries"] = entry.max_retries
        if entry.limits is not None:
            kwargs["limits"] = ClientLimits(
                requests_per_minute=entry.limits.requests_per_minute,
                tokens_per_minute=entry.limits.tokens_per_minute,
                requests_per_day=entry.limits.requests_per_day)
        for key, value in entry.options.items():
            if value == "":
                continue  # "${VAR:-}" with VAR unset: the option stays unset
            var = spec.option_env.get(key)
            if var and os.environ.get(var, "").strip():
                continue  # the plugin's environment variable wins over the file
            kwargs[key] = value
        credential_given = any(k in overrides for k in ("api_key", "credential", "credentials"))
        if not credential_given:
            kwargs.update(self._credentials(name, entry, spec, kwargs.get("base_url"), store))
        kwargs.update(overrides)
        return provider, kwargs

    def _credentials(self, name: str, entry: ProviderConfig, spec: ProviderSpec,
                     base_url: str | None, store: StateStore | None) -> dict[str, Any]:
        here = f"{self._where()}, providers.{name}"
        fix = (f"write the key alone in {self._where()}, one line of printable ASCII "
               f"characters, or better api_key = \"${{VAR}}\" with the key in the environment")
        if entry.api_keys:
            return {"api_key": [check_api_key(key, f"{here}.api_keys[{index}]", fix=fix)
                                for index, key in enumerate(entry.api_keys)]}
        if entry.api_key is not None:
            return {"api_key": check_api_key(entry.api_key, f"{here}.api_key", fix=fix)}
        if entry.api_key_env is not None:
            raw = os.environ.get(entry.api_key_env, "")
            where = f"the environment variable {entry.api_key_env} ({here}.api_key_env)"
            env_fix = (f"set {entry.api_key_env} to the key alone (a comma list for several), "
                       "printable ASCII")
            keys = [check_api_key(k, where, fix=env_fix) for k in raw.split(",") if k.strip()]
            if not keys:
                raise ConfigurationError(
                    f"providers.{name}.api_key_env: {entry.api_key_env} is not set; set "
                    f"{entry.api_key_env}")
            return {"api_key": keys if len(keys) > 1 else keys[0]}
        if entry.oauth is not None:
            from aipk.credentials._saved import saved_credentials

            path = Path(entry.oauth.token_file).expanduser() if entry.oauth.token_file else None
            resolved = Provider(spec=spec, base_url=base_url or spec.default_base_url)
            saved = saved_credentials(resolved, self.registry, path=path, state=store)
            if saved is None:
                raise ConfigurationError(
                    f"providers.{name}.oauth: no saved login for {spec.name!r}"
                    f"{' in ' + str(path) if path else ''}; run: aipk login {spec.name}")
            return {"credentials": saved}
        return {}

    def finish_client(self, client: _C, name: str) -> _C:
        """``client`` with what its provider entry sets that no constructor argument takes
        (the entry's ``default_model``)."""
        entry = self.provider_entry(name)
        if entry.default_model and entry.protocol is None:
            engine = client._engine  # type: ignore[attr-defined]
            provider = engine.provider
            engine.provider = attrs.evolve(
                provider, spec=attrs.evolve(provider.spec, default_model=entry.default_model))
        return client

    def store(self) -> StateStore | None:
        """The shared state store the ``state`` section names (None: each client and router
        keeps its own in-memory state)."""
        state = self.settings.state
        if state.backend == "memory" and not state.settings:
            return None
        cached = self._stores.get(state.backend)
        if cached is None:
            if state.backend == "memory":
                from aipk.state import MemoryStore

                cached = MemoryStore()
            else:
                entry_point = state_backends().get(state.backend)
                if entry_point is None:
                    raise ConfigurationError(
                        f"state.backend: no state backend {state.backend!r} is installed "
                        f"(entry-point group {STATE_BACKENDS})")
                cached = entry_point.load()(**state.settings)
            self._stores[state.backend] = cached
        return cast("StateStore", cached)


def set_fields(section: Any) -> dict[str, Any]:
    return {f.name: getattr(section, f.name) for f in attrs.fields(type(section))
            if f.name != "enabled" and getattr(section, f.name) is not None}


def build(settings: AipkConfig, document: Document, registry: Registry | None = None,
          env: Mapping[str, str] | None = None) -> tuple[Config | None, list[Problem]]:
    """Check ``settings`` against the installed plugins, declare its custom providers, and
    return the `Config` (None when there are problems) with every problem."""
    registry = registry or default_registry()
    installed = installed_specs(registry)
    problems = check(settings, document, registry, installed, env)
    custom = {name: custom_spec(name, entry) for name, entry in settings.providers.items()
              if entry.protocol is not None}
    if problems:
        return None, problems
    install_custom_providers(registry, custom)
    return Config(settings=settings, document=document, registry=registry), problems


def raise_problems(path: Path | None, problems: list[Problem]) -> None:
    """Raise `ConfigFileError` listing ``problems``, if there are any."""
    if problems:
        raise ConfigFileError(path, problems)
