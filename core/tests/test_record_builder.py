"""`aipk._records.record` (and `fast_record`) make the same records as
``attrs.frozen(kw_only=True)``: equality, hashing, repr (secret-masking repr callables
included), construction and signature, frozen and slotted; compared field kind by field kind
over generated values."""

from __future__ import annotations

import inspect
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipk import ChatResponse, Credential, HttpRequest, Message, Provider, Secret, Usage
from aipk._records import fast_record, record


def _mask(value: str) -> str:
    return "'***'" if value else "''"


def _body(with_init_false: bool = True) -> type[Any]:
    class Rec:
        name: str
        secret: str = attrs.field(default="", repr=_mask)
        items: tuple[int, ...] = attrs.field(default=(), converter=tuple)
        note: str = attrs.field(default="", eq=False)
        weight: float = attrs.field(default=1.0, hash=False)
        extra: Any = None

        def label(self) -> str:
            return f"{self.name}!"

    if with_init_false:
        Rec.__annotations__["cache"] = "list[Any]"
        Rec.cache = attrs.field(factory=list, init=False, repr=False, eq=False)  # type: ignore[attr-defined]
    return Rec


PLAIN = attrs.frozen(kw_only=True)(_body())
REC = record(kw_only=True)(_body())
PLAIN_NO_CACHE = attrs.frozen(kw_only=True)(_body(False))
FAST = fast_record(kw_only=True)(_body(False))

values = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b"])},
    optional={"secret": st.sampled_from(["", "sk-live-123"]),
              "items": st.lists(st.integers(0, 2), max_size=2),
              "note": st.sampled_from(["", "x"]), "weight": st.sampled_from([1.0, 2.5]),
              "extra": st.none() | st.integers(0, 1) | st.just({"unhashable": 1})})


def _hash(obj: Any) -> Any:
    try:
        return hash(obj)
    except TypeError as exc:
        return type(exc)


@given(values, values)
def test_equality_hash_and_repr_match_attrs(one: dict[str, Any], two: dict[str, Any]) -> None:
    for plain_cls, rec_cls in ((PLAIN, REC), (PLAIN_NO_CACHE, FAST)):
        p1, p2, r1, r2 = plain_cls(**one), plain_cls(**two), rec_cls(**one), rec_cls(**two)
        assert repr(r1) == repr(p1)
        assert "sk-live" not in repr(r1)
        assert (r1 == r2) == (p1 == p2)
        assert (r1 != r2) == (p1 != p2)
        assert r1 == rec_cls(**one)
        assert (_hash(r1) is TypeError) == (_hash(p1) is TypeError)
        if r1 == r2 and _hash(r1) is not TypeError:
            assert hash(r1) == hash(r2)
        assert r1 != p1 and r1.__eq__(p1) is NotImplemented  # another class is never equal
        assert attrs.asdict(r1) == attrs.asdict(p1)


def test_construction_signature_and_frozen_slots_match_attrs() -> None:
    assert inspect.signature(REC.__init__) == inspect.signature(PLAIN.__init__)
    assert inspect.signature(FAST.__init__) == inspect.signature(PLAIN_NO_CACHE.__init__)
    assert FAST.__init__.__code__.co_filename.startswith("<aipk fast_init")
    for cls in (REC, FAST):
        made = cls(name="a", items=[1, 2])
        assert made.items == (1, 2) and made.label() == "a!"
        assert "__slots__" in cls.__dict__ and not hasattr(made, "__dict__")
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            made.name = "b"
        with pytest.raises(TypeError):
            cls("a")  # keyword-only
        with pytest.raises(TypeError):
            cls(nam="a")
        assert attrs.evolve(made, name="b").name == "b"
    assert REC(name="a").cache == []


def test_repr_of_a_record_inside_itself() -> None:
    def node() -> type[Any]:
        class Node:
            name: str
            children: list[Any] = attrs.field(factory=list)

        return Node

    plain = attrs.frozen(kw_only=True)(node())(name="a")
    rec = record(kw_only=True)(node())(name="a")
    plain.children.append(plain)
    rec.children.append(rec)
    assert repr(rec) == repr(plain) == "Node(name='a', children=[...])"


def test_methods_the_class_writes_itself_are_kept() -> None:
    @record(kw_only=True)
    class Own:
        value: int

        def __eq__(self, other: object) -> bool:
            return True

        def __repr__(self) -> str:
            return "own"

    assert Own(value=1) == Own(value=2) and repr(Own(value=1)) == "own"
    with pytest.raises(TypeError):  # defining __eq__ alone makes a class unhashable, as in attrs
        hash(Own(value=1))

    @record(kw_only=True, repr=False)
    class Quiet:
        value: int

    assert repr(Quiet(value=1)).startswith("<")

    with pytest.raises(TypeError, match="kw_only=True"):
        record(_body())


def test_the_first_call_records_are_made_this_way_and_mask_secrets() -> None:
    for cls in (Message, ChatResponse, Usage, HttpRequest, Provider, Credential):
        assert cls.__eq__.__module__ == "aipk._records", cls
    credential = Credential(kind="api_key", secret=Secret("sk-live-abcdef"), id="k1")
    assert "sk-live-abcdef" not in repr(credential)
    assert credential == Credential(kind="api_key", secret=Secret("sk-live-abcdef"), id="k1")
    assert Usage(input_tokens=1, output_tokens=2) == Usage(input_tokens=1, output_tokens=2)
    assert len({Usage(input_tokens=1), Usage(input_tokens=1)}) == 1
