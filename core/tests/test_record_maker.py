"""``aipk.record_maker(cls)(**kw)`` is ``cls(**kw)``: the same record of the same class,
frozen, with the same errors (missing or unknown keywords, converters, validators, post-init
checks); a class it cannot make comes back as itself.

A record class's first records, and a maker's, are filled by reading the class's fields
(`aipk._records._fill`); only after `_COMPILE_AFTER` of them is the class's ``__init__`` (or
the maker) compiled. Both ways make the same record, with the same errors, as attrs' own
``__init__``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import aipk
from aipk import ChatResponse, FinishEvent, FinishReason, Message, TextDelta, Usage, _records
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
        # a takes_self factory: reads an earlier field
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


#: the same wide record built by attrs itself and by aipk's fast_record
WIDE = (_wide(attrs.frozen(kw_only=True)), _wide(fast_record(kw_only=True)))

WIDE_KWARGS = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b", "bad"])},
    optional={"items": st.lists(st.integers(-3, 3)) | st.just(()) | st.integers(),
              "extra": st.dictionaries(st.text(max_size=3), st.integers()),
              "total": st.integers(-2, 5), "label": st.sampled_from(["a", "B", ""]) | st.none(),
              "count": st.none() | st.integers(), "flag": st.booleans(),
              "hidden": st.integers(), "unknown": st.integers()})


def _outcome(make: Any, kwargs: dict[str, Any]) -> tuple[str, Any, Any]:
    try:
        made = make(**kwargs)
    except (TypeError, ValueError, AttributeError) as exc:
        return type(exc).__name__, str(exc), None
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.name = "changed"
    return "ok", made, type(made)


def _same(cls: type[Any], kwargs: dict[str, Any]) -> None:
    maker = aipk.record_maker(cls)
    assert maker is not cls
    assert _outcome(maker, kwargs) == _outcome(cls, kwargs)


@given(WIDE_KWARGS, st.sampled_from(WIDE), st.booleans())
def test_a_wide_record_is_made_as_its_class_makes_it(
        kwargs: dict[str, Any], cls: type[Any], validate: bool) -> None:
    with attrs.validators.disabled() if not validate else _nothing():
        _same(cls, kwargs)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_validators_run_unless_disabled() -> None:
    for cls in WIDE:
        maker = aipk.record_maker(cls)
        with pytest.raises(ValueError, match="total must be >= 0"):
            maker(name="a", total=-1)
        with attrs.validators.disabled():
            assert maker(name="a", total=-1).total == -1
        assert maker(name="a", items=[1, 2]).total == 3
        assert maker(name="a").hidden == 7
        assert maker(name="a").extra is not maker(name="a").extra  # a fresh factory value


COUNTS = st.none() | st.integers(0, 10**6)


@given(st.fixed_dictionaries({}, optional={
    "input_tokens": COUNTS, "output_tokens": COUNTS, "total_tokens": COUNTS,
    "reasoning_tokens": COUNTS, "cache_read_tokens": COUNTS, "cache_write_tokens": COUNTS,
    "unknown": st.integers()}))
def test_usage(kwargs: dict[str, Any]) -> None:
    _same(Usage, kwargs)


TEXT = st.none() | st.text(max_size=5)


@given(st.fixed_dictionaries({}, optional={
    "role": st.sampled_from(["user", "assistant", "system", "tool"]), "content": TEXT,
    "tool_call_id": TEXT, "name": TEXT, "cache": st.booleans(),
    "extra": st.dictionaries(st.text(max_size=3), st.integers()),
    "images": st.just(()) | st.just([]), "unknown": st.integers()}))
def test_message(kwargs: dict[str, Any]) -> None:
    _same(Message, kwargs)


@given(st.fixed_dictionaries({}, optional={
    "provider": st.sampled_from(["openai", "p"]), "model": st.text(max_size=5),
    "message": st.builds(Message.assistant, TEXT),
    "finish_reason": st.none() | st.sampled_from(FinishReason), "raw_finish_reason": TEXT,
    "usage": st.none() | st.builds(Usage, input_tokens=COUNTS, output_tokens=COUNTS),
    "id": TEXT, "refusal": TEXT, "reasoning": TEXT, "cost": st.none() | st.floats(0, 1),
    "extra": st.dictionaries(st.text(max_size=3), st.integers()), "unknown": st.integers()}))
def test_chat_response(kwargs: dict[str, Any]) -> None:
    _same(ChatResponse, kwargs)


def test_one_maker_per_class_with_the_class_signature() -> None:
    import inspect

    maker = aipk.record_maker(ChatResponse)
    assert aipk.record_maker(ChatResponse) is maker
    assert list(inspect.signature(maker).parameters) == [
        f.alias for f in attrs.fields(ChatResponse) if f.init]
    with pytest.raises(TypeError, match=r"ChatResponse.__init__\(\) missing"):
        maker(provider="p")
    with pytest.raises(TypeError):
        maker("p")  # keywords only


def test_a_class_it_cannot_make_comes_back_as_itself() -> None:
    @attrs.frozen
    class Positional:  # positional fields: fast_init refuses it
        a: int

    @attrs.frozen(kw_only=True, slots=False)
    class NotSlotted:
        a: int

    @attrs.frozen(kw_only=True)
    class OwnInit:
        a: int

        def __init__(self, *, a: int) -> None:
            object.__setattr__(self, "a", a + 1)

    @attrs.frozen(kw_only=True)
    class PreInit:
        a: int

        def __attrs_pre_init__(self) -> None:
            pass

    class Plain:
        pass

    for cls in (Positional, NotSlotted, OwnInit, PreInit, Plain, dict):
        assert aipk.record_maker(cls) is cls
    assert aipk.record_maker(OwnInit)(a=1).a == 2


@given(st.fixed_dictionaries({}, optional={
    "text": TEXT, "choice": st.integers(0, 3), "unknown": st.integers()}))
def test_a_record_of_few_fields_is_filled_by_its_setters(kwargs: dict[str, Any]) -> None:
    _same(TextDelta, kwargs)
    reason = {"reason": FinishReason.STOP, "raw": "stop"} if "text" in kwargs else {}
    _same(FinishEvent, {**reason, **{k: v for k, v in kwargs.items() if k != "text"}})


ATTRS = _wide(attrs.frozen(kw_only=True))
#: never compiled: every record is filled by `_fill` (see `_compiling`)
FILLED = (_wide(record(kw_only=True)), _wide(fast_record(kw_only=True)))
#: compiled by their first record
COMPILED = (_wide(record(kw_only=True)), _wide(fast_record(kw_only=True)))

FILL_KWARGS = st.fixed_dictionaries({}, optional={
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


def _fill_outcome(make: Any, kwargs: dict[str, Any]) -> tuple[str, Any]:
    try:
        made = make(**kwargs)
    except (TypeError, ValueError, AttributeError) as exc:
        return type(exc).__name__, str(exc).replace("Wide.__init__", "__init__")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.name = "changed"
    return "ok", attrs.asdict(made, recurse=False)


@pytest.mark.skipif(not _records._QUICK, reason="this attrs or Python builds every record "
                                                 "through attrs itself")
@given(FILL_KWARGS, st.booleans())
def test_filled_and_compiled_records_are_attrs_records(kwargs: dict[str, Any],
                                                       validate: bool) -> None:
    with contextlib.ExitStack() as stack:
        if not validate:
            stack.enter_context(attrs.validators.disabled())
        expected = _fill_outcome(ATTRS, kwargs)
        with _compiling(10**9):
            for cls in FILLED:
                assert _fill_outcome(cls, kwargs) == expected
                assert _fill_outcome(aipk.record_maker(cls), kwargs) == expected
                assert "_materialize" in cls.__init__.__code__.co_names  # still not compiled
        with _compiling(0):
            for cls in COMPILED:
                cls(name="a")  # compiles its __init__, if not yet
                aipk.record_maker(cls)(name="a")
                assert _fill_outcome(cls, kwargs) == expected
                assert _fill_outcome(aipk.record_maker(cls), kwargs) == expected
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
