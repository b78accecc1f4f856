"""aipk's frozen records: cheaper to create, and faster to construct on the hot path.

``@record(kw_only=True)`` is ``attrs.frozen(kw_only=True)`` (slotted, frozen) whose ``__eq__``,
``__hash__`` and ``__repr__`` are made from closures over the class's fields instead of
generated source compiled per class: attrs compiles those methods when the class is created,
about half a millisecond a record, paid by every process before its first call. They behave as
attrs' own do: equal when of the same class with equal ``eq`` fields, a hash over the ``hash``
fields, ``Name(field=value, ...)`` over the ``repr`` fields (a field's own ``repr`` callable
applied, ``...`` for a record already being shown), and a method the class defines itself is
kept. ``@fast_record(kw_only=True)`` also gives it `fast_init()`'s ``__init__`` (attrs builds
no ``__init__`` only for it to be replaced, just its ``__attrs_init__``). Type checkers see both
as ``attrs.frozen``.

attrs' generated ``__init__`` for a frozen class sets each field with
``object.__setattr__(self, name, value)``, which looks the name up on the type for every field
(about 100 ns a field; a request builds about fifty). `fast_init()` replaces it with one
that calls each slot's own descriptor, with the same keyword-only signature, defaults,
factories, converters, ``init=False`` fields (set to their default or factory, as attrs sets
them), validators (run after every field is set, unless ``attrs.validators.set_disabled()``)
and ``__attrs_post_init__``: the same records from the same arguments, the same errors for bad
ones. A converter is not called for a field at its default when it returns that default
unchanged (``()`` through ``tuple``, ``None`` through a converter that keeps None): converters
are pure, so the record is the same. Records with positional fields keep attrs' own.

A record of three fields or more is filled as its builder (`record_builder()`): a subclass
adding only Python's own ``__setattr__``, to which the new record is switched (``__class__``
assignment, allowed between classes of one layout) for plain slot stores, which the
interpreter specialises, and switched back before ``__init__`` goes on (also when a field's
converter or factory raises). A ``takes_self`` factory therefore sees the record as its
builder, a subclass of its own class.

`record_maker()` gives code that builds a record on every request (a plugin's reply parsing) a
plain function with the class's keyword signature making the same record, filled the same way:
a class call with keywords packs them into a dict for ``__init__``, a function call does not.

Most records (no base class, keyword-only fields, no ``on_setattr`` hooks or ``attrs.Converter``
objects) are not built by attrs' general machinery at all: `_quick_class` makes the class
attrs would make (the same ``__attrs_attrs__``, slots, ``__setattr__``, pickling methods and
signature; a test compares every aipk record with its attrs-built twin), and its ``__init__``
is compiled only once the class has made `_COMPILE_AFTER` records (`_deferred_init`): a
process pays only for the records it uses, and a short-lived one (a command, a serverless
function) for none. Until then, and for a `record_maker` until it has made as many, each
record is filled by `_fill`, which reads the class's fields instead of running code generated
for them: the same record, with the same errors, at a few times the cost.

Building classes this way uses attrs' own internal pieces, so it runs only where they have the
shapes it was checked against (`_CHECKED_ATTRIBUTE_INIT` …) and before Python 3.13; otherwise
attrs builds every record itself.
"""

from __future__ import annotations

import builtins
import inspect
import sys
import threading
import weakref
from collections.abc import Callable
from functools import cached_property
from operator import attrgetter
from types import CodeType, FunctionType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs

_T = TypeVar("_T")

__all__ = ["SET_CLASS", "fast_init", "fast_record", "record", "record_builder", "record_maker",
           "slot_setters"]


def _build(target: type[_T], *, kw_only: bool, repr: bool, fast: bool) -> type[_T]:
    if not kw_only:
        raise TypeError(f"record: {target.__name__} must be keyword-only (kw_only=True)")
    own = target.__dict__
    made: type[_T] | None = _quick_class(target, fast=fast) if _QUICK else None
    if made is None:
        made = attrs.frozen(kw_only=True, eq=False, repr=False, init=not fast)(target)
        fields = attrs.fields(made)  # type: ignore[arg-type]
    else:
        fields, fast = made.__attrs_attrs__, False  # type: ignore[attr-defined]
    if any(f.eq_key is not None for f in fields):
        raise TypeError(f"record: {target.__name__} has an eq_key field; use attrs.frozen")
    if "__eq__" not in own and "__ne__" not in own:
        made.__eq__ = _make_eq(made, fields)  # type: ignore[method-assign]
        if "__hash__" not in own:
            made.__hash__ = _make_hash(made, fields)  # type: ignore[method-assign,assignment]
    if repr and "__repr__" not in own:
        made.__repr__ = _make_repr(fields)  # type: ignore[method-assign]
    return fast_init(made, own_init=False) if fast else made


if TYPE_CHECKING:  # to type checkers (and attrs' mypy plugin) both are attrs.frozen
    from attrs import frozen as fast_record
    from attrs import frozen as record
else:
    def record(cls=None, /, *, kw_only=False, repr=True):
        """``attrs.frozen(kw_only=True)`` with closure-made ``__eq__``, ``__hash__`` and
        ``__repr__`` (``repr=False``: the class writes its own)."""
        def build(target):
            return _build(target, kw_only=kw_only, repr=repr, fast=False)

        return build if cls is None else build(cls)

    def fast_record(cls=None, /, *, kw_only=False, repr=True):
        """`record` with `fast_init()`'s ``__init__`` (attrs builds only its ``__attrs_init__``)."""
        def build(target):
            return _build(target, kw_only=kw_only, repr=repr, fast=True)

        return build if cls is None else build(cls)


# attrs' own pieces for `_quick_class`: it builds, without attrs' general machinery, the same
# class attrs would for the common record (fields of plain defaults or keyword-only
# ``attrs.field()``s, no base class); anything else, or an attrs whose internals differ, goes to
# attrs.
#: The shapes of the attrs internals `_quick_class` was checked against (attrs 26.1).
_CHECKED_ATTRIBUTE_INIT = ("self", "name", "default", "validator", "repr", "cmp", "hash", "init",
                           "inherited", "metadata", "type", "converter", "kw_only", "eq",
                           "eq_key", "order", "order_key", "on_setattr", "alias",
                           "alias_is_default")
_CHECKED_ATTRIBUTE_SLOTS = ("name", "default", "validator", "repr", "eq", "eq_key", "order",
                            "order_key", "hash", "init", "metadata", "type", "converter",
                            "kw_only", "inherited", "on_setattr", "alias", "alias_is_default")
_CHECKED_CLASS_PROPS = ("is_exception", "is_slotted", "has_weakref_slot", "is_frozen", "kw_only",
                        "collected_fields_by_mro", "added_init", "added_repr", "added_eq",
                        "added_ordering", "hashability", "added_match_args", "added_str",
                        "added_pickling", "on_setattr_hook", "field_transformer")

try:
    from attr import _config  # whether validators run (attrs.validators.set_disabled())
except ImportError:  # pragma: no cover - another attrs
    _config = None  # type: ignore[assignment]
try:
    from attr._make import (
        Attribute,
        ClassProps,
        _CountingAttr,
        _default_init_alias_for,
        _frozen_delattrs,
        _frozen_setattrs,
        _is_class_var,
        _make_attr_tuple_class,
    )

    _PROPS = {init: ClassProps(  # type: ignore[no-untyped-call]
        is_exception=False, is_slotted=True, has_weakref_slot=True, is_frozen=True,
        kw_only=ClassProps.KeywordOnly.YES, collected_fields_by_mro=True, added_init=init,
        added_repr=False, added_eq=False, added_ordering=False,
        hashability=ClassProps.Hashability.LEAVE_ALONE, added_match_args=True, added_str=False,
        added_pickling=True, on_setattr_hook=None, field_transformer=None,
    ) for init in (False, True)}
    # 3.13 adds __replace__, 3.14 lazy annotations; and only attrs internals shaped as the
    # ones this was checked against (test_record_quick_build compares every record with its
    # attrs-built twin): any other attrs builds every record itself. (Shapes, not the version:
    # attrs reads its version through importlib.metadata, which a first call does not load.)
    _init_code = Attribute.__init__.__code__
    _QUICK = sys.version_info < (3, 13) and (
        _init_code.co_varnames[:_init_code.co_argcount] == _CHECKED_ATTRIBUTE_INIT
        and Attribute.__slots__ == _CHECKED_ATTRIBUTE_SLOTS
        and ClassProps.__slots__ == _CHECKED_CLASS_PROPS)
except (ImportError, AttributeError, TypeError):  # pragma: no cover - another attrs
    _QUICK = False

#: attrs' converter object that can take the instance or field (attrs 24.1 on): attrs builds it.
_CONVERTER: Any = getattr(attrs, "Converter", ())

#: What a class may define itself and still be built by `_quick_class`.
_ATTRS_OWNED = ("__init__", "__setattr__", "__delattr__", "__attrs_pre_init__", "__slots__",
                "__getstate__", "__setstate__", "__match_args__", "__attrs_attrs__",
                "__attrs_init_subclass__", "__attrs_init__")


def _quick_class(target: type[_T], *, fast: bool) -> type[_T] | None:
    """``attrs.frozen(kw_only=True, eq=False, repr=False, init=not fast)(target)`` with
    `fast_init()`'s ``__init__``, built directly; None when attrs must build it."""
    own = target.__dict__
    if target.__bases__ != (object,) or any(name in own for name in _ATTRS_OWNED) \
            or hasattr(target, "__attrs_init_subclass__"):
        return None
    annotations: dict[str, Any] = own.get("__annotations__", {})
    fields: list[Any] = []
    for name, annotation in annotations.items():
        if _is_class_var(annotation):  # type: ignore[no-untyped-call]  # a class attribute
            continue
        value = own.get(name, NOTHING)
        if value.__class__ is not _CountingAttr:  # what attrs makes of ``attrib(value)``
            fields.append(Attribute(  # type: ignore[no-untyped-call]
                name, value, None, True, None, None, True, False, None, annotation, None, True,
                True, None, True, None, None, _default_init_alias_for(name), True))
            continue
        if value.kw_only is False or value.on_setattr is not None \
                or isinstance(value.converter, _CONVERTER) or (
                    not value.init and value._default is NOTHING and value.converter is not None):
            return None
        field = Attribute.from_counting_attr(name, value, True, annotation)
        if not field.alias:
            object.__setattr__(field, "alias", _default_init_alias_for(name))
            object.__setattr__(field, "alias_is_default", True)
        fields.append(field)
    names = tuple(field.name for field in fields)
    if any(value.__class__ is _CountingAttr and key not in names
           for key, value in own.items()) \
            or any(isinstance(value, cached_property) for value in own.values()):
        return None
    body = {key: value for key, value in own.items()
            if key not in names and key not in ("__dict__", "__weakref__")}
    body["__attrs_attrs__"] = _make_attr_tuple_class(target.__name__, list(names))(fields)
    body["__attrs_props__"] = _PROPS[not fast]
    body["__setattr__"] = _frozen_setattrs
    body["__delattr__"] = _frozen_delattrs
    body["__getstate__"], body["__setstate__"] = _pickling(names)
    body["__match_args__"] = ()
    body["__slots__"] = (*names, "__weakref__")
    body["__qualname__"] = target.__qualname__
    made: type[_T] = cast("Any", type(target))(target.__name__, target.__bases__, body)
    _rebind_class_cells(target, made)
    target.__attrs_base_of_slotted__ = weakref.ref(made)  # type: ignore[attr-defined]
    _deferred_init(made, fields, fast=fast)
    return made


def _deferred_init(cls: type, fields: list[Any], *, fast: bool) -> None:
    """Give ``cls`` an ``__init__`` with `fast_init()`'s signature, defaults and annotations
    that fills its first records with `_fill`, then compiles `fast_init()`'s and puts it in its
    place: compiling takes longer than the rest of building the class, most records are never
    made by a given program, and a short-lived one makes few of each.
    ``fast`` (`fast_record`): an ``__attrs_init__`` too, as attrs gives a class it builds no
    ``__init__`` for."""
    plan: list[_Fill] = []  # `_fill`'s, made by the first record
    made = 0

    def materialize(self: Any, values: dict[str, Any]) -> None:
        nonlocal made
        del values["self"]
        if cls.__dict__["__init__"] is stub:
            made += 1
            if made <= _COMPILE_AFTER and _config is not None:
                if not plan:
                    plan.append(_init_plan(cls)[4])
                _fill(plan[0], self, values)
                return
            fast_init(cls)  # with the stub's annotations and docstring, already made
        cls.__dict__["__init__"](self, **values)

    fields = [field for field in fields if field.init]  # init=False fields take no argument
    aliases = tuple(field.alias for field in fields)
    code = _stub_code(len(aliases)).replace(
        co_varnames=("self", *aliases), co_filename=f"<aipk fast_init {cls.__qualname__}>")
    names = {"__builtins__": builtins, "_materialize": materialize}
    defaults = {field.alias: NOTHING if isinstance(field.default, attrs.Factory)  # type: ignore[arg-type]
                else field.default for field in fields if field.default is not NOTHING}
    annotations = _init_annotations(tuple(fields))
    doc = f"Method generated by attrs for class {cls.__qualname__}."
    for name in ("__init__", "__attrs_init__") if fast else ("__init__",):
        function = FunctionType(code, names, name)
        function.__kwdefaults__ = dict(defaults) or None
        function.__annotations__ = dict(annotations)
        function.__module__ = cls.__module__
        function.__qualname__ = f"{cls.__qualname__}.{name}"
        function.__doc__ = None if name == "__init__" and fast else doc
        setattr(cls, name, function)
    stub = cls.__dict__["__init__"]


def _stub(self: Any) -> None:  # pragma: no cover - only its code is used, by `_stub_code()`
    _materialize(self, locals())  # type: ignore[name-defined]  # noqa: F821


def _stub_code(count: int) -> CodeType:
    """The code of ``def __init__(self, *, p0, ..., pN): _materialize(self, locals())``: the
    code of `_stub` given ``self`` and ``count`` keyword-only parameters (named per class by
    the caller), without compiling anything. Its body reads only ``self`` (the first local)
    and ``locals()``, so the same bytecode serves every count."""
    return _stub.__code__.replace(co_argcount=1, co_kwonlyargcount=count, co_nlocals=count + 1,
                                  co_varnames=("self", *(f"p{i}" for i in range(count))),
                                  co_name="__init__", co_firstlineno=1)


def _pickling(names: tuple[str, ...]) -> tuple[Callable[[Any], Any], Callable[[Any, Any], None]]:
    """attrs' ``__getstate__`` and ``__setstate__`` for a slotted class with these fields."""
    def slots_getstate(self: Any) -> dict[str, Any]:
        """
            Automatically created by attrs.
            """
        return {name: getattr(self, name) for name in names}

    def slots_setstate(self: Any, state: Any) -> None:
        """
            Automatically created by attrs.
            """
        bound_setattr = object.__setattr__.__get__(self)
        if isinstance(state, tuple):  # attrs before 22.2 pickled tuples
            for name, value in zip(names, state, strict=False):
                bound_setattr(name, value)
        else:
            for name in names:
                if name in state:
                    bound_setattr(name, state[name])

    return slots_getstate, slots_setstate


def _rebind_class_cells(old: type, new: type) -> None:
    """Point the ``__class__`` cells of ``new``'s methods (no-argument ``super()``) at it."""
    for item in new.__dict__.values():
        if isinstance(item, (classmethod, staticmethod)):
            cells = getattr(item.__func__, "__closure__", None)
        elif isinstance(item, property):
            cells = getattr(item.fget, "__closure__", None)
        else:
            cells = getattr(item, "__closure__", None)
        for cell in cells or ():
            try:
                if cell.cell_contents is old:
                    cell.cell_contents = new
            except ValueError:  # an empty cell
                pass


def _getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda self: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda self: (one(self),)
    return attrgetter(*names)


def _make_eq(cls: type, fields: tuple[attrs.Attribute[Any], ...]) -> Callable[[Any, Any], Any]:
    values = _getter([f.name for f in fields if f.eq])

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return values(self) == values(other)

    __eq__.__qualname__ = f"{cls.__qualname__}.__eq__"
    return __eq__


def _make_hash(cls: type, fields: tuple[attrs.Attribute[Any], ...]) -> Callable[[Any], int]:
    values = _getter([f.name for f in fields
                      if f.hash is True or (f.hash is None and f.eq)])
    seed = hash(f"<aipk record {cls.__module__}.{cls.__qualname__}>")

    def __hash__(self: Any) -> int:
        return hash((seed, *values(self)))

    __hash__.__qualname__ = f"{cls.__qualname__}.__hash__"
    return __hash__


_repr_context = threading.local()
NOTHING = attrs.NOTHING


def _make_repr(fields: tuple[attrs.Attribute[Any], ...]) -> Callable[[Any], str]:
    shown = [(f.name, builtins_repr if f.repr is True else f.repr, f.init)
             for f in fields if f.repr is not False]

    def __repr__(self: Any) -> str:
        showing: set[int] | None = getattr(_repr_context, "showing", None)
        if showing is None:
            showing = _repr_context.showing = set()
        if id(self) in showing:
            return "..."
        showing.add(id(self))
        try:
            parts = [f"{name}={show(getattr(self, name) if init else getattr(self, name, NOTHING))}"
                     for name, show, init in shown]
            return f"{self.__class__.__qualname__.rsplit('>.', 1)[-1]}({', '.join(parts)})"
        finally:
            showing.discard(id(self))

    return __repr__


builtins_repr = repr


#: What `_init_plan` returns: the generated code's globals, its keyword parameters, the field
#: stores (code before the store, field name, value), the validator calls, and the same
#: ``__init__`` as data for `_fill`.
_Plan = tuple[dict[str, Any], list[str], list[tuple[str, str, str]], list[str], "_Fill"]

#: One field's store for `_fill`: the keyword it is given as (None: ``init=False``), its plain
#: default (NOTHING: none, or a factory), its factory, whether the factory takes the record,
#: its converter and its slot's setter.
_Store = tuple[str | None, Any, Any, bool, Any, Callable[[Any, Any], None]]

#: `_fill`'s plan: the stores in field order, the validators (validator, field, name) and
#: whether the class has an ``__attrs_post_init__``.
_Fill = tuple[list[_Store], list[tuple[Any, Any, str]], bool]

#: How many records of a class `_fill` makes before its ``__init__`` (or `record_maker`'s
#: maker) is compiled: compiling one costs about what filling a hundred records that way
#: does, and a short-lived process (a command, a serverless function) makes a few of each.
_COMPILE_AFTER = 16


def _fill(plan: _Fill, self: Any, values: dict[str, Any]) -> None:
    """Fill the new record ``self`` from its ``__init__``'s arguments ``values`` (every
    keyword, a factory's left out as NOTHING) as the compiled ``__init__`` does, reading the
    class's fields instead of running code generated for them: each field converted and
    stored in order, then the validators (unless ``attrs.validators.set_disabled()``) and
    ``__attrs_post_init__``."""
    stores, checks, post_init = plan
    for alias, default, factory, takes_self, convert, store in stores:
        value = default if alias is None else values[alias]
        if value is NOTHING and factory is not None:
            value = factory(self) if takes_self else factory()
        if convert is not None:
            value = convert(value)
        store(self, value)
    if checks and _config._run_validators is True:
        for validate, field, name in checks:
            validate(self, field, getattr(self, name))
    if post_init:
        self.__attrs_post_init__()


def _init_plan(cls: type) -> _Plan:
    """The pieces of `fast_init()`'s ``__init__`` for ``cls`` (shared by `record_maker`);
    TypeError when ``cls`` needs attrs' own ``__init__``."""
    fields = attrs.fields(cls)
    if "__slots__" not in cls.__dict__ or hasattr(cls, "__attrs_pre_init__"):
        raise TypeError(f"fast_init: {cls.__name__} is not a slotted record without pre-init")
    names: dict[str, Any] = {"_NOTHING": attrs.NOTHING}
    params: list[str] = []
    lines: list[tuple[str, str, str]] = []  # (code before the set, field name, value)
    checks: list[str] = []
    stores: list[_Store] = []
    validators: list[tuple[Any, Any, str]] = []
    for field in fields:
        if field.init and not field.kw_only:
            raise TypeError(f"fast_init: {cls.__name__}.{field.name} needs attrs' own __init__")
        arg, name = field.alias, field.name
        default = field.default
        if field.validator is not None:  # run as attrs runs them: after every field is set
            names[f"_validate_{name}"] = field.validator
            names[f"_attribute_{name}"] = field
            checks.append(f"        _validate_{name}(self, _attribute_{name}, self.{name})")
            validators.append((field.validator, field, name))
        if not field.init and default is attrs.NOTHING:  # attrs leaves it unset too
            continue
        store = names[f"_set_{name}"] = cls.__dict__[name].__set__  # the slot's descriptor
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            stores.append((arg if field.init else None, NOTHING, default.factory,
                           default.takes_self, field.converter, store))
        else:
            stores.append((arg if field.init else None, default, None, False,
                           field.converter, store))
        if not field.init:  # set as attrs sets it: its default or factory, converted
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                names[f"_factory_{name}"] = default.factory
                value = f"_factory_{name}({'self' if default.takes_self else ''})"
            else:
                names[f"_default_{name}"] = default
                value = f"_default_{name}"
            if field.converter is not None:
                names[f"_convert_{name}"] = field.converter
                value = f"_convert_{name}({value})"
            lines.append(("", name, value))
            continue
        value = arg
        before = ""
        if default is attrs.NOTHING:
            params.append(arg)
        elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            names[f"_factory_{name}"] = default.factory
            params.append(f"{arg}=_NOTHING")
            call = "self" if default.takes_self else ""
            before = f"if {arg} is _NOTHING:\n    {arg} = _factory_{name}({call})"
        else:
            names[f"_default_{name}"] = default
            params.append(f"{arg}=_default_{name}")
        if field.converter is not None:
            names[f"_convert_{name}"] = field.converter
            value = f"_convert_{name}({arg})"
            if f"_default_{name}" in names and _unchanged(field.converter, default):
                # the default, given or left out, is stored as it is: not converted again
                value = f"{arg} if {arg} is _default_{name} else {value}"
        lines.append((before, name, value))
    if checks and (_config is None or not hasattr(_config, "_run_validators")):
        # attrs.validators.set_disabled() must be read as attrs' own __init__ reads it
        raise TypeError(  # pragma: no cover - another attrs
            f"fast_init: {cls.__name__}'s validators need attrs' own __init__")
    names["_config"] = _config
    return names, params, lines, checks, (stores, validators, hasattr(cls, "__attrs_post_init__"))


def fast_init(cls: type[_T], *, own_init: bool = True) -> type[_T]:
    """Give the frozen, slotted, keyword-only attrs class ``cls`` the faster ``__init__``
    (``own_init=False``: attrs built none, so the signature's annotations are made here)."""
    fields = attrs.fields(cls)  # type: ignore[arg-type]
    names, params, lines, checks, _ = _init_plan(cls)
    body = _slot_stores(lines, "    ", "_set_{name}(self, {value})")
    builder = _builder_of(cls) if len(lines) >= _BUILDER_FROM else None
    if builder is not None:
        # A record of several fields is filled as its builder (see `_builder_of`): a plain
        # slot store each instead of a setter call, about a sixth of the cost.
        names.update(_cls=cls, _builder=builder, _set_class=SET_CLASS)
        body = ("    if self.__class__ is _cls:\n"
                "        _set_class(self, _builder)\n"
                "        try:\n"
                + _slot_stores(lines, "            ", "self.{name} = {value}")
                + "        finally:\n"
                "            self.__class__ = _cls\n"
                "    else:  # a subclass's record\n"
                + _slot_stores(lines, "        ", "_set_{name}(self, {value})"))
    if checks:  # attrs.validators.set_disabled() turns them off, as for attrs' own __init__
        body += "    if _config._run_validators is True:\n" + "\n".join(checks) + "\n"
    if hasattr(cls, "__attrs_post_init__"):
        body += "    self.__attrs_post_init__()\n"
    signature = f"self, *, {', '.join(params)}" if params else "self"
    source = f"def __init__({signature}):\n" + (body or "    pass\n")
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<aipk fast_init {cls.__qualname__}>", "exec"), names, namespace)
    init = namespace["__init__"]
    if own_init:
        original = cls.__init__
        init.__annotations__ = dict(getattr(original, "__annotations__", {}))
        init.__doc__ = original.__doc__
    else:
        init.__annotations__ = _init_annotations(fields)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


def _slot_stores(lines: list[tuple[str, str, str]], indent: str, store: str) -> str:
    """The statements setting each field, each store written as ``store`` says."""
    out: list[str] = []
    for before, name, value in lines:
        if before:
            out.extend(indent + line for line in before.split("\n"))
        out.append(indent + store.format(name=name, value=value))
    return "".join(line + "\n" for line in out)


#: ``object.__setattr__(record, "__class__", cls)`` without the name lookup: ``__class__``'s
#: own setter (what a frozen record's ``__setattr__`` would refuse); switches a record to its
#: builder (`record_builder`)
SET_CLASS: Callable[[Any, type], None] = object.__dict__["__class__"].__set__

#: From how many fields a record's ``__init__`` fills it as its builder: below, the two class
#: switches cost more than the setter calls they save.
_BUILDER_FROM = 3


#: each record class's builder, made once (None: the class cannot have one)
_BUILDERS: dict[type, type | None] = {}


def _builder_of(cls: type) -> type | None:
    """A subclass of ``cls`` adding nothing but Python's own ``__setattr__``: a record of
    ``cls`` switched to it (``__class__`` assignment, allowed between classes of one layout)
    takes its fields as plain slot stores, which the interpreter specialises, and is switched
    back before anyone else sees it. None when ``cls`` cannot have one (a class that hooks
    subclassing, or a layout Python will not switch). One per class, made on first use."""
    if cls in _BUILDERS:
        return _BUILDERS[cls]
    builder = _BUILDERS[cls] = _new_builder(cls)
    return builder


def _new_builder(cls: type) -> type | None:
    if any("__init_subclass__" in base.__dict__ or "__attrs_init_subclass__" in base.__dict__
           for base in cls.__mro__[:-1]):
        return None
    try:
        builder: type = type(cls)(cls.__name__, (cls,), {
            "__slots__": (), "__module__": cls.__module__, "__qualname__": cls.__qualname__,
            # both of object's: only then does the class get Python's generic setattr slot
            "__setattr__": object.__setattr__, "__delattr__": object.__delattr__})
        probe: Any = object.__new__(cls)
        object.__setattr__(probe, "__class__", builder)
        probe.__class__ = cls
    except TypeError:  # pragma: no cover - a layout or metaclass that refuses it
        return None
    return builder


def record_builder(cls: type) -> type[Any]:
    """``cls``'s builder (see `_builder_of`): for code that fills in a new frozen record
    itself, ``record = object.__new__(builder)``, a plain ``record.field = value`` for every
    field, then ``record.__class__ = cls`` before anyone else sees it; about a sixth of the
    cost of `slot_setters`' calls per field (`SET_CLASS` switches a record already made to
    its builder and back: worth it from about three fields). TypeError when ``cls`` can have
    none."""
    builder = _builder_of(cls)
    if builder is None:
        raise TypeError(f"record_builder: {cls.__name__} cannot have a builder")
    return builder


#: each class's `record_maker`, made once (the class itself: it cannot have one)
_MAKERS: dict[type, Callable[..., Any]] = {}


def record_maker(cls: type[_T]) -> Callable[..., _T]:
    """A function making records of the keyword-only record class ``cls``: ``maker(**fields)``
    is ``cls(**fields)`` (the same signature, defaults, factories, converters, validators,
    ``attrs.validators.set_disabled()``, ``__attrs_post_init__`` and errors), about half the
    cost. Calling a class with keywords packs them into a dict for its ``__init__``; a plain
    function takes them directly. The record is made and filled as `fast_init()`'s
    ``__init__`` fills it (as its builder, then switched to ``cls``); the maker's code for
    that is compiled by its 17th call, its first sixteen records filled by reading the
    class's fields (see `_fill`), the same records at a few times the cost. Made once per class;
    ``cls`` itself for a class it cannot make (not a slotted keyword-only attrs record with
    attrs' or `fast_init()`'s ``__init__``, or with its own ``__new__`` or metaclass
    ``__call__``): the same records, without the saving."""
    made = _MAKERS.get(cls)
    if made is None:
        made = _MAKERS[cls] = _new_maker(cls)
    return cast("Callable[..., _T]", made)


#: where the ``__init__`` functions of attrs and `fast_init()` are compiled from
_GENERATED_INIT = ("<aipk fast_init ", "<attrs generated")


def _new_maker(cls: Any) -> Callable[..., Any]:
    init = getattr(cls, "__init__", None)
    if not isinstance(cls, type) or not attrs.has(cls) or cls.__new__ is not object.__new__ \
            or type(cls).__call__ is not type.__call__ \
            or not getattr(getattr(init, "__code__", None), "co_filename", "").startswith(
                _GENERATED_INIT):
        return cast("Callable[..., Any]", cls)
    try:
        names, params, lines, checks, plan = _init_plan(cls)
    except TypeError:  # a record fast_init cannot build: its own class makes it
        return cast("Callable[..., Any]", cls)
    made = 0

    def materialize(values: dict[str, Any]) -> Any:
        """The maker's body until it is compiled: `_fill` for its first records, then the
        compiled body in its place (the same function object, which callers hold)."""
        nonlocal made
        made += 1
        if made <= _COMPILE_AFTER and _config is not None:
            record = object.__new__(cls)
            _fill(plan, record, values)
            return record
        if "_materialize" in maker.__code__.co_names:
            maker.__code__ = _compile_maker(cls, names, params, lines, checks).__code__
        return maker(**values)

    aliases = tuple(param.partition("=")[0] for param in params)
    names["_materialize"] = materialize
    code = _maker_stub.__code__.replace(
        co_kwonlyargcount=len(aliases), co_nlocals=len(aliases), co_varnames=aliases,
        co_name="__init__", co_firstlineno=1,
        co_filename=f"<aipk record_maker {cls.__qualname__}>")
    maker: Any = FunctionType(code, names, "__init__")
    maker.__kwdefaults__ = {alias: names[default] for alias, _, default in (
        param.partition("=") for param in params) if default} or None
    # named as the class's __init__, so that a missing or unknown keyword is reported as the
    # class reports it
    maker.__qualname__ = f"{cls.__qualname__}.__init__"
    maker.__module__ = cls.__module__
    maker.__annotations__ = {**_init_annotations(attrs.fields(cls)), "return": cls}
    maker.__doc__ = f"Make a {cls.__qualname__} (aipk.record_maker)."
    return cast("Callable[..., Any]", maker)


def _maker_stub() -> Any:  # pragma: no cover - only its code is used, by `_new_maker`
    return _materialize(locals())  # type: ignore[name-defined]  # noqa: F821


def _compile_maker(cls: type, names: dict[str, Any], params: list[str],
                   lines: list[tuple[str, str, str]], checks: list[str]) -> Any:
    """`record_maker`'s compiled body for ``cls`` (globals ``names``, `_init_plan`'s)."""
    builder = _builder_of(cls) if len(lines) >= _BUILDER_FROM else None
    names.update(_cls=cls, _new=object.__new__, _builder=builder)
    if builder is not None:  # filled as its builder (see `_builder_of`), then switched
        body = ("    self = _new(_builder)\n"
                + _slot_stores(lines, "    ", "self.{name} = {value}")
                + "    self.__class__ = _cls\n")
    else:  # a few fields: the class switch would cost more than the setter calls it saves
        body = ("    self = _new(_cls)\n"
                + _slot_stores(lines, "    ", "_set_{name}(self, {value})"))
    if checks:  # attrs.validators.set_disabled() turns them off, as for attrs' own __init__
        body += "    if _config._run_validators is True:\n" + "\n".join(checks) + "\n"
    if hasattr(cls, "__attrs_post_init__"):
        body += "    self.__attrs_post_init__()\n"
    signature = f"*, {', '.join(params)}" if params else ""
    source = f"def __init__({signature}):\n{body}    return self\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<aipk record_maker {cls.__qualname__}>", "exec"), names, namespace)
    return namespace["__init__"]


def slot_setters(cls: type, *names: str) -> tuple[Callable[[Any, Any], None], ...]:
    """The named slots' own setters (each slot's member descriptor's ``__set__``), for code
    that fills in a frozen record it is building: about half the cost of
    ``object.__setattr__(record, name, value)``, which looks the name up on the type. What
    `fast_init()`'s ``__init__`` calls."""
    return tuple(cls.__dict__[name].__set__ for name in names)


def _unchanged(converter: Callable[[Any], Any], default: Any) -> bool:
    """True when ``converter`` returns ``default`` itself (converters are pure: the default
    then needs no converting, which saves a call for every field left at its default)."""
    try:
        return converter(default) is default
    except Exception:  # noqa: BLE001 - a default the converter refuses: always convert
        return False


def _init_annotations(fields: tuple[attrs.Attribute[Any], ...]) -> dict[str, Any]:
    """The annotations attrs gives its ``__init__``: each field's type, or its converter's
    first parameter's type when it has a converter."""
    annotations: dict[str, Any] = {"return": None}
    for field in fields:
        if not field.init:
            continue
        alias = field.alias or field.name
        if field.converter is None:
            if field.type is not None:
                annotations[alias] = field.type
            continue
        taken = _takes(field.converter)
        if taken is not inspect.Parameter.empty:
            annotations[alias] = taken
    return annotations


def _takes(converter: Any) -> Any:
    """The annotation of ``converter``'s first parameter (``inspect.Parameter.empty``: none,
    or no signature): read from a plain function directly, as ``inspect.signature`` would
    find it, since building a signature costs more than the rest of a record's fields."""
    code = getattr(converter, "__code__", None)
    if type(converter) is FunctionType and code is not None and code.co_argcount \
            and not hasattr(converter, "__wrapped__") \
            and not hasattr(converter, "__signature__"):
        return converter.__annotations__.get(code.co_varnames[0], inspect.Parameter.empty)
    try:
        params = list(inspect.signature(cast("Callable[..., Any]", converter))
                      .parameters.values())
    except (ValueError, TypeError):
        return inspect.Parameter.empty
    return params[0].annotation if params else inspect.Parameter.empty
