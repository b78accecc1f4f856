"""With every package installed: the real plugins are discovered, and import stays cheap."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from aipk.registry import Registry


def test_installed_openai_plugin_is_discovered_lazily() -> None:
    code = textwrap.dedent("""
        import sys, aipk
        info = {i.name: i for i in aipk.registry.available()}["openai"]
        assert info.distribution == "aipk-openai" and info.version and not info.loaded, info
        assert "aipk_openai" not in sys.modules and "httpx" not in sys.modules
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_openai_plugin_serves_its_presets() -> None:
    registry = Registry()
    registry.load()
    info = {i.name: i for i in registry.available()}["openai"]
    assert info.loaded and info.error is None
    assert {"openai", "groq", "ollama", "lmstudio"} <= set(info.providers)
    assert registry.spec("ollama").key_optional
