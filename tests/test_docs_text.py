"""The docs describe the product as it is: no work items, plans or history."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([*ROOT.glob("docs/**/*.md"), ROOT / "README.md", *ROOT.glob("core/README.md"),
                *ROOT.glob("plugins/*/README.md"), *ROOT.glob("contrib/*/README.md")])
HISTORY = re.compile(
    r"\b(issues? #?\d+|where it is going|no longer|used to|will be added|planned|roadmap"
    r"|for now|at the moment|previously"
    r"|not yet(?= *[:.,)])|not yet (?:supported|implemented|available))\b",
    re.IGNORECASE)


def test_the_pages_are_found() -> None:
    assert len(PAGES) >= 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_page_speaks_of_the_product_not_its_history(page: Path) -> None:
    hits = [f"{page.name}:{n}: {line.strip()}"
            for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
            if HISTORY.search(line)]
    assert not hits, "describe the product as it is:\n" + "\n".join(hits)


SPHINX_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|exc|data|obj|const|ref|term):`")
DOCSTRING_SOURCES = sorted([*ROOT.glob("core/src/**/*.py"), *ROOT.glob("plugins/*/src/**/*.py"),
                            *ROOT.glob("contrib/*/src/**/*.py"), *ROOT.glob("examples/*.py")])


def test_no_sphinx_roles_reach_the_site() -> None:
    """mkdocstrings renders :class:`X` literally: write [`X`][aipk.X] or plain backticks."""
    assert len(DOCSTRING_SOURCES) > 50
    hits = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            for path in [*DOCSTRING_SOURCES, *PAGES]
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if SPHINX_ROLE.search(line)]
    assert not hits, ("Sphinx roles render literally on the docs site; rewrite them with "
                      "`.venv/bin/python dev/fix_doc_roles.py --fix`:\n" + "\n".join(hits))


FENCE = re.compile(r"^\s*```")
OPENING = re.compile(r"^\s*```(\w[^`]*)?$")
CLOSING = re.compile(r"^\s*```\s*$")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_code_block_closes_on_a_line_of_its_own(page: Path) -> None:
    """A closing fence followed by text ("``` See ...") does not close the block: the rest of
    the page renders as code, and the doc-snippet tests read the wrong blocks."""
    problems, opened = [], None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if not FENCE.match(line):
            continue
        if opened is None:
            if not OPENING.match(line):
                problems.append(f"{page.name}:{number}: not an opening fence: {line.strip()}")
            opened = number
        elif CLOSING.match(line):
            opened = None
        else:
            problems.append(f"{page.name}:{number}: text after a closing fence (block opened "
                            f"at line {opened}): {line.strip()}")
            opened = None
    if opened is not None:
        problems.append(f"{page.name}:{opened}: the block opened here never closes")
    assert not problems, "\n".join(problems)
