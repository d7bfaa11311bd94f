"""The post-copy task: a git repository with a first commit, pre-commit hooks, and a line saying what was done."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Render, fake_pre_commit, git, set_environment

REPO = Path(__file__).resolve().parents[1]
AUTHOR = {"author_name": "Ada Lovelace", "author_email": "ada@example.org"}


@pytest.fixture(autouse=True)
def _no_git_identity(git_without_identity: Path) -> None:
    """As on a fresh CI machine, where git has no user identity."""


def test_copy_makes_a_clean_repository_with_one_commit_without_a_git_identity(
    render: Render, git_without_identity: Path
) -> None:
    global_config = git_without_identity.read_text()
    project = render(AUTHOR)
    assert git(project, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(project, "log", "--format=%an <%ae>").strip() == "Ada Lovelace <ada@example.org>"
    assert git(project, "status", "--porcelain", "--ignored") == ""
    assert git_without_identity.read_text() == global_config, "the global git config is never changed"
    assert "user" not in git(project, "config", "--local", "--list"), "the identity was for the first commit only"


def test_the_post_copy_task_is_idempotent(render: Render, capfd: pytest.CaptureFixture[str]) -> None:
    project = render(AUTHOR)
    head = git(project, "rev-parse", "HEAD")
    capfd.readouterr()
    command = [sys.executable, str(REPO / "hooks/post_copy.py"), "--author-name=A", "--author-email=a@example.org"]
    subprocess.run(command, cwd=project, check=True)
    assert "already inside a git repository" in capfd.readouterr().err
    assert git(project, "rev-parse", "HEAD") == head
    assert git(project, "status", "--porcelain") == ""


def test_a_copy_inside_an_existing_repository_leaves_that_repository_alone(
    render: Render, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "pre-commit.log"
    set_environment(monkeypatch, PATH=f"{fake_pre_commit(tmp_path / 'bin', log)}{os.pathsep}{os.environ['PATH']}")
    git(tmp_path, "init", "--quiet")
    project = render(AUTHOR)
    assert not (project / ".git").exists()
    assert git(tmp_path, "rev-list", "--all") == "", "no commit is made in the user's repository"
    assert not log.exists(), "pre-commit must not hook the user's outer repository"


def test_pre_commit_hooks_are_installed_when_pre_commit_is_available(
    render: Render, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "pre-commit.log"
    set_environment(monkeypatch, PATH=f"{fake_pre_commit(tmp_path / 'bin', log)}{os.pathsep}{os.environ['PATH']}")
    project = render(AUTHOR)
    assert log.read_text().split() == [str(project), "install"]


def test_without_pre_commit_the_copy_says_how_to_install_the_hooks(
    render: Render, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    only_git = tmp_path / "only_git"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git") or "git")
    set_environment(monkeypatch, PATH=str(only_git))
    project = render(AUTHOR)
    printed = capfd.readouterr().err
    assert "post-copy: created a git repository with a first commit" in printed
    assert "pre-commit not found" in printed
    assert "pre-commit install" in printed
    assert not (project / ".git/hooks/pre-commit").exists()


def run_migration(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(REPO / "hooks/migrate.py"), *args, "--from-ref=v0.1.0"]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, check=True)


@pytest.fixture
def committed_project(tmp_path: Path) -> Path:
    project = tmp_path / "committed"
    (project / "configs").mkdir(parents=True)
    (project / "configs/mine.yaml").write_text("model:\n  hidden_dim: 512\n")
    git(project, "init", "--quiet")
    git(project, "add", "--all")
    git(project, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "--quiet", "-m", "mine")
    return project


def test_a_migration_of_a_file_the_project_never_had_changes_nothing(committed_project: Path) -> None:
    result = run_migration(committed_project, "configs/overfit.yaml", "configs/presets/overfit.yaml")
    assert "configs/overfit.yaml is not in the project: nothing to move" in result.stderr
    assert git(committed_project, "status", "--porcelain", "--untracked-files=all") == ""


def test_a_migration_leaves_a_target_the_project_already_had_alone(committed_project: Path) -> None:
    """Run again after the moved file was committed (or where the user made that path): both files stay as they are."""
    (committed_project / "configs/presets").mkdir()
    (committed_project / "configs/presets/mine.yaml").write_text("model:\n  hidden_dim: 64\n")
    git(committed_project, "add", "--all")
    git(committed_project, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "--quiet", "-m", "moved")
    result = run_migration(committed_project, "configs/mine.yaml", "configs/presets/mine.yaml")
    assert "was already in the project before this update" in result.stderr
    assert git(committed_project, "status", "--porcelain", "--untracked-files=all") == ""
