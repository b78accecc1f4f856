"""Every script in examples/ runs offline against the emulator and prints exactly what
docs/examples.md shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .docs_blocks import blocks

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
PAGE = ROOT / "docs" / "examples.md"
#: Output that differs on every run (a device code), shown once in the docs.
_VARIABLE = [(re.compile(r"enter code \S+"), "enter code <code>")]


def _normalised(text: str) -> str:
    for pattern, replacement in _VARIABLE:
        text = pattern.sub(replacement, text)
    return text


def _documented() -> dict[str, str]:
    prefix = "output of examples/"
    return {block.title.removeprefix(prefix): block.body for block in blocks(PAGE)
            if block.title and block.title.startswith(prefix)}


def test_there_are_examples_and_each_is_documented() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"chat.py", "streaming.py", "tools.py", "key_pools.py", "router.py",
            "oauth_login.py", "custom_plugin.py", "structured_output.py"} <= names
    assert set(_documented()) == names, "add the example's output to docs/examples.md"


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.stem)
def test_the_example_prints_what_the_docs_show(script: Path) -> None:
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            check=False, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    assert _normalised(result.stdout) == _normalised(_documented()[script.name])
