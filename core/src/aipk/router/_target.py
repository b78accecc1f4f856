"""The router's records: `Target` (where a request can go) and `RouteInfo` (how a
response was routed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from aipk._providers import Secret, check_api_key
from aipk._responses import ChatResponse

if TYPE_CHECKING:
    from aipk._async_client import AsyncClient
    from aipk._client import Client


def _secret_or_none(value: Secret | str | None) -> Secret | None:
    """A target's ``api_key=`` checked like a client's (surrounding whitespace stripped;
    ConfigurationError for an empty key, a line break, a control or non-ASCII character)."""
    if value is None:
        return None
    return check_api_key(value, "a router Target's api_key= argument")


def _default_name(target: Target) -> str:
    return f"{target.provider}/{target.model}"


@attrs.frozen(kw_only=True, slots=True)
class Target:
    """One place a request can go: a provider, a model, and optionally credentials.

    ``client`` is a ready [`Client`][aipk.Client] (or [`AsyncClient`][aipk.AsyncClient] for
    [`AsyncRouter`][aipk.router.AsyncRouter]); without one the router creates one on first use from
    ``provider``, ``api_key`` and ``base_url``, and reuses it. ``name`` (default
    ``"provider/model"``) identifies the target in metrics, errors and the state store, so it must
    be unique. ``input_price``/``output_price`` (USD per million tokens) and ``context_window``
    override the provider's static model information.

    Attributes:
        provider: The provider id.
        model: The model to request.
        client: A ready client; None lets the router create one on first use.
        api_key: The key for a client the router creates.
        base_url: The base URL for a client the router creates.
        name: The target's unique name in metrics, errors and the state store (default
            ``provider/model``).
        input_price: US dollars per million input tokens (overrides the provider's model list).
        output_price: US dollars per million output tokens (overrides the provider's model list).
        context_window: The model's context window in tokens (overrides the provider's model list).
    """

    provider: str
    model: str
    client: Client | AsyncClient | None = attrs.field(default=None, eq=False, repr=False)
    api_key: Secret | None = attrs.field(default=None, converter=_secret_or_none)
    base_url: str | None = None
    name: str = attrs.field(default=attrs.Factory(_default_name, takes_self=True))
    input_price: float | None = None
    output_price: float | None = None
    context_window: int | None = None


@attrs.frozen(kw_only=True, slots=True)
class RouteInfo:
    """How a response was routed: who served it, with which model, and who was tried first
    (``tried`` ends with ``served_by``; ``failures`` pairs a target name with its error).

    Attributes:
        served_by: The name of the target that answered.
        model: The model it answered with.
        tried: The targets tried, in order, ending with ``served_by``.
        failures: (target name, error) pairs for the targets that failed.
    """

    served_by: str
    model: str
    tried: tuple[str, ...]
    failures: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as stored in ``response.extra["router"]``."""
        return {"served_by": self.served_by, "model": self.model, "tried": list(self.tried),
                "failures": [{"target": t, "error": e} for t, e in self.failures]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouteInfo:
        return cls(served_by=data["served_by"], model=data["model"],
                   tried=tuple(data["tried"]),
                   failures=tuple((f["target"], f["error"]) for f in data["failures"]))


def route_of(response: ChatResponse) -> RouteInfo | None:
    """The `RouteInfo` of a response a router returned (None for other responses)."""
    data = response.extra.get("router")
    return RouteInfo.from_dict(data) if isinstance(data, Mapping) else None
