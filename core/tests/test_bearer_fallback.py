"""The built-in ``Authorization: Bearer`` fallback: the same signed request as a plain
``merge_headers``, its header kept on the Secret only (gone with it), a Secret subclass asked
each time."""

from __future__ import annotations

import gc
import string
import weakref
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

import aipk
from aipk import _builtin
from aipk._providers import Credential, Provider, ProviderSpec, Secret

_PROVIDER = Provider(spec=ProviderSpec(name="p", protocol="x", default_base_url="http://h/v1"),
                     base_url="http://h/v1")
_keys = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=40)
_headers = st.dictionaries(st.sampled_from(["content-type", "accept", "x-a", "authorization"]),
                           st.text(alphabet=string.ascii_letters, max_size=5), max_size=4)


def _request(headers: dict[str, str], body: Any = None) -> aipk.HttpRequest:
    return aipk.HttpRequest(method="POST", url="http://h/v1/chat", headers=headers, json=body,
                            timeout=aipk.Timeout(read=5))


def _same(left: aipk.HttpRequest, right: aipk.HttpRequest) -> None:
    assert type(left) is type(right) is aipk.HttpRequest
    assert left == right
    assert repr(left) == repr(right)
    assert attrs.asdict(left, recurse=False) == attrs.asdict(right, recurse=False)


@settings(max_examples=200, deadline=None)
@given(key=_keys, headers=_headers, body=st.none() | st.just({"model": "m"}))
def test_the_signed_request_is_the_plain_merge_every_time(
        key: str, headers: dict[str, str], body: Any) -> None:
    credential = Credential(kind="api_key", secret=Secret(key))
    request = _request(headers, body)
    expected = request.merge_headers({"authorization": f"Bearer {key}"})
    for _ in range(2):  # the first call makes the header, the second reuses it
        signed = _builtin.aipk_apply_credential(_PROVIDER, request, credential)
        assert signed is not None
        _same(signed, expected)
    assert request.headers == headers  # the prepared request is left as it was


def test_the_header_goes_with_its_secret() -> None:
    secret = Secret("sk-kept-nowhere-else")
    gone = weakref.ref(secret)
    signed = _builtin.aipk_apply_credential(
        _PROVIDER, _request({}), Credential(kind="api_key", secret=secret))
    assert signed is not None
    assert signed.headers["authorization"] == "Bearer sk-kept-nowhere-else"
    del secret, signed
    gc.collect()
    assert gone() is None
    assert not any("sk-kept-nowhere-else" in repr(value)
                   for value in vars(_builtin).values())


class _Rotating(Secret):
    """A Secret revealing another value each time it is asked."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        super().__init__("rot-0")
        self.count = 0

    def reveal(self) -> str:
        self.count += 1
        return f"rot-{self.count}"


def test_a_secret_subclass_is_asked_on_every_request() -> None:
    credential = Credential(kind="oauth", secret=_Rotating())
    seen = []
    for _ in range(2):
        signed = _builtin.aipk_apply_credential(_PROVIDER, _request({}), credential)
        assert signed is not None
        seen.append(signed.headers["authorization"])
    assert seen == ["Bearer rot-1", "Bearer rot-2"]


class _Subrequest(aipk.HttpRequest):
    pass


def test_a_request_subclass_keeps_its_class_and_no_key_means_no_header() -> None:
    credential = Credential(kind="api_key", secret=Secret("sk-sub"))
    request = _Subrequest(method="POST", url="http://h/v1/chat", headers={"a": "b"})
    signed = _builtin.aipk_apply_credential(_PROVIDER, request, credential)
    assert type(signed) is _Subrequest
    assert signed.headers == {"a": "b", "authorization": "Bearer sk-sub"}
    plain = _request({"a": "b"})
    assert _builtin.aipk_apply_credential(
        _PROVIDER, plain, Credential(kind="none", secret=Secret("sk-x"))) is plain
    assert _builtin.aipk_apply_credential(_PROVIDER, plain, Credential(kind="none")) is plain
