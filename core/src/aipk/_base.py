"""What the sync and async clients share: settings, resolution, request assembly, queries."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._core import Engine
from ._http import HttpRequest, Timeout, check_seconds, redact_url
from ._messages import ChatRequest, chat_request
from ._providers import (
    Capabilities,
    Credential,
    Provider,
    ProviderSpec,
    Secret,
    check_api_key,
)
from ._ratelimit import RateLimitState, RateLimitTracker
from ._records import record
from ._retry import RetryPolicy
from ._secrets import check_credential, check_header_values, redact, redact_error
from ._tokens import TokenCount, estimate_tokens
from .errors import (
    ConfigurationError,
    InvalidRequestError,
    MissingCredentialError,
    NetworkError,
    RequestTimeout,
    ResponseError,
)
from .limits import ClientLimits
from .observability import Metrics
from .registry import Registry, default_registry
from .state import StateStore
from .transports import TransportFailure

if TYPE_CHECKING:
    from .credentials._pool import CredentialSource
    from .observability import MetricsSnapshot

__all__ = ["ClientBase", "HealthStatus", "resolve_timeout"]

_ClientT = TypeVar("_ClientT", bound="ClientBase")
#: The call options of a call that passes none (see `ClientBase._call_options()`).
NO_OPTIONS: Mapping[str, Any] = {}


def key_fingerprint(key: str) -> str:
    """A stable, non-secret id for a key (8 hex digits of its SHA-256), for state and metrics."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:8]


def _env_keys(spec: ProviderSpec) -> tuple[str, list[str]] | None:
    """The first of the spec's env vars that holds keys, and its comma-separated keys (each
    checked with `check_credential()`; blank entries are skipped)."""
    for var in spec.env_vars:
        raw = [k for k in os.environ.get(var, "").split(",") if k.strip()]
        if raw:
            fix = f"set it to the key alone, e.g. export {var}=sk-... (several: comma-separated)"
            keys = [check_credential(k, where=f"the environment variable {var}"
                                     + (f" (key {i} of its comma-separated list)"
                                        if len(raw) > 1 else ""), fix=fix)
                    for i, k in enumerate(raw, 1)]
            return var, keys
    return None


def resolve_credentials(
    spec: ProviderSpec, provider: Provider, *,
    api_key: str | Secret | Sequence[str | Secret] | None,
    credential: Credential | None,
    credentials: CredentialSource | None,
    store: StateStore | None,
    clock: Callable[[], float],
    registry: Registry | None = None,
    metrics: Metrics | None = None,
) -> CredentialSource:
    """Where each attempt's credential comes from: ``credentials=`` as given; several keys
    (``api_key=[...]`` or a comma list in the provider's env var) as a `KeyPool`
    sharing ``store``; otherwise one fixed credential: ``credential=``, ``api_key=``, the env
    var, what ``aipk login`` saved (an OAuth manager refreshing through the plugin's login
    flow), or none if the provider allows it. Pools and single credentials built here count
    their attempts in ``metrics``."""
    from .credentials._single import SingleCredential  # the pools load only when used

    if credentials is not None:
        if api_key is not None or credential is not None:
            raise ConfigurationError(
                "pass credentials= (a pool or OAuth manager) or api_key=/credential=, not both")
        if credentials.provider != spec.name:
            raise ConfigurationError(
                f"the credentials are for provider {credentials.provider!r}, not "
                f"{spec.name!r}; build the pool with provider={spec.name!r}")
        from .credentials._pool import KeyPool

        if isinstance(credentials, KeyPool):
            for member in credentials:
                if member.secret is not None:
                    check_api_key(member.secret, f"key {member.id!r} of the credentials= pool",
                                  strip=False)
        return credentials
    if api_key is not None and not isinstance(api_key, (str, Secret)):
        if not isinstance(api_key, Iterable):
            raise ConfigurationError(
                f"api_key= takes a key (a string or aipk.Secret) or a list of keys, not a "
                f"{type(api_key).__name__}")
        keys = [check_api_key(k, f"the api_key= list, item {i}")
                for i, k in enumerate(api_key)]
        if not keys:
            raise ConfigurationError("api_key= is an empty list; pass one key or several")
        if len(keys) != 1:
            from .credentials._pool import KeyPool

            by_id = {key_fingerprint(k.reveal()): k for k in keys}
            return KeyPool.from_keys(spec.name, by_id, state=store, clock=clock,
                                     metrics=metrics)
        api_key = keys[0]

    def single(chosen: Credential) -> SingleCredential:
        return SingleCredential(spec.name, chosen, clock=clock, metrics=metrics)

    if credential is not None:
        if credential.secret is not None:
            check_api_key(credential.secret, f"the credential= argument (id {credential.id!r})",
                          strip=False)
        return single(credential)
    if api_key is not None:
        secret = check_api_key(api_key)
        return single(Credential(kind="api_key", secret=secret,
                                 id=key_fingerprint(secret.reveal())))
    found = _env_keys(spec)
    if found is not None:
        var, listed = found
        if len(listed) == 1:
            return single(Credential(kind="api_key", secret=Secret(listed[0]), id=var))
        from .credentials._pool import KeyPool

        return KeyPool.from_keys(spec.name, {f"{var}#{i}": key for i, key in enumerate(listed, 1)},
                                 state=store, clock=clock, metrics=metrics)
    if registry is not None:
        from .credentials._saved import saved_credentials

        saved = saved_credentials(provider, registry, state=store, clock=clock, metrics=metrics)
        if saved is not None:
            return saved
    if spec.key_optional or provider.is_loopback or "none" in spec.auth_kinds:
        return single(Credential(kind="none", id="none"))
    login = registry is not None and registry.hook.aipk_login_flow(provider=provider) is not None
    raise MissingCredentialError(spec.name, spec.env_vars, login=login)


@record(kw_only=True)
class HealthStatus:
    """The outcome of a health check: reachable and authorised, and how long it took.

    Attributes:
        provider: The provider id checked.
        healthy: True when the provider answered and accepted the credential.
        latency: Seconds the check took.
        error: Why the check failed, or None.
    """

    provider: str
    healthy: bool
    latency: float
    error: str | None = None


def resolve_timeout(timeout: Timeout | float | None, connect: float | None,
                    read: float | None) -> Timeout:
    """``timeout=`` as a `Timeout` (seconds: that read timeout, and a connect timeout of
    at most 10 s); ConfigurationError for anything but a positive number or a Timeout."""
    if isinstance(timeout, Timeout):
        return timeout
    if timeout is not None:
        seconds = check_seconds(timeout, "timeout=")
        return Timeout(connect=min(seconds, 10.0), read=seconds)
    base = Timeout()
    return attrs.evolve(base, connect=connect or base.connect, read=read or base.read)


class ClientBase:
    """Provider resolution and everything that does not depend on sync versus async."""

    #: The client's timeouts (set by the sync and async constructors).
    timeout: Timeout
    #: Check every request against the model's context window before sending (a call's
    #: ``check_context=`` overrides it); set with ``Client(check_context=True)``.
    check_context: bool = False

    def __init__(
        self,
        provider: str,
        *,
        api_key: str | Secret | Sequence[str | Secret] | None,
        base_url: str | None,
        headers: Mapping[str, str] | None,
        retry: RetryPolicy | None,
        max_retries: int | None,
        registry: Registry | None,
        clock: Callable[[], float],
        options: Mapping[str, Any],
        limits: ClientLimits | None = None,
        credential: Credential | None = None,
        credentials: CredentialSource | None = None,
        store: StateStore | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._registry = registry or default_registry()
        self._closed = False
        spec = self._registry.spec(provider)
        if headers:
            check_header_values(headers, where="headers=")
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
        if metrics is None:  # one model for the calls and the attempts of the keys
            given = getattr(credentials, "metrics_model", None)
            metrics = given if isinstance(given, Metrics) else Metrics()
        self._credentials = resolve_credentials(
            spec, resolved, api_key=api_key, credential=credential, credentials=credentials,
            store=store, clock=clock, registry=self._registry, metrics=metrics)
        single = getattr(self._credentials, "credential", None)
        self._last_credential_id: str | None = (
            single.id if isinstance(single, Credential) else None)
        self._engine = Engine(
            registry=self._registry,
            provider=resolved,
            credential=single if isinstance(single, Credential) else None,
            retry=policy,
            tracker=RateLimitTracker(store),
            limits=limits,
            clock=clock,
            store=store,
            metrics=metrics,
        )
        # a stream cut or closed after reporting usage still spent those tokens on its key
        self._engine.telemetry.partial_tokens = self._credentials.add_tokens
        self._clock = clock

    @classmethod
    def from_config(cls: type[_ClientT], name: str, *,
                    config: str | os.PathLike[str] | Any = None, **overrides: Any) -> _ClientT:
        """A client for the provider entry ``[providers.NAME]`` of a config file: ``config``
        is a path, a loaded `aipk.config.Config`, or None to find the file
        (``AIPK_CONFIG``, ``./aipk.toml``, the user config directory). Keyword arguments
        override the file (see ``docs/configuration.md``)."""
        from .config import resolve

        loaded = resolve(config, overrides.get("registry"))
        provider, kwargs = loaded.client_kwargs(name, overrides)
        return loaded.finish_client(cls(provider, **kwargs), name)

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

    @property
    def credentials(self) -> CredentialSource:
        """Where each attempt's credential comes from: a [`KeyPool`][aipk.credentials.KeyPool],
        an [`OAuthManager`][aipk.credentials.OAuthManager] or one fixed credential; ask it for
        ``health_all()``, ``export_json()``, ``export_prometheus()`` (pools and managers)."""
        return self._credentials

    def rate_limits(self, model: str, credential_id: str | None = None) -> (
            RateLimitState | None):
        """The latest rate-limit state the provider reported for ``model`` with the credential
        ``credential_id`` (default: the one that signed the request whose response head this
        client received last, an error's as well as an answer's); None before any."""
        cid = credential_id or self._last_credential_id
        if cid is None:
            return None
        return self._engine.tracker.get((self._engine.provider.name, cid, model))

    @property
    def limits(self) -> ClientLimits:
        """The client-side limits in force (plugin defaults unless you set your own)."""
        return self._engine.limiter.limits

    def set_limits(self, limits: ClientLimits) -> None:
        """Change the client-side limits at run time, e.g. after moving to a higher tier."""
        self._engine.limiter.update(limits)

    def metrics(self) -> MetricsSnapshot:
        """What this client's calls recorded (as the caller saw them): requests, successes,
        failures by error class, retries, failovers, tokens, cost, latency and time to first
        token with p50/p95/p99, by provider, model and credential id. ``.to_dict()`` and
        ``.to_json()`` give a stable JSON form; see docs/observability.md."""
        return self._engine.telemetry.metrics.snapshot()

    @property
    def metrics_model(self) -> Metrics:
        """The `Metrics` this client records into (pass one as
        ``metrics=`` to share it between clients; exporters read it)."""
        return self._engine.telemetry.metrics

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
        if fields.get("model") is None:
            default = self._engine.provider.spec.default_model
            if default is None:
                raise ConfigurationError("model= is required, e.g. model='gpt-4o-mini'")
            fields["model"] = default
        if "messages" not in fields:
            fields["messages"] = ()  # ChatRequest's own error: it needs at least one message
        try:
            return chat_request(fields)  # `ChatRequest(**fields)`, built cheaper
        except TypeError:
            unknown = sorted(fields.keys() - _REQUEST_FIELDS)
            if not unknown:
                raise
            raise unknown_field_error(unknown[0]) from None

    def _count_request(self, model: str | None, messages: Any, tools: Any) -> ChatRequest:
        return self._request(None, {"model": model, "messages": messages, "tools": tools})

    def _estimate(self, request: ChatRequest) -> TokenCount:
        return TokenCount(input_tokens=estimate_tokens(request), estimated=True,
                          provider=self._engine.provider.name, model=request.model)

    def _checked(self, request: ChatRequest, check_context: bool | None) -> ChatRequest:
        if check_context or (check_context is None and self.check_context):
            self._engine.check_context(request)
        return request

    def _call_options(self, headers: Mapping[str, str] | None, timeout: Timeout | float | None,
                      extra_body: Mapping[str, Any] | None) -> Mapping[str, Any]:
        """One call's ``headers``/``timeout``/``extra_body`` as keywords for
        `Engine.prepare()` (empty, and free, for calls that pass none)."""
        if not (headers or extra_body or timeout is not None):
            return NO_OPTIONS
        return {"headers": headers, "timeout": self._call_timeout(timeout),
                "extra_body": extra_body}

    def _models_request(self, timeout: Timeout | float | None) -> HttpRequest | None:
        """The unsigned model-listing request (None without a listing endpoint), with
        ``timeout`` instead of the client's when given."""
        built = self._engine.prepare_models()
        if built is None or timeout is None:
            return built
        return attrs.evolve(built, timeout=self._call_timeout(timeout))

    def _call_timeout(self, timeout: Timeout | float | None) -> Timeout | None:
        """One call's ``timeout=``: a Timeout as is; seconds bound the connect (at most the
        client's) and each read."""
        if timeout is None or isinstance(timeout, Timeout):
            return timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidRequestError(
                f"timeout={timeout!r} must be a positive number of seconds or aipk.Timeout(...)",
                provider=self._engine.provider.name, field="timeout")
        seconds = float(timeout)
        return attrs.evolve(self.timeout, connect=min(seconds, self.timeout.connect),
                            read=seconds)

    def _transport_error(self, failure: TransportFailure, total: float | None = None) -> (
            NetworkError | RequestTimeout | ResponseError):
        """The error for ``failure``; ``total``: the call's ``Timeout.total``, which a deadline
        failure's message names."""
        name = self._engine.provider.name
        base_url = redact_url(self._engine.provider.base_url)
        redact_error(failure)  # also the HTTP library's error it was raised from
        if failure.undecodable:
            return ResponseError(
                redact(f"the response body from {base_url} does not match its "
                       f"Content-Encoding header ({failure}): the provider, or a proxy between "
                       f"it and you, compressed it differently than it says or corrupted it; "
                       f"trying again will not help: check the proxy (or base_url), or ask "
                       f"for an uncompressed answer with headers={{'Accept-Encoding': "
                       f"'identity'}}"),
                provider=name, retryable=False)
        if failure.deadline:
            where = ("before any response" if failure.before_first_byte
                     else "while reading the response")
            return self._total_timeout_error(f"{where}: {failure}", total,
                                             before_first_byte=failure.before_first_byte)
        cls = RequestTimeout if failure.timeout else NetworkError
        where = "before any response" if failure.before_first_byte else "while reading the response"
        return cls(
            redact(f"{failure} {where} from {base_url}; "
                   f"check the network and base_url, or raise timeout="),
            provider=name, retryable=failure.before_first_byte,
            before_first_byte=failure.before_first_byte,
        )

    def _total_timeout_error(self, what: str, total: float | None = None, *,
                             before_first_byte: bool = True) -> RequestTimeout:
        """The RequestTimeout for a call whose ``Timeout(total=...)`` passed (``what``: where
        it was)."""
        setting = "aipk.Timeout(total=...)" if total is None else f"aipk.Timeout(total={total:g})"
        return RequestTimeout(
            redact(f"no answer from {redact_url(self._engine.provider.base_url)} within the "
                   f"call's total timeout, {setting} (it ran out {what}); raise total in "
                   f"timeout=, or leave it unset to bound only each wait (connect, read)"),
            provider=self._engine.provider.name, retryable=True,
            before_first_byte=before_first_byte)


_REQUEST_FIELDS = frozenset(a.name for a in attrs.fields(ChatRequest))


def unknown_field_error(name: str) -> InvalidRequestError:
    """InvalidRequestError for a keyword that is not a ChatRequest field, with the closest."""
    if name == "output_retries":
        return InvalidRequestError(
            "output_retries= is an option of chat(), not of stream() or a ChatRequest: a "
            "stream's text is handed out as it arrives and cannot be asked for again; use "
            "chat(..., output_retries=N), or catch StructuredOutputError from "
            "stream.response and ask again", field=name)
    import difflib

    close = difflib.get_close_matches(name, sorted(_REQUEST_FIELDS), n=1)
    hint = (f"did you mean {close[0]!r}?" if close
            else f"the fields are {', '.join(sorted(_REQUEST_FIELDS))}")
    return InvalidRequestError(
        f"{name!r} is not a chat request field; {hint} (provider-specific fields go in "
        f"extra={{...}})", field=name)


