"""`record` builds the common record class itself (`aipk._records._quick_class`) instead of
through attrs' general machinery: the class must be the one attrs builds, field for field.
Checked for every record aipk and its plugins define (each imported once built directly and
once through attrs, in fresh processes) and for generated classes."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipk import _records
from aipk._records import fast_record, record

_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def describe(cls: type) -> dict[str, Any]:
    """Everything attrs decides about a class, as comparable text."""
    def text(value: Any) -> str:
        return _ADDRESS.sub("", repr(value))

    fields = attrs.fields(cls)
    init = cls.__dict__["__init__"]
    attrs_init = cls.__dict__.get("__attrs_init__")
    return {
        "keys": sorted(cls.__dict__),
        "slots": list(cls.__dict__["__slots__"]),
        "match_args": list(cls.__dict__["__match_args__"]),
        "props": text(getattr(cls, "__attrs_props__", None)),
        "fields": [text(field) + f" alias_is_default={getattr(field, 'alias_is_default', None)}"
                   for field in fields],
        "fields_class": type(fields).__name__,
        "field_properties": [getattr(fields, f.name) is f for f in fields],
        "setattr": text(cls.__dict__["__setattr__"]),
        "delattr": text(cls.__dict__["__delattr__"]),
        "state_docs": [cls.__dict__[name].__doc__ for name in ("__getstate__", "__setstate__")],
        "signature": str(inspect.signature(cls)),
        "init_annotations": text(init.__annotations__),
        "init_doc": init.__doc__,
        "init_names": [init.__module__, init.__qualname__],
        "init_kwdefaults": text(init.__kwdefaults__),
        "attrs_init": None if attrs_init is None else [
            str(inspect.signature(attrs_init)), attrs_init.__doc__, attrs_init.__qualname__,
            text(attrs_init.__annotations__)],
        "class": [cls.__module__, cls.__qualname__, cls.__doc__, type(cls).__name__,
                  [base.__name__ for base in cls.__mro__]],
        "hash": text(cls.__dict__.get("__hash__", "inherited")),
    }


_DUMP = textwrap.dedent("""
    import importlib, json, pkgutil, sys
    import attrs
    sys.path.insert(0, {tests!r})
    from aipk import _records
    _records._QUICK = {quick}
    from test_record_quick_build import describe
    packages = ["aipk"] + sorted(m.name for m in pkgutil.iter_modules()
                                 if m.name.startswith("aipk_"))
    for name in packages:
        package = importlib.import_module(name)
        for info in pkgutil.walk_packages(getattr(package, "__path__", []), name + "."):
            if info.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except ImportError:  # an optional extra that is not installed
                pass
    found = {{}}  # records, not their builders (`_records.record_builder`)
    for module in list(sys.modules.values()):
        for value in list(vars(module).values()):
            if isinstance(value, type) and "__attrs_attrs__" in value.__dict__ \\
                    and getattr(value.__eq__, "__module__", "") == "aipk._records":
                found[f"{{value.__module__}}.{{value.__qualname__}}"] = describe(value)
    print(json.dumps(found))
""")


def _records_of_every_module(quick: bool) -> dict[str, Any]:
    code = _DUMP.format(tests=str(__import__("pathlib").Path(__file__).parent), quick=quick)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, env={"PYTHONHASHSEED": "0", "PATH": ""})
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.skipif(not _records._QUICK, reason="this attrs or Python builds every record "
                                                 "through attrs itself")
def test_every_record_is_the_class_attrs_builds() -> None:
    direct, via_attrs = _records_of_every_module(True), _records_of_every_module(False)
    assert len(direct) > 30 and direct.keys() == via_attrs.keys()
    for name in direct:
        assert direct[name] == via_attrs[name], name


@pytest.mark.skipif(not _records._QUICK, reason="this attrs or Python builds every record "
                                                 "through attrs itself")
def test_most_records_are_built_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _records._QUICK
    built: list[type | None] = []
    quick = _records._quick_class

    def counting(target: type, *, fast: bool) -> type | None:
        built.append(quick(target, fast=fast))
        return built[-1]

    monkeypatch.setattr(_records, "_quick_class", counting)

    @record(kw_only=True)
    class Plain:
        name: str
        tags: tuple[str, ...] = ()

    @record(kw_only=True)
    class Shared:
        DEFAULT: ClassVar[Shared]
        name: str = "a"

    @record(kw_only=True)
    class Checked:
        name: str = attrs.field(validator=attrs.validators.instance_of(str))

    @record(kw_only=True)
    class Positional:
        name: str = attrs.field(kw_only=False)

    @record(kw_only=True)
    class Converted:
        name: str = attrs.field(converter=attrs.Converter(  # type: ignore[misc]
            lambda value, self: f"{type(self).__name__}:{value}", takes_self=True))

    assert built[0] is Plain and built[1] is Shared  # a ClassVar is no field: built directly
    assert built[2] is Checked  # validators run as attrs runs them (see below)
    assert built[3:] == [None, None]  # attrs builds these
    assert [f.name for f in attrs.fields(Shared)] == ["name"]
    assert Positional("a").name == "a" and Positional.__match_args__ == ("name",)
    assert Converted(name="a").name == "Converted:a"
    with pytest.raises(TypeError):
        Checked(name=1)  # type: ignore[arg-type]


def _converter(value: Any) -> tuple[Any, ...]:
    return tuple(value)


_KINDS: dict[str, Callable[[], Any]] = {
    "required": lambda: attrs.NOTHING,
    "default": lambda: 0,
    "none": lambda: None,
    "factory": lambda: attrs.field(factory=list),
    "self_factory": lambda: attrs.field(default=attrs.Factory(lambda self: 1, takes_self=True)),
    "no_repr": lambda: attrs.field(default="", repr=False),
    "no_eq": lambda: attrs.field(default="", eq=False),
    "no_hash": lambda: attrs.field(default=1, hash=False),
    "converter": lambda: attrs.field(default=(), converter=_converter),
    "alias": lambda: None,  # made in _class, with an alias of its field's name
    "metadata": lambda: attrs.field(default=3, metadata={"doc": "x"}),
    "validator": lambda: attrs.field(default=0, validator=attrs.validators.instance_of(int)),
    "no_init": lambda: attrs.field(default=5, init=False),
    "no_init_factory": lambda: attrs.field(factory=list, init=False),
    "no_init_self_factory": lambda: attrs.field(
        default=attrs.Factory(lambda self: 6, takes_self=True), init=False),
    "no_init_converted": lambda: attrs.field(default="4", init=False, converter=int),
    "no_init_validated": lambda: attrs.field(default=5, init=False,
                                             validator=attrs.validators.instance_of(int)),
    "validated_converted": lambda: attrs.field(default="3", converter=int,
                                               validator=attrs.validators.instance_of(int)),
    "class_var": lambda: 1,
}

specs = st.lists(st.tuples(st.sampled_from(["a", "_b", "c_", "d", "e"]),
                           st.sampled_from(sorted(_KINDS))),
                 max_size=5, unique_by=lambda spec: spec[0])


def _class(spec: list[tuple[str, str]], post_init: bool) -> type:
    class Generated:
        """Doc."""

        def own_class(self) -> Any:
            return __class__  # type: ignore[name-defined]  # a cell attrs points at its class

    annotations: dict[str, str] = {}
    for name, kind in spec:
        annotations[name] = "ClassVar[int]" if kind == "class_var" else "int"
        value: Any = attrs.field(default=2, alias=f"renamed{name}") if kind == "alias" \
            else _KINDS[kind]()
        if value is not attrs.NOTHING:
            setattr(Generated, name, value)
    Generated.__annotations__ = annotations
    if post_init:
        Generated.__attrs_post_init__ = lambda self: None  # type: ignore[attr-defined]
    return Generated


def _hash(obj: Any) -> Any:
    try:
        return hash(obj)
    except TypeError as exc:
        return type(exc)


@settings(max_examples=80, deadline=None)
@given(specs, st.booleans(), st.booleans())
def test_generated_classes_match_attrs(spec: list[tuple[str, str]], post_init: bool,
                                       fast: bool) -> None:
    build = fast_record(kw_only=True) if fast else record(kw_only=True)
    ours = build(_class(spec, post_init))
    saved = _records._QUICK
    try:
        _records._QUICK = False
        theirs = build(_class(spec, post_init))
    finally:
        _records._QUICK = saved
    assert describe(ours) == describe(theirs)
    arguments = {field.alias: 7 for field in attrs.fields(ours)
                 if field.init and field.default is attrs.NOTHING}
    one, two = ours(**arguments), theirs(**arguments)
    assert describe(ours) == describe(theirs)  # with the __init__ its first record compiled
    assert repr(one) == repr(two)
    assert attrs.asdict(one) == attrs.asdict(two)
    assert one == ours(**arguments) and _hash(one) == _hash(ours(**arguments))
    assert attrs.evolve(one) == one
    copy: Any = object.__new__(ours)
    copy.__setstate__(one.__getstate__())
    assert copy == one
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        one.anything = 1
    assert not hasattr(one, "__dict__")
    assert one.own_class() is ours and two.own_class() is theirs
    validated = {field.alias for field in attrs.fields(ours) if field.init and field.validator}
    if validated:  # a value its validator refuses: the same error from both
        wrong = {**arguments, **dict.fromkeys(validated, "x")}
        with pytest.raises((TypeError, ValueError)) as ours_error:  # a converter's or the
            ours(**wrong)                                              # validator's own error
        with pytest.raises((TypeError, ValueError)) as theirs_error:
            theirs(**wrong)
        assert type(ours_error.value) is type(theirs_error.value)
        assert str(ours_error.value) == str(theirs_error.value)


@pytest.mark.parametrize("fast", [False, True])
def test_validators_and_fields_outside_init_behave_as_attrs_makes_them(fast: bool) -> None:
    build = fast_record(kw_only=True) if fast else record(kw_only=True)

    @build
    class Checked:
        size: int = attrs.field(validator=attrs.validators.instance_of(int))
        seen: list[int] = attrs.field(factory=list, init=False)
        unset: int = attrs.field(init=False)
        level: int = attrs.field(default="2", init=False, converter=int)

    checked = Checked(size=3)
    assert (checked.size, checked.seen, checked.level) == (3, [], 2)
    assert not hasattr(checked, "unset")  # attrs leaves it unset too
    assert str(inspect.signature(Checked)) == "(*, size: 'int') -> None"
    with pytest.raises(TypeError, match="'size' must be <class 'int'>"):
        Checked(size="3")  # type: ignore[arg-type]
    attrs.validators.set_disabled(True)
    try:
        assert Checked(size="3").size == "3"  # type: ignore[arg-type]  # validators off
    finally:
        attrs.validators.set_disabled(False)


@pytest.mark.skipif(not _records._QUICK, reason="this attrs or Python builds every record "
                                                 "through attrs itself")
def test_init_is_compiled_after_the_first_records_and_a_held_one_keeps_working() -> None:
    @record(kw_only=True)
    class Lazy:
        name: str
        tags: list[str] = attrs.field(factory=list)
        size: int = 1

    @fast_record(kw_only=True)
    class LazyFast:
        name: str
        size: int = 1

    for cls in (Lazy, LazyFast):
        held = cls.__init__
        signature = inspect.signature(cls)
        assert "_materialize" in held.__code__.co_names  # nothing compiled for it yet
        for _ in range(_records._COMPILE_AFTER):  # the first records: filled, not compiled
            assert cls(name="a").name == "a"
        assert cls.__init__ is held
        made = cls(name="a")
        assert "_materialize" not in cls.__init__.__code__.co_names
        assert inspect.signature(cls) == signature
        assert cls.__init__.__code__.co_filename == held.__code__.co_filename
        assert made == cls(name="a", size=1) and made.size == 1
        again: Any = object.__new__(cls)
        held(again, name="b", size=2)  # the first __init__, kept by a caller, still works
        assert again == cls(name="b", size=2)
        with pytest.raises(TypeError):
            held(again)  # type: ignore[call-arg]  # a required field missing, as in attrs' __init__
    assert Lazy(name="a").tags == [] and Lazy(name="a").tags is not Lazy(name="a").tags
    late: Any = object.__new__(LazyFast)
    LazyFast.__attrs_init__(late, name="c")  # type: ignore[attr-defined]
    assert late == LazyFast(name="c")
