"""The GPU (and MPS) run-time classes: each renders a project and runs fit, test, predict on new inputs, a resume (and
for the one-process `auto` classes an export) through its command, with the same checks as the CPU matrix; FSDP and
DeepSpeed resume and test from their own checkpoints.

Run by `nox -s gpu` on a CUDA machine (one GPU runs every one-process class; the two-process ones need two), the MPS
classes on a Mac. Each class skips with its reason where its hardware or DeepSpeed is missing.
"""

import importlib.util
import time
from pathlib import Path

import pytest
import torch
from class_runs import (
    StepResult,
    check_results,
    launch,
    launcher_commands,
    prepare_data,
    render_classes,
    write_new_inputs,
)
from conftest import Summary
from run_matrix import DEVICE_CLASSES, RunClass, steps

pytestmark = pytest.mark.device


def missing(run_class: RunClass) -> str | None:
    """Why this machine cannot run the class, or None."""
    if run_class.platform == "mps":
        return None if torch.backends.mps.is_available() else "needs Apple's MPS; none on this machine"
    if not torch.cuda.is_available():
        return "needs a CUDA GPU; none is visible here"
    if torch.cuda.device_count() < run_class.processes:
        return f"needs {run_class.processes} CUDA GPUs; {torch.cuda.device_count()} visible"
    if "bf16" in run_class.precision and not torch.cuda.is_bf16_supported():
        return "this GPU has no bfloat16"
    if run_class.strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        return "deepspeed is not installed (nox -s gpu installs it from its source archive, DS_BUILD_OPS=0)"
    return None


@pytest.mark.parametrize("run_class", DEVICE_CLASSES, ids=[run_class.name for run_class in DEVICE_CLASSES])
def test_device_class_fits_tests_predicts_and_resumes(
    template_dir: Path, tmp_path: Path, run_class: RunClass, summary: Summary
) -> None:
    reason = missing(run_class)
    if reason:
        pytest.skip(reason)
    project = render_classes(template_dir, tmp_path / "projects", [run_class])[run_class]
    data_dir = tmp_path / "data"
    prepare_data(project, run_class.package, data_dir)
    inputs = write_new_inputs(project)
    commands = steps(run_class, data_dir, inputs)
    results = []
    for step, args in commands.items():
        started = time.perf_counter()
        ok, error = launch(launcher_commands(run_class, project, args), project)
        results.append(StepResult(run_class.name, step, ok, time.perf_counter() - started, error))
        if not ok:
            break
    problems = check_results(run_class, project, inputs) if all(result.ok for result in results) else []
    passed = len(results) == len(commands) and all(result.ok for result in results) and not problems
    names = ",".join(result.step for result in results)
    seconds = sum(result.seconds for result in results)
    summary(
        "run matrix (device classes)",
        [f"{run_class.name:<36} {names:<33} {'pass' if passed else 'FAIL':<6} {seconds:>8.1f}"],
    )
    assert all(result.ok for result in results), f"{results[-1].step}: {results[-1].error}"
    assert not problems, problems
