"""Read the code blocks of a Markdown page: fenced blocks with a ``title="path"`` are files."""

from __future__ import annotations

import re
from pathlib import Path

import attrs

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
