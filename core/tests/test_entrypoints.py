"""`aipk._entrypoints.find()` returns exactly what importlib.metadata returns, over generated
``sys.path`` directories of real ``*.dist-info`` / ``*.egg-info`` distributions; where it cannot
tell, it says so (None) and the registry asks importlib.metadata."""

from __future__ import annotations

import itertools
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aipk import _entrypoints
from aipk._entrypoints import FoundEntryPoint, find, find_groups

#: the scan `_entrypoints` does itself runs on Python 3.11 and later (before, importlib.metadata
#: finds the plugins)
SCANS = pytest.mark.skipif(not _entrypoints._KNOWN_VERSION,
                           reason="before Python 3.11 plugins are found through importlib.metadata")

GROUPS = ["aipk.plugins", "aipk.providers", "console_scripts"]
counter = itertools.count()

# distribution names as they appear in directory names: case and separators vary, so several
# directories can be one normalized distribution
names = st.sampled_from(["aipk_demo", "aipk-demo", "AIPK.Demo", "aipk__demo", "other", "Other",
                         "x"])
entry_names = st.sampled_from(["demo", "other", "x.y", "Demo", "with space"])
values = st.sampled_from(["mod", "pkg.mod", "pkg.mod:attr", "pkg.mod:attr.sub", "mod [extra]",
                          "mod:attr  [a,b]"])
lines = st.one_of(
    st.tuples(entry_names, values, st.sampled_from(["=", " = ", "=  "])).map(
        lambda t: f"{t[0]}{t[2]}{t[1]}"),
    st.sampled_from(GROUPS).map(lambda g: f"[{g}]"),
    st.sampled_from(["", "   ", "# a comment", "  # indented comment", "[aipk.plugins]  ",
                     "  [console_scripts]", "a = b = c"]),
)
usual_text = st.lists(lines, max_size=8).map("\n".join)
unusual_line = st.sampled_from(["no equals sign here", "[unterminated"])


@st.composite
def distribution(draw: Any, usual: bool) -> dict[str, Any]:
    suffix = draw(st.sampled_from([".dist-info", ".egg-info"] + ([] if usual else [".DIST-INFO"])))
    version = draw(st.sampled_from(["-1.0", "-2.0.post1", ""]))
    text = draw(usual_text)
    if not usual and draw(st.booleans()):
        text += "\n[aipk.plugins]\n" + draw(unusual_line)
    return {"dir": f"{draw(names)}{version}{suffix}", "text": draw(st.none() | st.just(text)),
            "metadata": draw(names)}


def _build(root: Path, entries: list[list[dict[str, Any]]]) -> list[str]:
    path = []
    for i, dists in enumerate(entries):
        entry = root / f"entry{i}"
        entry.mkdir()
        for dist in dists:
            directory = entry / dist["dir"]
            if directory.exists():
                continue
            directory.mkdir()
            (directory / "METADATA").write_text(
                f"Metadata-Version: 2.1\nName: {dist['metadata']}\nVersion: 1.0\n")
            if dist["text"] is not None:
                (directory / "entry_points.txt").write_text(dist["text"], encoding="utf-8")
        path.append(str(entry))
    return path


def _reference(group: str, path: list[str]) -> list[tuple[str, str, str]] | Exception:
    with mock.patch.object(sys, "path", path):
        try:
            return [(ep.name, ep.value, ep.group) for ep in metadata.entry_points(group=group)]
        except Exception as exc:
            return exc


def _found(group: str, path: list[str]) -> list[tuple[str, str, str]] | None:
    found = find(group, path)
    return None if found is None else [(ep.name, ep.value, ep.group) for ep in found]


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix=f"aipk-ep-{next(counter)}-"))


@SCANS
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(st.lists(distribution(usual=True), max_size=4), min_size=1, max_size=3),
       group=st.sampled_from(GROUPS))
def test_find_returns_what_importlib_metadata_returns(entries: list[list[dict[str, Any]]],
                                                      group: str) -> None:
    root = _tmp()
    try:
        path = _build(root, entries)
        expected = _reference(group, path)
        assert not isinstance(expected, Exception), expected
        assert _found(group, path) == expected
        together = find_groups(GROUPS, path)  # one scan for several groups: the same lists
        assert together is not None
        assert {g: [(ep.name, ep.value, ep.group) for ep in eps] for g, eps in together.items()} \
            == {g: _found(g, path) for g in GROUPS}
    finally:
        shutil.rmtree(root)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(st.lists(distribution(usual=False), max_size=4), min_size=1, max_size=3),
       group=st.sampled_from(GROUPS))
def test_find_answers_only_when_it_agrees(entries: list[list[dict[str, Any]]],
                                          group: str) -> None:
    """With odd directory names or lines importlib.metadata rejects, find() either returns the
    same entry points or None (never a different answer, never an error of its own)."""
    root = _tmp()
    try:
        path = _build(root, entries)
        found = _found(group, path)
        if found is not None:
            assert found == _reference(group, path)
    finally:
        shutil.rmtree(root)


@SCANS
def test_path_entries_that_are_not_plain_directories(tmp_path: Path) -> None:
    archive = tmp_path / "plugins.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip archive
    assert find("aipk.plugins", [str(archive)]) is None  # importlib.metadata reads archives
    egg = tmp_path / "thing-1.0.egg"
    egg.mkdir()
    assert find("aipk.plugins", [str(egg)]) is None
    assert find("aipk.plugins", [str(tmp_path / "missing")]) == []
    assert find("aipk.plugins", [Path(tmp_path)]) is None  # type: ignore[list-item]


def test_another_distribution_finder_defers_to_importlib_metadata(tmp_path: Path) -> None:
    class Finder:
        @staticmethod
        def find_distributions(context: Any = None) -> list[Any]:
            return []

    with mock.patch.object(sys, "meta_path", [*sys.meta_path, Finder]):
        assert find("aipk.plugins", [str(tmp_path)]) is None


@SCANS
def test_the_current_environment_agrees_with_importlib_metadata() -> None:
    for group in ["aipk.plugins", "aipk.providers", "console_scripts", "pytest11"]:
        found = find(group)
        assert found is not None
        assert [(ep.name, ep.value) for ep in found] == [
            (ep.name, ep.value) for ep in metadata.entry_points(group=group)]


def test_load_imports_what_the_value_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "aipk_ep_probe.py").write_text("class Outer:\n    class Inner:\n        pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = FoundEntryPoint("p", "aipk_ep_probe", "g").load()
    assert module.__name__ == "aipk_ep_probe"
    assert FoundEntryPoint("p", "aipk_ep_probe:Outer.Inner [extra]", "g").load() is (
        module.Outer.Inner)
    with pytest.raises(AttributeError):
        FoundEntryPoint("p", "aipk_ep_probe:Missing", "g").load()
    with pytest.raises(AttributeError):  # importlib.metadata's own error for a malformed value
        FoundEntryPoint("p", "not a value!", "g").load()
    with pytest.raises(ModuleNotFoundError):
        FoundEntryPoint("p", "aipk_ep_no_such_module", "g").load()


def test_older_pythons_use_importlib_metadata(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setattr(_entrypoints, "_KNOWN_VERSION", False)
    assert find("aipk.plugins", [str(tmp_path)]) is None


_NAME_TEXT = st.text(st.sampled_from("aB9_-.xé µ:["), max_size=12)


@given(name=_NAME_TEXT)
def test_normalize_collapses_separators_as_the_standard_library_does(name: str) -> None:
    """`_normalize` is the regex rule importlib.metadata's ``Prepared.normalize`` applies."""
    import re

    assert _entrypoints._normalize(name) == re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


@given(value=st.one_of(_NAME_TEXT, st.from_regex(r"[a-z_][a-z0-9_.]{0,8}(:[a-z_][a-z0-9_.]{0,8})?",
                                                  fullmatch=True)))
def test_split_reads_a_value_as_the_entry_point_pattern_does(value: str) -> None:
    """The fast split of the usual value gives the module and attribute the standard pattern
    gives; a value it leaves (None) goes to that pattern."""
    import re

    parts = _entrypoints._split(value)
    if parts is None:
        return
    match = re.match(_entrypoints._VALUE, value)
    assert match is not None, value
    assert parts == (match.group("module"), match.group("attr") or "")
