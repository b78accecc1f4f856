"""Find, and with --fix rewrite, Sphinx roles (:class:`X`, :func:`y` ...) in docstrings and docs.

The documentation site (mkdocs + mkdocstrings) does not understand Sphinx roles: they render
literally. This script rewrites each role into the form the site renders:

- ``[`X`][aipk.X]`` (an autorefs cross-reference) when the target is an object the site
  documents (looked up in the built site's ``objects.inv``, relative to the file's module
  first, then under ``aipk``),
- plain backticks otherwise.

In Python files a line that a cross-reference makes longer than ruff's 100 characters has its
paragraph re-wrapped; where that cannot be done safely (a summary line, a comment) the role
becomes plain backticks.

Usage::

    .venv/bin/python dev/fix_doc_roles.py            # list the roles left, exit 1 if any
    .venv/bin/python dev/fix_doc_roles.py --fix      # build the site once, rewrite in place

``tests/test_docs_text.py`` fails when a role reappears and names this command.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import zlib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|exc|data|obj|const|ref|term):`([^`]+)`")
#: ruff's line length for the Python sources
MAX_LINE = 100
#: a line opening an ``Attributes:``/``Args:`` entry or a list item (its paragraph continues
#: deeper)
ENTRY = re.compile(r"^\s*(?:- |\* |\d+\. |[\w.*]+(?: ?\([^)]*\))?: )")
QUOTES = ('"""', "'''")


def sources() -> Iterator[Path]:
    """Every file whose text reaches the site or a reader: code, docs and READMEs."""
    for pattern in ("core/src/**/*.py", "plugins/*/src/**/*.py", "contrib/*/src/**/*.py",
                    "docs/**/*.md", "*.md", "core/*.md", "plugins/*/*.md", "contrib/*/*.md",
                    "examples/*.py"):
        yield from sorted(ROOT.glob(pattern))


def find_roles(path: Path) -> list[tuple[int, str]]:
    """The (line number, role) pairs in one file."""
    return [(number, match.group(0))
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            for match in ROLE.finditer(line)]


def inventory(site: Path) -> set[str]:
    """The object names the built site documents (its objects.inv, Sphinx format v2)."""
    data = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    body = zlib.decompress(data[header_end:]).decode("utf-8")
    return {line.split(" ", 1)[0] for line in body.splitlines() if line}


def module_of(path: Path) -> str | None:
    """``aipk.credentials._pool`` for core/src/aipk/credentials/_pool.py; None for docs."""
    parts = path.relative_to(ROOT).parts
    if "src" not in parts or path.suffix != ".py":
        return None
    dotted = list(parts[parts.index("src") + 1:])
    dotted[-1] = dotted[-1][:-3]
    if dotted[-1] == "__init__":
        dotted.pop()
    return ".".join(dotted)


def resolve(target: str, module: str | None, known: set[str]) -> str | None:
    """The documented object a role's target names, or None."""
    candidates = [target]
    if module:
        parts = module.split(".")
        candidates += [".".join([*parts[:n], target]) for n in range(len(parts), 0, -1)]
    candidates.append(f"aipk.{target}")
    return next((name for name in candidates if name in known), None)


def rewrite_line(line: str, module: str | None, known: set[str], *, link: bool = True) -> str:
    """One line with its roles rewritten: cross-references, or plain backticks."""
    def replace(match: re.Match[str]) -> str:
        written = match.group(1).strip()
        short = written.startswith("~")
        target = written.lstrip("~.").removesuffix("()")
        shown = target.rsplit(".", 1)[-1] if short else target
        if match.group(0).startswith((":func:", ":meth:", ":py:func:", ":py:meth:")):
            shown += "()"
        full = resolve(target, module, known) if link else None
        return f"[`{shown}`][{full}]" if full else f"`{shown}`"

    return ROLE.sub(replace, line)


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def reflow(lines: list[str], start: int) -> int:
    """Re-wrap the docstring paragraph starting at lines[start] to MAX_LINE; return its end.

    The paragraph is the line and the following lines of its continuation indent (an
    ``Attributes:`` entry or a list item continues deeper), up to a blank line, another entry
    or item, a code line or the docstring's end. Returns -1 (nothing changed) when the result
    would still be too long.
    """
    first = lines[start]
    first_indent = indent_of(first)
    following = lines[start + 1] if start + 1 < len(lines) else ""
    opens_block = bool(ENTRY.match(first))
    if opens_block and following.strip() and indent_of(following) > first_indent:
        rest_indent = indent_of(following)
    elif opens_block:
        rest_indent = first_indent + (2 if first.lstrip().startswith(("- ", "* ")) else 4)
    else:
        rest_indent = first_indent
    end = start + 1
    if not first.rstrip().endswith(QUOTES):
        while end < len(lines):
            line = lines[end]
            if (not line.strip() or indent_of(line) != rest_indent
                    or line.lstrip().startswith(("```", ">>>", "#", *QUOTES))
                    or (rest_indent == first_indent and ENTRY.match(line))):
                break
            end += 1
            if line.rstrip().endswith(QUOTES):
                break
    words = " ".join(line.strip() for line in lines[start:end])
    wrapped = textwrap.wrap(words, width=MAX_LINE, initial_indent=" " * first_indent,
                            subsequent_indent=" " * rest_indent, break_long_words=False,
                            break_on_hyphens=False)
    if any(len(line) > MAX_LINE for line in wrapped):
        return -1
    lines[start:end] = wrapped
    return start + len(wrapped)


def rewrite(text: str, module: str | None, known: set[str], *, python: bool) -> str:
    """The file's text with every role rewritten; Python lines kept within MAX_LINE."""
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        if not ROLE.search(line):
            index += 1
            continue
        linked = rewrite_line(line, module, known)
        if not python or len(linked) <= MAX_LINE:
            lines[index] = linked
            index += 1
            continue
        if not line.lstrip().startswith(("#", 'r"""', *QUOTES)):
            lines[index] = linked
            if reflow(lines, index) >= 0:
                index += 1  # the paragraph's next lines may hold roles still
                continue
        lines[index] = rewrite_line(line, module, known, link=False)
        index += 1
    return "\n".join(lines)


def build_site() -> Path:
    site = Path(tempfile.mkdtemp(prefix="aipk-site-"))
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--quiet", "-d", str(site)],
                   cwd=ROOT, check=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    return site


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--fix", action="store_true", help="rewrite the roles in place")
    parser.add_argument("--site", type=Path, help="a built site to read objects.inv from")
    args = parser.parse_args()
    found = {path: roles for path in sources() if (roles := find_roles(path))}
    if not args.fix:
        for path, roles in found.items():
            for number, role in roles:
                print(f"{path.relative_to(ROOT)}:{number}: {role}")
        return 1 if found else 0
    known = inventory(args.site or build_site())
    for path, roles in found.items():
        text = path.read_text(encoding="utf-8")
        path.write_text(rewrite(text, module_of(path), known, python=path.suffix == ".py"),
                        encoding="utf-8")
        print(f"rewrote {len(roles)} role(s) in {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
