"""Rendering helpers shared by the template tests."""

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from copier import run_copy

REPO = Path(__file__).resolve().parents[1]
Render = Callable[..., Path]


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template as it is in the working tree, without git, so uncommitted edits render too."""
    copy = tmp_path_factory.mktemp("template")
    shutil.copy2(REPO / "copier.yml", copy / "copier.yml")
    for folder in ("template", "hooks"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def render_project(template: Path, destination: Path, answers: dict[str, Any]) -> Path:
    run_copy(str(template), destination, data=answers, defaults=True, unsafe=True, quiet=True)
    return destination


@pytest.fixture
def render(template_dir: Path, tmp_path: Path) -> Render:
    """Render the template with `answers` into a fresh folder and return it."""

    def _render(answers: dict[str, Any], name: str = "project") -> Path:
        return render_project(template_dir, tmp_path / name, answers)

    return _render
