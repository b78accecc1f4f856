"""Provider logins: the `LoginFlow` a plugin returns from ``aipk_login_flow``, and
[`login()`][aipk.credentials._login.login], which runs it and returns the new credential.

Three kinds of flow:

* ``"authorization_code"``: PKCE (S256) and ``state``, with a loopback callback server
  ([`OAuthClient.authorization_request()`][aipk.credentials.OAuthClient.authorization_request] /
  [`OAuthClient.complete()`][aipk.credentials.OAuthClient.complete]);
* ``"device_code"``: RFC 8628, optionally with a PKCE challenge (``pkce=True``, Qwen);
* ``"key_exchange"``: OpenRouter's PKCE flow whose result is a permanent API key: the browser
  goes to ``authorize_url?callback_url=…&code_challenge=…&code_challenge_method=S256``, the
  callback brings ``code``, and ``POST token_url`` with JSON ``{code, code_verifier,
  code_challenge_method}`` answers ``{"key": …}``. There is no ``state`` in this protocol; the
  verifier binds the code to this login. The result is an
  [`OAuthCredential`][aipk.credentials._login.OAuthCredential] whose ``access_token`` is the key,
  with no refresh token, no expiry and ``extra={"grant": "key_exchange"}``;
  [`api_key_credential()`][aipk.credentials._login.api_key_credential] turns it into an ``api_key``
  [`Credential`][aipk.Credential] for a [`KeyPool`][aipk.credentials.KeyPool].

A ``base_url`` on this machine (the testkit emulator) moves every endpoint onto the local
authorization server at ``<origin>/oauth``
([`LoginFlow.rebased()`][aipk.credentials.LoginFlow.rebased]), so logins can be tested offline.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from aipk._providers import Credential, Provider, Secret, is_loopback_url
from aipk.errors import AuthErrorCode, ConfigurationError

from ._errors import CredentialError, scrub
from ._flows import OAuthClient, _show_device, _webbrowser_open
from ._loginflow import LoginFlow, LoginKind
from ._loopback import LoopbackServer
from ._oauthrecords import PKCE, DeviceAuthorization
from ._oauthtoken import OAuthCredential

if TYPE_CHECKING:
    from aipk.registry import Registry

__all__ = [
    "KEY_EXCHANGE",
    "LoginFlow",
    "LoginKind",
    "api_key_credential",
    "default_token_file",
    "key_exchange_result",
    "login",
    "login_flow",
    "oauth_root_for",
]

#: ``extra["grant"]`` of a credential obtained by a key exchange.
KEY_EXCHANGE = "key_exchange"


def oauth_root_for(base_url: str | None) -> str | None:
    """The local authorization server for ``base_url``: ``<origin>/oauth`` when it points at
    this machine (the emulator's mount), else None (the provider's own endpoints are used)."""
    if not base_url or not is_loopback_url(base_url):
        return None
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}/oauth"


def default_token_file(provider: str) -> Path:
    """Where ``aipk login PROVIDER`` saves tokens: ``$AIPK_TOKEN_DIR/<provider>.json``, else
    ``$XDG_CONFIG_HOME/aipk/tokens/<provider>.json`` (``~/.config`` by default). One file per
    provider, because [`OAuthManager.from_store()`][aipk.credentials.OAuthManager.from_store] loads
    every credential in a store."""
    directory = os.environ.get("AIPK_TOKEN_DIR", "").strip()
    if directory:
        return Path(directory).expanduser() / f"{provider}.json"
    config = os.environ.get("XDG_CONFIG_HOME", "").strip() or "~/.config"
    return Path(config).expanduser() / "aipk" / "tokens" / f"{provider}.json"


def api_key_credential(credential: OAuthCredential) -> Credential:
    """The key a ``key_exchange`` login returned, as an ``api_key`` [`Credential`][aipk.Credential]
    (same id) for a [`KeyPool`][aipk.credentials.KeyPool]."""
    if credential.extra.get("grant") != KEY_EXCHANGE:
        raise ConfigurationError(
            f"credential {credential.id!r} holds OAuth tokens, not an API key from a key "
            f"exchange; use it through OAuthManager instead")
    return Credential(kind="api_key", secret=credential.access_token, id=credential.id)


def login_flow(provider: str, *, registry: Registry | None = None,
               base_url: str | None = None) -> LoginFlow:
    """Ask the installed plugins (hook ``aipk_login_flow``) how to log in to ``provider``.

    Raises UnknownProviderError when no plugin serves it, and ConfigurationError naming the
    API key variable when it has no login flow.
    """
    from aipk.registry import default_registry

    registry = registry or default_registry()
    spec = registry.spec(provider)
    if base_url is None and spec.base_url_env:
        base_url = os.environ.get(spec.base_url_env, "").strip() or None
    resolved = Provider(spec=spec, base_url=base_url or spec.default_base_url,
                        options=dict(spec.options))
    flow = registry.hook.aipk_login_flow(provider=resolved)
    if flow is None:
        if spec.env_vars:
            fix = f"set {' or '.join(spec.env_vars)} instead"
        else:
            fix = "it needs no key" if spec.key_optional else "pass api_key= to the client"
        raise ConfigurationError(f"provider {provider!r} has no login flow; {fix}")
    if not isinstance(flow, LoginFlow):
        raise ConfigurationError(
            f"the aipk_login_flow hook for {provider!r} returned {type(flow).__name__}, not an "
            f"aipk.credentials.LoginFlow; fix the plugin")
    return flow


def _print_url(url: str) -> bool:
    print(f"Open this address to sign in: {url}", file=sys.stderr)
    return True


def login(
    flow: LoginFlow,
    *,
    base_url: str | None = None,
    oauth_url: str | None = None,
    credential_id: str = "default",
    open_browser: Callable[[str], object] | None = _webbrowser_open,
    show: Callable[[DeviceAuthorization], object] = _show_device,
    timeout: float = 300.0,
    http_timeout: float = 30.0,
) -> OAuthCredential:
    """Run ``flow`` and return the new credential (save it with a token store).

    ``open_browser(url)`` opens the sign-in page (``None``, or a callable returning ``False``:
    the address is printed instead); ``show(device)`` tells the user the device code.
    ``timeout`` bounds the wait for the browser's callback; a device flow ends when its code
    expires. ``oauth_url`` points every endpoint at that local authorization server
    ([`LoginFlow.rebased()`][aipk.credentials.LoginFlow.rebased]); a loopback ``base_url`` implies
    ``<origin>/oauth``. Any other ``base_url`` changes nothing: logins go to the provider's own
    endpoints.
    """
    root = oauth_url or oauth_root_for(base_url)
    if root is not None:
        flow = flow.rebased(root)
    opener = open_browser or _print_url
    client = OAuthClient(flow.endpoints, timeout=http_timeout,
                         login_hint=f"run: aipk login {flow.provider}")
    if flow.kind == "device_code":
        return client.device_login(show=show, pkce=flow.pkce, credential_id=credential_id)
    if flow.kind == "key_exchange":
        return _key_exchange(flow, opener, timeout, http_timeout, credential_id)
    with _loopback(flow) as server:
        redirect_uri = f"http://{flow.redirect_host}:{server.port}{server.path}"
        request = client.authorization_request(redirect_uri)
        if opener(request.url) is False:
            _print_url(request.url)
        params = server.wait(timeout, provider=flow.provider)
    return client.complete(request, params, credential_id=credential_id)


def _loopback(flow: LoginFlow) -> LoopbackServer:
    try:
        return LoopbackServer(flow.endpoints.redirect_path, port=flow.port)
    except OSError as exc:
        raise CredentialError(
            f"cannot listen for the sign-in callback on 127.0.0.1:{flow.port} "
            f"({exc.strerror or type(exc).__name__}); finish or stop the other login using "
            f"that port, then retry", provider=flow.provider,
            auth_code=AuthErrorCode.OAUTH_FLOW_FAILED) from None


def _key_exchange(flow: LoginFlow, opener: Callable[[str], object], timeout: float,
                  http_timeout: float, credential_id: str) -> OAuthCredential:
    ep = flow.endpoints
    assert ep.authorize_url is not None  # checked by LoginFlow
    pkce = PKCE.generate()
    with _loopback(flow) as server:
        callback = f"http://{flow.redirect_host}:{server.port}{server.path}"
        query = urlencode({"callback_url": callback, "code_challenge": pkce.challenge,
                           "code_challenge_method": pkce.method})
        url = ep.authorize_url + ("&" if "?" in ep.authorize_url else "?") + query
        if opener(url) is False:
            _print_url(url)
        params = server.wait(timeout, provider=flow.provider)
    code = params.get("code")
    if "error" in params or not code:
        reason = scrub(str(params.get("error") or "no code in the callback"), [])
        raise _flow_error(flow, f"the sign-in was not completed ({reason}); start the login "
                                f"again")
    data, status = _post_json(flow, ep.token_url, {
        "code": code, "code_verifier": pkce.verifier.reveal(),
        "code_challenge_method": pkce.method}, http_timeout)
    key = key_exchange_result(flow.provider, status, data, hide=[code, pkce.verifier])
    return OAuthCredential(id=credential_id, access_token=key, extra={"grant": KEY_EXCHANGE})


def key_exchange_result(provider: str, status: int, data: Any, *,
                        hide: Sequence[str | Secret] = ()) -> Secret:
    """The key from a key endpoint's answer (``{"key": …}`` with HTTP 200), or the
    CredentialError saying what to do (nothing in ``hide`` appears in its message)."""
    key = data.get("key") if isinstance(data, dict) else None
    if status == 200 and isinstance(key, str) and key:
        return Secret(key)
    hidden = [*hide, key] if isinstance(key, str) else list(hide)
    detail = _detail(data, status, hidden)
    if status == 200:
        raise CredentialError(f"the key endpoint answered without a key ({detail}); check "
                              f"the LoginFlow's token_url, then start the login again",
                              provider=provider, auth_code=AuthErrorCode.OAUTH_FLOW_FAILED)
    if status == 429 or status >= 500:
        raise CredentialError(f"the key endpoint is unavailable ({detail}); retry later",
                              provider=provider, status=status,
                              auth_code=AuthErrorCode.PROVIDER_UNAVAILABLE)
    raise CredentialError(f"the key exchange was refused ({detail}); start the login again",
                          provider=provider, status=status,
                          auth_code=AuthErrorCode.OAUTH_FLOW_FAILED)


def _post_json(flow: LoginFlow, url: str, body: dict[str, str],
               timeout: float) -> tuple[Any, int]:
    import httpx

    headers = {"accept": "application/json", **flow.endpoints.extra_headers}
    try:
        response = httpx.post(url, json=body, timeout=timeout, headers=headers)
    except httpx.TransportError as exc:
        raise CredentialError(
            f"could not reach the key endpoint ({type(exc).__name__}); check the network, then "
            f"retry", provider=flow.provider, auth_code=AuthErrorCode.NETWORK_ERROR) from None
    try:
        return response.json(), response.status_code
    except ValueError:
        return None, response.status_code


def _detail(data: Any, status: int, hide: Sequence[str | Secret]) -> str:
    if isinstance(data, dict):
        error = data.get("error")
        text = error.get("message") if isinstance(error, dict) else error
        text = data.get("error_description") or text
        if text:
            return scrub(f"HTTP {status}: {text}", hide)
    return f"HTTP {status}"


def _flow_error(flow: LoginFlow, message: str, status: int = 0) -> CredentialError:
    return CredentialError(message, provider=flow.provider, status=status,
                           auth_code=AuthErrorCode.OAUTH_FLOW_FAILED)
