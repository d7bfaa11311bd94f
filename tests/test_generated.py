"""Rendered projects install and pass their own test suites (fast_dev_run, checkpoints, the CLI)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from answer_sets import ANSWER_SETS
from conftest import Render

pytestmark = pytest.mark.generated
# The multi-process tests override the hardware answers themselves, so one answer set runs them (cpu_ddp_2: all
# tests). A GPU answer set's slow learning test would train 40 epochs in bf16 on CPU here, minutes for nothing new.
SELECTED_TESTS = {"cpu_ddp_2": "slow or not slow", "gpu_fsdp_slurm": "not distributed and not slow"}
# The fault-injection tests (kills, preemption, corrupt checkpoints) do not depend on the answers: two sets run them.
RUNS_FAULT_TESTS = {"defaults", "cpu_ddp_2"}
# The dataset answers run their data's own tests, the training tests (the example learns, checkpoints, predictions)
# and the tuner's; the rest of the suite does not depend on the dataset, and the digits answer sets run it.
SELECTED_FILES = {
    "csv_table": ["tests/test_csv_data.py", "tests/test_training.py", "tests/test_tune.py"],
    "image_folder": ["tests/test_image_folder_data.py", "tests/test_training.py", "tests/test_tune.py"],
}


def install_editable(project: Path) -> None:
    """Install into this environment, which already has torch and Lightning: seconds instead of minutes."""
    command = ["uv", "pip", "install", "--python", sys.executable, "--no-deps", "--no-build-isolation", "-e", "."]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def run_suite(project: Path, *pytest_args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, check=False, env=env)


@pytest.mark.parametrize("name", ANSWER_SETS)
def test_rendered_project_passes_its_own_tests(render: Render, name: str) -> None:
    project = render(ANSWER_SETS[name])
    install_editable(project)
    skipped = [] if name in RUNS_FAULT_TESTS else ["--ignore=tests/test_fault_tolerance.py"]
    result = run_suite(
        project, "-m", SELECTED_TESTS.get(name, "not distributed"), *skipped, *SELECTED_FILES.get(name, [])
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert " passed" in result.stdout
    assert " failed" not in result.stdout


@pytest.mark.skipif(shutil.which("uv") is None, reason="the nox session test builds its venv with uv")
def test_nox_tests_session_passes_inside_a_fresh_project(render: Render) -> None:
    """What a user runs after copying: `nox -s tests` builds its own venv, installs the project and tests it."""
    project = render({})
    environment = {**os.environ, "UV_FIND_LINKS": os.environ.get("UV_FIND_LINKS", "")}
    result = subprocess.run(
        [sys.executable, "-m", "nox", "-s", "tests", "--", "-q", "-m", "not slow and not distributed"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env=environment,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Session tests was successful" in result.stderr
