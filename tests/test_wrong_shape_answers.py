"""Answers of the wrong shape from a raw-socket server (tests/rawserver.py): a model listing
that is a list, null or has odd items, and an OAuth token endpoint whose answer lies about its
encoding or carries fields of the wrong type. Each ends in a typed aipk error (or, for a token
field of the wrong type, in a credential as if the field were absent), for the sync client and
the async client on both transports, and the connection serves the next call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import aipk
from aipk.credentials import CredentialError, OAuthClient, OAuthCredential, OAuthEndpoints
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


# -- an OAuth token endpoint's odd answers ----------------------------------------------------

ACCESS = "at-SECRETVALUE-abcdefgh"
REFRESH = "rt-SECRETVALUE-ijklmnop"


def refresh(url: str, mode: str) -> OAuthCredential | AipkError:
    """One refresh of an expired credential at ``url``'s token endpoint: the new credential,
    or the aipk error it raised (anything else escapes)."""
    client = OAuthClient(OAuthEndpoints(provider="openai", client_id="cid",
                                        token_url=url + "/token"), timeout=2.0)
    old = OAuthCredential(id="me", access_token=ACCESS, refresh_token=REFRESH,
                          expires_at=time.time() - 10)
    try:
        if mode == "sync":
            return client.refresh(old)
        return asyncio.run(asyncio.wait_for(client.arefresh(old), 10))
    except AipkError as exc:
        return exc


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_token_answer_that_does_not_match_its_content_encoding_is_a_credential_error(
        mode: str) -> None:
    lie = reply(200, {"access_token": "new-token-0123456789"},
                headers=[("Content-Encoding", "gzip")])
    with raw_server(lie) as server:
        outcome = refresh(server.url, mode)
    assert isinstance(outcome, CredentialError), outcome
    assert "Content-Encoding" in str(outcome) and "proxy" in str(outcome)
    assert outcome.auth_code is aipk.AuthErrorCode.REFRESH_FAILED
    assert "SECRETVALUE" not in str(outcome) + repr(outcome)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("refresh_token", [5, {"token": "x"}, ["x"], True, ""])
def test_a_refresh_token_that_is_not_a_string_keeps_the_old_one(mode: str,
                                                                 refresh_token: Any) -> None:
    answer = {"access_token": "new-token-0123456789", "refresh_token": refresh_token}
    with raw_server(reply(200, answer)) as server:
        outcome = refresh(server.url, mode)
    assert isinstance(outcome, OAuthCredential), outcome
    assert outcome.access_token.reveal() == "new-token-0123456789"
    assert outcome.refresh_token is not None and outcome.refresh_token.reveal() == REFRESH


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("expires_in", ['"nan"', '"inf"', "1e999", '"-inf"'])
def test_an_expiry_no_clock_reaches_is_an_unknown_expiry(mode: str, expires_in: str) -> None:
    answer = '{"access_token": "new-token-0123456789", "expires_in": ' + expires_in + "}"
    with raw_server(reply(200, answer)) as server:
        outcome = refresh(server.url, mode)
    assert isinstance(outcome, OAuthCredential), outcome
    assert outcome.expires_at is None  # refreshed after a 401, as for no expiry at all
