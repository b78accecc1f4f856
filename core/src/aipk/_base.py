"""What the sync and async clients share: settings, resolution, request assembly, queries."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from ._core import Engine
from ._messages import ChatRequest, Message
from ._providers import Capabilities, Credential, Provider, ProviderSpec, Secret
from ._ratelimit import RateLimitState, RateLimitTracker
from ._retry import RetryPolicy
from .errors import ConfigurationError, MissingCredentialError, NetworkError, RequestTimeout
from .limits import ClientLimits
from .registry import Registry, default_registry
from .state import StateStore
from .transports import TransportFailure

__all__ = ["ClientBase"]


def key_fingerprint(key: str) -> str:
    """A stable, non-secret id for a key (8 hex digits of its SHA-256), for state and metrics."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:8]


def resolve_credential(spec: ProviderSpec, provider: Provider, api_key: str | Secret | None,
                       credential: Credential | None = None) -> Credential:
    """The credential to use: ``credential=``, ``api_key=``, the spec's env vars, or none if the
    provider allows it."""
    if credential is not None:
        return credential
    if isinstance(api_key, Secret):
        return Credential(kind="api_key", secret=api_key, id=key_fingerprint(api_key.reveal()))
    if api_key:
        return Credential(kind="api_key", secret=Secret(api_key), id=key_fingerprint(api_key))
    for var in spec.env_vars:
        value = os.environ.get(var, "").strip()
        if value:
            first = value.split(",")[0].strip()
            return Credential(kind="api_key", secret=Secret(first), id=var)
    if spec.key_optional or provider.is_loopback or "none" in spec.auth_kinds:
        return Credential(kind="none", id="none")
    raise MissingCredentialError(spec.name, spec.env_vars)


class ClientBase:
    """Provider resolution and everything that does not depend on sync versus async."""

    def __init__(
        self,
        provider: str,
        *,
        api_key: str | Secret | None,
        base_url: str | None,
        headers: Mapping[str, str] | None,
        retry: RetryPolicy | None,
        max_retries: int | None,
        registry: Registry | None,
        clock: Callable[[], float],
        options: Mapping[str, Any],
        limits: ClientLimits | None = None,
        credential: Credential | None = None,
        store: StateStore | None = None,
    ) -> None:
        self._registry = registry or default_registry()
        spec = self._registry.spec(provider)
        env_options = {
            name: value for name, var in spec.option_env.items()
            if (value := os.environ.get(var, "").strip())
        }
        if base_url is None and spec.base_url_env:
            base_url = os.environ.get(spec.base_url_env, "").strip() or None
        resolved = Provider(
            spec=spec,
            base_url=base_url or spec.default_base_url,
            options={**spec.options, **env_options, **options},
            headers=dict(headers or {}),
        )
        if not resolved.base_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"base_url {resolved.base_url!r} must start with http:// or https://, "
                f"e.g. {spec.default_base_url!r}"
            )
        policy = retry or RetryPolicy()
        if max_retries is not None:
            policy = attrs.evolve(policy, max_retries=max_retries)
        self._engine = Engine(
            registry=self._registry,
            provider=resolved,
            credential=resolve_credential(spec, resolved, api_key, credential),
            retry=policy,
            tracker=RateLimitTracker(store),
            limits=limits,
            clock=clock,
        )
        self._clock = clock

    # -- public queries ------------------------------------------------------------------

    @property
    def provider(self) -> Provider:
        """The resolved provider (spec, base URL, options)."""
        return self._engine.provider

    @property
    def provider_name(self) -> str:
        return self._engine.provider.name

    def capabilities(self, model: str | None = None) -> Capabilities:
        """What the provider (and ``model``, if its static info is known) supports."""
        spec = self._engine.provider.spec
        if model is not None:
            for info in spec.models:
                if info.id == model:
                    return spec.capabilities.merge(info.capabilities)
        return spec.capabilities

    def rate_limits(self, model: str) -> RateLimitState | None:
        """The latest rate-limit state the provider reported for ``model`` with this credential."""
        engine = self._engine
        return engine.tracker.get((engine.provider.name, engine.credential.id, model))

    @property
    def limits(self) -> ClientLimits:
        """The client-side limits in force (plugin defaults unless you set your own)."""
        return self._engine.limiter.limits

    def set_limits(self, limits: ClientLimits) -> None:
        """Change the client-side limits at run time, e.g. after moving to a higher tier."""
        self._engine.limiter.update(limits)

    def metrics(self) -> dict[str, Any]:
        """Counters for this client: requests, successes, errors, retries, tokens, latency."""
        return self._engine.metrics.snapshot()

    def __repr__(self) -> str:
        provider = self._engine.provider
        return f"<{type(self).__name__} provider={provider.name!r} base_url={provider.base_url!r}>"

    # -- shared helpers ------------------------------------------------------------------

    def _request(self, request: ChatRequest | None, fields: dict[str, Any]) -> ChatRequest:
        if request is not None:
            if fields:
                raise ConfigurationError(
                    "pass either a ChatRequest or keyword fields (model=, messages=…), not both"
                )
            return request
        if "model" not in fields or fields["model"] is None:
            default = self._engine.provider.spec.default_model
            if default is None:
                raise ConfigurationError("model= is required, e.g. model='gpt-4o-mini'")
            fields["model"] = default
        messages: Iterable[Message | Mapping[str, Any]] = fields.pop("messages", ())
        return ChatRequest(messages=messages, **fields)

    def _transport_error(self, failure: TransportFailure) -> NetworkError | RequestTimeout:
        name = self._engine.provider.name
        cls = RequestTimeout if failure.timeout else NetworkError
        where = "before any response" if failure.before_first_byte else "while reading the response"
        return cls(
            f"{failure} {where} from {self._engine.provider.base_url}; check the network and "
            f"base_url, or raise timeout=",
            provider=name, retryable=failure.before_first_byte,
            before_first_byte=failure.before_first_byte,
        )


