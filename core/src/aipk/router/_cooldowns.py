"""Router cooldowns: each target's absolute deadline before which calls skip it, kept in the
state store (namespace ``aipk.cooldown``) so routers sharing a store share them.

Waits only extend: a new cooldown is combined with the one running as the later of the two
deadlines, so a shorter wait that arrives later (a straggler's 503 after a 429 with a long
``retry-after``) never cuts a longer one short.
"""

from __future__ import annotations

from aipk.state import StateStore

NAMESPACE = "aipk.cooldown"


def later_deadline(old: float | None, new: float) -> float:
    """The deadline to keep when ``new`` arrives while ``old`` (None: none) is stored: the
    later one (``old`` itself when it is not earlier, so the store keeps its entry as is)."""
    return old if old is not None and old >= new else new


class Cooldowns:
    """The targets' cooldown deadlines in ``store``, read and extended on the router's clock."""

    __slots__ = ("store",)

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def until(self, name: str, now: float) -> float | None:
        """When the target ``name``'s cooldown ends, or None when it is not cooling down."""
        until = self.store.get(NAMESPACE, name)
        if isinstance(until, (int, float)) and until > now:
            return float(until)
        return None

    def extend(self, name: str, seconds: float, now: float) -> None:
        """Skip the target ``name`` for ``seconds`` from ``now``, unless a longer cooldown is
        already running (waits only extend)."""
        if seconds <= 0:
            return
        deadline = now + seconds

        def combine(old: float | None) -> float:
            return later_deadline(old, deadline)

        self.store.update(NAMESPACE, name, combine, ttl=seconds)
