"""`copier update` never loses a user's work.

A session fixture builds a git repository of the template with two tags: v0.1.0 is the template as it is in this
working tree; v0.2.0 changes a line of a template-owned file, adds a file, moves a file (with a migration), and
changes the user-owned example model. Each test copies at v0.1.0 (the post-copy task makes the first commit), works
on the project as a user would, commits, and updates to v0.2.0.
"""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from answer_sets import PACKAGE_FILES, expected_files
from conftest import answers_of, fake_pre_commit, git, render_project, set_environment
from copier import run_copy, run_update
from copier.errors import UserMessageError

OLD, NEW = "v0.1.0", "v0.2.0"
MOVED_FROM, MOVED_TO = "configs/overfit.yaml", "configs/presets/overfit.yaml"
ADDED = "configs/quick.yaml"
CONFLICT_MARKERS = ("<<<<<<< before updating", ">>>>>>> after updating")
TEST_IDENTITY = ["-c", "user.name=Template Tester", "-c", "user.email=tester@example.com"]


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "--all")
    git(cwd, *TEST_IDENTITY, "commit", "--quiet", "--no-verify", "--message", message)


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {path}"
    path.write_text(text.replace(old, new))


def make_version_2(repo: Path) -> None:
    """What v0.2.0 changes, so that every kind of update is exercised."""
    template = repo / "template"
    replace_once(template / "configs/default.yaml.jinja", "  max_epochs: 40\n", "  max_epochs: 50\n")
    (template / ADDED).write_text("# A quick run: three epochs.\ntrainer:\n  max_epochs: 3\n")
    (template / MOVED_TO).parent.mkdir()
    (template / MOVED_FROM).rename(template / MOVED_TO)
    with (template / MOVED_TO).open("a") as moved:
        moved.write("  log_every_n_steps: 1\n")
    network = template / "src/{{package_name}}/{% if dataset != 'image_folder' %}network.py{% endif %}"
    replace_once(
        network,
        "    def forward(self, x: Tensor) -> Tensor:\n",
        "    def forward(self, x: Tensor) -> Tensor:  # v0.2.0\n",
    )
    migration = (
        "_migrations:\n"
        f"  - version: {NEW}\n"
        '    command: ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/hooks/migrate.py",'
        f' "{MOVED_FROM}", "{MOVED_TO}", "--answers-file={{{{ _copier_conf.answers_file }}}}"]\n'
    )
    replace_once(repo / "copier.yml", "_migrations:\n", migration)


@pytest.fixture(autouse=True)
def _no_git_identity(git_without_identity: Path) -> None:
    """Every copy and update here runs as on a fresh CI machine, where git has no user identity."""


@pytest.fixture(scope="session")
def template_repo(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("template_repo")
    shutil.copytree(template_dir, repo, dirs_exist_ok=True)
    git(repo, "init", "--quiet")
    commit_all(repo, "The template of this working tree")
    git(repo, "tag", OLD)
    make_version_2(repo)
    commit_all(repo, "Change, add and move files")
    git(repo, "tag", NEW)
    return repo


def copy_at(template_repo: Path, destination: Path, ref: str = OLD, answers: dict[str, Any] | None = None) -> Path:
    run_copy(str(template_repo), destination, data=answers or {}, vcs_ref=ref, defaults=True, unsafe=True, quiet=True)
    return destination


def update(project: Path, answers: dict[str, Any] | None = None) -> None:
    run_update(project, data=answers or {}, defaults=True, overwrite=True, unsafe=True, quiet=True)


def snapshot(project: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(project)): path.read_bytes()
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(project).parts
    }


def expected_files_at_version_2(answers: dict[str, Any]) -> set[str]:
    return (expected_files(answers) - {MOVED_FROM}) | {MOVED_TO, ADDED}


def files_with_conflicts(project: Path) -> list[str]:
    return [
        path
        for path, content in snapshot(project).items()
        if any(mark.encode() in content for mark in CONFLICT_MARKERS)
    ]


@pytest.fixture
def project(template_repo: Path, tmp_path: Path) -> Path:
    return copy_at(template_repo, tmp_path / "project")


def test_readme_gives_every_module_its_owner_and_no_file_is_skipped() -> None:
    """README's "Who owns which file" table: the network, the DataModule and their tests are both yours and the
    template's, every other module the template's; and no file escapes updates (no `_skip_if_exists`)."""
    copier_yml = yaml.safe_load((Path(__file__).parents[1] / "copier.yml").read_text())
    assert "_skip_if_exists" not in copier_yml, "README says that every update reaches every file"
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("**Who owns which file.**", 1)[1].split("**`--trust`.**", 1)[0]
    owners = {
        name.removeprefix("src/<package_name>/"): owner
        for files, owner in re.findall(r"^\| (.+?) \| (both|template) \| .+ \|$", section, re.MULTILINE)
        for name in re.findall(r"`([^`]+)`", files)
    }
    both = {name for name, owner in owners.items() if owner == "both"}
    assert both == {"network.py", "datamodule.py", "tests/test_model.py", "tests/test_datamodule.py"}
    modules = {name for name in PACKAGE_FILES if name.endswith(".py")} - {"__init__.py", "__main__.py"}
    assert modules <= set(owners), f"README's table gives no owner to {sorted(modules - set(owners))}"


def test_copy_from_git_records_source_and_version(template_repo: Path, project: Path) -> None:
    answers = answers_of(project)
    assert answers["_src_path"] == str(template_repo)
    assert answers["_commit"] == OLD
    assert git(project, "status", "--porcelain") == "", "the post-copy commit leaves a clean tree to update"


def test_secret_answers_are_never_stored(template_dir: Path, tmp_path: Path) -> None:
    template = tmp_path / "template"
    shutil.copytree(template_dir, template)
    questions = yaml.safe_load((template / "copier.yml").read_text())
    secrets = {
        name: "s3cret-value" for name, spec in questions.items() if isinstance(spec, dict) and spec.get("secret")
    }
    with (template / "copier.yml").open("a") as config:
        config.write("\ntracking_api_token:\n  type: str\n  secret: true\n  default: unused\n")
    secrets["tracking_api_token"] = "s3cret-token"
    project = render_project(template, tmp_path / "project", secrets)
    stored = (project / ".copier-answers.yml").read_text()
    for name, value in secrets.items():
        assert name not in stored
        assert value not in stored


def test_1_update_without_edits_equals_a_fresh_copy_of_the_new_version(
    template_repo: Path, project: Path, tmp_path: Path
) -> None:
    before = snapshot(project)
    update(project)
    fresh = snapshot(copy_at(template_repo, tmp_path / "fresh", ref=NEW))
    updated = snapshot(project)
    assert answers_of(project)["_commit"] == NEW
    assert set(updated) == set(fresh)
    for path in set(fresh) - {".copier-answers.yml"}:
        assert updated[path] == fresh[path], f"{path} differs from a fresh copy of {NEW}"
    assert any(updated[path] != before[path] for path in updated if path.endswith("network.py")), "nothing is frozen"


def test_the_post_copy_task_runs_on_copy_only(
    template_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not again on update, neither in the project nor in the temporary copies copier renders to compute the diff."""
    log = tmp_path / "pre-commit.log"
    set_environment(monkeypatch, PATH=f"{fake_pre_commit(tmp_path / 'bin', log)}{os.pathsep}{os.environ['PATH']}")
    project = copy_at(template_repo, tmp_path / "project")
    update(project)
    assert log.read_text().splitlines() == [f"{project} install"]
    assert git(project, "rev-list", "--count", "HEAD").strip() == "1"


def test_2_user_edit_survives_where_the_template_did_not_change(project: Path) -> None:
    config = project / "configs/default.yaml"
    replace_once(config, "      hidden_dim: 128\n", "      hidden_dim: 256\n")
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\n## Results\n\n98.1% test accuracy.\n")
    commit_all(project, "Tune the model, note results")
    update(project)
    merged = yaml.safe_load(config.read_text())
    assert merged["model"]["network"]["init_args"]["hidden_dim"] == 256, "the user's edit"
    assert merged["trainer"]["max_epochs"] == 50, "the template's change"
    assert readme.read_text().endswith("## Results\n\n98.1% test accuracy.\n")
    assert files_with_conflicts(project) == []


def test_3_same_lines_changed_give_inline_conflict_markers(project: Path) -> None:
    config = project / "configs/default.yaml"
    replace_once(config, "  max_epochs: 40\n", "  max_epochs: 100\n")
    commit_all(project, "Train longer")
    update(project)
    text = config.read_text()
    for expected in (*CONFLICT_MARKERS, "  max_epochs: 100\n", "  max_epochs: 50\n"):
        assert expected in text, f"{expected!r} missing from the conflicted file:\n{text}"
    assert files_with_conflicts(project) == ["configs/default.yaml"]
    assert git(project, "diff", "--name-only", "--diff-filter=U").split() == ["configs/default.yaml"]


def test_4_the_users_own_files_are_untouched(project: Path) -> None:
    package = answers_of(project)["package_name"]
    own = {
        f"src/{package}/transformer.py": b'"""My own model."""\n\nLAYERS = 12\n',
        "configs/experiment.yaml": b"model:\n  hidden_dim: 512\n",
        "notes.md": b"# Notes\n",
    }
    for path, content in own.items():
        (project / path).write_bytes(content)
    commit_all(project, "My model, my experiment")
    update(project)
    after = snapshot(project)
    for path, content in own.items():
        assert after[path] == content


def test_4_the_network_is_yours_and_the_templates_both_changes_arrive(project: Path) -> None:
    """v0.2.0 changes network.py, and the user changed another line of it: the update merges the two."""
    package = answers_of(project)["package_name"]
    network = project / f"src/{package}/network.py"
    replace_once(network, "hidden_dim: int = 128", "hidden_dim: int = 64")
    commit_all(project, "Smaller network")
    update(project)
    text = network.read_text()
    assert "hidden_dim: int = 64" in text, "the user's edit"
    assert "-> Tensor:  # v0.2.0" in text, "the template's change"
    assert files_with_conflicts(project) == []


ANSWER_CHANGES = {
    "logger=csv": ({}, {"logger": "csv"}),
    "accelerator=gpu": ({}, {"accelerator": "gpu"}),
    "launcher=slurm": ({}, {"launcher": "slurm"}),
    "launcher=local (from slurm)": ({"launcher": "slurm"}, {"launcher": "local"}),
    "hpo=optuna": ({}, {"hpo": "optuna"}),
    "hpo=none (from optuna on slurm)": ({"hpo": "optuna", "launcher": "slurm"}, {"hpo": "none"}),
}


@pytest.mark.parametrize("change", ANSWER_CHANGES)
def test_5_an_answer_changed_on_update_switches_the_project_cleanly(
    template_repo: Path, tmp_path: Path, change: str
) -> None:
    first, changed = ANSWER_CHANGES[change]
    project = copy_at(template_repo, tmp_path / "project", answers=first)
    (project / "configs/experiment.yaml").write_text("model:\n  hidden_dim: 512\n")
    commit_all(project, "My experiment")
    update(project, changed)
    answers = answers_of(project)
    for question, value in changed.items():
        assert answers[question] == value
    assert set(snapshot(project)) == expected_files_at_version_2(answers) | {"configs/experiment.yaml"}
    assert (project / "configs/experiment.yaml").read_text() == "model:\n  hidden_dim: 512\n"
    assert files_with_conflicts(project) == []
    assert git(project, "diff", "--name-only", "--diff-filter=U") == ""
    trainer = yaml.safe_load((project / "configs/default.yaml").read_text())["trainer"]
    assert trainer["accelerator"] == answers["accelerator"]
    assert trainer["logger"]["class_path"].endswith(
        {"csv": "CSVLogger", "tensorboard": "TensorBoardLogger"}[answers["logger"]]
    )


def test_6_a_migration_moves_a_file_with_the_users_content(project: Path) -> None:
    replace_once(project / MOVED_FROM, "  overfit_batches: 2\n", "  overfit_batches: 4\n")
    commit_all(project, "Overfit more batches")
    update(project)
    assert not (project / MOVED_FROM).exists()
    moved = (project / MOVED_TO).read_text()
    assert "  overfit_batches: 4\n" in moved, "the user's edit moved along"
    assert moved.endswith("  log_every_n_steps: 1\n"), "the template's change of the moved file arrived"
    assert files_with_conflicts(project) == []


def test_7_updating_a_dirty_project_is_refused_and_changes_nothing(project: Path) -> None:
    replace_once(project / "configs/default.yaml", "  hidden_dim: 128\n", "  hidden_dim: 256\n")
    (project / "scratch.py").write_text("print('work in progress')\n")
    before = snapshot(project), git(project, "status", "--porcelain"), git(project, "rev-parse", "HEAD")
    with pytest.raises(UserMessageError, match=r"dirty.*commit or stash your local changes"):
        update(project)
    assert (snapshot(project), git(project, "status", "--porcelain"), git(project, "rev-parse", "HEAD")) == before


def test_5_the_license_answer_changed_on_update_rewrites_license_and_metadata(
    template_repo: Path, tmp_path: Path
) -> None:
    project = copy_at(template_repo, tmp_path / "project")
    assert (project / "LICENSE").read_text().startswith("MIT License\n")
    update(project, {"license": "Apache-2.0"})
    assert "Apache License\n                           Version 2.0" in (project / "LICENSE").read_text()
    project_table = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert (project_table["license"], project_table["license-files"]) == ("Apache-2.0", ["LICENSE"])
    assert files_with_conflicts(project) == []
    assert answers_of(project)["license"] == "Apache-2.0"


SYNC_WORKFLOW = ".github/workflows/template-sync.yml"


def run_workflow_step(project: Path, name: str, outputs: dict[str, str], runner: Path) -> dict[str, str]:
    """Run one `run:` step of the generated template-sync workflow as GitHub's runner would (bash -eo pipefail), with
    its `env:` and the earlier step's outputs filled in, and this environment's python and copier; return its outputs.
    """
    steps = yaml.safe_load((project / SYNC_WORKFLOW).read_text())["jobs"]["update"]["steps"]
    step = next(step for step in steps if step.get("name") == name)
    output = runner / "output"
    output.write_text("")
    env = {
        key: re.sub(r"\$\{\{ steps\.check\.outputs\.(\w+) \}\}", lambda match: outputs[match[1]], value)
        for key, value in step.get("env", {}).items()
    }
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    environment = {**os.environ, **env, "PATH": path, "GITHUB_OUTPUT": str(output), "RUNNER_TEMP": str(runner)}
    command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False, env=environment)
    assert result.returncode == 0, f"step {name!r}: {result.stdout}{result.stderr}"
    return dict(line.split("=", 1) for line in output.read_text().splitlines())


def test_8_the_template_sync_workflow_proposes_the_newest_tag_with_conflicts_marked(
    template_repo: Path, tmp_path: Path
) -> None:
    """Its check and update steps against a template repository with two tags; pushing and `gh pr create` need GitHub."""
    project = copy_at(template_repo, tmp_path / "project")
    replace_once(project / "configs/default.yaml", "  max_epochs: 40\n", "  max_epochs: 100\n")
    commit_all(project, "Train longer")
    runner = tmp_path / "runner"
    runner.mkdir()
    check = run_workflow_step(project, "Check for a newer template version", {}, runner)
    assert check == {"current": OLD, "latest": NEW, "newer": "true"}
    run_workflow_step(project, "Update to the newer version", check, runner)
    assert git(project, "branch", "--show-current").strip() == f"template-sync/{NEW}"
    assert git(project, "status", "--porcelain") == "", "the update is committed, conflicts included"
    assert git(project, "log", "-1", "--format=%s").strip() == f"Update the project to template {NEW}"
    assert answers_of(project)["_commit"] == NEW
    assert files_with_conflicts(project) == ["configs/default.yaml"]
    body = (runner / "template-sync.md").read_text()
    assert f"from template {OLD} to {NEW}" in body
    assert "\n- configs/default.yaml\n" in body
    assert run_workflow_step(project, "Check for a newer template version", {}, runner)["newer"] == "false"


@pytest.mark.parametrize(("first", "then", "network"), [("digits", "csv", "MLP"), ("csv", "image_folder", "SmallCNN")])
def test_9_switching_the_dataset_answer_merges_the_new_data_and_network_with_your_edits(
    template_repo: Path, tmp_path: Path, first: str, then: str, network: str
) -> None:
    """Every answer names its data, network and preprocessing files alike, so a switch rewrites them, three-way
    merged with your edits: a line you changed that the new answer keeps keeps your change (the networks share their
    signature), any other would be marked as a conflict. The CLI takes the new DataModule."""
    project = copy_at(template_repo, tmp_path / "project", answers={"dataset": first})
    package = answers_of(project)["package_name"]
    edited = project / f"src/{package}/network.py"
    replace_once(edited, "hidden_dim: int = 128", "hidden_dim: int = 64")
    commit_all(project, "My change of the network")
    update(project, {"dataset": then})
    answers = answers_of(project)
    assert answers["dataset"] == then
    assert set(snapshot(project)) == expected_files_at_version_2(answers)
    name = {"csv": "CSVDataModule", "image_folder": "ImageFolderDataModule"}[then]
    assert f"from {package}.datamodule import {name}" in (project / f"src/{package}/cli.py").read_text()
    assert files_with_conflicts(project) == []
    assert f"class {network}(nn.Module):" in edited.read_text()
    assert "hidden_dim: int = 64" in edited.read_text()
