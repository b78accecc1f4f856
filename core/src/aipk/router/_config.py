"""Router arguments from a loaded config file's ``[routers.NAME]`` entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aipk._breaker import BreakerPolicy, CooldownPolicy

from ._policy import DEFAULT_BREAKER, DEFAULT_COOLDOWN
from ._target import Target

if TYPE_CHECKING:
    from aipk.config import Config


def _config_kwargs(config: Config, name: str, *, asynchronous: bool,
                   overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``Router(...)``/``AsyncRouter(...)`` from the router entry
    ``name`` of a loaded config: targets (with clients built from the provider entries they
    name), policies, and the router's name (``name``)."""
    from aipk._async_client import AsyncClient
    from aipk._client import Client
    from aipk.config._build import set_fields

    entry = config.router_entry(name)
    targets = []
    for target in entry.targets:
        provider, client = target.provider, None
        if provider in config.settings.providers:
            maker = AsyncClient if asynchronous else Client
            client = maker.from_config(provider, config=config, max_retries=0)
            provider = config.spec_name(target.provider)
        targets.append(Target(
            provider=provider, model=target.model, client=client,
            name=target.name or f"{target.provider}/{target.model}",
            input_price=target.input_price, output_price=target.output_price,
            context_window=target.context_window))
    kwargs: dict[str, Any] = {"strategy": entry.strategy,
                              "fallback_on_context_window": entry.fallback_on_context_window,
                              "registry": config.registry, "name": name}
    cooldown, breaker = entry.cooldown, entry.breaker
    if cooldown is None:
        kwargs["cooldown"] = DEFAULT_COOLDOWN
    else:
        kwargs["cooldown"] = CooldownPolicy(**set_fields(cooldown)) if cooldown.enabled else None
    if breaker is None:
        kwargs["breaker"] = DEFAULT_BREAKER
    else:
        kwargs["breaker"] = BreakerPolicy(**set_fields(breaker)) if breaker.enabled else None
    if entry.max_wait is not None:
        kwargs["max_wait"] = entry.max_wait
    store = config.store()
    if store is not None:
        kwargs["store"] = store
    kwargs.update(overrides or {})
    kwargs["targets"] = targets
    return kwargs
