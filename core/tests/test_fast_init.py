"""``fast_init`` gives a record the same construction as attrs' own ``__init__``: same
defaults, factories (also those that read earlier fields), converters, post-init checks and
errors; records it cannot reproduce are refused."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipk import ChatResponse, HttpRequest, Message, Usage
from aipk._records import fast_init
from aipk.errors import InvalidRequestError


def _record() -> type[Any]:
    @attrs.frozen(kw_only=True)
    class Record:
        name: str
        items: tuple[int, ...] = attrs.field(default=(), converter=tuple)
        extra: dict[str, int] = attrs.field(factory=dict)
        total: int = attrs.field()
        flag: bool = False

        @total.default
        def _total(self) -> int:
            return sum(self.items)

        def __attrs_post_init__(self) -> None:
            if self.name == "bad":
                raise ValueError("bad name")

    return Record


PLAIN = _record()
FAST = fast_init(_record())

KWARGS = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b", "bad"])},
    optional={"items": st.lists(st.integers()) | st.just(()) | st.tuples(st.integers()),
              "extra": st.dictionaries(st.text(), st.integers()),
              "total": st.integers(), "flag": st.booleans(), "unknown": st.integers()})


def _outcome(cls: type[Any], kwargs: dict[str, Any]) -> tuple[str, Any]:
    try:
        made = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc).replace(".__init__", "")
    return "ok", attrs.asdict(made, recurse=False)


@given(KWARGS)
def test_same_records_and_errors_as_attrs(kwargs: dict[str, Any]) -> None:
    plain, fast = _outcome(PLAIN, kwargs), _outcome(FAST, kwargs)
    assert plain[0] == fast[0]
    if plain[0] == "ok":
        assert plain == fast
    if plain[0] == "ValueError":
        assert plain == fast


def test_fresh_factory_value_per_record_and_still_frozen() -> None:
    one, two = FAST(name="a"), FAST(name="a")
    assert one.extra == {} and one.extra is not two.extra
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        one.name = "b"


def test_the_hot_path_records_use_it_and_still_check_their_input() -> None:
    for cls in (Message, ChatResponse, Usage):
        assert cls.__init__.__code__.co_filename.startswith("<aipk fast_init")
    # (HttpRequest's own __init__ fills its fields in on a draft: see test_records.py)
    assert HttpRequest.__init__.__code__.co_name == "_http_request_init"
    assert Usage(input_tokens=2, output_tokens=3).total_tokens == 5
    with pytest.raises(InvalidRequestError):
        Message(role="robot", content="hi")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        Message(role="tool", content="42")


def test_records_it_cannot_reproduce_are_refused() -> None:
    @attrs.frozen
    class Positional:
        count: int

    with pytest.raises(TypeError, match="needs attrs' own __init__"):
        fast_init(Positional)

    @attrs.define(slots=False, kw_only=True)
    class NoSlots:
        count: int

    with pytest.raises(TypeError, match="not a slotted record"):
        fast_init(NoSlots)


def test_a_default_the_converter_keeps_is_not_converted_again() -> None:
    calls: list[Any] = []

    def to_tuple(value: Any) -> tuple[Any, ...]:
        calls.append(value)
        return tuple(value)

    def to_list(value: Any) -> list[Any]:
        calls.append(value)
        return list(value)

    @attrs.frozen(kw_only=True)
    class Record:
        kept: tuple[int, ...] = attrs.field(default=(), converter=to_tuple)
        copied: list[int] = attrs.field(default=(), converter=to_list)

    fast_init(Record)
    calls.clear()
    made = Record()
    assert made.kept == () and made.copied == []
    assert calls == [()]  # only the converter that changes its default ran
    calls.clear()
    assert Record(kept=[1], copied=[2]) == Record(kept=(1,), copied=[2]) and len(calls) == 4
