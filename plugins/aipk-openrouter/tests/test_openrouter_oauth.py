"""The PKCE login pieces: verifier, S256 challenge, authorization URL, key exchange."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from aipk import Secret
from aipk.errors import ConfigurationError, ResponseError
from aipk_openrouter import oauth


def test_endpoints() -> None:
    assert oauth.AUTH_URL == "https://openrouter.ai/auth"
    assert oauth.KEYS_URL == "https://openrouter.ai/api/v1/auth/keys"


def test_verifier_is_rfc7636_sized_and_fresh() -> None:
    first, second = oauth.new_code_verifier(), oauth.new_code_verifier()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", first)
    assert first != second


def test_challenge_matches_the_rfc7636_test_vector() -> None:
    assert oauth.code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")


@pytest.mark.parametrize("bad", ["short", "a" * 129, "a" * 42 + " ", "ä" * 50])
def test_bad_verifier(bad: str) -> None:
    with pytest.raises(ValueError, match="verifier"):
        oauth.code_challenge(bad)


def test_authorization_url_escapes_the_callback() -> None:
    url = oauth.authorization_url("http://localhost:3000/cb?next=/a&b=c", "CHAL")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://openrouter.ai/auth"
    assert parse_qs(parts.query) == {"callback_url": ["http://localhost:3000/cb?next=/a&b=c"],
                                     "code_challenge": ["CHAL"],
                                     "code_challenge_method": ["S256"]}
    assert "&b=c" not in url  # the callback's own query stays inside its parameter


@pytest.mark.parametrize("bad", ["localhost:3000", "javascript:alert(1)", "https://", ""])
def test_authorization_url_rejects_non_http_callbacks(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="callback_url"):
        oauth.authorization_url(bad, "CHAL")


def test_key_exchange_request() -> None:
    built = oauth.key_exchange_request("the-code", "the-verifier")
    assert (built.method, built.url) == ("POST", "https://openrouter.ai/api/v1/auth/keys")
    assert built.json == {"code": "the-code", "code_verifier": "the-verifier",
                          "code_challenge_method": "S256"}
    assert built.headers["content-type"] == "application/json"
    assert "the-code" not in repr(built) and "the-verifier" not in repr(built)
    with pytest.raises(ConfigurationError):
        oauth.key_exchange_request("", "v")


def test_parse_key_exchange() -> None:
    key = oauth.parse_key_exchange({"key": "sk-or-v1-0123", "user_id": "user_1"})
    assert key == Secret("sk-or-v1-0123")
    assert "sk-or" not in repr(key)


@pytest.mark.parametrize("data", [{}, {"key": ""}, {"key": 5}, None, "sk-or-v1", {"error": 1}])
def test_parse_key_exchange_without_a_key(data: Any) -> None:
    with pytest.raises(ResponseError, match="without a key"):
        oauth.parse_key_exchange(data)
