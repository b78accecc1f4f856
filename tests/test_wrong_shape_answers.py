"""Answers of the wrong shape from a raw-socket server (tests/rawserver.py): a model listing
that is a list, null or has odd items ends in a typed aipk error, for the sync client and the
async client on both transports, and the connection serves the next call.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import aipk
from aipk.errors import AipkError, ResponseError

from .rawserver import raw_server, reply

KEY = "sk-shape-SECRETVALUE-0123456789"
MODES = ("sync", "httpx", "aiohttp")
LISTINGS = {"openai": {"data": [{"id": "gpt-x"}]}, "anthropic": {"data": [{"id": "claude-x"}]},
            "gemini": {"models": [{"name": "models/gemini-x"}]}}


def list_models(url: str, provider: str, mode: str, calls: int = 2) -> list[Any]:
    """``calls`` model listings on one client: each one's model ids, or the error it raised
    (anything but an aipk error escapes)."""
    base = url + ("/v1" if provider == "openai" else "")
    options: dict[str, Any] = {"base_url": base, "api_key": KEY, "timeout": 2.0,
                               "max_retries": 0}
    outcomes: list[Any] = []
    if mode == "sync":
        with aipk.Client(provider, **options) as client:
            for _ in range(calls):
                try:
                    outcomes.append([m.id for m in client.models()])
                except AipkError as exc:
                    outcomes.append(exc)
        return outcomes

    async def scenario() -> None:
        from aipk.transports import AiohttpTransport

        transport = AiohttpTransport() if mode == "aiohttp" else None
        try:
            async with aipk.AsyncClient(provider, transport=transport, **options) as client:
                for _ in range(calls):
                    try:
                        outcomes.append([m.id for m in await client.models()])
                    except AipkError as exc:
                        outcomes.append(exc)
        finally:
            if transport is not None:
                await transport.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    return outcomes


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("body", [
    "[1]", "null", '"models"', '{"data": "x"}', '{"data": [null]}', '{"data": [5]}',
    '{"data": [{"name": "no id"}]}',
], ids=["list", "null", "string", "data-string", "null-item", "number-item", "item-without-id"])
def test_a_model_listing_of_the_wrong_shape_is_a_response_error(
        mode: str, provider: str, body: str) -> None:
    with raw_server(reply(200, body), reply(200, LISTINGS[provider])) as server:
        wrong, right = list_models(server.url, provider, mode)
    assert type(wrong) is ResponseError, wrong
    assert "model listing has an unexpected shape" in str(wrong) and "base_url" in str(wrong)
    assert not wrong.retryable
    assert right == [LISTINGS[provider]["data"][0]["id"]]


@pytest.mark.parametrize("mode", MODES)
def test_a_gemini_listing_of_the_wrong_shape_is_a_response_error(mode: str) -> None:
    with raw_server(reply(200, "[1]"), reply(200, LISTINGS["gemini"])) as server:
        wrong, right = list_models(server.url, "gemini", mode)
    assert type(wrong) is ResponseError, wrong
    assert right == ["gemini-x"]

