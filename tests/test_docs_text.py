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
