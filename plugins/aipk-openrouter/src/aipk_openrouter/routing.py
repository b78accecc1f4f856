"""Model lists with a strategy, and how the chosen order reaches OpenRouter.

OpenRouter takes a ``models`` array in the request body and tries the models in that order
(falling through on errors, rate limits, downtime or moderation). This module decides the order,
purely:

* ``failover``: as given;
* ``round_robin``: as given, rotated one step per request (a `RoundRobin` counter,
  thread-safe, shared by whoever holds it), so load spreads while the rest stay as fallbacks;
* ``cheapest_first``: by input + output price per million tokens (models with unknown prices
  last, ties kept in the given order), prices as `aipk_openrouter.models.parse_models()`
  reads them from ``GET /models``.

``free_only`` keeps only free models (an id ending in ``:free``, or both prices 0).

`ModelRouter` bundles a list, a strategy and its counter. Pass one as the provider option
``router=`` and every request gets ``model`` and ``models`` from it; or put
`models_field()` of your own ordering into ``extra=`` per request. A config file gives the same
option as a table (`RouterOptions`: ``models``, ``strategy``, ``free_only``), which
`router_of()` turns into one `ModelRouter` per client.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, get_args

import attrs

from aipk import ModelInfo
from aipk.errors import ConfigurationError, InvalidRequestError

__all__ = ["STRATEGIES", "ModelRouter", "RoundRobin", "RouterOptions", "Strategy", "is_free",
           "models_field", "order_models", "router_of"]

Strategy = Literal["failover", "round_robin", "cheapest_first"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


class RoundRobin:
    """A thread-safe counter: `take()` returns 0, 1, … ``n - 1``, 0, … across callers."""

    __slots__ = ("_count", "_lock")

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> int:
        """The next start index for a list of ``n`` items (``n`` must be positive)."""
        if n <= 0:
            raise ValueError("RoundRobin.take needs a positive list length")
        with self._lock:
            index = self._count % n
            self._count = index + 1
            return index

    def __repr__(self) -> str:
        return f"RoundRobin(next={self._count})"


def is_free(model: ModelInfo) -> bool:
    """True for OpenRouter's free variants (``…:free``) and models priced at zero."""
    return model.id.endswith(":free") or (model.input_price == 0 and model.output_price == 0)


def _price_key(model: ModelInfo) -> tuple[bool, float]:
    if model.input_price is None or model.output_price is None:
        return (True, 0.0)
    return (False, model.input_price + model.output_price)


def order_models(models: Sequence[ModelInfo], strategy: Strategy, free_only: bool = False,
                 state: RoundRobin | None = None) -> list[ModelInfo]:
    """``models`` in the order ``strategy`` says to try them; ``state`` is required for
    ``round_robin``. May be empty (``free_only`` with no free model)."""
    candidates = [m for m in models if is_free(m)] if free_only else list(models)
    if strategy == "failover":
        return candidates
    if strategy == "cheapest_first":
        return sorted(candidates, key=_price_key)
    if strategy == "round_robin":
        if state is None:
            raise ValueError("the round_robin strategy needs a RoundRobin state")
        if not candidates:
            return candidates
        start = state.take(len(candidates))
        return candidates[start:] + candidates[:start]
    raise ValueError(f"unknown model strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")


def models_field(models: Sequence[ModelInfo | str]) -> dict[str, Any]:
    """The body fields for an ordered list: ``{"model": first, "models": [ids…]}``; pass it as
    ``extra=`` (the first model is the primary, the rest are OpenRouter's fallbacks)."""
    ids = [m if isinstance(m, str) else m.id for m in models]
    if not ids:
        raise InvalidRequestError(
            "no model to send: the model list is empty (with free_only=True, none is free)",
            provider="openrouter", field="models",
        )
    return {"model": ids[0], "models": ids}


def _models(value: Iterable[ModelInfo | str]) -> tuple[ModelInfo, ...]:
    return tuple(m if isinstance(m, ModelInfo) else ModelInfo(id=m, provider="openrouter")
                 for m in value)


@attrs.frozen(kw_only=True)
class ModelRouter:
    """A model list, a strategy and its round-robin counter; pass as ``router=``.

    ``models`` accepts ids or [`ModelInfo`][aipk.ModelInfo] records (with prices, from
    ``client.models()``, for ``cheapest_first``).
    """

    models: tuple[ModelInfo, ...] = attrs.field(converter=_models)
    strategy: Strategy = "failover"
    free_only: bool = False
    counter: RoundRobin = attrs.field(factory=RoundRobin, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigurationError(
                f"model strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if not self.models:
            raise ConfigurationError("a ModelRouter needs at least one model")

    def order(self) -> list[ModelInfo]:
        """The models in the order to try for the next request (advances round robin)."""
        return order_models(self.models, self.strategy, self.free_only, self.counter)

    def body_fields(self) -> dict[str, Any]:
        """``{"model": …, "models": […]}`` for the next request."""
        return models_field(self.order())


@attrs.frozen(kw_only=True)
class RouterOptions:
    """The ``router`` option as a config file writes it
    (``[providers.openrouter.options.router]``); the client builds a `ModelRouter` from it.

    Attributes:
        models: Model ids to try, in the given order (the strategy may reorder them).
        strategy: ``"failover"``, ``"round_robin"`` or ``"cheapest_first"``.
        free_only: Keep only free models.
    """

    models: list[str]
    strategy: Strategy = "failover"
    free_only: bool = False


#: Routers built from ``router`` tables, by the table's identity (the table is kept, so
#: its id is not reused): one per client, so round robin keeps its place between requests.
_FROM_TABLES: dict[int, tuple[Mapping[str, Any], ModelRouter]] = {}
_FROM_TABLES_LOCK = threading.Lock()
_FROM_TABLES_LIMIT = 256


def router_of(option: object) -> ModelRouter:
    """The `ModelRouter` for a ``router=`` option: the router itself, or one built (once per
    table) from a mapping with `RouterOptions`' keys. ConfigurationError for anything else."""
    if isinstance(option, ModelRouter):
        return option
    if not isinstance(option, Mapping):
        raise ConfigurationError(
            f"the OpenRouter router= option must be an aipk_openrouter.ModelRouter, or a table "
            f"with models, strategy and free_only, not {type(option).__name__}")
    found = _FROM_TABLES.get(id(option))
    if found is not None and found[0] is option:
        return found[1]
    router = _router_from_table(option)
    with _FROM_TABLES_LOCK:
        found = _FROM_TABLES.get(id(option))
        if found is not None and found[0] is option:
            return found[1]
        if len(_FROM_TABLES) >= _FROM_TABLES_LIMIT:
            _FROM_TABLES.clear()
        _FROM_TABLES[id(option)] = (option, router)
    return router


def _router_from_table(table: Mapping[str, Any]) -> ModelRouter:
    known = [f.name for f in attrs.fields(RouterOptions)]
    unknown = sorted(str(k) for k in table if k not in known)
    if unknown:
        raise ConfigurationError(
            f"the OpenRouter router option has no key {unknown[0]!r}; its keys are "
            f"{', '.join(known)} (e.g. router = {{ models = [\"a/b\", \"c/d\"], "
            f"strategy = \"round_robin\" }})")
    models = table.get("models")
    if not isinstance(models, list | tuple) or not all(isinstance(m, str) for m in models):
        raise ConfigurationError(
            "the OpenRouter router option's models must be a list of model ids, e.g. "
            "models = [\"qwen/qwen3-coder:free\", \"openai/gpt-4o-mini\"]")
    free_only = table.get("free_only", False)
    if not isinstance(free_only, bool):
        raise ConfigurationError("the OpenRouter router option's free_only must be true or false")
    return ModelRouter(models=models, strategy=table.get("strategy", "failover"),
                       free_only=free_only)
