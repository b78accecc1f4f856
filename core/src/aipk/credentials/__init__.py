"""Credential management: API key pools, OAuth accounts, token storage and login flows.

    from aipk.credentials import KeyPool, call_with_failover

    pool = KeyPool.from_env("openai", "OPENAI_API_KEY")       # OPENAI_API_KEY=sk-1,sk-2,sk-3
    credential = pool.acquire()                               # round-robin, skips keys in backoff
    ...
    pool.report_success(credential, latency=0.42, tokens=812)  # or report_failure(credential, err)

OAuth:

    from aipk.credentials import FileTokenStore, OAuthClient, OAuthEndpoints, OAuthManager

    oauth = OAuthClient(OAuthEndpoints(provider="example", client_id="...",
                                       token_url="https://…/oauth/token",
                                       authorize_url="https://…/oauth/authorize"))
    store = FileTokenStore("~/.config/aipk/tokens.json")
    store.save(oauth.login())                                 # browser + loopback callback
    manager = OAuthManager.from_store("example", store, refresh=oauth.refresh,
                                      arefresh=oauth.arefresh)

Logins (what ``aipk login PROVIDER`` runs):

    from aipk.credentials import FileTokenStore, default_token_file, login, login_flow

    flow = login_flow("qwen")                # the plugin's LoginFlow (hook aipk_login_flow)
    FileTokenStore(default_token_file("qwen")).save(login(flow))

See ``docs/credentials.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # loaded on first use: a client with an API key needs none of the OAuth parts
    from ._errors import CredentialError, KeysExhaustedError
    from ._failover import acall_with_failover, call_with_failover
    from ._flows import OAuthClient
    from ._health import (
        BackoffPolicy,
        Failure,
        HealthInfo,
        HealthState,
        HealthSummary,
        classify_failure,
    )
    from ._login import (
        KEY_EXCHANGE,
        LoginFlow,
        LoginKind,
        api_key_credential,
        default_token_file,
        key_exchange_result,
        login,
        login_flow,
        oauth_root_for,
    )
    from ._loopback import LoopbackServer
    from ._metrics import CredentialMetrics, MetricsRegistry, MetricsSnapshot
    from ._oauth import OAuthManager
    from ._oauthrecords import (
        PKCE,
        AuthorizationRequest,
        DeviceAuthorization,
        OAuthEndpoints,
        check_state,
        new_state,
        pkce_challenge,
    )
    from ._oauthtoken import AsyncRefreshFn, OAuthCredential, OnTokenRefresh, RefreshFn
    from ._pool import CredentialPool, CredentialSource, KeyPool
    from ._single import SingleCredential
    from ._store import FileTokenStore, MemoryTokenStore, TokenStore

__all__ = [
    "KEY_EXCHANGE",
    "PKCE",
    "AsyncRefreshFn",
    "AuthorizationRequest",
    "BackoffPolicy",
    "CredentialError",
    "CredentialMetrics",
    "CredentialPool",
    "CredentialSource",
    "DeviceAuthorization",
    "Failure",
    "FileTokenStore",
    "HealthInfo",
    "HealthState",
    "HealthSummary",
    "KeyPool",
    "KeysExhaustedError",
    "LoginFlow",
    "LoginKind",
    "LoopbackServer",
    "MemoryTokenStore",
    "MetricsRegistry",
    "MetricsSnapshot",
    "OAuthClient",
    "OAuthCredential",
    "OAuthEndpoints",
    "OAuthManager",
    "OnTokenRefresh",
    "RefreshFn",
    "SingleCredential",
    "TokenStore",
    "acall_with_failover",
    "api_key_credential",
    "call_with_failover",
    "check_state",
    "classify_failure",
    "default_token_file",
    "key_exchange_result",
    "login",
    "login_flow",
    "new_state",
    "oauth_root_for",
    "pkce_challenge",
]

#: Each public name and the submodule defining it, imported on first use.
_LAZY = {
    **dict.fromkeys(("CredentialError", "KeysExhaustedError"), "._errors"),
    **dict.fromkeys(("acall_with_failover", "call_with_failover"), "._failover"),
    **dict.fromkeys(("OAuthClient",), "._flows"),
    **dict.fromkeys((
        "BackoffPolicy", "Failure", "HealthInfo", "HealthState", "HealthSummary",
        "classify_failure"), "._health"),
    **dict.fromkeys((
        "KEY_EXCHANGE", "LoginFlow", "LoginKind", "api_key_credential", "default_token_file",
        "key_exchange_result", "login", "login_flow", "oauth_root_for"), "._login"),
    **dict.fromkeys(("LoopbackServer",), "._loopback"),
    **dict.fromkeys(("CredentialMetrics", "MetricsRegistry", "MetricsSnapshot"), "._metrics"),
    **dict.fromkeys(("OAuthManager",), "._oauth"),
    **dict.fromkeys((
        "PKCE", "AuthorizationRequest", "DeviceAuthorization", "OAuthEndpoints", "check_state",
        "new_state", "pkce_challenge"), "._oauthrecords"),
    **dict.fromkeys((
        "AsyncRefreshFn", "OAuthCredential", "OnTokenRefresh", "RefreshFn"), "._oauthtoken"),
    **dict.fromkeys((
        "CredentialPool", "CredentialSource", "KeyPool"), "._pool"),
    **dict.fromkeys(("SingleCredential",), "._single"),
    **dict.fromkeys(("FileTokenStore", "MemoryTokenStore", "TokenStore"), "._store"),
}


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aipk.credentials' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
