"""Post-copy task: make the new project a git repository with a first commit, then install its pre-commit hooks.

copier runs this in the new project, on `copier copy` only (see `_tasks` in copier.yml), with the Python that runs
copier, so it uses the standard library alone. `copier update` needs a git repository with a clean work tree: after
this, the project can be updated at once. Every step prints what it did, and is skipped when already done, so running
it again changes nothing. A failure here never undoes the copy: it is printed with the command to run by hand.
"""

from __future__ import annotations  # runs on the Python that runs copier, which may be 3.9

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

FIRST_COMMIT_MESSAGE = "Generate the project from the copier-lightning template"


def say(message: str) -> None:
    print(f"post-copy: {message}", file=sys.stderr)


def git(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=False)


def configured(project: Path, key: str) -> bool:
    return bool(git(project, "config", "--get", key).stdout.strip())


def make_repository(project: Path, author_name: str, author_email: str) -> None:
    """`git init` and a first commit of everything generated, unless the folder is already inside a repository."""
    if shutil.which("git") is None:
        say("git not found: skipped `git init`. Install git, then run `git init && git add -A && git commit`.")
        return
    if git(project, "rev-parse", "--is-inside-work-tree").returncode == 0:
        say("already inside a git repository: left it as it is (commit the new files before `copier update`).")
        return
    init = git(project, "init")
    if init.returncode != 0:
        say(f"`git init` failed: {init.stderr.strip()}")
        return
    # The project's author stands in, for this one commit only, where git has no identity configured yet.
    identity = []
    if not configured(project, "user.name"):
        identity += ["-c", f"user.name={author_name}"]
    if not configured(project, "user.email"):
        identity += ["-c", f"user.email={author_email}"]
    git(project, "add", "--all")
    commit = git(project, *identity, "commit", "--quiet", "--no-verify", "--message", FIRST_COMMIT_MESSAGE)
    if commit.returncode != 0:
        say(f"`git commit` failed: {(commit.stderr or commit.stdout).strip()}")
        say('commit by hand before `copier update`: git add -A && git commit -m "Generate the project"')
        return
    say(f"created a git repository with a first commit: {FIRST_COMMIT_MESSAGE!r}")


def install_pre_commit(project: Path) -> None:
    """`pre-commit install` when pre-commit is on PATH and the project is a repository with a pre-commit config."""
    if not (project / ".pre-commit-config.yaml").is_file():
        return
    pre_commit = shutil.which("pre-commit")
    if pre_commit is None:
        say("pre-commit not found: skipped. After `uv sync` (or `pip install -e . --group dev`): `pre-commit install`.")
        return
    top_level = git(project, "rev-parse", "--show-toplevel")
    if top_level.returncode != 0 or Path(top_level.stdout.strip()).resolve() != project.resolve():
        say("not the top of its own git repository: skipped `pre-commit install` (it would hook the outer one).")
        return
    result = subprocess.run([pre_commit, "install"], cwd=project, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        say(f"`pre-commit install` failed: {(result.stderr or result.stdout).strip()}")
        return
    say("installed the pre-commit hooks (ruff runs on every commit).")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--author-name", required=True, help="git identity for the first commit if none is set")
    parser.add_argument("--author-email", required=True, help="git identity for the first commit if none is set")
    args = parser.parse_args(argv)
    project = Path.cwd()
    make_repository(project, args.author_name, args.author_email)
    install_pre_commit(project)


if __name__ == "__main__":
    main()
