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
factories, converters and ``__attrs_post_init__``: the same records from the same arguments,
the same errors for bad ones. Records with validators or ``init=False`` fields keep attrs' own.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs

_T = TypeVar("_T")

__all__ = ["fast_init", "fast_record", "record"]


def _build(target: type[_T], *, kw_only: bool, repr: bool, fast: bool) -> type[_T]:
    if not kw_only:
        raise TypeError(f"record: {target.__name__} must be keyword-only (kw_only=True)")
    own = target.__dict__
    made: type[_T] = attrs.frozen(kw_only=True, eq=False, repr=False, init=not fast)(target)
    fields = attrs.fields(made)  # type: ignore[arg-type]
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


def fast_init(cls: type[_T], *, own_init: bool = True) -> type[_T]:
    """Give the frozen, slotted, keyword-only attrs class ``cls`` the faster ``__init__``
    (``own_init=False``: attrs built none, so the signature's annotations are made here)."""
    fields = attrs.fields(cls)  # type: ignore[arg-type]
    if "__slots__" not in cls.__dict__ or hasattr(cls, "__attrs_pre_init__"):
        raise TypeError(f"fast_init: {cls.__name__} is not a slotted record without pre-init")
    names: dict[str, Any] = {"_NOTHING": attrs.NOTHING}
    params: list[str] = []
    lines: list[str] = []
    for field in fields:
        if field.validator is not None or not field.init or not field.kw_only:
            raise TypeError(f"fast_init: {cls.__name__}.{field.name} needs attrs' own __init__")
        arg, name = field.alias, field.name
        value = arg
        default = field.default
        if default is attrs.NOTHING:
            params.append(arg)
        elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            names[f"_factory_{name}"] = default.factory
            params.append(f"{arg}=_NOTHING")
            call = "self" if default.takes_self else ""
            lines.append(f"    if {arg} is _NOTHING:\n"
                         f"        {arg} = _factory_{name}({call})")
        else:
            names[f"_default_{name}"] = default
            params.append(f"{arg}=_default_{name}")
        if field.converter is not None:
            names[f"_convert_{name}"] = field.converter
            value = f"_convert_{name}({arg})"
        names[f"_set_{name}"] = cls.__dict__[name].__set__  # the slot's member descriptor
        lines.append(f"    _set_{name}(self, {value})")
    if hasattr(cls, "__attrs_post_init__"):
        lines.append("    self.__attrs_post_init__()")
    source = f"def __init__(self, *, {', '.join(params)}):\n" + "\n".join(lines) + "\n"
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


def _init_annotations(fields: tuple[attrs.Attribute[Any], ...]) -> dict[str, Any]:
    """The annotations attrs gives its ``__init__``: each field's type, or its converter's
    first parameter's type when it has a converter."""
    annotations: dict[str, Any] = {"return": None}
    for field in fields:
        alias = field.alias or field.name
        if field.converter is None:
            if field.type is not None:
                annotations[alias] = field.type
            continue
        try:
            params = list(inspect.signature(cast("Callable[..., Any]", field.converter))
                          .parameters.values())
        except (ValueError, TypeError):
            continue
        if params and params[0].annotation is not inspect.Parameter.empty:
            annotations[alias] = params[0].annotation
    return annotations
