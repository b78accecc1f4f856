"""A record class's first records are filled by reading its fields (`aipk._records._fill`);
only after `_COMPILE_AFTER` of them is its ``__init__`` (or its `record_maker`) compiled. Both
ways make the same record, with the same errors, as attrs' own ``__init__``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import aipk
from aipk import _records
from aipk._records import fast_record, record


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0")


def _sum_of_items(record: Any) -> int:
    return sum(record.items)


def _wide(build: Any) -> type[Any]:
    @build
    class Wide:
        name: str
        items: tuple[int, ...] = attrs.field(default=(), converter=tuple)
        extra: dict[str, int] = attrs.field(factory=dict)
        total: int = attrs.field(default=attrs.Factory(_sum_of_items, takes_self=True),
                                 validator=_positive)
        label: str = attrs.field(default="x", converter=str.upper,
                                 validator=attrs.validators.instance_of(str))
        count: int | None = None
        hidden: int = attrs.field(init=False, default=7)
        made: list[int] = attrs.field(init=False, factory=list)
        flag: bool = False

        def __attrs_post_init__(self) -> None:
            if self.name == "bad":
                raise ValueError("bad name")

    return Wide


ATTRS = _wide(attrs.frozen(kw_only=True))
#: never compiled: every record is filled by `_fill` (see `_compiling`)
FILLED = (_wide(record(kw_only=True)), _wide(fast_record(kw_only=True)))
#: compiled by their first record
COMPILED = (_wide(record(kw_only=True)), _wide(fast_record(kw_only=True)))

KWARGS = st.fixed_dictionaries({}, optional={
    "name": st.sampled_from(["a", "b", "bad"]),
    "items": st.lists(st.integers(-3, 3)) | st.just(()) | st.integers(),
    "extra": st.dictionaries(st.text(max_size=3), st.integers()),
    "total": st.integers(-2, 5), "label": st.sampled_from(["a", "B", ""]) | st.none(),
    "count": st.none() | st.integers(), "flag": st.booleans(), "hidden": st.integers(),
    "unknown": st.integers()})


@contextlib.contextmanager
def _compiling(after: int) -> Iterator[None]:
    saved = _records._COMPILE_AFTER
    _records._COMPILE_AFTER = after
    try:
        yield
    finally:
        _records._COMPILE_AFTER = saved


def _outcome(make: Any, kwargs: dict[str, Any]) -> tuple[str, Any]:
    try:
        made = make(**kwargs)
    except (TypeError, ValueError, AttributeError) as exc:
        return type(exc).__name__, str(exc).replace("Wide.__init__", "__init__")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.name = "changed"
    return "ok", attrs.asdict(made, recurse=False)


@pytest.mark.skipif(not _records._QUICK, reason="this attrs or Python builds every record "
                                                 "through attrs itself")
@given(KWARGS, st.booleans())
def test_filled_and_compiled_records_are_attrs_records(kwargs: dict[str, Any],
                                                       validate: bool) -> None:
    with contextlib.ExitStack() as stack:
        if not validate:
            stack.enter_context(attrs.validators.disabled())
        expected = _outcome(ATTRS, kwargs)
        with _compiling(10**9):
            for cls in FILLED:
                assert _outcome(cls, kwargs) == expected
                assert _outcome(aipk.record_maker(cls), kwargs) == expected
                assert "_materialize" in cls.__init__.__code__.co_names  # still not compiled
        with _compiling(0):
            for cls in COMPILED:
                cls(name="a")  # compiles its __init__, if not yet
                aipk.record_maker(cls)(name="a")
                assert _outcome(cls, kwargs) == expected
                assert _outcome(aipk.record_maker(cls), kwargs) == expected
                assert "_materialize" not in cls.__init__.__code__.co_names
                assert "_materialize" not in aipk.record_maker(cls).__code__.co_names


def test_a_record_filled_before_compiling_gets_a_fresh_factory_value() -> None:
    with _compiling(10**9):
        for cls in FILLED:
            one, two = cls(name="a", items=[1, 2]), cls(name="a")
            assert one.extra == {} and one.extra is not two.extra
            assert one.made is not two.made and one.total == 3 and one.hidden == 7
            maker = aipk.record_maker(cls)
            assert maker(name="a").extra is not maker(name="a").extra


@pytest.mark.skipif(not _records._QUICK, reason="this attrs or Python builds every record "
                                                 "through attrs itself")
def test_init_and_maker_compile_after_the_first_records() -> None:
    cls = _wide(fast_record(kw_only=True))
    stub = cls.__init__
    maker = aipk.record_maker(cls)
    maker_code = maker.__code__
    for n in range(_records._COMPILE_AFTER):
        assert cls(name="a", items=[n]).total == n
        assert maker(name="b", items=[n]).total == n
    assert cls.__init__ is stub and maker.__code__ is maker_code  # nothing compiled yet
    assert cls(name="a").name == maker(name="a").name == "a"
    assert cls.__init__ is not stub and "_materialize" not in cls.__init__.__code__.co_names
    assert aipk.record_maker(cls) is maker  # the same function, now compiled
    assert "_materialize" not in maker.__code__.co_names
    assert maker(name="c", items=[4]) == cls(name="c", items=[4])
    with pytest.raises(TypeError, match=r"Wide.__init__\(\) missing"):
        maker()


def test_the_filled_maker_reports_keywords_as_the_class_does() -> None:
    with _compiling(10**9):
        cls = FILLED[1]
        maker = aipk.record_maker(cls)
        for kwargs in ({}, {"name": "a", "unknown": 1}):
            with pytest.raises(TypeError) as by_class:
                cls(**kwargs)
            with pytest.raises(TypeError) as by_maker:
                maker(**kwargs)
            assert str(by_maker.value) == str(by_class.value)
        with pytest.raises(TypeError):
            maker("a")  # keywords only
