"""Rendered projects install and pass their own test suites (fast_dev_run, checkpoints, the CLI)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from answer_sets import ANSWER_SETS
from conftest import Render, install_in_own_environment, local_torch_index

pytestmark = pytest.mark.generated
# The multi-process tests override the hardware answers themselves, so one answer set runs them (cpu_ddp_2: its other
# tests train on one CPU whatever the hardware answers, exactly as `defaults` runs them), and the
# image answer its own (two DDP processes skipping damaged files in step). A GPU answer set's slow learning test would
# train 40 epochs in bf16 on CPU here, minutes for nothing new. The torch.compile tests build C++ on CPU (about a
# minute) and do not depend on the answers: `defaults` runs them.
SELECTED_TESTS = {
    "defaults": "not distributed",
    "cpu_ddp_2": "distributed",
    "gpu_fsdp_slurm": "not distributed and not slow and not compile",
    "csv_table": "not distributed",
    "image_folder": "",
}
# The fault-injection tests (kills, preemption, corrupt checkpoints) do not depend on the answers: one set runs them.
RUNS_FAULT_TESTS = {"defaults"}
# The kill-at-nine-moments test starts nine child runs (about 4 minutes of CPU under load): one set runs it.
RUNS_KILL_MOMENTS = {"defaults"}
BUT_THE_LONGEST = "not slow and not distributed and not compile"
# The dataset answers run the tests that depend on the model and data: their data's own, the model with their
# network, predictions on new inputs, export and serve, training (the example learns, checkpoints, predictions), the
# tuner's, host syncs per step and torch.compile, and for csv (monitoring val/loss, not val/acc) a sweep; the digits
# sets run the rest.
DATASET_TESTS = [
    "tests/test_data.py",
    "tests/test_datamodule.py",
    "tests/test_preprocess.py",
    "tests/test_model.py",
    "tests/test_predict.py",
    "tests/test_export.py",
    "tests/test_serve.py",
    "tests/test_training.py",
    "tests/test_tune.py",
    "tests/test_device_syncs.py",
    "tests/test_compile.py",
]
SWEEP_TESTS = [
    f"tests/test_sweep.py::{name}"
    for name in ("test_the_shipped_settings_are_valid", "test_a_short_sweep_finishes_and_its_best_config_trains")
]
SELECTED_FILES = {
    # The sets that change one other answer run the test files that answer reaches; `defaults` runs the rest.
    # The logger's files and metrics, the run summary, checkpoints in the logger's run folder:
    "csv_logger": ["tests/test_runs.py", "tests/test_stops.py", "tests/test_training.py"],
    # The package's name in imports, the console script, the run folder, the export folder and the server:
    "long_punctuated_name": [
        "tests/test_training.py",
        "tests/test_runs.py",
        "tests/test_export.py",
        "tests/test_serve.py",
    ],
    # The sweep, and its trials never shadowing a run for `--ckpt_path best` or `last`:
    "optuna_sweep": ["tests/test_sweep.py", "tests/test_training.py"],
    # GPU answers on CPU: their config's precision through training, the CUDA tests skipping with their reason:
    "gpu_fsdp_slurm": ["tests/test_gpu.py", "tests/test_training.py", "tests/test_runs.py", "tests/test_stops.py"],
    "csv_table": [*DATASET_TESTS, *SWEEP_TESTS],
    # Augmentation in loader workers: a resumed run draws the shifts an uninterrupted one would.
    "image_folder": [
        *DATASET_TESTS,
        "tests/test_fault_tolerance.py::test_sigkill_mid_epoch_resumes_like_an_uninterrupted_run",
    ],
}


def install_editable(project: Path) -> None:
    """Install into this environment, which already has torch and Lightning: seconds instead of minutes (the tests
    doing so share one xdist worker, tests/conftest.py)."""
    command = ["uv", "pip", "install", "--python", sys.executable, "--no-deps", "--no-build-isolation", "-e", "."]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def run_suite(
    project: Path, *pytest_args: str, env: dict[str, str] | None = None, python: Path | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(python or sys.executable), "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, check=False, env=env)


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.xdist_group(f"generated-{name}")) for name in ANSWER_SETS]
)
def test_rendered_project_passes_its_own_tests(render: Render, tmp_path: Path, name: str) -> None:
    project = render(ANSWER_SETS[name])
    python = install_in_own_environment(project, tmp_path / "venv")
    skipped = [] if name in RUNS_FAULT_TESTS or name in SELECTED_FILES else ["--ignore=tests/test_fault_tolerance.py"]
    skipped += [] if name in RUNS_KILL_MOMENTS else ["-k", "not killed_at_any_moment"]
    selected = SELECTED_TESTS.get(name, BUT_THE_LONGEST)
    result = run_suite(project, "-m", selected, *skipped, *SELECTED_FILES.get(name, []), python=python)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert " passed" in result.stdout
    assert " failed" not in result.stdout


@pytest.mark.skipif(shutil.which("uv") is None, reason="the nox session test builds its venv with uv")
def test_nox_tests_session_passes_inside_a_fresh_project(render: Render, tmp_path: Path) -> None:
    """What a user runs after copying: `nox -s tests` builds its own venv, installs the project and tests it.

    Its fast tier (test_rendered_project_passes_its_own_tests runs the full one): a venv of the project's own
    dependencies only has caught what this environment hid (a CLI value parsed differently)."""
    project = render({})
    torch_index = local_torch_index(project, tmp_path / "torch-index")
    environment = {**os.environ, "UV_FIND_LINKS": os.environ.get("UV_FIND_LINKS", ""), **torch_index}
    suite = ["-q", "--disable-warnings"]  # the fast tier, as a plain `nox -s tests` runs it
    result = subprocess.run(
        [sys.executable, "-m", "nox", "-s", "tests", "--", *suite],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env=environment,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Session tests was successful" in result.stderr
