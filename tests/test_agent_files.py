"""The agent instruction files: valid frontmatter, every placeholder filled with what is true of the project.

Render-level tests read the files; the `generated` tests install a project and run the four commands it documents.
"""

import ast
import itertools
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from answer_sets import ANSWER_SETS, HANDOFF_AGENTS
from conftest import answers_of, render_project
from test_generated import install_editable

AGENT_ANSWER_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "logger_none_no_handoffs": {"logger": "none", "agent_files": ["AGENTS.md"], "agent_handoffs": False},
    "gpu_multi_node": {
        "accelerator": "gpu",
        "devices": "4",
        "strategy": "ddp",
        "num_nodes": 2,
        "launcher": "slurm",
        "agent_files": ["CLAUDE.md"],
    },
    "long_name_mlflow_no_extra_files": {**ANSWER_SETS["long_punctuated_name"], "logger": "mlflow", "agent_files": []},
    "wandb": {"logger": "wandb", "accelerator": "cpu", "devices": "auto"},
    "csv_fsdp": {"logger": "csv", "accelerator": "gpu", "strategy": "fsdp", "devices": "2"},
    # Each dataset answer has its own network, DataModule and examples of them.
    "csv_table": ANSWER_SETS["csv_table"],
    "image_folder": ANSWER_SETS["image_folder"],
}
MAIN_AGENT = ".github/agents/pytorch-lightning.agent.md"
PLACEHOLDER_LABELS = (
    "Tech Stack",
    "Lightning Version",
    "PyTorch Version",
    "Accelerator",
    "Train Model",
    "Test Model",
    "Tune Hyperparameters",
    "Profile Training",
)
DIRECTORY_ROLES = (
    "LightningModule definitions",
    "Lightning checkpoints",
    "Training scripts",
    "Training configurations",
)
REMOVED_LIGHTNING_API = (
    "pytorch_lightning",
    "import pytorch_lightning",
    "pl.LightningModule",
    "pl.LightningDataModule",
    "pl.Trainer",
    "pl.seed_everything",
    "resume_from_checkpoint",
    "gpus=",
    "tpu_cores=",
    "num_processes=",
    "training_epoch_end",
    "validation_epoch_end",
    "test_epoch_end",
    "training_step_end",
    "validation_step_end",
    "auto_lr_find",
    "auto_scale_batch_size",
    "auto_select_gpus",
    "trainer.tune(",
    "track_grad_norm",
    "terminate_on_nan",
    "weights_summary",
    "progress_bar_refresh_rate",
    "replace_sampler_ddp",
    "amp_backend",
    "on_pretrain_routine",
    "LightningLoggerBase",
)
# Paths that runs create, named in the files as outputs.
RUN_OUTPUTS = ("logs/", "data/", "export/", "configs/tuned.yaml", "configs/best.yaml")


@pytest.fixture(scope="module")
def rendered(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each agent answer set rendered once for the whole module."""
    root = tmp_path_factory.mktemp("agent-files")
    return {name: render_project(template_dir, root / name, answers) for name, answers in AGENT_ANSWER_SETS.items()}


def split_frontmatter(text: str) -> tuple[dict[str, Any], str]:
    assert text.startswith("---\n"), "an agent file starts with its YAML frontmatter"
    front, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(front), body


def instruction_bodies(project: Path) -> dict[str, str]:
    """The full instructions in each file that holds them (CLAUDE.md may import AGENTS.md instead)."""
    bodies = {MAIN_AGENT: split_frontmatter((project / MAIN_AGENT).read_text())[1].strip()}
    for name in ("AGENTS.md", "CLAUDE.md"):
        path = project / name
        if path.is_file() and "\n@AGENTS.md" not in path.read_text():
            bodies[name] = path.read_text().split("\n", 2)[2].strip()  # below the title line
    return bodies


def knowledge(body: str) -> dict[str, str]:
    """`- **Label:** value` lines and `  - `path` <en dash> role` lines, keyed by label or role."""
    facts = dict(re.findall(r"^- \*\*([^*]+):\*\* (.+)$", body, re.MULTILINE))
    for path, role in re.findall(r"^  - `([^`]+)` \u2013 (.+)$", body, re.MULTILINE):
        facts.update({known: path for known in DIRECTORY_ROLES if role.startswith(known)})
        facts[f"{path} note"] = role
    return facts


def commands(project: Path) -> dict[str, str]:
    facts = knowledge(split_frontmatter((project / MAIN_AGENT).read_text())[1])
    return {label: facts[label].strip("`") for label in PLACEHOLDER_LABELS[4:]}


def python_blocks(body: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", body, re.MULTILINE | re.DOTALL)


def top_level_names(module: Path) -> set[str]:
    tree = ast.parse(module.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    return names


@pytest.mark.parametrize("name", AGENT_ANSWER_SETS)
def test_agent_files_match_the_answers(rendered: dict[str, Path], name: str) -> None:
    project = rendered[name]
    answers = answers_of(project)
    agents = {path.name for path in (project / ".github/agents").iterdir()}
    expected_agents = {"pytorch-lightning.agent.md"}
    if answers["agent_handoffs"]:
        expected_agents |= {f"{target}.agent.md" for target in HANDOFF_AGENTS}
    assert agents == expected_agents
    for extra in ("AGENTS.md", "CLAUDE.md"):
        assert (project / extra).is_file() == (extra in answers["agent_files"])
    assert not (project / "_partials").exists(), "the partials are sources, never copied"


@pytest.mark.parametrize("name", AGENT_ANSWER_SETS)
def test_frontmatter_is_valid_and_every_handoff_resolves(rendered: dict[str, Path], name: str) -> None:
    project = rendered[name]
    fronts = [split_frontmatter(path.read_text())[0] for path in (project / ".github/agents").glob("*.agent.md")]
    agent_names = {front["name"] for front in fronts}
    for front in fronts:
        assert {"name", "model", "description", "triggers"} <= set(front)
        assert isinstance(front["description"], str)
        assert front["description"]
        assert all(isinstance(trigger, str) and trigger for trigger in front["triggers"])
        for handoff in front.get("handoffs", []):
            assert set(handoff) == {"target", "label", "prompt", "send"}
            assert handoff["target"] in agent_names, f"{front['name']} hands off to a missing agent"
    main = split_frontmatter((project / MAIN_AGENT).read_text())[0]
    assert main["name"] == "pytorch-lightning-agent"
    if answers_of(project)["agent_handoffs"]:
        assert [handoff["target"] for handoff in main["handoffs"]] == list(HANDOFF_AGENTS)
    else:
        assert "handoffs" not in main


@pytest.mark.parametrize("name", AGENT_ANSWER_SETS)
def test_every_file_carries_the_same_instructions_without_leftover_jinja(rendered: dict[str, Path], name: str) -> None:
    project = rendered[name]
    bodies = instruction_bodies(project)
    assert len(set(bodies.values())) == 1, "AGENTS.md, CLAUDE.md and the agent file come from one source"
    claude = project / "CLAUDE.md"
    if claude.is_file() and "\n@AGENTS.md" in claude.read_text():
        assert (project / "AGENTS.md").is_file(), "CLAUDE.md imports AGENTS.md, so it must exist"
    agent_texts = [path.read_text() for path in (project / ".github/agents").iterdir()]
    for text in [*agent_texts, *bodies.values()]:
        assert not [marker for marker in ("{{", "{%", "{#") if marker in text]
    body = bodies[MAIN_AGENT]
    for heading in ("## Code Quality Standards", "## Boundaries", "### Common Pitfalls to Avoid"):
        assert heading in body
    for boundary in ("### ✅ Always", "### ⚠️ Ask First", "### 🚫 Never"):
        assert boundary in body


@pytest.mark.parametrize("name", AGENT_ANSWER_SETS)
def test_placeholders_hold_the_projects_facts(rendered: dict[str, Path], name: str) -> None:
    project = rendered[name]
    package = answers_of(project)["package_name"]
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    trainer = yaml.safe_load((project / "configs/default.yaml").read_text())["trainer"]
    facts = knowledge(instruction_bodies(project)[MAIN_AGENT])
    for label in (*PLACEHOLDER_LABELS, *DIRECTORY_ROLES):
        assert facts.get(label, "").strip("` "), f"the {label} line has no value"

    dependencies = pyproject["project"]["dependencies"]
    assert facts["Lightning Version"].startswith(f"`{next(d for d in dependencies if d.startswith('lightning'))}`")
    assert facts["PyTorch Version"].startswith(f"`{next(d for d in dependencies if d.startswith('torch>'))}`")
    assert f"Python {pyproject['project']['requires-python']}," in facts["Tech Stack"]
    logger = trainer["logger"]
    logger_named = logger["class_path"].rsplit(".", 1)[1] if logger else "no experiment logger"
    assert logger_named in facts["Tech Stack"]

    stated = dict(re.findall(r"`(\w+): ([^`]+)`", facts["Accelerator"]))
    assert stated == {
        key: str(trainer[key]) for key in ("accelerator", "devices", "num_nodes", "strategy", "precision")
    }

    for role in ("LightningModule definitions", "Training scripts", "Training configurations"):
        assert (project / facts[role]).is_dir(), f"{role}: {facts[role]} does not exist"
    assert facts["LightningModule definitions"] == facts["Training scripts"] == f"src/{package}/"
    checkpoints = facts["Lightning checkpoints"]
    assert checkpoints.startswith("logs/")
    assert checkpoints.endswith("/checkpoints/")
    assert "created by the first `fit`" in facts[f"{checkpoints} note"]

    scripts = pyproject["project"]["scripts"]
    for label, command in commands(project).items():
        words = shlex.split(command)
        assert words[0] in scripts, f"{label}: {words[0]} is not a console script of the project"
        for option, value in itertools.pairwise(words):
            if option == "--config":
                assert (project / value).is_file(), f"{label}: {value} does not exist"


@pytest.mark.parametrize("name", AGENT_ANSWER_SETS)
def test_named_paths_exist_or_are_run_outputs(rendered: dict[str, Path], name: str) -> None:
    project = rendered[name]
    for path in (project / ".github/agents").iterdir():
        for named in re.findall(r"`([\w./*<>-]+)`", path.read_text()):
            looks_like_a_path = "/" in named and (named.endswith("/") or Path(named).suffix in {".py", ".yaml"})
            if not looks_like_a_path or named.startswith(RUN_OUTPUTS) or "<" in named:
                continue
            exists = any(project.glob(named)) if "*" in named else (project / named).exists()
            assert exists, f"{path.name} names {named}, which the project does not have"


@pytest.mark.parametrize("name", AGENT_ANSWER_SETS)
def test_python_examples_parse_and_import_what_the_project_defines(rendered: dict[str, Path], name: str) -> None:
    project = rendered[name]
    package = answers_of(project)["package_name"]
    blocks = python_blocks(instruction_bodies(project)[MAIN_AGENT])
    assert len(blocks) >= 10
    for block in blocks:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{package}."):
                module = project / "src" / Path(*node.module.split(".")).with_suffix(".py")
                assert module.is_file(), f"{node.module} is not a module of the project"
                missing = {alias.name for alias in node.names} - top_level_names(module)
                assert not missing, f"{node.module} defines no {missing}"


@pytest.mark.parametrize("name", AGENT_ANSWER_SETS)
def test_markdown_is_formatted_as_ruff_and_mdformat_format_it(rendered: dict[str, Path], name: str) -> None:
    """The project's hooks: ruff formats the Python blocks, mdformat the Markdown, and files end in one newline."""
    project = rendered[name]
    files = [str(path) for path in [*(project / ".github/agents").iterdir(), *project.glob("*.md")]]
    result = subprocess.run(
        ["ruff", "format", "--check", "--no-cache", *files], cwd=project, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    plain_markdown = [str(path) for path in project.glob("*.md")]  # .github/agents/ is excluded: YAML frontmatter
    result = subprocess.run(
        ["mdformat", "--check", *plain_markdown], cwd=project, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for path in files:
        text = Path(path).read_text()
        assert text.endswith("\n"), f"{path} must end with a newline"
        assert not text.endswith("\n\n"), f"{path} must end with one newline, not a blank line"


@pytest.mark.parametrize("name", AGENT_ANSWER_SETS)
def test_no_removed_lightning_api_is_mentioned(rendered: dict[str, Path], name: str) -> None:
    project = rendered[name]
    for path in [*(project / ".github/agents").iterdir(), *project.glob("*.md")]:
        text = path.read_text()
        found = [api for api in REMOVED_LIGHTNING_API if re.search(rf"(?<!\w){re.escape(api)}", text)]
        assert not found, f"{path.name} mentions {found}"


# ---------------------------------------------------------------- the four commands, run as documented
SMALL_LIMITS = {
    "Train Model": ["--trainer.max_epochs=1", "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=2"],
    "Test Model": ["--trainer.limit_test_batches=2"],
    "Tune Hyperparameters": ["--trainer.max_epochs=1", "--scale_batch_size.max_trials=3", "--lr_find.num_training=20"],
    "Profile Training": ["--trainer.limit_train_batches=3", "--trainer.limit_val_batches=2"],
}


def run_documented(project: Path, command: str, *overrides: str) -> subprocess.CompletedProcess[str]:
    """Run a command as the file gives it, from the environment the project is installed in."""
    program, *arguments = shlex.split(command)
    installed = Path(sys.executable).parent / program
    executable = str(installed) if installed.is_file() else shutil.which(program)
    assert executable, f"{program} is not installed"
    result = subprocess.run(
        [executable, *arguments, *overrides], cwd=project, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{command} {' '.join(overrides)} failed:\n{result.stderr[-4000:]}"
    return result


def checkpoint_dirs(project: Path) -> list[Path]:
    facts = knowledge(split_frontmatter((project / MAIN_AGENT).read_text())[1])
    return [path for path in project.glob(facts["Lightning checkpoints"]) if (path / "last.ckpt").is_file()]


@pytest.mark.generated
def test_the_four_documented_commands_run_in_order(template_dir: Path, tmp_path: Path) -> None:
    """The default answers (a name of its own, so no other installed test project is replaced)."""
    project = render_project(template_dir, tmp_path / "project", {"project_name": "Agent Commands"})
    install_editable(project)
    documented = commands(project)
    assert not checkpoint_dirs(project)

    run_documented(project, documented["Train Model"], *SMALL_LIMITS["Train Model"])
    assert checkpoint_dirs(project), "the checkpoint directory the file names holds no last.ckpt after training"

    tested = run_documented(project, documented["Test Model"], *SMALL_LIMITS["Test Model"])
    assert "test/acc" in tested.stdout

    tuned = run_documented(project, documented["Tune Hyperparameters"], *SMALL_LIMITS["Tune Hyperparameters"])
    assert "Suggested learning rate" in tuned.stdout
    suggestions = yaml.safe_load((project / "configs/tuned.yaml").read_text())
    resolved = yaml.safe_load(
        run_documented(project, documented["Train Model"], "--config", "configs/tuned.yaml", "--print_config").stdout
    )
    assert resolved["model"]["lr"] == suggestions["model"]["lr"]
    assert resolved["data"]["batch_size"] == suggestions["data"]["batch_size"]

    run_documented(project, documented["Profile Training"], *SMALL_LIMITS["Profile Training"])
    assert "FIT Profiler Report" in (project / "logs/profile/fit-report.txt").read_text()


@pytest.mark.generated
def test_without_a_logger_checkpoints_go_where_the_file_says(template_dir: Path, tmp_path: Path) -> None:
    answers = {"project_name": "Agent Commands", "logger": "none", "agent_handoffs": False}
    project = render_project(template_dir, tmp_path / "project", answers)
    install_editable(project)
    documented = commands(project)
    run_documented(project, documented["Train Model"], *SMALL_LIMITS["Train Model"])
    package = answers_of(project)["package_name"]
    assert checkpoint_dirs(project) == [project / f"logs/{package}/version_0/checkpoints"]
    run_documented(project, documented["Test Model"], *SMALL_LIMITS["Test Model"])
