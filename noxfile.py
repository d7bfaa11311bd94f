"""Sessions of the template repo: `nox` runs lint and tests, the command CI runs.

torch is installed first and pinned to a CPU build (TORCH, or the TORCH environment variable), so no session pulls
the multi-gigabyte CUDA wheels. uv does not read pip's configuration: pip's find-links folder is passed on to it.
"""

import os
import re
from pathlib import Path

import nox

nox.needs_version = ">=2024.10"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
TORCH = os.environ.get("TORCH", "torch==2.13.0")
LIGHTNING = re.search(r"lightning_requirement:.*?default: (\S+)", (ROOT / "copier.yml").read_text(), re.DOTALL)[1]
FIND_LINKS = os.environ.get("UV_FIND_LINKS") or os.environ.get("PIP_FIND_LINKS") or ""
INDEX_ARGS = ["--find-links", FIND_LINKS] if FIND_LINKS else []


def install_torch_stack(session: nox.Session) -> None:
    """torch first, pinned; then Lightning in the template's range and the generated project's dependencies."""
    session.install(TORCH, *INDEX_ARGS)
    session.install(LIGHTNING, *nox.project.dependency_groups(PYPROJECT, "generated"), *INDEX_ARGS)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff on the template's own Python (hooks, tests, noxfile)."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def tests(session: nox.Session) -> None:
    """Template tests: renders, answer validation, and each rendered project's own test suite."""
    install_torch_stack(session)
    session.install(*nox.project.dependency_groups(PYPROJECT, "test"), *INDEX_ARGS)
    session.run("pytest", *session.posargs, env={"UV_FIND_LINKS": FIND_LINKS} if FIND_LINKS else {})


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks of a generated project against plain PyTorch (not run by plain `nox`); options after `--`.

    `nox -s bench -- --update-readme` also writes the table into README.md; `-- --help` lists the options.
    """
    install_torch_stack(session)
    session.install(*nox.project.dependency_groups(PYPROJECT, "test"), *INDEX_ARGS)
    session.run(
        "python", "benchmarks/run.py", *session.posargs, env={"UV_FIND_LINKS": FIND_LINKS} if FIND_LINKS else {}
    )
