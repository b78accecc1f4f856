"""`CountingPluginManager.parse_hookimpl_opts` answers as pluggy's own for every name of a
plugin module (it only answers sooner for names that cannot be hook implementations)."""

from __future__ import annotations

import importlib
import types

import pluggy
import pytest

import aipk
from aipk._dispatch import CountingPluginManager
from aipk.hookspecs import PROJECT


def _synthetic() -> types.ModuleType:
    module = types.ModuleType("synthetic_plugin")

    @aipk.hookimpl
    def aipk_provider_specs() -> list[object]:
        return []

    @aipk.hookimpl(specname="aipk_provider_specs", tryfirst=True)
    def specs_by_another_name() -> list[object]:
        return []

    def unmarked() -> None:
        return None

    marked_static = staticmethod(aipk_provider_specs)
    module.__dict__.update(
        aipk_provider_specs=aipk_provider_specs, specs_by_another_name=specs_by_another_name,
        unmarked=unmarked, marked_static=marked_static, a_class=type("A", (), {}),
        a_module=types, builtin=len, number=3, text="aipk_impl",
        lambda_=lambda: None)
    return module


MODULES = ["aipk._builtin", "aipk_openai.plugin", "aipk_gemini.plugin", "aipk_anthropic.plugin"]


@pytest.mark.parametrize("name", ["synthetic", *MODULES])
def test_the_same_options_as_pluggy_for_every_name(name: str) -> None:
    module = _synthetic() if name == "synthetic" else importlib.import_module(name)
    ours, theirs = CountingPluginManager(PROJECT), pluggy.PluginManager(PROJECT)
    found = {attribute: ours.parse_hookimpl_opts(module, attribute) for attribute in dir(module)}
    assert found == {attribute: theirs.parse_hookimpl_opts(module, attribute)
                     for attribute in dir(module)}
    assert any(options is not None for options in found.values())  # it has hooks to find
