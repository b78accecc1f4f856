"""Property tests: schemas derived from random record classes accept every instance, which
structures back equal; tool-argument validation accepts instances and names a broken argument."""

from __future__ import annotations

import enum
import json
import string
from typing import Any, Literal, Optional

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

import aipk
from aipk._jsonschema import problems, schema_problems
from aipk._schema import json_schema_for, strict_schema, structure, unstructure
from aipk.errors import ToolArgumentsError


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Inner:
    label: str
    weight: float = 1.0


TEXT = st.text(string.ascii_letters + " éü", max_size=8)
FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=32)
# (type, strategy of values of that type)
LEAVES: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (str, TEXT),
    (int, st.integers(-10**6, 10**6)),
    (float, FLOATS),
    (bool, st.booleans()),
    (Optional[int], st.none() | st.integers(-5, 5)),  # noqa: UP045 - typing form on purpose
    (int | str, st.integers(-5, 5) | TEXT),
    (list[str], st.lists(TEXT, max_size=3)),
    (dict[str, int], st.dictionaries(TEXT, st.integers(-5, 5), max_size=3)),
    (Literal["a", "b"], st.sampled_from(["a", "b"])),
    (Colour, st.sampled_from(list(Colour))),
    (Inner, st.builds(Inner, label=TEXT, weight=FLOATS)),
    (list[Inner], st.lists(st.builds(Inner, label=TEXT), max_size=2)),
]


@st.composite
def record_and_instance(draw: st.DrawFn) -> tuple[type, Any]:
    count = draw(st.integers(1, 6))
    picks = [draw(st.sampled_from(LEAVES)) for _ in range(count)]
    defaults = [draw(st.booleans()) for _ in range(count)]
    fields = {}
    for index, ((tp, values), has_default) in enumerate(zip(picks, defaults, strict=True)):
        if has_default:
            fields[f"f{index}"] = attrs.field(type=tp, default=draw(values))
        else:
            fields[f"f{index}"] = attrs.field(type=tp)
    cls = attrs.make_class("Random", fields, kw_only=True, frozen=True)
    chosen = {f"f{i}": draw(values) for i, (_, values) in enumerate(picks)
              if not defaults[i] or draw(st.booleans())}
    return cls, cls(**chosen)


@settings(max_examples=150, deadline=None)
@given(record_and_instance())
def test_derived_schema_accepts_instances_and_structures_back(case: tuple[type, Any]) -> None:
    cls, instance = case
    schema = json_schema_for(cls)
    assert schema_problems(schema) == []
    data = json.loads(json.dumps(unstructure(instance)))
    assert problems(data, schema) == []
    assert structure(data, cls) == instance
    required = set(schema["required"])
    assert required == {a.name for a in attrs.fields(cls) if a.default is attrs.NOTHING}
    strict, strict_ok = strict_schema(schema)
    has_dict = any(typing_is_dict(a.type) for a in attrs.fields(cls))
    assert strict_ok is not has_dict
    if strict_ok:
        assert set(strict["required"]) == set(strict["properties"])


def typing_is_dict(tp: Any) -> bool:
    return getattr(tp, "__origin__", None) is dict


@settings(max_examples=150, deadline=None)
@given(record_and_instance(), st.data())
def test_tool_arguments_validation(case: tuple[type, Any], data: st.DataObject) -> None:
    cls, instance = case
    tool = aipk.as_tool(cls)
    arguments = json.dumps(unstructure(instance))
    assert tool.validate_arguments(arguments) == json.loads(arguments)
    with_extra = {**json.loads(arguments), "zz_unknown": 1}
    assert tool.validate_arguments(with_extra, strict=False) == with_extra
    with pytest.raises(ToolArgumentsError) as extra:
        tool.validate_arguments(with_extra)
    assert extra.value.path == "$.zz_unknown" and extra.value.tool == "Random"
    name = data.draw(st.sampled_from(sorted(json.loads(arguments))))
    broken = {**json.loads(arguments), name: [[{"never": "valid"}]]}
    with pytest.raises(ToolArgumentsError) as wrong:
        tool.validate_arguments(broken)
    assert wrong.value.path.startswith(f"$.{name}") and name in str(wrong.value)
