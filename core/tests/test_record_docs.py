"""Every public attrs record documents every field in its docstring's ``Attributes:`` section
(the section mkdocstrings renders in the API reference), so nobody needs ``attrs.fields()``
to learn what a record holds."""

from __future__ import annotations

import importlib
import inspect
import re

import attrs
import pytest

#: The public modules whose ``__all__`` records are checked (``aipk`` re-exports the rest).
MODULES = ("aipk", "aipk.registry", "aipk.credentials", "aipk.router", "aipk.limits",
           "aipk.state", "aipk.transports")

_ENTRY = re.compile(r"^    (\w+)(?: \([^)]*\))?: \S", re.MULTILINE)


def _public_records() -> list[type]:
    records: dict[type, None] = {}
    for module in map(importlib.import_module, MODULES):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and attrs.has(obj):
                records[obj] = None
    return list(records)


def documented_fields(cls: type) -> set[str]:
    """The names listed in the docstring's ``Attributes:`` section."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    _, found, section = doc.partition("\nAttributes:\n")
    return set(_ENTRY.findall(section)) if found else set()


def test_the_public_records_are_found() -> None:
    names = {cls.__name__ for cls in _public_records()}
    assert {"ChatRequest", "ChatResponse", "Message", "ProviderSpec", "Usage", "Target",
            "PluginInfo", "OAuthCredential", "CooldownPolicy", "ClientLimits"} <= names


@pytest.mark.parametrize("cls", _public_records(), ids=lambda cls: cls.__name__)
def test_every_field_of_a_public_record_is_documented(cls: type) -> None:
    fields = {field.name for field in attrs.fields(cls) if not field.name.startswith("_")}
    missing = sorted(fields - documented_fields(cls))
    assert not missing, (
        f"{cls.__module__}.{cls.__qualname__} does not document {', '.join(missing)}: add them "
        f"to the 'Attributes:' section of its docstring")
    unknown = sorted(documented_fields(cls) - fields)
    assert not unknown, f"{cls.__qualname__} documents fields it does not have: {unknown}"


def test_the_check_notices_an_undocumented_field() -> None:
    @attrs.frozen(kw_only=True)
    class Sample:
        """A sample.

        Attributes:
            kept: Documented.
        """

        kept: int = 0
        forgotten: int = 0

    assert documented_fields(Sample) == {"kept"}
