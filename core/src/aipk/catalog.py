"""The model catalog: cached model listings, merged metadata, and capability search.

::

    from aipk.catalog import ModelCatalog, ModelQuery

    catalog = ModelCatalog(disk=True)                      # memory, plus the user cache dir
    models = catalog.models(client)                        # live once a day, cached between
    cheap = ModelQuery(tools=True, min_context=100_000, max_input_price=1.0)
    print([m.id for m in cheap.filter(models)])

Listings are cached per provider, base URL and credential id for ``ttl`` seconds (default one
day). A listing that fails (network, status, malformed body) falls back to the last cached
list, however old, or else the plugin's static table, with a logged warning; ``refresh=True``
fetches even when the cache is fresh.

Where each field of a catalog [`ModelInfo`][aipk.ModelInfo] comes from, first that has it:

* ``id``, ``display_name``, ``created``: the live listing, then the plugin's static table;
* ``context_window``, ``max_output_tokens``: a config ``models`` entry, the live listing
  (Gemini, Anthropic and OpenRouter report them), the static table, the provider's defaults;
* ``input_price``, ``output_price``: a config entry, the live listing (OpenRouter), the table;
* capabilities (tools, vision, JSON, reasoning, streaming): a config entry, the plugin's
  model data (static table, as the plugin merged it into the listing), the provider's defaults.

``extra["source"]`` says where the record came from: ``live``, ``cache``, ``static`` or
``config``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ._providers import Capabilities, ModelInfo, ProviderSpec
from .errors import ProviderError

if TYPE_CHECKING:
    from ._async_client import AsyncClient
    from ._base import ClientBase
    from ._client import Client

__all__ = [
    "DEFAULT_TTL",
    "ModelCatalog",
    "ModelQuery",
    "capabilities_of",
    "merge_models",
    "user_cache_dir",
]

log = logging.getLogger("aipk.catalog")

#: How long a model listing stays fresh: one day.
DEFAULT_TTL = 86400.0
_FORMAT = 1


def user_cache_dir(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """aipk's per-user cache directory: ``%LOCALAPPDATA%\\aipk\\Cache`` on Windows,
    ``~/Library/Caches/aipk`` on macOS, else ``$XDG_CACHE_HOME/aipk`` (``~/.cache/aipk``)."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform.startswith("win"):
        base = env.get("LOCALAPPDATA") or str(Path("~/AppData/Local").expanduser())
        return Path(base) / "aipk" / "Cache"
    if platform == "darwin":
        return Path("~/Library/Caches").expanduser() / "aipk"
    base = env.get("XDG_CACHE_HOME", "").strip() or str(Path("~/.cache").expanduser())
    return Path(base) / "aipk"


# -- metadata --------------------------------------------------------------------------------------


def capabilities_of(model: ModelInfo, spec: ProviderSpec | None = None) -> Capabilities:
    """The model's capabilities, with the provider's defaults where the model says nothing."""
    base = spec.capabilities if spec is not None else Capabilities()
    return base.merge(model.capabilities)


def _pick(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def merge_models(listed: Sequence[ModelInfo] | None, spec: ProviderSpec,
                 overrides: Sequence[ModelInfo] = (), *, source: str = "live") -> list[ModelInfo]:
    """The catalog's records for one provider: the ``listed`` models (None: no listing, use
    the static table) enriched from the static table, with ``overrides`` (config ``models``
    entries) winning field by field; override models the listing lacks are added."""
    static = {m.id: m for m in spec.models}
    extra = {m.id: m for m in overrides}
    base = list(listed) if listed is not None else list(spec.models)
    source = source if listed is not None else "static"
    out: list[ModelInfo] = []
    seen: set[str] = set()
    for model in [*base, *(m for m in overrides if m.id not in {b.id for b in base})]:
        if model.id in seen:
            continue
        seen.add(model.id)
        known = static.get(model.id)
        over = extra.get(model.id)
        if model is over:  # only the config knows it: the provider's defaults, then its flags
            caps = spec.capabilities if known is None else capabilities_of(known, spec)
        elif known is not None and known.capabilities is not None and \
                model.capabilities is None:
            caps = capabilities_of(known, spec)
        else:
            caps = capabilities_of(model, spec)
        caps = attrs.evolve(
            caps,
            context_window=_pick(caps.context_window,
                                 known.context_window if known else None),
            max_output_tokens=_pick(caps.max_output_tokens,
                                    known.capabilities.max_output_tokens
                                    if known and known.capabilities else None))
        if over is not None and over.capabilities is not None:
            oc = over.capabilities
            caps = attrs.evolve(caps, context_window=oc.context_window or caps.context_window,
                                max_output_tokens=oc.max_output_tokens or caps.max_output_tokens)
        flags = _flags(over)
        if flags:
            caps = attrs.evolve(caps, **flags)
        origin = "config" if model is over else model.extra.get("source", source)
        out.append(ModelInfo(
            id=model.id, provider=spec.name,
            display_name=_pick(model.display_name, known.display_name if known else None),
            capabilities=caps,
            input_price=_pick(over.input_price if over else None, model.input_price,
                              known.input_price if known else None),
            output_price=_pick(over.output_price if over else None, model.output_price,
                               known.output_price if known else None),
            created=_pick(model.created, known.created if known else None),
            extra={**model.extra, "source": origin},
        ))
    return out


def _flags(model: ModelInfo | None) -> dict[str, bool]:
    # A config entry records only the flags it set (see aipk.config's model entries).
    if model is None:
        return {}
    flags = model.extra.get("flags")
    return dict(flags) if isinstance(flags, Mapping) else {}


@attrs.frozen(kw_only=True)
class ModelQuery:
    """What a model must offer. Flags left False are not required; a limit left None is not
    checked. A model whose context window or price is unknown does not match a limit on it.

    * ``tools``, ``vision``, ``json_mode``, ``reasoning``, ``streaming``: required support.
    * ``min_context``: the smallest acceptable context window (tokens).
    * ``max_input_price``, ``max_output_price``: USD per million tokens, at most.
    * ``text``: a substring the model id must contain (case-insensitive).
    """

    tools: bool = False
    vision: bool = False
    json_mode: bool = False
    reasoning: bool = False
    streaming: bool = False
    min_context: int | None = None
    max_input_price: float | None = None
    max_output_price: float | None = None
    text: str | None = None

    def matches(self, model: ModelInfo, spec: ProviderSpec | None = None) -> bool:
        """Whether ``model`` (with ``spec``'s defaults) satisfies the query."""
        caps = capabilities_of(model, spec)
        for flag in ("tools", "vision", "json_mode", "reasoning", "streaming"):
            if getattr(self, flag) and not getattr(caps, flag):
                return False
        if self.min_context is not None and (caps.context_window or 0) < self.min_context:
            return False
        if self.max_input_price is not None and (
                model.input_price is None or model.input_price > self.max_input_price):
            return False
        if self.max_output_price is not None and (
                model.output_price is None or model.output_price > self.max_output_price):
            return False
        return not (self.text and self.text.lower() not in model.id.lower())

    def filter(self, models: Iterable[ModelInfo],
               specs: Mapping[str, ProviderSpec] | None = None) -> list[ModelInfo]:
        """The ``models`` that match, in order (``specs``: provider defaults by name)."""
        specs = specs or {}
        return [m for m in models if self.matches(m, specs.get(m.provider))]


# -- the cache -------------------------------------------------------------------------------------


def _credential_label(client: ClientBase) -> str:
    source: Any = client.credentials
    single = getattr(source, "credential", None)
    if single is not None and hasattr(single, "id"):
        return str(single.id)
    ids = getattr(source, "ids", None)
    if ids:
        return ",".join(sorted(str(i) for i in ids))
    return "default"


def _to_json(model: ModelInfo) -> dict[str, Any]:
    caps = attrs.asdict(model.capabilities) if model.capabilities is not None else None
    extra = {k: v for k, v in model.extra.items()
             if isinstance(v, (str, int, float, bool)) or v is None}
    return {"id": model.id, "provider": model.provider, "display_name": model.display_name,
            "capabilities": caps, "input_price": model.input_price,
            "output_price": model.output_price, "created": model.created, "extra": extra}


def _from_json(data: Mapping[str, Any]) -> ModelInfo:
    caps = data.get("capabilities")
    return ModelInfo(
        id=str(data["id"]), provider=str(data["provider"]),
        display_name=data.get("display_name"),
        capabilities=Capabilities(**caps) if isinstance(caps, Mapping) else None,
        input_price=data.get("input_price"), output_price=data.get("output_price"),
        created=data.get("created"), extra=dict(data.get("extra") or {}))


def _as_cached(models: list[ModelInfo]) -> list[ModelInfo]:
    return [attrs.evolve(m, extra={**m.extra, "source": "cache"}) for m in models]


class ModelCatalog:
    """Model listings cached per (provider, base URL, credential id) for ``ttl`` seconds, in
    memory and, with ``disk=True``, as JSON files under ``cache_dir`` (default
    `user_cache_dir()` ``/models``). Thread-safe; a failed listing falls back to the
    cache or the static table (see the module docs)."""

    def __init__(self, *, ttl: float = DEFAULT_TTL, disk: bool = False,
                 cache_dir: str | os.PathLike[str] | None = None,
                 clock: Any = time.time) -> None:
        if not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        self.ttl = float(ttl)
        self.disk = disk
        self.cache_dir = Path(cache_dir) if cache_dir is not None else \
            user_cache_dir() / "models"
        self._clock = clock
        self._memory: dict[tuple[str, str, str], tuple[float, list[ModelInfo]]] = {}
        self._lock = threading.Lock()

    # -- keys and storage ----------------------------------------------------------------------

    def _key(self, client: ClientBase) -> tuple[str, str, str]:
        provider = client.provider
        return (provider.name, provider.base_url, _credential_label(client))

    def _file(self, key: tuple[str, str, str]) -> Path:
        digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:16]
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in key[0])
        return self.cache_dir / f"{safe}-{digest}.json"

    def _cached(self, key: tuple[str, str, str]) -> tuple[float, list[ModelInfo]] | None:
        with self._lock:
            found = self._memory.get(key)
        if found is not None or not self.disk:
            return found
        path = self._file(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != _FORMAT or list(data.get("key", ())) != list(key):
                return None
            entry = (float(data["fetched_at"]), [_from_json(m) for m in data["models"]])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the unreadable model cache %s (%s); it will be rewritten",
                        path, exc)
            return None
        with self._lock:
            self._memory[key] = entry
        return entry

    def _store(self, key: tuple[str, str, str], models: list[ModelInfo]) -> None:
        now = self._clock()
        with self._lock:
            self._memory[key] = (now, models)
        if not self.disk:
            return
        path = self._file(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"format": _FORMAT, "key": list(key), "fetched_at": now,
                                       "models": [_to_json(m) for m in models]}),
                           encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not write the model cache %s (%s); listings stay in memory",
                        path, exc)

    def clear(self) -> None:
        """Forget the in-memory listings (files on disk stay until they expire)."""
        with self._lock:
            self._memory.clear()

    # -- listing ---------------------------------------------------------------------------------

    def _fresh(self, key: tuple[str, str, str], refresh: bool) -> list[ModelInfo] | None:
        if refresh:
            return None
        cached = self._cached(key)
        if cached is not None and self._clock() - cached[0] < self.ttl:
            return _as_cached(cached[1])
        return None

    def _fallback(self, client: ClientBase, key: tuple[str, str, str],
                  error: ProviderError, overrides: Sequence[ModelInfo]) -> list[ModelInfo]:
        cached = self._cached(key)
        spec = client.provider.spec
        if cached is not None:
            age = max(0.0, self._clock() - cached[0])
            log.warning("listing %s models failed (%s); using the cached list from %.0f s ago",
                        spec.name, error, age)
            return merge_models(_as_cached(cached[1]), spec, overrides)
        log.warning("listing %s models failed (%s); using the plugin's static list",
                    spec.name, error)
        return merge_models(None, spec, overrides)

    def models(self, client: Client, *, refresh: bool = False,
               overrides: Sequence[ModelInfo] = ()) -> list[ModelInfo]:
        """``client``'s provider's models: cached if fresh, else listed live (and cached);
        ``overrides`` (config ``models`` entries) win field by field."""
        key = self._key(client)
        spec = client.provider.spec
        fresh = self._fresh(key, refresh)
        if fresh is not None:
            return merge_models(fresh, spec, overrides)
        try:
            listed = client.models()
        except ProviderError as error:
            return self._fallback(client, key, error, overrides)
        merged = merge_models(listed, spec)
        self._store(key, merged)
        return merge_models(merged, spec, overrides)

    async def amodels(self, client: AsyncClient, *, refresh: bool = False,
                      overrides: Sequence[ModelInfo] = ()) -> list[ModelInfo]:
        """`models()` for an [`AsyncClient`][aipk.AsyncClient]."""
        key = self._key(client)
        spec = client.provider.spec
        fresh = self._fresh(key, refresh)
        if fresh is not None:
            return merge_models(fresh, spec, overrides)
        try:
            listed = await client.models()
        except ProviderError as error:
            return self._fallback(client, key, error, overrides)
        merged = merge_models(listed, spec)
        self._store(key, merged)
        return merge_models(merged, spec, overrides)


