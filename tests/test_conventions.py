"""The generated project meets its ecosystem's conventions: pre-commit, the tools behind its hooks, Scientific Python's
repo-review, strict mypy, nox's venv backend, and every logger answer leaving its files.

pre-commit cannot fetch hook repositories here, so the configs are validated and the same tools run directly.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from answer_sets import ANSWER_SETS
from conftest import REPO, Render
from test_generated import install_editable, run_suite

BIN = Path(sys.executable).parent
PINNED_REV = re.compile(r"^v?\d+(\.\d+)+$")
# pre-commit-hooks' scripts and the files pre-commit hands each; fixers report by rewriting (a clean `git diff`).
HOOKS = {
    "check-toml": (".toml",),
    "check-yaml": (".yaml", ".yml"),
    "debug-statement-hook": (".py",),
    "check-merge-conflict": ("",),
    "check-case-conflict": ("",),
    "end-of-file-fixer": ("",),
    "trailing-whitespace-fixer": ("",),
    "mixed-line-ending": ("",),
}


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool of this environment (its scripts folder first on PATH) and capture its output."""
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, env=environment)


def documented_repo_review_exceptions() -> dict[str, str]:
    """The repo-review checks a generated project fails on purpose: the table in README.md, the one place they live."""
    section = REPO.joinpath("README.md").read_text().split("## Scientific Python guidelines", 1)[1].split("\n## ")[0]
    return dict(re.findall(r"^\| `([A-Z]+\d+)` \| (.+?) \|$", section, re.MULTILINE))


def mdformat_exclude(project: Path) -> re.Pattern[str]:
    """The `exclude` of the project's mdformat hook (agent files with YAML frontmatter), as pre-commit applies it."""
    hooks = [
        hook
        for repo in yaml.safe_load((project / ".pre-commit-config.yaml").read_text())["repos"]
        for hook in repo["hooks"]
    ]
    return re.compile(next(hook.get("exclude", "^$") for hook in hooks if hook["id"] == "mdformat"))


def git_init(project: Path) -> None:
    for command in (["git", "init", "-q"], ["git", "add", "-A"]):
        assert run(command, project).returncode == 0


@pytest.mark.parametrize("config", ["repo", "generated"])
def test_pre_commit_configs_validate_and_pin_every_hook(render: Render, config: str) -> None:
    path = REPO / ".pre-commit-config.yaml" if config == "repo" else render({}) / ".pre-commit-config.yaml"
    result = run(["pre-commit", "validate-config", str(path)], path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    repos = yaml.safe_load(path.read_text())["repos"]
    unpinned = [repo["repo"] for repo in repos if repo["repo"] != "local" and not PINNED_REV.match(repo["rev"])]
    assert not unpinned, f"pin these hook repositories to a release: {unpinned}"


@pytest.mark.parametrize("name", ANSWER_SETS)
def test_rendered_project_passes_the_tools_behind_its_hooks(render: Render, name: str) -> None:
    project = render(ANSWER_SETS[name])
    git_init(project)
    files = run(["git", "ls-files"], project).stdout.split()
    workflows = [path for path in files if path.startswith(".github/workflows/")]
    skipped = mdformat_exclude(project)
    commands = [
        *([hook, *(path for path in files if path.endswith(suffixes))] for hook, suffixes in HOOKS.items()),
        ["codespell", *files],
        ["validate-pyproject", "pyproject.toml"],
        ["mdformat", "--check", *(path for path in files if path.endswith(".md") and not skipped.search(path))],
        ["check-jsonschema", "--builtin-schema", "vendor.dependabot", ".github/dependabot.yml"],
        *([["check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows]] if workflows else []),
    ]
    for command in commands:
        result = run(command, project)
        assert result.returncode == 0, f"{command[0]}: {result.stdout}{result.stderr}"
    assert run(["git", "diff", "--exit-code"], project).returncode == 0, "a pre-commit fixer changed a file"


def test_repo_review_passes_except_the_documented_exceptions(render: Render) -> None:
    project = render({})
    git_init(project)
    result = run(["sp-repo-review", "--format", "json", "."], project)
    assert result.stdout, result.stderr
    checks = json.loads(result.stdout)["checks"]
    failed = {code for code, check in checks.items() if check["result"] is False}
    exceptions = documented_repo_review_exceptions()
    assert exceptions, "README.md lists no repo-review exceptions: the table was not found"
    assert all(reason.strip() for reason in exceptions.values())
    # GitHub Actions checks need the generated CI workflow (answer `ci`); without one, GH100 is their only failure.
    if not (project / ".github" / "workflows").is_dir():
        exceptions["GH100"] = "no workflow yet"
    assert failed == set(exceptions), {code: checks[code]["description"] for code in failed ^ set(exceptions)}
    assert sum(check["result"] is True for check in checks.values()) >= 40


@pytest.mark.parametrize(
    "answers",
    [{}, {"dataset": "csv", "hpo": "optuna"}, {"dataset": "image_folder"}],
    ids=["digits", "csv-optuna", "image_folder"],
)
def test_mypy_strict_passes_on_a_rendered_project(render: Render, tmp_path: Path, answers: dict[str, str]) -> None:
    project = render(answers)
    result = run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")], project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


@pytest.mark.parametrize(
    ("backend", "uv"),
    [("uv", {}), ("virtualenv", {"UV": "uv-is-not-installed"})],  # UV names the binary nox looks for
    ids=["uv-installed", "uv-absent"],
)
def test_noxfile_uses_uv_when_installed_and_virtualenv_otherwise(
    render: Render, backend: str, uv: dict[str, str]
) -> None:
    """`uv|virtualenv`. Package indexes and caches are cut off: the session stops at its first install, after the venv."""
    project = render({})
    offline = {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "UV_OFFLINE": "1", "UV_NO_CACHE": "1", **uv}
    result = run([sys.executable, "-m", "nox", "-s", "tests"], project, env=offline)
    assert f"Creating virtual environment ({backend})" in result.stderr, result.stderr[-3000:]
    assert (project / ".nox" / "tests" / "bin" / "python").exists()


@pytest.mark.generated
@pytest.mark.parametrize("logger", ["wandb", "mlflow", "none"])
def test_logger_answer_leaves_its_files_and_resumes(render: Render, logger: str) -> None:
    """tensorboard and csv run the full suites in test_generated; these three run the run-directory tests."""
    project = render({"logger": logger})
    install_editable(project)
    env_free_of_keys = {key: value for key, value in os.environ.items() if not key.startswith(("WANDB_", "MLFLOW_"))}
    result = run_suite(
        project,
        "-m",
        "",  # the resume test is in the generated full tier
        "-k",
        "not two_seeded_runs and not predict_writes",
        "tests/test_runs.py",
        "tests/test_training.py::test_resume_from_last_continues_the_run",
        env=env_free_of_keys,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed, result.stdout[-2000:]
    assert int(passed[1]) >= 6, result.stdout[-2000:]
    assert " skipped" not in result.stdout, result.stdout[-2000:]
