"""`copier update` from every release a user may have, on the template's real history (issue 33).

For each release in tests/releases.py and each dataset answer it offered: a project generated at that release
(logger csv, every other answer its default) gets a user's typical edits, committed, and is updated to the working
tree, which a clone of this repository holds as its newest commit, tagged CURRENT, beside the releases' tags. Nothing is
resolved by hand but conflicts in files the user edited, and those by taking the template's side. The updated project
is installed (an environment of its own layered over this one) and runs its fast test tier and a short `fit`. Each
scenario adds a row to the summary table: release, answer, conflicted files, what became of each edit, tests, seconds.
Plain `nox -s tests` updates from the newest CI_RELEASES releases; `nox -s history` from all of them.
"""

import re
import resource
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from conftest import REPO, Summary, answers_of, git, install_in_own_environment
from copier import run_copy, run_update
from releases import CI_RELEASES, CURRENT, RELEASES, Release

# The generated tests an updated project must pass: its fast tier (the project's own `pytest` without options).
FAST_TIER = ("-m", "not full and not slow and not distributed and not compile", "-k", "not killed_at_any_moment")
SHORT_FIT = ("fit", "--trainer.max_epochs=1", "--trainer.limit_train_batches=4", "--trainer.limit_val_batches=2")
ANSWERS = {"logger": "csv"}
IDENTITY = ["-c", "user.name=Template Tester", "-c", "user.email=tester@example.com"]
CONFLICT_MARKERS = ("<<<<<<< before updating", ">>>>>>> after updating")
TITLE = f"updates of edited projects from each release to the working tree ({CURRENT})"


# ---------------------------------------------------------------- the user's edits
@dataclass
class Edit:
    """One change a user typically makes after generating: made, then looked for after the update."""

    name: str
    path: Callable[[Path], str]  # the file it changes, relative to the project
    make: Callable[[Path, str], None]
    kept: Callable[[Path, str], bool]


def package(project: Path) -> str:
    return str(answers_of(project)["package_name"])


MODEL_DEFAULT = ("dropout: float = 0.1", "dropout: float = 0.25")


def model_file(project: Path) -> str:
    """The module with the example's dropout default: the LightningModule's file before v0.5.0, network.py since."""
    found = [
        str(path.relative_to(project))
        for path in sorted((project / "src" / package(project)).glob("*.py"))
        if MODEL_DEFAULT[0] in path.read_text()
    ]
    assert len(found) == 1, f"one module with {MODEL_DEFAULT[0]!r} expected, found {found}"
    return found[0]


def replace_once(file: Path, old: str, new: str) -> None:
    text = file.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {file}"
    file.write_text(text.replace(old, new))


def make_config_values(project: Path, path: str) -> None:
    replace_once(project / path, "  max_epochs: 40\n", "  max_epochs: 60\n")
    replace_once(project / path, "  hidden_dim: 128\n", "  hidden_dim: 256\n")


def config_values_kept(project: Path, path: str) -> bool:
    config = yaml.safe_load((project / path).read_text())
    model = config["model"]
    hidden_dim = model.get("hidden_dim", model.get("network", {}).get("init_args", {}).get("hidden_dim"))
    return bool(config["trainer"]["max_epochs"] == 60 and hidden_dim == 256)


NEW_MODULE = '''"""Noise augmentation: the user's own module."""

import torch


def add_noise(x: torch.Tensor, std: float = 0.05) -> torch.Tensor:
    return x + std * torch.randn_like(x)
'''
README_LINE = "Trained on the lab's own scans; results are in notes/results.md.\n"


def make_readme_line(project: Path, path: str) -> None:
    """A line under the description (the README's third line)."""
    lines = (project / path).read_text().splitlines(keepends=True)
    (project / path).write_text("".join([*lines[:3], README_LINE, *lines[3:]]))


EDITS = (
    Edit(
        "model default",
        model_file,
        lambda project, path: replace_once(project / path, *MODEL_DEFAULT),
        lambda project, path: MODEL_DEFAULT[1] in (project / path).read_text(),
    ),
    Edit(
        "config values",
        lambda project: "configs/default.yaml",
        make_config_values,
        config_values_kept,
    ),
    Edit(
        "new module",
        lambda project: f"src/{package(project)}/augment.py",
        lambda project, path: (project / path).write_text(NEW_MODULE),
        lambda project, path: (project / path).read_text() == NEW_MODULE,
    ),
    Edit(
        "README line",
        lambda project: "README.md",
        make_readme_line,
        lambda project, path: README_LINE in (project / path).read_text(),
    ),
)


# ---------------------------------------------------------------- the template's history
@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of this repository, the releases tagged, the working tree (uncommitted edits too) committed as CURRENT."""
    repo = tmp_path_factory.mktemp("history") / "copier-lightning"
    git(REPO, "clone", "--quiet", "--no-tags", str(REPO), str(repo))
    for release in RELEASES:
        found = subprocess.run(["git", "cat-file", "-e", f"{release.commit}^{{commit}}"], cwd=repo, check=False)
        assert found.returncode == 0, (
            f"release {release.version} ({release.commit}) is not in this clone's history: these tests need the whole "
            "history (`git fetch --unshallow`)"
        )
        git(repo, "tag", release.version, release.commit)
    for name in ("copier.yml", "template", "hooks"):
        target = repo / name
        if target.is_dir():
            shutil.rmtree(target)
        target.unlink(missing_ok=True)
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            shutil.copy2(source, target)
    git(repo, "add", "--all")
    git(repo, *IDENTITY, "commit", "--quiet", "--allow-empty", "--no-verify", "--message", "The working tree")
    git(repo, "tag", CURRENT)
    return repo


@pytest.fixture(autouse=True)
def _no_git_identity(git_without_identity: Path) -> None:
    """Every copy and update runs as on a fresh CI machine, where git has no user identity."""


# ---------------------------------------------------------------- one scenario
def cpu_seconds() -> float:
    """CPU time of this process and of the processes it has waited for (timings that hold on a busy machine)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@dataclass
class Row:
    release: str
    dataset: str
    seconds: float = 0.0
    cpu: float = 0.0
    step: str = "copy"
    conflicts: list[str] = field(default_factory=list)
    edits: dict[str, str] = field(default_factory=dict)
    tests: str = "-"
    fit: str = "-"
    step_seconds: dict[str, float] = field(default_factory=dict)
    _clock: float = field(default_factory=time.monotonic)

    def start(self, step: str) -> None:
        """The step now running; the one before it is timed."""
        now = time.monotonic()
        self.step_seconds[self.step] = now - self._clock
        self.step, self._clock = step, now

    def line(self) -> str:
        edits = ", ".join(f"{name}: {what}" for name, what in self.edits.items()) or "-"
        conflicts = " ".join(self.conflicts) or "none"
        outcome = "green" if self.step == "done" else f"FAILED at {self.step}"
        steps = " ".join(f"{step} {seconds:.0f}" for step, seconds in self.step_seconds.items() if seconds >= 1)
        return (
            f"{self.release:<8} {self.dataset:<13} {self.seconds:5.0f} s ({self.cpu:4.0f} s CPU)  {outcome:<22} "
            f"conflicts: {conflicts} | "
            f"edits: {edits} | tests: {self.tests} | fit: {self.fit} | seconds: {steps}"
        )


def scenarios(ci_releases: int) -> list[Any]:
    """Every release x dataset answer; the older releases marked `history`. Each scenario is an xdist group of its
    own (the clone is made again on each worker, in seconds), so the minutes of fast tests spread over the workers."""
    newest = {release.version for release in RELEASES[-ci_releases:]}
    return [
        pytest.param(
            release,
            dataset,
            id=f"{release.version}-{dataset}",
            marks=[pytest.mark.xdist_group(f"release-{release.version}-{dataset}")]
            + ([] if release.version in newest else [pytest.mark.history]),
        )
        for release in RELEASES
        for dataset in release.datasets
    ]


def commit_all(project: Path, message: str) -> None:
    git(project, "add", "--all")
    git(project, *IDENTITY, "commit", "--quiet", "--no-verify", "--message", message)


def conflicted_files(project: Path) -> list[str]:
    unmerged = set(git(project, "diff", "--name-only", "--diff-filter=U").split())
    for path in git(project, "ls-files", "--modified", "--others", "--exclude-standard").split():
        file = project / path
        if file.is_file() and any(mark.encode() in file.read_bytes() for mark in CONFLICT_MARKERS):
            unmerged.add(path)
    return sorted(unmerged)


def take_the_templates_side(project: Path, path: str) -> None:
    """Stage 3 of copier's unmerged entry is the new template's render; without one the template removed the file."""
    stages = git(project, "ls-files", "--stage", "--", path).split("\n")
    if any(line.split()[2:3] == ["3"] for line in stages if line):
        git(project, "checkout", "--theirs", "--", path)
        git(project, "add", "--", path)
    else:
        git(project, "rm", "--quiet", "--force", "--", path)


def failures(pytest_output: str) -> str:
    """pytest's FAILURES section, without the warnings summary after it, at most 6000 characters."""
    section = re.search(
        r"^=+ (?:FAILURES|ERRORS) =+$(.*?)(?=^=+ (?:warnings summary|short test summary))",
        pytest_output,
        re.MULTILINE | re.DOTALL,
    )
    return (section[1] if section else pytest_output)[-6000:]


def tally(pytest_output: str) -> str:
    """pytest's closing counts, e.g. '70 passed, 3 failed'."""
    counts = re.findall(r"(\d+) (passed|failed|errors?)\b", pytest_output.splitlines()[-1] if pytest_output else "")
    return ", ".join(f"{number} {word}" for number, word in counts) or "no result line"


@pytest.mark.generated
@pytest.mark.parametrize(("release", "dataset"), scenarios(CI_RELEASES))
def test_an_edited_project_from_a_release_updates_and_stays_green(
    history: Path, tmp_path: Path, summary: Summary, release: Release, dataset: str
) -> None:
    row = Row(release.version, dataset)
    started, cpu_started = time.monotonic(), cpu_seconds()
    try:
        update_and_check(history, tmp_path, release, dataset, row)
        row.start("done")
    finally:
        row.seconds, row.cpu = time.monotonic() - started, cpu_seconds() - cpu_started
        summary(TITLE, [row.line()])


def update_and_check(history: Path, tmp_path: Path, release: Release, dataset: str, row: Row) -> None:
    answers = dict(ANSWERS) if release.datasets == ("digits",) else {**ANSWERS, "dataset": dataset}
    project = tmp_path / "project"
    run_copy(str(history), project, data=answers, vcs_ref=release.version, defaults=True, unsafe=True, quiet=True)

    row.start("the user's edits")
    paths = {edit.name: edit.path(project) for edit in EDITS}
    for edit in EDITS:
        edit.make(project, paths[edit.name])
    commit_all(project, "My model, config, module and notes")

    row.start("update")
    run_update(project, vcs_ref=CURRENT, defaults=True, overwrite=True, unsafe=True, quiet=True)
    assert answers_of(project)["_commit"] == CURRENT
    row.conflicts = conflicted_files(project)
    untouched = sorted(set(row.conflicts) - set(paths.values()))
    assert not untouched, (
        f"updating an edited {release.version} project marked conflicts in files the user never edited: {untouched}. "
        "copier merges each file with the old release's render as the base: a file missing there (an _exclude pattern "
        "that is true without a newer question's answer) or different from what the user got turns every line into "
        "a conflict"
    )
    for path in row.conflicts:
        take_the_templates_side(project, path)
    stray = git(project, "ls-files", "--others", "--exclude-standard", "--", "*.rej")
    assert not stray, f"the update left rejected hunks: {stray}"

    row.start("the user's edits after the update")
    for edit in EDITS:
        path = paths[edit.name]
        if not (project / path).is_file():
            row.edits[edit.name] = "file removed"
        elif edit.kept(project, path):
            row.edits[edit.name] = "kept"
        else:
            row.edits[edit.name] = "conflict, template's side" if path in row.conflicts else "LOST"
    lost = [name for name, what in row.edits.items() if what == "LOST"]
    assert not lost, f"the update dropped the user's edits {lost} without a conflict: {row.edits}"
    assert row.edits["new module"] == "kept"

    row.start("install")
    python = install_in_own_environment(project, tmp_path / "venv")

    row.start("fast tests")
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "--tb=short", *FAST_TIER],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    row.tests = tally(result.stdout.strip())
    assert result.returncode == 0, (
        f"the updated {release.version} {dataset} project fails its own fast tests:\n"
        + "\n".join(line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR")))
        + "\n"
        + failures(result.stdout)
        + result.stderr[-2000:]
    )

    row.start("fit")
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    program = python.parent / package(project)
    fit = subprocess.run([str(program), *SHORT_FIT], cwd=run_folder, capture_output=True, text=True, check=False)
    row.fit = "ok" if fit.returncode == 0 else f"exit {fit.returncode}"
    assert fit.returncode == 0, f"`{package(project)} {' '.join(SHORT_FIT)}` failed:\n{fit.stderr[-3000:]}"
    assert list(run_folder.glob("logs/**/last.ckpt")), "the fit wrote no last.ckpt"


def test_templated_exclude_patterns_exclude_nothing_without_their_answers() -> None:
    """copier renders the project's OLD release, the merge's base, with the new template's _exclude patterns in the
    old release's answers: a question added since is undefined there. A pattern that is true then drops its files
    from the base, and the update marks every line of them as a conflict, edited or not (the v0.1 update of issue 33).
    """
    patterns = yaml.safe_load((REPO / "copier.yml").read_text())["_exclude"]
    environment = jinja2.Environment(autoescape=False)
    for pattern in patterns:
        if "{%" in pattern or "{{" in pattern:
            assert environment.from_string(pattern).render().strip() == "", f"{pattern!r} excludes without an answer"
