"""The error tree: the hierarchy drawn in aipk.errors' docstring is the real one, and every
public error class is drawn in it."""

from __future__ import annotations

import gc
import importlib
import re

import pytest

import aipk
from aipk import errors
from aipk.errors import (
    AipkError,
    AuthenticationError,
    AuthErrorCode,
    ConfigurationError,
    InvalidRequestError,
    MissingCredentialError,
    NetworkError,
    PluginError,
    ProviderError,
    RateLimitError,
    RequestTimeout,
    StatusError,
    StreamError,
    TransportError,
    UnknownProviderError,
)

_NODE = re.compile(r"^(?P<indent> *)(?P<branch>(?:[│ ] {3})*[├└]── )?(?P<name>[A-Z]\w*)(?: |$)")


def parse_tree(doc: str) -> dict[str, str | None]:
    """{class name: parent name} from the box-drawing tree after ``The hierarchy:``."""
    lines = doc.split("The hierarchy:\n", 1)[1].splitlines()
    parents: dict[str, str | None] = {}
    stack: list[str] = []  # the current path from the root
    base: int | None = None
    for line in lines:
        if not line.strip():
            continue
        if base is not None and not line.startswith(" " * base):
            break  # dedented: the drawing is over
        match = _NODE.match(line)
        if match is None or (match["branch"] is None and base is not None):
            continue  # a wrapped description line
        if base is None:
            base = len(match["indent"])
        column = len(match["indent"]) - base + len(match["branch"] or "")
        assert column % 4 == 0, line
        depth = column // 4
        assert depth <= len(stack), f"bad nesting at {line!r}"
        del stack[depth:]
        parents[match["name"]] = stack[-1] if stack else None
        stack.append(match["name"])
    return parents


TREE = parse_tree(errors.__doc__ or "")

#: The public namespaces whose exported errors must be drawn in the tree.
PUBLIC_MODULES = ("aipk", "aipk.errors", "aipk.router", "aipk.credentials")


def _all_subclasses(cls: type) -> list[type]:
    found: list[type] = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


def public_errors() -> dict[str, type]:
    """{name: class} of every public aipk error: each ``AipkError`` subclass a public namespace
    exports, and each one any loaded ``aipk`` module defines under a public name."""
    found: dict[str, type] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, AipkError):
                found[name] = value
    for cls in [AipkError, *_all_subclasses(AipkError)]:
        module = cls.__module__
        if (module == "aipk" or module.startswith("aipk.")) and not cls.__name__.startswith("_"):
            found.setdefault(cls.__name__, cls)
    return found


def undocumented_errors() -> set[str]:
    return set(public_errors()) - set(TREE)


PUBLIC = public_errors()


def test_tree_was_parsed() -> None:
    # Spot-check the parser itself on a few known edges, so a broken parser cannot pass vacuously.
    assert TREE["AipkError"] is None
    assert TREE["OverloadedError"] == "ServerError"
    assert TREE["ResponseError"] == "ProviderError"
    assert TREE["PluginError"] == "AipkError"
    assert TREE["AllTargetsFailedError"] == "ProviderError"
    assert TREE["KeysExhaustedError"] == "CredentialError"  # five levels deep
    assert TREE["IncompleteStreamError"] == "ResponseError"
    assert TREE["NotFoundError"] == "BadRequestError"
    assert TREE["PermissionDeniedError"] == "AuthenticationError"
    assert TREE["StructuredOutputError"] == "ResponseError"
    assert TREE["ToolArgumentsError"] == "ResponseError"
    assert set(TREE) == set(PUBLIC)  # every drawn node is a public error and vice versa
    assert "UTF" not in TREE  # the wrapped description line is not a node
    assert "refreshed" not in TREE


@pytest.mark.parametrize(("name", "parent"), sorted(TREE.items()))
def test_tree_matches_real_classes(name: str, parent: str | None) -> None:
    cls = PUBLIC.get(name)
    assert isinstance(cls, type), f"{name} is drawn in the tree but is no public aipk error"
    assert issubclass(cls, Exception)
    if parent is None:
        assert cls.__bases__ == (Exception,)
    else:
        assert cls.__bases__[0] is PUBLIC[parent], (
            f"{name}'s base is {cls.__bases__[0].__name__}, the tree says {parent}"
        )
        assert issubclass(cls, AipkError)


def test_every_exported_error_is_in_the_tree() -> None:
    exported = set(errors.__all__)
    assert exported - {"AuthErrorCode"} == {n for n in TREE if getattr(errors, n, None)}
    assert all(isinstance(getattr(errors, name), type) for name in exported)


def test_every_public_error_class_is_in_the_tree() -> None:
    assert undocumented_errors() == set(), (
        "draw these errors in the tree in aipk/errors.py's docstring")
    assert set(PUBLIC) == set(TREE)
    assert {"AllTargetsFailedError", "CredentialError", "KeysExhaustedError"} <= set(PUBLIC)


def test_an_undocumented_error_would_be_caught() -> None:
    # The completeness check is not vacuous: a new public error anywhere in aipk fails it.
    sneaky = type("SneakyNewError", (errors.ProviderError,), {"__module__": "aipk._sneaky"})
    try:
        assert undocumented_errors() == {"SneakyNewError"}
    finally:
        del sneaky
        gc.collect()
    assert undocumented_errors() == set()


def test_all_targets_failed_error_is_one_class_everywhere() -> None:
    from aipk import router

    assert router.AllTargetsFailedError is errors.AllTargetsFailedError
    assert aipk.AllTargetsFailedError is errors.AllTargetsFailedError
    error = errors.AllTargetsFailedError("none left", failures=(), skipped=(),
                                         available_at=12.0, retry_after=2.0)
    assert isinstance(error, errors.ProviderError) and error.retryable
    assert (error.provider, error.retry_after, error.available_at, error.waited) == (
        "router", 2.0, 12.0, 0.0)


def test_configuration_errors_are_value_errors() -> None:
    assert issubclass(ConfigurationError, ValueError)
    for cls in (UnknownProviderError, MissingCredentialError, InvalidRequestError):
        assert issubclass(cls, ValueError)
    assert not issubclass(ProviderError, ValueError)
    assert not issubclass(PluginError, ValueError)


def test_auth_error_codes() -> None:
    assert {c.value for c in AuthErrorCode} == {
        "invalid_credentials", "token_expired", "refresh_failed", "oauth_flow_failed",
        "invalid_config", "network_error", "provider_unavailable", "scope_insufficient",
        "key_rotation_failed", "all_keys_exhausted", "storage_error", "encryption_error",
    }
    assert len(AuthErrorCode) == 12
    retryable = {c.value for c in AuthErrorCode if c.retryable}
    assert retryable == {
        "token_expired", "refresh_failed", "network_error", "provider_unavailable",
        "key_rotation_failed", "all_keys_exhausted", "storage_error",
    }
    assert AuthErrorCode("token_expired") is AuthErrorCode.TOKEN_EXPIRED
    assert AuthErrorCode.TOKEN_EXPIRED == "token_expired"  # a str enum


@pytest.mark.parametrize("code", list(AuthErrorCode))
def test_authentication_error_retryable_follows_code(code: AuthErrorCode) -> None:
    error = AuthenticationError("nope", provider="p", auth_code=code, details={"k": "v"})
    assert error.retryable is code.retryable
    assert error.code == code.value
    assert error.auth_code is code
    assert error.status == 0
    assert error.details == {"k": "v"}


def test_unknown_provider_error_message() -> None:
    error = UnknownProviderError("mistral", ["openai", "anthropic"])
    text = str(error)
    assert "'mistral'" in text
    assert "anthropic, openai" in text  # sorted
    assert "pip install aipk-mistral" in text
    assert error.installed == ["anthropic", "openai"]
    assert error.name == "mistral"
    assert "installed providers: none" in str(UnknownProviderError("x", []))


def test_missing_credential_error_names_the_env_var() -> None:
    error = MissingCredentialError("openai", ("OPENAI_API_KEY",))
    assert "OPENAI_API_KEY" in str(error)
    assert "'openai'" in str(error)
    assert "api_key=" in str(error)
    both = str(MissingCredentialError("g", ("GEMINI_API_KEY", "GOOGLE_API_KEY")))
    assert "GEMINI_API_KEY or GOOGLE_API_KEY" in both
    assert "pass api_key=" in str(MissingCredentialError("x", ()))
    assert "run: aipk login x" in str(MissingCredentialError("x", (), login=True))
    assert "aipk login" not in str(error)


def test_provider_error_fields_and_str() -> None:
    error = ProviderError("it broke", provider="acme", request_id="req_7")
    assert str(error) == "[acme, request id req_7] it broke"
    assert str(ProviderError("it broke", provider="acme")) == "[acme] it broke"
    assert not error.retryable
    status = StatusError("bad", provider="acme", status=418, headers={"a": "b"})
    assert str(status) == "[acme HTTP 418] bad"
    assert status.headers == {"a": "b"}
    assert StatusError("bad", provider="acme", status=418).headers == {}


def test_transport_errors_default_retryable() -> None:
    for cls in (TransportError, RequestTimeout, NetworkError):
        error = cls("x", provider="p")
        assert error.retryable
        assert error.before_first_byte
    assert not NetworkError("x", provider="p", retryable=False).retryable


def test_rate_limit_error_is_retryable_with_retry_after() -> None:
    error = RateLimitError("slow", provider="p", retry_after=2.5)
    assert error.retryable
    assert error.retry_after == 2.5
    assert error.status == 429


def test_stream_error_and_base_defaults() -> None:
    assert not StreamError("x", provider="p").retryable
    assert StreamError("x", provider="p", retryable=True, code="overloaded").code == "overloaded"
    assert AipkError.retryable is False
    assert PluginError("bad hook", plugin="aipk-x").plugin == "aipk-x"
