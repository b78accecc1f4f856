"""The `LoginFlow` record a plugin returns from ``aipk_login_flow``: how to log in to
one provider. Running a flow is [`aipk.credentials.login()`][aipk.credentials.login]'s work
(``_login``)."""

from __future__ import annotations

from typing import Literal

import attrs

from aipk.errors import ConfigurationError

from ._oauthrecords import OAuthEndpoints

__all__ = ["LOCAL_PATHS", "LoginFlow", "LoginKind"]

LoginKind = Literal["authorization_code", "device_code", "key_exchange"]
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
#: Where a local authorization server (the testkit emulator) serves each endpoint.
LOCAL_PATHS = {"authorize": "/authorize", "token": "/token", "device": "/device/code",
               "key_authorize": "/auth", "keys": "/auth/keys"}


def _redirect_host(instance: LoginFlow, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in _LOOPBACK_HOSTS:
        raise ConfigurationError(
            f"redirect_host {value!r} is not a loopback host; use one of "
            f"{sorted(_LOOPBACK_HOSTS)}")


@attrs.frozen(kw_only=True)
class LoginFlow:
    """How to log in to one provider; a plugin returns it from ``aipk_login_flow``.

    ``endpoints`` are the provider's [`OAuthEndpoints`][aipk.credentials._loginflow.OAuthEndpoints]
    (for ``key_exchange``: ``authorize_url`` is the ``/auth`` page and ``token_url`` the key
    endpoint; ``client_id`` is unused). ``pkce`` adds a PKCE challenge to a device flow (the other
    kinds always use PKCE). ``port`` is the fixed callback port a provider registered (0: any free
    port) and ``redirect_host`` the loopback host written into the redirect URI (``"localhost"``
    where the provider registered it so; the server always listens on 127.0.0.1).

    Attributes:
        kind: ``authorization_code``, ``device_code`` or ``key_exchange``.
        endpoints: The provider's OAuth endpoints and client.
        pkce: Add a PKCE challenge to a device flow.
        port: The fixed callback port the provider registered (0: any free port).
        redirect_host: The loopback host written into the redirect URI.
    """

    kind: LoginKind
    endpoints: OAuthEndpoints
    pkce: bool = False
    port: int = 0
    redirect_host: str = attrs.field(default="127.0.0.1", validator=_redirect_host)

    def __attrs_post_init__(self) -> None:
        ep = self.endpoints
        needed = "device_authorization_url" if self.kind == "device_code" else "authorize_url"
        if not getattr(ep, needed):
            raise ConfigurationError(
                f"a {self.kind} login flow needs OAuthEndpoints.{needed} "
                f"(provider {ep.provider!r})")

    @property
    def provider(self) -> str:
        return self.endpoints.provider

    def rebased(self, root: str) -> LoginFlow:
        """This flow against a local authorization server at ``root`` that serves the
        conventional paths (``/authorize``, ``/token``, ``/device/code``; ``/auth`` and
        ``/auth/keys`` for a key exchange), as the testkit emulator does under ``/oauth``.
        Client id, scopes and options stay; the callback uses any free port on 127.0.0.1."""
        root = root.rstrip("/")
        ep = self.endpoints
        if self.kind == "key_exchange":
            authorize, token = LOCAL_PATHS["key_authorize"], LOCAL_PATHS["keys"]
        else:
            authorize, token = LOCAL_PATHS["authorize"], LOCAL_PATHS["token"]
        endpoints = attrs.evolve(
            ep, token_url=root + token,
            authorize_url=root + authorize if ep.authorize_url else None,
            device_authorization_url=(root + LOCAL_PATHS["device"]
                                      if ep.device_authorization_url else None))
        return attrs.evolve(self, endpoints=endpoints, port=0, redirect_host="127.0.0.1")
