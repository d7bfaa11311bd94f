"""Rendering helpers shared by the template tests."""

import os
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from copier import run_copy
from plumbum import local

REPO = Path(__file__).resolve().parents[1]
Render = Callable[..., Path]
SUMMARY = "summary"  # a user property (title, lines) shown in pytest's summary, passed or not; travels from workers
REPORTS: dict[str, list[str]] = {}  # title -> the lines of every test's SUMMARY property

# nox points uv's project environment at its own session venv; a generated project's `uv sync` run by a test would
# then replace this test environment with the project's packages. Each project gets its own .venv instead.
os.environ.pop("UV_PROJECT_ENVIRONMENT", None)


Summary = Callable[[str, list[str]], None]

# Their tests install rendered projects into this environment, all under the package name lightning_project: under
# pytest-xdist (nox -s tests runs a worker per CPU) one worker runs them one after another. Every other file is a group
# of its own, so that its module fixtures (rendered projects) are made once; tests that install into an environment of
# their own (install_in_own_environment) and share no module fixture mark groups of their own to spread further.
SHARED_ENVIRONMENT = {
    "test_agent_files.py",
    "test_conventions.py",
    "test_documented_commands.py",
    "test_ecosystem.py",
    "test_mutations.py",
    "test_slurm.py",
}


# xdist hands out groups in the order of their first test: the longest go first (the run matrix and the shared
# environment's tests take 13 and 19 minutes on CI's 2 cores), so none of them starts when the other worker is done.
LONGEST_FIRST = ("test_run_matrix.py", "shared_environment", "generated-", "release-")


def start_order(item: pytest.Item) -> int:
    groups = [name for marker in item.iter_markers("xdist_group") for name in marker.args]
    return next(
        (index for index, prefix in enumerate(LONGEST_FIRST) if any(name.startswith(prefix) for name in groups)),
        len(LONGEST_FIRST),
    )


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = "shared_environment" if item.path.name in SHARED_ENVIRONMENT else item.path.name
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=start_order)  # stable: each file's tests stay together and in order


@pytest.fixture
def summary(record_property: Callable[[str, object], None]) -> Summary:
    """Lines for the end of pytest's output under a title (tables, wall times), from any xdist worker."""

    def add(title: str, lines: list[str]) -> None:
        record_property(SUMMARY, (title, lines))

    return add


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":  # the last report of a test, with all its properties
        for name, value in report.user_properties:
            if name == SUMMARY:
                title, lines = value
                REPORTS.setdefault(title, []).extend(lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for title, lines in REPORTS.items():
        terminalreporter.write_sep("=", title)
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template as it is in the working tree, without git, so uncommitted edits render too."""
    copy = tmp_path_factory.mktemp("template")
    shutil.copy2(REPO / "copier.yml", copy / "copier.yml")
    for folder in ("template", "hooks"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def render_project(template: Path, destination: Path, answers: dict[str, Any]) -> Path:
    run_copy(str(template), destination, data=answers, defaults=True, unsafe=True, quiet=True)
    return destination


@pytest.fixture
def render(template_dir: Path, tmp_path: Path) -> Render:
    """Render the template with `answers` into a fresh folder and return it."""

    def _render(answers: dict[str, Any], name: str = "project") -> Path:
        return render_project(template_dir, tmp_path / name, answers)

    return _render


def answers_of(project: Path) -> dict[str, Any]:
    """The answers copier recorded in the project's answers file."""
    answers: dict[str, Any] = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    return answers


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd`; fail the test with git's message if it fails."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def set_environment(patch: pytest.MonkeyPatch, **values: str | None) -> None:
    """Set (or, for None, remove) variables for this process and for the tasks copier runs.

    copier starts tasks through plumbum, whose `local.env` is a copy of os.environ taken at import: patch both.
    """
    for name, value in values.items():
        for environment in (os.environ, local.env):
            if value is None:
                patch.delitem(environment, name, raising=False)
            else:
                patch.setitem(environment, name, value)


@pytest.fixture(scope="module")
def git_without_identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """git as on a fresh CI machine: an empty global config, no system config, no identity, and no guessing one."""
    global_config = tmp_path_factory.mktemp("git_home") / "gitconfig"
    global_config.write_text("[user]\n\tuseConfigOnly = true\n")
    identity = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL")
    with pytest.MonkeyPatch.context() as patch:
        set_environment(patch, GIT_CONFIG_GLOBAL=str(global_config), GIT_CONFIG_NOSYSTEM="1", **dict.fromkeys(identity))
        yield global_config


def install_in_own_environment(project: Path, folder: Path) -> Path:
    """Install `project` editable into a new virtual environment at `folder` and return its Python.

    The environment sees this one's packages (torch, Lightning) through a .pth file: its own console scripts and
    editable project in a second instead of minutes, never in this shared environment, so such tests run side by side.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    sites = [path for path in sys.path if path.endswith("site-packages") and Path(path).is_dir()]
    layers = "; ".join(f"site.addsitedir({path!r})" for path in sites)
    Path(purelib, "zz_test_environment.pth").write_text(f"import site; {layers}\n")
    command = [sys.executable, "-m", "uv", "pip", "install", "--python", str(python), "--no-deps"]
    result = subprocess.run(
        [*command, "--no-build-isolation", "--quiet", "-e", str(project)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"installing {project} failed:\n{result.stderr}"
    return python


def fake_pre_commit(folder: Path, log: Path) -> Path:
    """A `pre-commit` on PATH that records where and how it was called."""
    folder.mkdir(exist_ok=True)
    script = folder / "pre-commit"
    script.write_text(f'#!/bin/sh\necho "$PWD $*" >> "{log}"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return folder


def local_torch_index(project: Path, folder: Path) -> dict[str, str]:
    """UV_INDEX replacing the project's PyTorch indexes ([[tool.uv.index]]) by a simple index, in `folder`, of the
    local torch wheel (UV_FIND_LINKS or PIP_FIND_LINKS); empty where there is no local wheel and uv goes online."""
    wheels = os.environ.get("UV_FIND_LINKS") or os.environ.get("PIP_FIND_LINKS") or ""
    torch_wheels = sorted(Path(wheels).glob("torch-*.whl")) if wheels else []
    if not torch_wheels:
        return {}
    (folder / "torch").mkdir(parents=True, exist_ok=True)
    links = "".join(f'<a href="{wheel.resolve().as_uri()}">{wheel.name}</a>' for wheel in torch_wheels)
    (folder / "torch" / "index.html").write_text(f"<html><body>{links}</body></html>")
    indexes = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["uv"]["index"]
    return {"UV_INDEX": " ".join(f"{index['name']}={folder.resolve().as_uri()}" for index in indexes)}
