"""One fixed credential as a credential source, and the two credential steps of the send loop.

Kept apart from the key pools (`aipk.credentials._pool`): a client with one API key needs only
this, not the pools' health and backoff machinery.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Protocol

from aipk._providers import Credential

from ._metrics import MetricsRegistry

if TYPE_CHECKING:
    from aipk.observability._model import Metrics

__all__ = ["Acquire", "HasId", "Recover", "SingleCredential"]


class HasId(Protocol):
    @property
    def id(self) -> str: ...


def _id_of(member: HasId | str) -> str:
    return member if isinstance(member, str) else member.id


class SingleCredential:
    """One fixed credential as a `CredentialSource`: never in backoff, never exhausted
    (a single key must not lock itself out), with metrics like a pool's."""

    def __init__(self, provider: str, credential: Credential,
                 clock: Callable[[], float] = time.time, metrics: Metrics | None = None) -> None:
        self.provider = provider
        self.credential = credential
        self._clock = clock
        #: the attempt counters, a view over `metrics_model`
        self.metrics = MetricsRegistry(provider, clock, metrics)

    @property
    def metrics_model(self) -> Metrics:
        """The metrics model the credential's attempts are recorded into."""
        return self.metrics.model

    def __len__(self) -> int:
        return 1

    def acquire(self, *, exclude: Collection[str] = ()) -> Credential:
        return self.credential

    async def aacquire(self, *, exclude: Collection[str] = ()) -> Credential:
        return self.credential

    def recover(self, credential: Credential, error: BaseException) -> Credential | None:
        return None

    async def arecover(self, credential: Credential, error: BaseException) -> Credential | None:
        return None

    def report_success(self, member: HasId | str, *, latency: float = 0.0,
                       tokens: int = 0) -> None:
        # (once per request: the id and the counters looked up inline)
        cid = member if isinstance(member, str) else member.id
        counters = self.metrics._metrics.get(cid) or self.metrics.get(cid)
        counters.succeeded(self._clock(), latency, tokens)

    def report_failure(self, member: HasId | str, error: BaseException | int, *,
                       latency: float = 0.0) -> bool:
        self.metrics.get(_id_of(member)).record(ok=False, now=self._clock(), latency=latency)
        from ._health import classify_failure  # on a failure only

        return classify_failure(error) is not None

    def add_tokens(self, member: HasId | str, tokens: int) -> None:
        self.metrics.get(_id_of(member)).add_tokens(tokens)

    def __repr__(self) -> str:
        return f"<SingleCredential provider={self.provider!r} id={self.credential.id!r}>"


class Acquire:
    """A step: acquire a credential outside ``exclude`` (answer: it, or KeysExhaustedError)."""

    __slots__ = ("exclude",)

    def __init__(self, exclude: tuple[str, ...]) -> None:
        self.exclude = exclude


class Recover:
    """A step: ``source.recover(credential, error)`` after a 401 (answer: a fresh credential,
    None, or the AuthenticationError the refresh raised)."""

    __slots__ = ("credential", "error")

    def __init__(self, credential: Credential, error: BaseException) -> None:
        self.credential = credential
        self.error = error
