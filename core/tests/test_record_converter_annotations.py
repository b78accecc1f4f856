"""`_records._takes` reads a converter's first parameter's annotation as
``inspect.signature`` finds it (the annotation attrs gives that field in ``__init__``)."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

from aipk._records import _takes


def _signature_first(converter: Any) -> Any:
    try:
        params = list(inspect.signature(converter).parameters.values())
    except (ValueError, TypeError):
        return inspect.Parameter.empty
    return params[0].annotation if params else inspect.Parameter.empty


def annotated(value: int) -> int:
    return value


def unannotated(value):  # type: ignore[no-untyped-def]
    return value


def positional_only(value: str, /, extra: int = 0) -> str:
    return value


def star_first(*values: bytes) -> tuple[bytes, ...]:
    return values


def keyword_only(*, value: float) -> float:
    return value


def nothing() -> None:
    return None


@functools.wraps(annotated)
def wrapper(anything: object) -> Any:
    return anything


def with_signature(value: int) -> int:
    return value


with_signature.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("given", inspect.Parameter.POSITIONAL_ONLY, annotation=complex)])


class Converter:
    def __init__(self, value: list[int]) -> None:
        self.value = value

    def method(self, value: set[int]) -> set[int]:
        return value


CONVERTERS = [annotated, unannotated, positional_only, star_first, keyword_only, nothing,
              wrapper, with_signature, lambda value: value, tuple, str.upper, frozenset,
              functools.partial(positional_only, extra=1), Converter, Converter(value=[]).method,
              print, 3]


@pytest.mark.parametrize("converter", CONVERTERS, ids=repr)
def test_the_annotation_inspect_signature_finds(converter: Any) -> None:
    assert _takes(converter) == _signature_first(converter)


def test_a_plain_function_is_read_without_building_a_signature(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("inspect.signature called")

    monkeypatch.setattr(inspect, "signature", refuse)
    assert _takes(annotated) == "int"  # this module's annotations are strings
    assert _takes(unannotated) is inspect.Parameter.empty
