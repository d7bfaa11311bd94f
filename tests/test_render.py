"""Rendering: the right files, no leftover Jinja, answers recorded, bad names refused with nothing written."""

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from answer_sets import ANSWER_SETS, DERIVED_PACKAGE_NAMES, expected_files
from conftest import Render, answers_of

JINJA_MARKERS = ("{{", "{%", "{#")
GITHUB_EXPRESSION = re.compile(r"\$\{\{[^}]*\}\}")  # `${{ github.ref }}` in workflows is GitHub's, not Jinja


def project_files(project: Path) -> set[str]:
    return {
        str(path.relative_to(project)) for path in project.rglob("*") if path.is_file() and ".git" not in path.parts
    }


@pytest.mark.parametrize("name", ANSWER_SETS)
def test_answer_set_renders_exactly_its_files(render: Render, name: str) -> None:
    project = render(ANSWER_SETS[name])
    answers = answers_of(project)
    assert project_files(project) == expected_files(answers)
    for path in project_files(project):
        text = (project / path).read_text()
        leftovers = [marker for marker in JINJA_MARKERS if marker in GITHUB_EXPRESSION.sub("", text)]
        assert not leftovers, f"{path} still holds {leftovers}"


@pytest.mark.parametrize("name", ANSWER_SETS)
def test_answers_file_records_the_answers(render: Render, name: str) -> None:
    given = ANSWER_SETS[name]
    answers = answers_of(render(given))
    for question, value in given.items():
        assert answers[question] == value
    if name in DERIVED_PACKAGE_NAMES:
        assert answers["package_name"] == DERIVED_PACKAGE_NAMES[name]
    computed = {"lightning_requirement", "torch_requirement", "python_requirement", "trainer_strategy"}
    assert not computed & set(answers), "computed values must not be stored as answers"


@pytest.mark.parametrize("name", ANSWER_SETS)
def test_rendered_project_passes_ruff_and_compiles(render: Render, name: str) -> None:
    project = render(ANSWER_SETS[name])
    for command in (["ruff", "check", "--no-cache", "."], ["ruff", "format", "--check", "--no-cache", "."]):
        result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    for path in project.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")


def test_default_config_states_the_hardware_answers(render: Render) -> None:
    answers = {"accelerator": "cpu", "devices": "2", "strategy": "ddp", "num_nodes": 2, "precision": "64-true"}
    project = render(answers)
    trainer = yaml.safe_load((project / "configs/default.yaml").read_text())["trainer"]
    assert trainer["accelerator"] == "cpu"
    assert trainer["devices"] == 2
    assert trainer["strategy"] == "ddp"
    assert trainer["num_nodes"] == 2
    assert trainer["precision"] == "64-true"


@pytest.mark.parametrize(("devices", "num_nodes", "runs"), [("1", 1, "auto"), ("2", 1, "ddp"), ("1", 2, "ddp")])
def test_strategy_auto_is_written_as_what_lightning_will_run(
    render: Render, devices: str, num_nodes: int, runs: str
) -> None:
    answers = {"accelerator": "cpu", "devices": devices, "strategy": "auto", "num_nodes": num_nodes}
    if num_nodes > 1:
        answers["strategy"] = "ddp"
    project = render(answers)
    assert yaml.safe_load((project / "configs/default.yaml").read_text())["trainer"]["strategy"] == runs


def test_pyproject_pins_the_single_source_versions(render: Render) -> None:
    project = render({"python_version": "3.12"})
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    dependencies = pyproject["project"]["dependencies"]
    assert "lightning>=2.6,<2.7" in dependencies
    assert "torch>=2.5,<2.14" in dependencies
    assert pyproject["project"]["requires-python"] == ">=3.12"
    assert pyproject["project"]["scripts"] == {
        "lightning_project": "lightning_project.cli:main",
        "lightning_project-tune": "lightning_project.tune:main",
    }


@pytest.mark.parametrize(
    ("package_name", "message"),
    [
        ("My-Package", "not a lower-case Python identifier"),
        ("3d_vision", "must start with a letter"),
        ("class", "is a Python keyword"),
        ("torch", "would shadow the module 'torch'"),
        ("lightning", "would shadow the module 'lightning'"),
        ("json", "would shadow the module 'json'"),
        ("", "not a lower-case Python identifier"),
    ],
)
def test_bad_package_names_are_refused_and_nothing_is_written(
    render: Render, tmp_path: Path, package_name: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as refusal:
        render({"package_name": package_name})
    assert "Type" in str(refusal.value), "the message must say what to type instead"
    assert not (tmp_path / "project").exists()


def test_a_project_name_with_a_leading_digit_is_refused_with_a_suggestion(render: Render) -> None:
    with pytest.raises(ValueError, match="'3d_vision' is not a lower-case Python identifier"):
        render({"project_name": "3D Vision"})


def test_an_overlong_package_name_is_refused(render: Render) -> None:
    with pytest.raises(ValueError, match="is 51 characters long"):
        render({"package_name": "a" * 51})


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "two@@example.com", "a b@example.com"])
def test_bad_author_email_is_refused(render: Render, email: str) -> None:
    with pytest.raises(ValueError, match="is not an e-mail address"):
        render({"author_email": email})
