"""The interactive `copier copy`, driven by keystrokes in a pseudo-terminal as a user would answer it."""

import os
import re
import sys
from pathlib import Path

import pexpect
import pytest
import yaml
from conftest import REPO, Render, answers_of

COPIER_YML = yaml.safe_load((REPO / "copier.yml").read_text())
DOWN, ENTER, CLEAR_LINE = "\x1b[B", "\r", "\x15"


class CopierSession:
    """A `copier copy` running in a pseudo-terminal; each question is recognised by its help text."""

    def __init__(self, template: Path, destination: Path) -> None:
        environment = {**os.environ, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1", "NO_COLOR": "1"}
        copier = [sys.executable, "-m", "copier", "copy", "--trust", str(template), str(destination)]
        self.child = pexpect.spawn(
            copier[0], copier[1:], encoding="utf-8", timeout=30, dimensions=(60, 220), env=environment
        )

    def wait_for(self, question: str, *shown: str) -> None:
        """Wait until `question` is asked and, for a choice list, until each text in `shown` is drawn."""
        self.child.expect(re.escape(COPIER_YML[question]["help"]))
        for text in shown:
            self.child.expect(re.escape(text))

    def type_text(self, question: str, text: str) -> None:
        self.wait_for(question)
        self.child.send(CLEAR_LINE + text + ENTER)

    def accept(self, question: str) -> None:
        self.wait_for(question)
        self.child.send(ENTER)

    def move_down(self, question: str, steps: int, *shown: str) -> None:
        """Press Down `steps` times (disabled choices are skipped, as a user sees) and pick the choice reached."""
        self.wait_for(question, *shown)
        self.child.send(DOWN * steps + ENTER)

    def finish(self) -> int:
        self.child.expect(pexpect.EOF, timeout=120)
        self.closing_text = self.child.before
        self.child.close()
        return self.child.exitstatus


@pytest.fixture
def session(template_dir: Path, tmp_path: Path) -> CopierSession:
    return CopierSession(template_dir, tmp_path / "answered")


def answers_and_config(project: Path) -> tuple[dict, dict]:
    answers = answers_of(project)
    config = yaml.safe_load((project / "configs/default.yaml").read_text())
    return answers, config


def test_a_cpu_session_skips_disabled_choices_and_shows_why(session: CopierSession, tmp_path: Path) -> None:
    session.type_text("project_name", "Keyboard Demo")
    for question in ("package_name", "description", "author_name", "author_email"):
        session.accept(question)
    session.move_down("python_version", 1)  # 3.11 -> 3.12
    session.accept("license")  # MIT
    session.move_down("dataset", 1)  # digits -> csv
    session.move_down("accelerator", 1)  # auto is last: Down wraps around to cpu
    session.type_text("devices", "2")
    fsdp_refusal = "FSDP needs accelerator 'gpu' (you answered 'cpu')"
    session.move_down("strategy", 2, fsdp_refusal)  # ddp -> ddp_spawn -> over fsdp and deepspeed -> auto
    # num_nodes is not asked: strategy auto cannot span nodes.
    session.move_down("precision", 1, "Lightning silently swaps it for bf16-mixed")  # 32-true -> over 16-mixed
    session.accept("launcher")
    session.accept("logger")
    session.accept("hpo")
    session.accept("agent_files")
    session.accept("agent_handoffs")
    session.accept("ci")
    assert session.finish() == 0
    answers, config = answers_and_config(tmp_path / "answered")
    assert answers["package_name"] == "keyboard_demo"
    assert answers["python_version"] == "3.12"
    assert answers["dataset"] == "csv"
    assert (answers["accelerator"], answers["devices"], answers["strategy"]) == ("cpu", "2", "auto")
    assert answers["precision"] == "bf16-mixed"
    assert config["trainer"]["strategy"] == "ddp"  # what Lightning runs for strategy auto on 2 devices
    assert config["trainer"]["precision"] == "bf16-mixed"
    assert (answers["agent_files"], answers["agent_handoffs"]) == (["AGENTS.md", "CLAUDE.md"], True)


def test_a_gpu_multi_node_session(session: CopierSession, tmp_path: Path) -> None:
    session.type_text("project_name", "Cluster Run")
    answered = ("package_name", "description", "author_name", "author_email", "python_version", "license", "dataset")
    for question in answered:
        session.accept(question)
    session.move_down("accelerator", 2)  # auto -> cpu -> gpu
    session.type_text("devices", "4")
    session.move_down("strategy", 2)  # ddp (the default for 4 devices) -> ddp_spawn -> fsdp
    session.type_text("num_nodes", "2")
    session.accept("precision")  # bf16-mixed, the GPU default
    session.wait_for("launcher", "launcher 'local' with num_nodes 2")
    session.child.send(ENTER)  # slurm, the multi-node default
    session.move_down("logger", 1)  # tensorboard -> csv
    for question in ("hpo", "agent_files", "agent_handoffs", "ci"):
        session.accept(question)
    session.type_text("gpu_runner_label", "self-hosted, a100")
    assert session.finish() == 0
    project = tmp_path / "answered"
    answers, config = answers_and_config(project)
    trainer = config["trainer"]
    assert (trainer["accelerator"], trainer["devices"], trainer["strategy"]) == ("gpu", 4, "fsdp")
    assert (trainer["num_nodes"], trainer["precision"]) == (2, "bf16-mixed")
    assert answers["launcher"] == "slurm"
    assert answers["logger"] == "csv"
    sbatch = (project / "slurm/fit.sbatch").read_text()
    assert "#SBATCH --nodes=2" in sbatch
    assert "#SBATCH --ntasks-per-node=4" in sbatch
    assert "#SBATCH --gpus-per-node=4" in sbatch
    workflow = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())
    assert any(job.get("runs-on") == ["self-hosted", "a100"] for job in workflow["jobs"].values())
    next_steps = session.closing_text[session.closing_text.index("Next:") :]
    for command in ("cluster_run fit", "cluster_run test --ckpt_path last", "sbatch slurm/fit.sbatch", "nox -s tests"):
        assert command in next_steps
    assert "whl/cpu" not in next_steps, "a CUDA project is not told to install CPU-only torch"


ASKED = {
    name: spec
    for name, spec in COPIER_YML.items()
    if not name.startswith("_") and isinstance(spec, dict) and spec.get("when") is not False
}
# For each question that is only asked when it can matter: answers under which it is not asked.
HIDDEN_BY: dict[str, dict[str, object]] = {
    "devices": {"accelerator": "mps"},
    "strategy": {"accelerator": "mps"},
    "launcher": {"accelerator": "mps"},
    "num_nodes": {"accelerator": "cpu", "devices": "2", "strategy": "ddp_spawn"},
    "gpu_runner_label": {"accelerator": "gpu", "ci": False},
}


@pytest.mark.parametrize("question", ASKED)
def test_every_question_has_one_line_help(question: str) -> None:
    help_text = ASKED[question].get("help", "").strip()
    assert help_text, f"{question} has no help text"
    assert "\n" not in help_text


def test_every_conditional_question_is_checked_hidden() -> None:
    conditional = {name for name, spec in ASKED.items() if isinstance(spec.get("when"), str)}
    assert conditional == set(HIDDEN_BY)


@pytest.mark.parametrize("question", HIDDEN_BY)
def test_a_hidden_question_takes_a_default_that_keeps_the_project_valid(render: Render, question: str) -> None:
    project = render(HIDDEN_BY[question])
    answers, config = answers_and_config(project)
    assert question not in answers, f"{question} was not asked, so it is not recorded"
    trainer = config["trainer"]
    if HIDDEN_BY[question]["accelerator"] == "mps":
        assert (trainer["devices"], trainer["strategy"], trainer["num_nodes"]) == (1, "auto", 1)
        assert not (project / "slurm").exists()
    assert trainer["num_nodes"] == 1
    if question == "gpu_runner_label":
        assert not (project / ".github/workflows").exists()
