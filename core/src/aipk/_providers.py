"""Provider descriptions and credentials.

* [`ProviderSpec`][aipk._providers.ProviderSpec] is what a plugin declares: name, wire protocol,
  default base URL, how it authenticates, which environment variables hold its key, what it can do,
  its static models.
* [`Provider`][aipk._providers.Provider] is a spec resolved against the user's settings; every hook
  receives one.
* [`Secret`][aipk._providers.Secret] wraps a credential so it never shows up in a repr, a message or
  a log line.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs

from ._records import record
from ._secrets import check_credential, remember
from .errors import ConfigurationError

__all__ = [
    "AuthKind",
    "Capabilities",
    "Credential",
    "ModelInfo",
    "Provider",
    "ProviderSpec",
    "Secret",
    "check_api_key",
]

AuthKind = Literal["api_key", "oauth", "none"]


class Secret:
    """A credential value. ``repr``/``str`` show only ``'****'``; `reveal()` gives the value.

    While a Secret is alive, aipk masks its value in every error message, error body and
    request repr it produces (see `aipk._secrets`)."""

    __slots__ = ("__weakref__", "_bearer", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        #: the built-in fallback's ``authorization`` header for this value, made on first use
        #: and kept here, so that it lives exactly as long as the secret (see `aipk._builtin`)
        self._bearer: dict[str, str] | None = None
        remember(self)

    def reveal(self) -> str:
        """The secret itself; pass it only to the place that needs it (a header)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("Secret values cannot be pickled; store them through a token store")


_API_KEY_FIX = ("pass the key alone, one line of printable ASCII characters, e.g. "
                "api_key=open(path).read() (surrounding whitespace is stripped)")


def check_api_key(key: str | Secret, where: str = "the api_key= argument", *,
                  strip: bool = True, fix: str = _API_KEY_FIX) -> Secret:
    """``key`` as a checked [`Secret`][aipk._providers.Secret] (surrounding whitespace stripped), or
    ConfigurationError naming ``where`` it came from; what a config file calls too. With
    ``strip=False`` (a credential already built, which cannot be changed) surrounding
    whitespace is an error too."""
    value = key.reveal() if isinstance(key, Secret) else key
    checked = check_credential(value, where=where, fix=fix)
    if checked != value and not strip:
        raise ConfigurationError(
            f"the credential from {where} has whitespace around it; build it from the "
            f"stripped key, e.g. Secret(key.strip())")
    return key if isinstance(key, Secret) and checked == value else Secret(checked)


@record(kw_only=True)
class Credential:
    """A credential for a request; ``id`` is a stable, non-secret label for logs and metrics.

    Attributes:
        kind: What the secret is: "api_key", "oauth" (an access token) or "none".
        secret: The key or token, a Secret that never prints; None for providers that need no key.
        id: A stable, non-secret label keying per-credential state, logs and metrics.
    """

    kind: AuthKind
    secret: Secret | None = None
    id: str = "default"


@record(kw_only=True)
class Capabilities:
    """What a provider, or one of its models, supports. ``None`` means unknown.

    Attributes:
        streaming: Answers can be streamed.
        tools: Function (tool) calling is supported.
        vision: Images are accepted in user messages.
        json_mode: A JSON-only output mode is available.
        reasoning: The model reasons before answering (and may stream its reasoning).
        context_window: Maximum input plus output tokens, or None when unknown.
        max_output_tokens: Maximum tokens in one answer, or None when unknown.
    """

    streaming: bool = True
    tools: bool = True
    vision: bool = False
    json_mode: bool = False
    reasoning: bool = False
    context_window: int | None = None
    max_output_tokens: int | None = None

    def merge(self, override: Capabilities | None) -> Capabilities:
        """These capabilities with a model's own values taking precedence where it sets them."""
        if override is None:
            return self
        return attrs.evolve(
            override,
            context_window=override.context_window or self.context_window,
            max_output_tokens=override.max_output_tokens or self.max_output_tokens,
        )


@record(kw_only=True)
class ModelInfo:
    """A model a provider serves. Prices are in US dollars per million tokens.

    Attributes:
        id: The model id to pass as ``model=``.
        provider: The provider id serving it.
        display_name: A human-readable name.
        capabilities: What the model supports, when known.
        input_price: US dollars per million input tokens.
        output_price: US dollars per million output tokens.
        created: When the provider published it (epoch seconds).
        extra: Provider-specific model fields.
    """

    id: str
    provider: str
    display_name: str | None = None
    capabilities: Capabilities | None = None
    input_price: float | None = None
    output_price: float | None = None
    created: int | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def context_window(self) -> int | None:
        """``capabilities.context_window``, or ``None`` when unknown."""
        return self.capabilities.context_window if self.capabilities else None


@record(kw_only=True)
class ProviderSpec:
    """What a plugin declares about one provider it serves.

    ``protocol`` names the wire format family; hook implementations route on it (or on
    ``name``), so several providers can share one implementation (OpenAI-compatible services).
    ``base_url_env`` names an environment variable that overrides ``default_base_url``;
    ``option_env`` maps option names to environment variables read when a client is created
    (an explicit keyword argument wins). ``secret_headers`` names the headers the plugin puts
    a credential in beyond the common ones (``Authorization``, ``x-api-key`` …), e.g.
    ``("X-Acme-Token",)``: they are hidden in request reprs and logs.

    Attributes:
        name: The provider id (``aipk.Client(name)``).
        protocol: The wire-format family the hooks route on (``openai`` for OpenAI-compatible
            services).
        default_base_url: The URL used when neither ``base_url=`` nor ``base_url_env`` is set.
        display_name: A human-readable name.
        auth_kinds: The credential kinds the provider accepts.
        env_vars: Environment variables holding the key, tried in order (a comma list makes a key
            pool).
        capabilities: What the provider supports in general.
        models: A static list of the provider's models (``aipk models PROVIDER --static``).
        default_model: The model used when a request names none.
        key_optional: True when the provider works without a key (local servers).
        connect_timeout: Default connect timeout in seconds, or None for aipk's.
        read_timeout: Default per-chunk read timeout in seconds, or None for aipk's.
        base_url_env: An environment variable that overrides ``default_base_url``.
        option_env: Option name -> environment variable read when a client is created (an explicit
            keyword argument wins).
        options: Provider-specific settings, e.g. client-side limits.
        secret_headers: Headers beyond the common ones that carry a credential; hidden in
            request reprs and logs.
    """

    name: str
    protocol: str
    default_base_url: str
    display_name: str | None = None
    auth_kinds: tuple[AuthKind, ...] = ("api_key",)
    env_vars: tuple[str, ...] = ()
    capabilities: Capabilities = attrs.field(factory=Capabilities)
    models: tuple[ModelInfo, ...] = ()
    default_model: str | None = None
    key_optional: bool = False
    connect_timeout: float | None = None
    read_timeout: float | None = None
    base_url_env: str | None = None
    option_env: Mapping[str, str] = attrs.field(factory=dict)
    options: Mapping[str, Any] = attrs.field(factory=dict)
    secret_headers: tuple[str, ...] = ()


@record(kw_only=True)
class Provider:
    """A provider spec resolved against the user's settings; what every hook receives.

    Attributes:
        spec: The plugin's declaration of the provider.
        base_url: The base URL in use (argument, environment variable or the spec's default).
        options: Provider options from client keyword arguments and ``option_env`` variables.
        headers: Extra headers the user asked for on every request.
    """

    spec: ProviderSpec
    base_url: str
    options: Mapping[str, Any] = attrs.field(factory=dict)
    headers: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def name(self) -> str:
        """The provider id (``spec.name``): what hooks serving one provider route on."""
        return self.spec.name

    @property
    def protocol(self) -> str:
        """The wire-format family (``spec.protocol``): what protocol hooks route on."""
        return self.spec.protocol

    def url(self, path: str) -> str:
        """``base_url`` joined with ``path`` (exactly one slash between them)."""
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    @property
    def is_loopback(self) -> bool:
        """True when the base URL points at this machine (a local server needs no key)."""
        return is_loopback_url(self.base_url)


def is_loopback_url(url: str) -> bool:
    """True for http(s) URLs whose host is localhost or a loopback address."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
