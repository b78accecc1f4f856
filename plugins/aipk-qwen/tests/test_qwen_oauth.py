"""The Qwen OAuth constants and the ``resource_url`` → base URL rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipk.errors import ConfigurationError
from aipk_qwen import base_url_for_resource, oauth


def test_constants_match_qwen_code() -> None:
    assert oauth.DEVICE_CODE_URL == "https://chat.qwen.ai/api/v1/oauth2/device/code"
    assert oauth.TOKEN_URL == "https://chat.qwen.ai/api/v1/oauth2/token"
    assert oauth.CLIENT_ID == "f0304373b74a44d2b584a3fb70ca9e56"
    assert oauth.SCOPE == "openid profile email model.completion"
    assert oauth.DEVICE_GRANT_TYPE == "urn:ietf:params:oauth:grant-type:device_code"


@pytest.mark.parametrize(("resource_url", "base_url"), [
    ("portal.qwen.ai", "https://portal.qwen.ai/v1"),
    ("portal.qwen.ai/", "https://portal.qwen.ai/v1"),
    ("portal.qwen.ai/v1", "https://portal.qwen.ai/v1"),
    ("portal.qwen.ai/v1/", "https://portal.qwen.ai/v1"),
    ("  portal.qwen.ai  ", "https://portal.qwen.ai/v1"),
    ("https://portal.qwen.ai", "https://portal.qwen.ai/v1"),
    ("HTTPS://portal.qwen.ai/v1", "https://portal.qwen.ai/v1"),
    ("https://dashscope.aliyuncs.com/compatible-mode",
     "https://dashscope.aliyuncs.com/compatible-mode/v1"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1"),
    ("portal.qwen.ai:8443/v1?x=1#frag", "https://portal.qwen.ai:8443/v1"),
    ("//portal.qwen.ai", "https://portal.qwen.ai/v1"),
])
def test_base_url_for_resource(resource_url: str, base_url: str) -> None:
    assert base_url_for_resource(resource_url) == base_url


@pytest.mark.parametrize("bad", ["", "   ", "ftp://portal.qwen.ai", "https://", "file:///etc",
                                 "https:///v1"])
def test_unusable_resource_url_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="resource_url"):
        base_url_for_resource(bad)


_HOSTS = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}",
                       fullmatch=True)


@given(host=_HOSTS, scheme=st.sampled_from(["", "https://", "http://"]),
       tail=st.sampled_from(["", "/", "/v1", "/v1/", "/api", "/api/v1"]))
def test_result_is_normalised_and_idempotent(host: str, scheme: str, tail: str) -> None:
    result = base_url_for_resource(scheme + host + tail)
    assert result.startswith(("https://", "http://"))
    assert result.endswith("/v1") and not result.endswith("/v1/v1")
    assert host in result
    assert base_url_for_resource(result) == result
