"""The interactive `copier copy`, driven by keystrokes in a pseudo-terminal as a user would answer it."""

import os
import re
import sys
from pathlib import Path

import pexpect
import pytest
import yaml
from conftest import REPO

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
        self.child.close()
        return self.child.exitstatus


@pytest.fixture
def session(template_dir: Path, tmp_path: Path) -> CopierSession:
    return CopierSession(template_dir, tmp_path / "answered")


def answers_and_config(project: Path) -> tuple[dict, dict]:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    config = yaml.safe_load((project / "configs/default.yaml").read_text())
    return answers, config


def test_a_cpu_session_skips_disabled_choices_and_shows_why(session: CopierSession, tmp_path: Path) -> None:
    session.type_text("project_name", "Keyboard Demo")
    for question in ("package_name", "description", "author_name", "author_email"):
        session.accept(question)
    session.move_down("python_version", 1)  # 3.11 -> 3.12
    session.move_down("accelerator", 1)  # auto is last: Down wraps around to cpu
    session.type_text("devices", "2")
    fsdp_refusal = "FSDP needs accelerator 'gpu' (you answered 'cpu')"
    session.move_down("strategy", 2, fsdp_refusal)  # ddp -> ddp_spawn -> over fsdp and deepspeed -> auto
    session.accept("num_nodes")
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
    assert (answers["accelerator"], answers["devices"], answers["strategy"]) == ("cpu", "2", "auto")
    assert answers["precision"] == "bf16-mixed"
    assert config["trainer"]["strategy"] == "ddp"  # what Lightning runs for strategy auto on 2 devices
    assert config["trainer"]["precision"] == "bf16-mixed"
    assert (answers["agent_files"], answers["agent_handoffs"]) == (["AGENTS.md", "CLAUDE.md"], True)
