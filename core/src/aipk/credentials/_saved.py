"""The credentials ``aipk login`` saved, as a client's credential source.

A client with no key given and none in the environment looks for the provider's token file
([`default_token_file()`][aipk.credentials.default_token_file]). Keys from a key exchange
(OpenRouter) become a [`KeyPool`][aipk.credentials._saved.KeyPool]; OAuth tokens an
[`OAuthManager`][aipk.credentials._saved.OAuthManager] that refreshes them through the provider's
login flow and writes the refreshed tokens back to the file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aipk._providers import Provider
from aipk.errors import ConfigurationError
from aipk.observability._model import Metrics
from aipk.state import StateStore

from ._flows import OAuthClient
from ._login import KEY_EXCHANGE, LoginFlow, api_key_credential, default_token_file, oauth_root_for
from ._oauth import OAuthManager
from ._pool import CredentialSource, KeyPool
from ._store import FileTokenStore

if TYPE_CHECKING:
    from aipk.registry import Registry

__all__ = ["saved_credentials"]


def saved_credentials(provider: Provider, registry: Registry, *, path: Path | None = None,
                      state: StateStore | None = None,
                      clock: Callable[[], float] = time.time,
                      metrics: Metrics | None = None) -> CredentialSource | None:
    """What ``aipk login`` saved for ``provider``, or None when it saved nothing (its
    attempts counted in ``metrics``)."""
    name = provider.name
    path = path or default_token_file(name)
    if not path.is_file():
        return None
    hint = f"run: aipk login {name}"
    store = FileTokenStore(path, login_hint=hint)
    loaded = [c for c in (store.load(cid) for cid in store.list_ids()) if c is not None]
    if not loaded:
        return None
    keys = [c for c in loaded if c.extra.get("grant") == KEY_EXCHANGE]
    if len(keys) == len(loaded):
        return KeyPool(name, [api_key_credential(c) for c in keys], state=state, clock=clock,
                       metrics=metrics)
    flow = registry.hook.aipk_login_flow(provider=provider)
    if not isinstance(flow, LoginFlow):
        raise ConfigurationError(
            f"{path} holds OAuth tokens for {name!r}, but no installed plugin can refresh them "
            f"(no aipk_login_flow); install or upgrade the {name} plugin, or delete the file")
    root = oauth_root_for(provider.base_url)
    if root is not None:
        flow = flow.rebased(root)
    oauth = OAuthClient(flow.endpoints, login_hint=hint)
    return OAuthManager.from_store(name, store, ids=[c.id for c in loaded if c not in keys],
                                   refresh=oauth.refresh, arefresh=oauth.arefresh,
                                   state=state, clock=clock, metrics=metrics)
