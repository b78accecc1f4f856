"""Automation: `nox -l` lists sessions; `nox -s tests_all lint typecheck` is what CI runs.

* ``tests-<package>``: one package installed alone with its declared dependencies (plus the
  testkit when its tests need the emulator) — catches undeclared dependencies.
* ``tests_all``: every package installed, every test.
* ``tests_python``: ``tests_all`` on each supported Python found on this machine (3.10 to 3.13);
  ``tests_lowest``: ``tests_all`` on the lowest version of each dependency the packages allow.
* ``lint`` / ``typecheck``: ruff and mypy over the whole tree.
* ``bench``: aipk against the raw httpx / aiohttp floors (and the openai SDK if installable);
  ``bench_per_request``: the per-request target alone (or, with ``-- --stream 20000``, the
  stream target), measured over many alternating rounds.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests_all", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

TEST_TOOLS = ["pytest>=8", "hypothesis>=6.100"]
#: optional libraries some tests of the whole tree use (YAML config files, pydantic models)
TEST_OPTIONAL = ["PyYAML>=6", "pydantic>=2"]
PLUGINS = ["aipk-openai", "aipk-anthropic", "aipk-gemini", "aipk-cerebras", "aipk-qwen",
           "aipk-openrouter", "aipk-ollama"]
#: exporter -> how to install it with what its tests need
EXPORTERS = {"aipk-prometheus": "./contrib/aipk-prometheus",
             "aipk-otel": "./contrib/aipk-otel[sdk]"}
EVERYTHING = ["./core", *(f"./plugins/{p}" for p in PLUGINS), "./contrib/aipk-testkit",
              "./contrib/aipk-redis[encryption]", *EXPORTERS.values()]
#: What each package's isolated test session installs: the package, what it declares, and the
#: testkit where its tests use the emulator.
PACKAGES = {
    "core": ["./core"],
    "aipk-testkit": ["./contrib/aipk-testkit"],
    # its tests also need redis-server on PATH (dev/setup installs it as root)
    "aipk-redis": ["./core", "./plugins/aipk-openai", "./contrib/aipk-redis[encryption]",
                   "./contrib/aipk-testkit"],
    **{p: ["./core", "./plugins/aipk-openai", f"./plugins/{p}", "./contrib/aipk-testkit"]
       for p in PLUGINS},
    **{e: ["./core", "./plugins/aipk-openai", "./contrib/aipk-testkit", spec]
       for e, spec in EXPORTERS.items()},
}
TEST_DIRS = {
    "core": "core/tests",
    "aipk-testkit": "contrib/aipk-testkit/tests",
    "aipk-redis": "contrib/aipk-redis/tests",
    **{p: f"plugins/{p}/tests" for p in PLUGINS},
    **{e: f"contrib/{e}/tests" for e in EXPORTERS},
}


def _editable(paths: list[str]) -> list[str]:
    return [arg for path in paths for arg in ("-e", path)]


@nox.session
@nox.parametrize("package", list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """One package's tests with only that package (and what it declares) installed."""
    session.install(*TEST_TOOLS, *dict.fromkeys(PACKAGES[package]))
    session.run("pytest", "-q", "-p", "no:cacheprovider", TEST_DIRS[package], *session.posargs)


@nox.session
def tests_all(session: nox.Session) -> None:
    """Every test with every package installed."""
    session.install(*TEST_TOOLS, *TEST_OPTIONAL, "aiohttp>=3.9", *_editable(EVERYTHING))
    session.run("pytest", "-q", "-p", "no:cacheprovider", *session.posargs,
                env={"AIPK_STRICT_PLUGINS": "1"})


#: the Pythons aipk supports (``requires-python = ">=3.10"``)
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
#: the lowest version of each of aipk-core's dependencies (and its aiohttp extra) it allows
LOWEST = ["attrs==23.1.0", "cattrs==24.1.0", "httpx==0.27.0", "pluggy==1.5.0", "aiohttp==3.9.5"]


@nox.session(python=PYTHONS)
def tests_python(session: nox.Session) -> None:
    """Every test with every package installed, on each supported Python installed here."""
    tests_all(session)


@nox.session
def tests_lowest(session: nox.Session) -> None:
    """Every test with every package installed over the lowest dependency versions allowed."""
    session.install(*TEST_TOOLS, *TEST_OPTIONAL, *_editable(EVERYTHING), *LOWEST)
    session.run("pytest", "-q", "-p", "no:cacheprovider", *session.posargs,
                env={"AIPK_STRICT_PLUGINS": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("mypy>=1.10", "aiohttp>=3.9", "pytest>=8", *EVERYTHING)
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmark; pass ``-- --quick`` for a short run."""
    session.install("aiohttp>=3.9", *_editable(EVERYTHING))
    session.install("openai", success_codes=[0, 1])
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def bench_per_request(session: nox.Session) -> None:
    """The per-request target alone (``-- --stream N``: the stream target), alternating
    clients over many rounds (less noisy)."""
    session.install("aiohttp>=3.9", *_editable(EVERYTHING))
    session.run("python", "bench/per_request.py", *session.posargs)
