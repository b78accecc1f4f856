"""OpenRouter's model listing (``GET /models``) as [`ModelInfo`][aipk.ModelInfo] records.

Each entry carries ``pricing.prompt`` / ``pricing.completion`` as US dollars *per token*, in
strings (``"0.0000025"``); aipk prices are per million tokens, converted exactly with
`Decimal`. Negative prices (``"-1"``, variable-priced routers such as
``openrouter/auto``) mean "unknown". ``context_length`` (or ``top_provider.context_length``)
is the context window, ``top_provider.max_completion_tokens`` the output limit, and
``architecture.input_modalities`` / ``supported_parameters`` give vision, tools, reasoning and
JSON mode. ``extra["free"]`` marks free models (``…:free``, or zero prices). Malformed entries
are skipped, never raised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from aipk import Capabilities, ModelInfo, Provider

__all__ = ["parse_models", "per_million"]

_MILLION = Decimal(1_000_000)


def per_million(value: Any) -> float | None:
    """A per-token USD price (string or number) as USD per million tokens; None if unknown."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not price.is_finite() or price < 0:
        return None
    result = float(price * _MILLION)
    return result if math.isfinite(result) else None


def _positive_int(value: Any) -> int | None:
    return value if type(value) is int and value > 0 else None


def _strings(value: Any) -> frozenset[str]:
    if isinstance(value, (list, tuple)):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def _capabilities(item: Mapping[str, Any], static: ModelInfo | None) -> Capabilities | None:
    top = item.get("top_provider")
    top = top if isinstance(top, Mapping) else {}
    context = _positive_int(item.get("context_length")) or _positive_int(
        top.get("context_length"))
    arch = item.get("architecture")
    arch = arch if isinstance(arch, Mapping) else {}
    params = _strings(item.get("supported_parameters"))
    if context is None and not arch and not params:
        return static.capabilities if static else None
    modality = arch.get("modality")
    vision = "image" in _strings(arch.get("input_modalities")) or (
        isinstance(modality, str) and "image" in modality.split("->")[0])
    return Capabilities(
        streaming=True,
        tools="tools" in params if params else True,
        vision=vision,
        json_mode="response_format" in params or "structured_outputs" in params,
        reasoning="reasoning" in params,
        context_window=context,
        max_output_tokens=_positive_int(top.get("max_completion_tokens")),
    )


def parse_models(provider: Provider, data: Any) -> list[ModelInfo]:
    """The ``{"data": [...]}`` listing as ModelInfo, enriched from the static list."""
    items = data.get("data") if isinstance(data, Mapping) else None
    known = {info.id: info for info in provider.spec.models}
    out: list[ModelInfo] = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str) or not item["id"]:
            continue
        model_id: str = item["id"]
        static = known.get(model_id)
        pricing = item.get("pricing")
        pricing = pricing if isinstance(pricing, Mapping) else {}
        input_price = per_million(pricing.get("prompt"))
        output_price = per_million(pricing.get("completion"))
        name = item.get("name")
        created = item.get("created")
        out.append(ModelInfo(
            id=model_id,
            provider=provider.name,
            display_name=name if isinstance(name, str) else (static.display_name
                                                             if static else None),
            capabilities=_capabilities(item, static),
            input_price=input_price,
            output_price=output_price,
            created=created if type(created) is int else None,
            extra={"free": model_id.endswith(":free")
                   or (input_price == 0 and output_price == 0)},
        ))
    return out
