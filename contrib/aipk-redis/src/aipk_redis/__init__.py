"""Shared state for aipk on Redis ≥ 6 or Valkey.

* `RedisStore`: pass it as ``store=`` to every ``aipk.Client`` / ``AsyncClient`` /
  ``Router`` / key pool that should share client-side limits, rate-limit state, key health,
  circuit breakers and router cooldowns (``RedisStore.from_url("redis://host:6379/0")``).
* `RedisTokenStore`: OAuth tokens for ``OAuthManager.from_store``, refreshed once per
  expiry across all processes, optionally encrypted.

See docs/shared-state.md for the key layout, TTLs and what holds while Redis is unreachable.
"""

from __future__ import annotations

from ._store import RedisStore
from ._tokens import RedisTokenStore

__all__ = ["RedisStore", "RedisTokenStore"]
