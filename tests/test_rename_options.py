"""The renamed-options migration (hooks/rename_options.py): the user's configs follow a release's renamed keys.

The line rewrite on its own first (layouts, comments, what it refuses), then through `copier update` between two tags
of a template repository made from this working tree: v0.1.0 writes the model's options flat (`model.hidden_dim`), the
version of the migration entry in copier.yml writes them where `renamed_options` says, as this release does.
"""

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, answers_of, git
from copier import run_copy, run_update
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(REPO / "hooks"))
from rename_options import CannotRename, rename_keys, still_written

COPIER_YML = yaml.safe_load((REPO / "copier.yml").read_text())
RENAMES: dict[str, str] = {
    "model.hidden_dim": "model.network.init_args.hidden_dim",
    "model.dropout": "model.network.init_args.dropout",
}
IDENTITY = ["-c", "user.name=Template Tester", "-c", "user.email=tester@example.com"]
CONFLICT_MARKERS = ("<<<<<<< before updating", ">>>>>>> after updating")


def test_this_releases_renames_are_in_copier_yml() -> None:
    """The one list the hook and the generated CLI read; other renames of this release may join it."""
    assert RENAMES.items() <= COPIER_YML["renamed_options"]["default"].items()
    assert COPIER_YML["renamed_options"]["when"] is False


LAYOUTS = {  # name: (before, after)
    "the default config": (
        """\
# The default experiment.
trainer:
  max_epochs: 40  # epochs
model:
  hidden_dim: 256  # wider
  dropout: 0.1
  lr: 0.003
data:
  batch_size: 64
""",
        """\
# The default experiment.
trainer:
  max_epochs: 40  # epochs
model:
  network:
    init_args:
      hidden_dim: 256  # wider
      dropout: 0.1
  lr: 0.003
data:
  batch_size: 64
""",
    ),
    "an experiment with one of the keys": (
        "model:\n  # smaller\n  dropout: 0.3\n",
        "model:\n  # smaller\n  network:\n    init_args:\n      dropout: 0.3\n",
    ),
    "four-space indents, keys after others and in another order, no final newline": (
        "model:\n    lr: 0.01\n    dropout: 0.2\n    hidden_dim: 64",
        "model:\n    lr: 0.01\n    network:\n        init_args:\n            hidden_dim: 64\n            dropout: 0.2\n",
    ),
    "the network already there, class_path first": (
        "model:\n  network:\n    class_path: pkg.network.MLP\n    init_args:\n      hidden_dim: 64\n  dropout: 0.2\n",
        "model:\n  network:\n    class_path: pkg.network.MLP\n    init_args:\n      hidden_dim: 64\n      dropout: 0.2\n",
    ),
    "a sweep: dotted keys and options in strings, comments left": (
        """\
fit_args:  # --model.dropout=0 in a comment stays
  - --model.hidden_dim=64
  - '--model.dropout 0.2'
  - --model.hidden_dims=3
parameters:
  model.hidden_dim: {type: int, low: 32, high: 256}
  "model.dropout": {type: float, low: 0.0, high: 0.5}
  model.lr: {type: float, low: 0.001, high: 0.1}
""",
        """\
fit_args:  # --model.dropout=0 in a comment stays
  - --model.network.init_args.hidden_dim=64
  - '--model.network.init_args.dropout 0.2'
  - --model.hidden_dims=3
parameters:
  model.network.init_args.hidden_dim: {type: int, low: 32, high: 256}
  model.network.init_args.dropout: {type: float, low: 0.0, high: 0.5}
  model.lr: {type: float, low: 0.001, high: 0.1}
""",
    ),
    "a block scalar that mentions a key, and keys inside a list": (
        """\
notes: |
  model:
    hidden_dim: 1
trainer:
  callbacks:
    - class_path: X
      init_args:
        hidden_dim: 5
model:
  hidden_dim: 8
""",
        """\
notes: |
  model:
    hidden_dim: 1
trainer:
  callbacks:
    - class_path: X
      init_args:
        hidden_dim: 5
model:
  network:
    init_args:
      hidden_dim: 8
""",
    ),
    "a value on several lines moves whole": (
        "model:\n  hidden_dim:\n    - 64\n    - 32\n  lr: 0.1\n",
        "model:\n  network:\n    init_args:\n      hidden_dim:\n        - 64\n        - 32\n  lr: 0.1\n",
    ),
    "nothing to rename": (
        "trainer:\n  max_epochs: 3  # hidden_dim: 1\n",
        "trainer:\n  max_epochs: 3  # hidden_dim: 1\n",
    ),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_old_keys_are_renamed_in_place_and_the_rest_of_the_file_is_kept(layout: str) -> None:
    before, after = LAYOUTS[layout]
    assert rename_keys(before, RENAMES) == after
    assert rename_keys(after, RENAMES) == after, "running again changes nothing"


def test_a_key_renamed_to_another_section_leaves_no_empty_section() -> None:
    renames = {"trainer.dropout": "model.network.init_args.dropout"}
    text = "trainer:\n  dropout: 0.5\nmodel:\n  lr: 0.1\n"
    assert rename_keys(text, renames) == "model:\n  lr: 0.1\n  network:\n    init_args:\n      dropout: 0.5\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("model: {hidden_dim: 64, lr: 0.1}\n", "layout"),
        ("base: &base\n  hidden_dim: 64\nmodel: *base\n", "layout"),
        ("model:\n  hidden_dim: 64\n---\nmodel:\n  dropout: 0.1\n", "PyYAML cannot read it"),
        ("model:\n  hidden_dim: 64\n  network:\n    init_args:\n      hidden_dim: 32\n", "both"),
        ("model:\n  network: pkg.MLP\n  hidden_dim: 64\n", "has a value of its own"),
    ],
)
def test_a_layout_the_rewrite_does_not_handle_is_refused_not_mangled(text: str, reason: str) -> None:
    with pytest.raises(CannotRename, match=reason):
        rename_keys(text, RENAMES)


NAMES = st.sampled_from(["model", "data", "trainer", "hidden_dim", "dropout", "lr", "network", "init_args", "x.y"])
SCALARS = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(), st.text("ab -_.", max_size=8))
TREES = st.recursive(SCALARS, lambda inner: st.dictionaries(NAMES, inner, max_size=4), max_leaves=12)


def renamed_by_hand(data: Any) -> Any:
    """The oracle: the two renames done on the data."""
    model = data.get("model")
    if isinstance(model, dict):
        moved = {name: model.pop(name) for name in ("hidden_dim", "dropout") if name in model}
        if moved:
            model.setdefault("network", {}).setdefault("init_args", {}).update(moved)
    return data


def refused(data: dict[str, Any]) -> bool:
    """Where the new keys cannot go: a value (or `{}`) where their mappings must be, or a new key already set."""
    model = data.get("model")
    old = [name for name in ("hidden_dim", "dropout") if name in model] if isinstance(model, dict) else []
    if not old or "network" not in model:
        return False
    network = model["network"]
    if not isinstance(network, dict) or not network:
        return True
    init_args = network.get("init_args", {"": None})
    return not isinstance(init_args, dict) or not init_args or any(name in init_args for name in old)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(NAMES, TREES, min_size=1, max_size=4), st.sampled_from([2, 4]))
def test_any_block_style_file_reads_as_its_data_renamed(data: dict[str, Any], indent: int) -> None:
    text = yaml.safe_dump(data, default_flow_style=False, sort_keys=False, indent=indent)
    if refused(data):
        with pytest.raises(CannotRename):
            rename_keys(text, RENAMES)
        return
    renamed = rename_keys(text, RENAMES)
    assert yaml.safe_load(renamed) == renamed_by_hand(yaml.safe_load(text))
    assert rename_keys(renamed, RENAMES) == renamed


def test_a_rename_the_new_template_does_not_make_yet_is_held_back(tmp_path: Path) -> None:
    """Listed in renamed_options before the template writes the new key: the user's configs keep working."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs/default.yaml").write_text(
        "model:\n  hidden_dim: 128\n  network:\n    init_args:\n      dropout: 0.1\n"
    )
    assert still_written(RENAMES, tmp_path, "configs") == {"model.hidden_dim": "configs/default.yaml"}


# ---------------------------------------------------------------- through `copier update`
def migration_version() -> str:
    """The version of the copier.yml migration that runs hooks/rename_options.py."""
    entries = [entry for entry in COPIER_YML["_migrations"] if "rename_options.py" in json.dumps(entry)]
    assert len(entries) == 1, "copier.yml runs hooks/rename_options.py from one _migrations entry"
    return str(entries[0]["version"])


OLD, NEW = "v0.1.0", migration_version()
MODEL_SECTION = re.compile(r"^model:\n(?:[ #].*\n|\n)*", re.MULTILINE)
FLAT_MODEL = "model:\n  hidden_dim: 128\n  dropout: 0.1\n  lr: 0.003\n  weight_decay: 0.01\n"
NESTED_MODEL = (
    "model:\n  network:\n    class_path: {{ package_name }}.network.MLP\n    init_args:\n      hidden_dim: 128\n"
    "      dropout: 0.1\n  lr: 0.003\n  weight_decay: {{ weight_decay }}\n"
)


def set_model_section(template: Path, section: str, weight_decay: str = "0.01") -> None:
    """Write the model options as a release lays them out, and the sweep's names to match."""
    config = template / "template/configs/default.yaml.jinja"
    text, count = MODEL_SECTION.subn(section.replace("{{ weight_decay }}", weight_decay), config.read_text(), count=1)
    assert count == 1, f"no top-level model section in {config}"
    config.write_text(text)
    for sweep in (template / "template/configs").glob("*sweep.yaml*"):
        sweep_text = sweep.read_text()
        for old, new in RENAMES.items():
            sweep_text = sweep_text.replace(new, old) if section == FLAT_MODEL else sweep_text.replace(old, new)
        sweep.write_text(sweep_text)


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "--all")
    git(cwd, *IDENTITY, "commit", "--quiet", "--no-verify", "--message", message)


@pytest.fixture(scope="module")
def template_repo(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v0.1.0 with the flat options, NEW with the renamed ones (and weight_decay 0.02), NEW + 0.0.1 a preset more."""
    repo = tmp_path_factory.mktemp("rename_template")
    shutil.copytree(template_dir, repo, dirs_exist_ok=True)
    git(repo, "init", "--quiet")
    set_model_section(repo, FLAT_MODEL)
    commit_all(repo, "Flat model options")
    git(repo, "tag", OLD)
    set_model_section(repo, NESTED_MODEL, weight_decay="0.02")
    commit_all(repo, "The network's options under model.network.init_args")
    git(repo, "tag", NEW)
    (repo / "template/configs/quick.yaml").write_text("trainer:\n  max_epochs: 3\n")
    commit_all(repo, "A quick preset")
    major, minor, patch = NEW.removeprefix("v").split(".")
    git(repo, "tag", f"v{major}.{minor}.{int(patch) + 1}")
    return repo


def copy_at(template_repo: Path, destination: Path, ref: str, answers: dict[str, Any] | None = None) -> Path:
    run_copy(str(template_repo), destination, data=answers or {}, vcs_ref=ref, defaults=True, unsafe=True, quiet=True)
    return destination


def update(project: Path, ref: str) -> None:
    run_update(project, vcs_ref=ref, defaults=True, overwrite=True, unsafe=True, quiet=True)


def conflicted(project: Path) -> list[str]:
    return sorted(
        str(path.relative_to(project))
        for path in project.rglob("*.y*ml")
        if ".git" not in path.parts and any(mark in path.read_text() for mark in CONFLICT_MARKERS)
    )


@pytest.fixture(autouse=True)
def _no_git_identity(git_without_identity: Path) -> None:
    """As on a fresh CI machine."""


def test_an_edited_project_gets_its_values_under_the_new_keys_with_no_conflict(
    template_repo: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    project = copy_at(template_repo, tmp_path / "project", OLD, {"hpo": "optuna"})
    config = project / "configs/default.yaml"
    config.write_text(config.read_text().replace("  hidden_dim: 128\n", "  hidden_dim: 256  # wider\n"))
    (project / "configs/experiment.yaml").write_text("# mine\nmodel:\n  dropout: 0.3  # more\n")
    sweep = project / "configs/sweep.yaml"
    sweep.write_text(sweep.read_text().replace("low: 32, high: 256", "low: 64, high: 512"))
    commit_all(project, "My model and search")
    capfd.readouterr()
    update(project, NEW)
    assert conflicted(project) == []
    assert git(project, "diff", "--name-only", "--diff-filter=U") == "", "no file is left unmerged"
    model = yaml.safe_load(config.read_text())["model"]
    network = model["network"]
    assert network["init_args"] == {"hidden_dim": 256, "dropout": 0.1}, "the user's value under the new key"
    assert model["weight_decay"] == 0.02, "the template's change"
    assert network["class_path"] == f"{answers_of(project)['package_name']}.network.MLP"
    assert "      hidden_dim: 256  # wider\n" in config.read_text()
    experiment = (project / "configs/experiment.yaml").read_text()
    assert experiment == "# mine\nmodel:\n  network:\n    init_args:\n      dropout: 0.3  # more\n"
    parameters = yaml.safe_load(sweep.read_text())["parameters"]
    assert parameters["model.network.init_args.hidden_dim"] == {"type": "int", "low": 64, "high": 512, "log": True}
    assert "model.hidden_dim" not in parameters
    printed = capfd.readouterr().err
    assert "configs/experiment.yaml: renamed model.dropout -> model.network.init_args.dropout." in printed
    assert "configs/default.yaml: renamed model.hidden_dim -> model.network.init_args.hidden_dim" in printed


def test_an_unedited_project_updates_to_a_fresh_copy(template_repo: Path, tmp_path: Path) -> None:
    project = copy_at(template_repo, tmp_path / "project", OLD)
    update(project, NEW)
    fresh = copy_at(template_repo, tmp_path / "fresh", NEW)
    for path in (fresh / "configs").iterdir():
        assert (project / "configs" / path.name).read_text() == path.read_text(), path.name


def test_an_edit_the_template_also_made_is_a_conflict_marked_inline(template_repo: Path, tmp_path: Path) -> None:
    project = copy_at(template_repo, tmp_path / "project", OLD)
    config = project / "configs/default.yaml"
    config.write_text(config.read_text().replace("  hidden_dim: 128\n", "  hidden_dim: 64\n"))
    config.write_text(config.read_text().replace("  weight_decay: 0.01\n", "  weight_decay: 0.05\n"))
    commit_all(project, "Smaller, more decay")
    update(project, NEW)
    text = config.read_text()
    assert conflicted(project) == ["configs/default.yaml"]
    assert "      hidden_dim: 64\n" in text, "the rename is clean where the template did not change the line"
    assert "  weight_decay: 0.05\n=======\n  weight_decay: 0.02\n" in text, text
    assert git(project, "diff", "--name-only", "--diff-filter=U").split() == ["configs/default.yaml"]


def test_an_update_that_does_not_cross_the_renaming_release_runs_no_migration(
    template_repo: Path, tmp_path: Path
) -> None:
    """copier runs a migration only where the project's version < its version <= the new one (PEP 440)."""
    project = copy_at(template_repo, tmp_path / "project", NEW)
    (project / "configs/experiment.yaml").write_text("model:\n  hidden_dim: 64\n")
    commit_all(project, "An old key, written by hand after the update")
    major, minor, patch = NEW.removeprefix("v").split(".")
    update(project, f"v{major}.{minor}.{int(patch) + 1}")
    assert (project / "configs/experiment.yaml").read_text() == "model:\n  hidden_dim: 64\n"
    assert (project / "configs/quick.yaml").is_file()
