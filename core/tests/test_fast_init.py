"""``fast_init`` gives a record the same construction as attrs' own ``__init__``: same
defaults, factories (also those that read earlier fields), converters, post-init checks and
errors; records it cannot reproduce are refused."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipk import ChatResponse, HttpRequest, Message, Usage
from aipk._records import fast_init, record_builder
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
    for cls in (Message, ChatResponse, Usage, HttpRequest):
        assert cls.__init__.__code__.co_filename.startswith("<aipk fast_init")
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


def _wide() -> type[Any]:
    @attrs.frozen(kw_only=True)
    class Wide:  # enough fields to be filled as its builder
        a: int
        b: tuple[int, ...] = attrs.field(default=(), converter=tuple)
        c: list[int] = attrs.field(factory=list)
        d: int = attrs.field(default=attrs.Factory(lambda self: self.a + len(self.b),
                                                   takes_self=True))
        e: int = 0

    return Wide


WIDE_PLAIN, WIDE_FAST = _wide(), fast_init(_wide())


@given(st.fixed_dictionaries({"a": st.integers()}, optional={
    "b": st.lists(st.integers()) | st.integers(), "c": st.lists(st.integers()),
    "d": st.integers(), "e": st.integers()}))
def test_a_record_filled_as_its_builder_is_the_record_attrs_makes(kwargs: dict[str, Any]) -> None:
    assert "_builder" in WIDE_FAST.__init__.__code__.co_names
    plain, fast = _outcome(WIDE_PLAIN, kwargs), _outcome(WIDE_FAST, kwargs)
    assert plain == fast
    if fast[0] == "ok":
        made = WIDE_FAST(**kwargs)
        assert type(made) is WIDE_FAST
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            made.a = 1


def test_a_failed_build_leaves_the_record_its_own_class_and_subclasses_keep_theirs() -> None:
    half: Any = object.__new__(WIDE_FAST)
    with pytest.raises(TypeError):
        WIDE_FAST.__init__(half, a=1, b=5)  # tuple(5) fails after ``a`` was stored
    assert type(half) is WIDE_FAST and half.a == 1
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        half.a = 2

    class Sub(WIDE_FAST):  # type: ignore[misc, valid-type]
        __slots__ = ("more",)

    sub = Sub(a=2, b=[1])
    assert type(sub) is Sub and (sub.a, sub.b, sub.d) == (2, (1,), 3)


def test_record_builder_fills_a_record_with_plain_stores() -> None:
    builder = record_builder(Usage)
    made: Any = object.__new__(builder)
    for name in ("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens",
                 "cache_read_tokens", "cache_write_tokens"):
        setattr(made, name, 1)
    made.__class__ = Usage
    assert made == Usage(input_tokens=1, output_tokens=1, total_tokens=1, reasoning_tokens=1,
                         cache_read_tokens=1, cache_write_tokens=1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.input_tokens = 2

    class Hooked:
        made: ClassVar[list[str]] = []

        def __init_subclass__(cls) -> None:
            Hooked.made.append(cls.__name__)

    @attrs.frozen(kw_only=True)
    class Child(Hooked):
        a: int = 0

    with pytest.raises(TypeError, match="cannot have a builder"):
        record_builder(Child)  # a subclass would run the hook
    assert Hooked.made == ["Child", "Child"]  # attrs' own two classes, no third
