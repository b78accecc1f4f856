"""Entry points of one group, read straight from the ``*.dist-info`` directories on ``sys.path``.

Loading plugins needs only each ``aipk.plugins`` entry point's name and value. Importing
`importlib.metadata` and letting it scan every installed distribution costs tens of
milliseconds of a process's first call; `find()` reads the same ``entry_points.txt`` files
itself and returns what ``importlib.metadata.entry_points(group=...)`` returns: the same
distributions (``sys.path`` order, one per normalized name, the first found winning), the same
entry points in the same order, duplicates included.

It answers only for what it knows exactly how the standard library reads (Python 3.11 and
later, only the standard path finder providing distributions, directories on ``sys.path``);
for anything else (a zip file or ``.egg`` on the path, another distribution finder, a name it
would have to read from ``METADATA``, an unreadable line) it returns None and the caller asks
`importlib.metadata`, which then reads (or rejects) the same files.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from importlib import import_module
from importlib.machinery import PathFinder
from typing import Any

__all__ = ["FoundEntryPoint", "find", "find_groups"]

#: the versions whose importlib.metadata reads distributions the way `find()` does
_KNOWN_VERSION: bool = sys.version_info >= (3, 11)
_SUFFIXES = (".dist-info", ".egg-info")
#: ``importlib.metadata.EntryPoint.pattern``: ``module[:attr.attr][ [extras]]`` (compiled by
#: ``re`` only for a value `_split()` leaves to it)
_VALUE = r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$"


class FoundEntryPoint:
    """One entry point: its ``name``, ``value`` and ``group``; `load()` imports what it names,
    as ``importlib.metadata.EntryPoint.load()`` does."""

    __slots__ = ("group", "name", "value")

    def __init__(self, name: str, value: str, group: str) -> None:
        self.name = name
        self.value = value
        self.group = group

    def load(self) -> Any:
        """The object the value names (``module`` or ``module:attr.attr``)."""
        parts = _split(self.value)
        if parts is None:
            match = re.match(_VALUE, self.value)
            if match is None:  # the standard library's error for a malformed value
                from importlib.metadata import EntryPoint

                return EntryPoint(self.name, self.value, self.group).load()
            parts = match.group("module"), match.group("attr") or ""
        target: Any = import_module(parts[0])
        for attr in filter(None, parts[1].split(".")):
            target = getattr(target, attr)
        return target

    def __repr__(self) -> str:
        return f"FoundEntryPoint(name={self.name!r}, value={self.value!r}, group={self.group!r})"


def _split(value: str) -> tuple[str, str] | None:
    """``(module, attr)`` of the usual value (``pkg.module`` or ``pkg.module:attr.attr``, dotted
    identifiers and nothing else), as `_VALUE` reads it; None for anything else."""
    module, colon, attr = value.partition(":")
    if _dotted(module) and (not colon or _dotted(attr)):
        return module, attr
    return None


def _dotted(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _normalize(name: str) -> str:
    """The name's runs of ``-``, ``_`` and ``.`` as one ``_``, lower-cased (what the standard
    library compares distribution names by)."""
    text = name.lower().replace("-", "_").replace(".", "_")
    while "__" in text:
        text = text.replace("__", "_")
    return text


def find(group: str, path: list[Any] | None = None) -> list[FoundEntryPoint] | None:
    """The entry points of ``group`` that ``importlib.metadata.entry_points(group=group)``
    would return for ``path`` (default ``sys.path``), or None when only it can tell."""
    found = find_groups((group,), path)
    return None if found is None else found[group]


def find_groups(groups: Sequence[str], path: list[Any] | None = None,
                ) -> dict[str, list[FoundEntryPoint]] | None:
    """`find()` for several groups, from one scan of the distributions."""
    if not _KNOWN_VERSION:
        return None
    finders = [finder for finder in sys.meta_path
               if getattr(finder, "find_distributions", None) is not None]
    if finders != [PathFinder]:
        return None
    seen: set[str] = set()
    found: dict[str, list[FoundEntryPoint]] = {group: [] for group in groups}
    for entry in sys.path if path is None else path:
        if not isinstance(entry, str):
            return None
        dists = _distributions_in(entry)
        if dists is None:
            return None
        for normalized, directory in dists:
            if normalized in seen:
                continue
            seen.add(normalized)
            text = _read(directory + _ENTRY_POINTS)
            if text is not None and not _parse(text, found):
                return None
    return found


def _distributions_in(entry: str) -> list[tuple[str, str]] | None:
    """The distribution directories in one ``sys.path`` entry, in the order the standard
    library yields them, each with its normalized name (None: not a plain directory)."""
    root = entry or "."
    try:
        children = os.listdir(root)
    except OSError:
        return None if os.path.isfile(root) else []  # a zip archive: importlib.metadata reads it
    if os.path.basename(entry).lower().endswith(".egg"):
        return None
    grouped: dict[str, list[str]] = {}
    for child in children:
        if child.lower().endswith(_SUFFIXES):
            grouped.setdefault(_normalize(child.rpartition(".")[0].partition("-")[0]),
                               []).append(child)
    prefix = os.path.join(entry, "")  # the entry and a separator (none for the empty entry)
    out: list[tuple[str, str]] = []
    for normalized, children_of_name in grouped.items():
        for child in children_of_name:
            # a suffix in other case, or no name before the version: importlib.metadata
            # reads the name from METADATA
            if not child.endswith(_SUFFIXES) or child.startswith(("-", ".")):
                return None
            out.append((normalized, prefix + child))
    return out


#: a distribution directory's entry points file, after the directory's name
_ENTRY_POINTS = os.sep + "entry_points.txt"
#: how `_read` opens a file (binary: Windows translates nothing)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)


def _read(file: str) -> str | None:
    """The file's text (UTF-8), None when there is none; read with the operating system's own
    calls, without the buffered and text layers ``open()`` builds for each file."""
    try:
        handle = os.open(file, _READ_FLAGS)
    except (FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError):
        return None
    try:
        chunks: list[bytes] = []
        while chunk := os.read(handle, 65536):
            chunks.append(chunk)
    except IsADirectoryError:
        return None
    finally:
        os.close(handle)
    return b"".join(chunks).decode("utf-8")


def _parse(text: str, found: dict[str, list[FoundEntryPoint]]) -> bool:
    """Add the entries of an ``entry_points.txt`` to the lists of their groups in ``found``
    (False: a line the standard library would reject)."""
    section: str | None = None
    out: list[FoundEntryPoint] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            out = found.get(section)
            continue
        if section is None:
            continue
        name, equals, value = line.partition("=")
        if not equals:
            return False
        if out is not None:
            out.append(FoundEntryPoint(name.strip(), value.strip(), section))
    return True
