"""Read the code blocks of a Markdown page: fenced blocks with a ``title="path"`` are files."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import attrs

if sys.version_info >= (3, 11):
    import tomllib
else:  # aipk-core depends on tomli there
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = ["Block", "blocks", "tomllib", "tutorial_project"]

_FENCE = re.compile(r'^```(?P<lang>\w+)(?P<info>[^\n]*)\n(?P<body>.*?)^```$',
                    re.MULTILINE | re.DOTALL)
_TITLE = re.compile(r'title="(?P<title>[^"]+)"')


@attrs.frozen(kw_only=True)
class Block:
    """One fenced code block.

    Attributes:
        lang: The fence's language.
        title: The ``title="..."`` of the fence (a file path), or None.
        body: The code.
    """

    lang: str
    title: str | None
    body: str


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    found = []
    for match in _FENCE.finditer(page.read_text(encoding="utf-8")):
        title = _TITLE.search(match["info"])
        found.append(Block(lang=match["lang"], title=title["title"] if title else None,
                           body=match["body"]))
    return found


def write_files(page: Path, root: Path) -> list[Path]:
    """Write each titled block of ``page`` under ``root``; returns the paths written."""
    written = []
    for block in blocks(page):
        if block.title is None:
            continue
        path = root / block.title
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.body, encoding="utf-8")
        written.append(path)
    return written


def install(project: Path, site: Path) -> None:
    """What ``pip install -e .`` does for discovery: the dist-info with the entry points, and
    the source folder on the path."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    lines = []
    for group, entries in meta["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def tutorial_project(page: Path, root: Path, folder: str,
                     min_files: int) -> tuple[Path, dict[str, str]]:
    """Write ``page``'s files under ``root``, install the project in ``root/folder`` (see
    `install()`); returns its folder and the environment that finds it."""
    written = write_files(page, root)
    assert len(written) >= min_files, written
    project = root / folder
    site = root / "site"
    install(project, site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(project / "src"), str(site), os.environ.get("PYTHONPATH", "")])}
    return project, env
