"""``aipk.record_maker(cls)(**kw)`` is ``cls(**kw)``: the same record of the same class,
frozen, with the same errors (missing or unknown keywords, converters, validators, post-init
checks); a class it cannot make comes back as itself."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import aipk
from aipk import ChatResponse, FinishEvent, FinishReason, Message, TextDelta, Usage
from aipk._records import fast_record


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
