"""The config file's records: what each section may contain. Every record is frozen and
keyword-only; ``None`` means "not set here" (a lower layer, or the plugin, decides).

Durations are seconds (numbers). Prices are US dollars per million tokens.
"""

from __future__ import annotations

from typing import Any

import attrs

from aipk._providers import Secret

__all__ = [
    "AipkConfig",
    "BreakerConfig",
    "CatalogConfig",
    "CooldownConfig",
    "LimitsConfig",
    "ModelConfig",
    "OAuthConfig",
    "ProviderConfig",
    "RetryConfig",
    "RouterConfig",
    "StateConfig",
    "TargetConfig",
    "TimeoutConfig",
]


@attrs.frozen(kw_only=True)
class TimeoutConfig:
    """``timeout``: a number of seconds (read; connect is at most 10 s) or this table.

    * ``connect``: seconds to establish the connection.
    * ``read``: seconds to wait for each next byte of the response.
    * ``total``: seconds a call may take until its answer arrived, retries included
      ([`Timeout.total`][aipk.Timeout]).
    """

    connect: float | None = None
    read: float | None = None
    total: float | None = None


@attrs.frozen(kw_only=True)
class RetryConfig:
    """``retry``: the client's [`RetryPolicy`][aipk.RetryPolicy] (unset fields keep its defaults).

    * ``max_retries``: retries after the first attempt.
    * ``initial_delay``, ``max_delay``: the exponential backoff's first and largest wait.
    * ``max_retry_after``: the longest server-requested wait honoured before failing.
    * ``jitter``: the fraction of each wait drawn at random (0 to 1).
    """

    max_retries: int | None = None
    initial_delay: float | None = None
    max_delay: float | None = None
    max_retry_after: float | None = None
    jitter: float | None = None


@attrs.frozen(kw_only=True)
class LimitsConfig:
    """``limits``: client-side limits (`ClientLimits`), replacing the
    plugin's defaults when the table is given.

    * ``requests_per_minute``, ``tokens_per_minute``, ``requests_per_day``.
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    requests_per_day: float | None = None


@attrs.frozen(kw_only=True)
class OAuthConfig:
    """``oauth``: use the logins ``aipk login`` saved (``oauth = true``), or this table.

    * ``token_file``: the token file (default: the provider's file in the user config
      directory, see docs/credentials.md).
    """

    token_file: str | None = None


@attrs.frozen(kw_only=True)
class ModelConfig:
    """One entry of a provider's ``models``: a model id, or a table adding what the plugin's
    static table does not know (these values win over the static table and the listing).

    * ``id``: the model id sent to the provider.
    * ``context_window``, ``max_output_tokens``: token limits.
    * ``input_price``, ``output_price``: USD per million tokens.
    * ``tools``, ``vision``, ``json_mode``, ``reasoning``, ``streaming``: capabilities.
    """

    id: str
    context_window: int | None = None
    max_output_tokens: int | None = None
    input_price: float | None = None
    output_price: float | None = None
    tools: bool | None = None
    vision: bool | None = None
    json_mode: bool | None = None
    reasoning: bool | None = None
    streaming: bool | None = None


@attrs.frozen(kw_only=True)
class ProviderConfig:
    """``[providers.NAME]``: one provider's settings.

    * ``provider``: the installed provider this entry configures (default: ``NAME``), so
      two entries can use one provider with different accounts.
    * ``protocol``: set (to ``"openai"``) to define a custom OpenAI-compatible provider by
      config alone; it then needs ``base_url``.
    * ``api_key``: one key, normally ``"${VAR}"``; ``api_keys``: several (a key pool).
    * ``api_key_env``: the environment variable holding the key (a comma list makes a pool).
    * ``oauth``: use the saved ``aipk login`` credentials (``true`` or a table).
    * ``base_url``: the endpoint; ``timeout``: seconds or ``{connect, read}``.
    * ``retry``, ``max_retries``: the retry policy (``max_retries`` is a shortcut).
    * ``limits``: client-side limits; ``default_model``: the model when a call names none.
    * ``headers``: extra headers on every request; ``models``: extra or corrected model
      metadata; ``options``: the plugin's own provider options (checked against the schema
      the plugin contributes through ``aipk_config_options``).
    """

    provider: str | None = None
    protocol: str | None = None
    api_key: Secret | None = None
    api_keys: tuple[Secret, ...] | None = None
    api_key_env: str | None = None
    oauth: OAuthConfig | None = None
    base_url: str | None = None
    timeout: TimeoutConfig | None = None
    retry: RetryConfig | None = None
    max_retries: int | None = None
    limits: LimitsConfig | None = None
    default_model: str | None = None
    headers: dict[str, str] = attrs.field(factory=dict)
    models: tuple[ModelConfig, ...] = ()
    options: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class TargetConfig:
    """One router target: ``"provider/model"`` or this table.

    * ``provider``: a provider entry of the config, or an installed provider.
    * ``model``: the model (an alias is resolved); ``name``: unique label (default
      ``provider/model``).
    * ``input_price``, ``output_price``, ``context_window``: override the model metadata.
    """

    provider: str
    model: str
    name: str | None = None
    input_price: float | None = None
    output_price: float | None = None
    context_window: int | None = None


@attrs.frozen(kw_only=True)
class CooldownConfig:
    """``cooldown``: seconds a target is skipped after each kind of failure
    ([`CooldownPolicy`][aipk.router.CooldownPolicy]); ``cooldown = false`` turns cooldowns off.

    * ``enabled``: false turns cooldowns off.
    * ``rate_limit``, ``server_error``, ``network``, ``credential``, ``max_cooldown``.
    """

    enabled: bool = True
    rate_limit: float | None = None
    server_error: float | None = None
    network: float | None = None
    credential: float | None = None
    max_cooldown: float | None = None


@attrs.frozen(kw_only=True)
class BreakerConfig:
    """``breaker``: the circuit breaker ([`BreakerPolicy`][aipk.router.BreakerPolicy]);
    ``breaker = false`` turns it off.

    * ``enabled``: false turns the breaker off.
    * ``failure_threshold``, ``open_duration``, ``probe_timeout``.
    """

    enabled: bool = True
    failure_threshold: int | None = None
    open_duration: float | None = None
    probe_timeout: float | None = None


@attrs.frozen(kw_only=True)
class RouterConfig:
    """``[routers.NAME]``: a router over several targets.

    * ``targets``: the targets, in failover order.
    * ``strategy``: ``failover``, ``round_robin``, ``cheapest_first`` or ``lowest_latency``.
    * ``cooldown``, ``breaker``: when targets are skipped (tables, or false).
    * ``max_wait``: seconds a call may wait for a target to become available.
    * ``fallback_on_context_window``: false, true, or ``{model = larger_model}``.
    """

    targets: tuple[TargetConfig, ...]
    strategy: str = "failover"
    cooldown: CooldownConfig | None = None
    breaker: BreakerConfig | None = None
    max_wait: float | None = None
    fallback_on_context_window: bool | dict[str, str] = False


@attrs.frozen(kw_only=True)
class CatalogConfig:
    """``[catalog]``: the model catalog's cache.

    * ``ttl``: seconds a model listing stays fresh (default one day).
    * ``disk_cache``: also keep listings in the user cache directory.
    * ``cache_dir``: that directory (default: see docs/models.md).
    """

    ttl: float = 86400.0
    disk_cache: bool = True
    cache_dir: str | None = None


@attrs.frozen(kw_only=True)
class StateConfig:
    """``state``: where rate-limit, cooldown and breaker state lives.

    * ``backend``: ``"memory"`` (the default), or a backend an installed package registers
      under the ``aipk.state_backends`` entry-point group.
    * ``settings``: every other key of the table, passed to that backend's factory.
    """

    backend: str = "memory"
    settings: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class AipkConfig:
    """A whole config file.

    * ``providers``: provider entries by name; ``routers``: router entries by name.
    * ``aliases``: model aliases, ``alias = "provider/model"``.
    * ``catalog``: the model catalog's cache; ``state``: the shared state backend.
    """

    providers: dict[str, ProviderConfig] = attrs.field(factory=dict)
    routers: dict[str, RouterConfig] = attrs.field(factory=dict)
    aliases: dict[str, str] = attrs.field(factory=dict)
    catalog: CatalogConfig = attrs.field(factory=CatalogConfig)
    state: StateConfig = attrs.field(factory=StateConfig)
