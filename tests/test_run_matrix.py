"""Every CPU run-time class trains: one project rendered per class runs fit, test, predict on new inputs, a resume and,
for one strategy of each network and precision, an export through its own command, and the results (checkpoints,
epochs, steps, weight dtype, test metrics, predictions in input order, the export folder) are checked.

Single-process classes run in one worker process through each project's `cli_main`; ddp and ddp_spawn over
processes, torchrun and the SLURM config run through the command and their launchers. The two
groups run side by side. The table of classes, commands, results and seconds is printed in pytest's summary.
"""

import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from class_runs import (
    TIMEOUT_S,
    StepResult,
    check_results,
    launch,
    launcher_commands,
    prepare_data,
    render_classes,
    write_new_inputs,
)
from conftest import Summary
from run_matrix import CPU_CLASSES, RunClass, runs_in_process, steps

WORKER = Path(__file__).with_name("matrix_worker.py")


Commands = dict[RunClass, dict[str, list[str]]]


def run_through_launchers(
    classes: list[RunClass], projects: dict[RunClass, Path], commands: Commands
) -> list[StepResult]:
    results = []
    for run_class in classes:
        for step, args in commands[run_class].items():
            started = time.perf_counter()
            ok, error = launch(launcher_commands(run_class, projects[run_class], args), projects[run_class])
            results.append(StepResult(run_class.name, step, ok, time.perf_counter() - started, error))
            if not ok:
                break
    return results


def run_in_worker(
    classes: list[RunClass], projects: dict[RunClass, Path], commands: Commands, jobs_file: Path
) -> list[StepResult]:
    jobs = [
        {
            "name": run_class.name,
            "project": str(projects[run_class]),
            "package": run_class.package,
            "steps": commands[run_class],
        }
        for run_class in classes
    ]
    jobs_file.write_text(json.dumps(jobs))
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(WORKER), str(jobs_file)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S * len(classes),
        env=environment,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith('{"name"')]
    results = [StepResult(**json.loads(line)) for line in lines]
    if result.returncode:
        results.append(StepResult("worker", "exit", False, 0.0, result.stderr[-3000:]))
    return results


def all_ran(run_class: RunClass, commands: Commands, results: list[StepResult]) -> bool:
    done = {result.step for result in results if result.name == run_class.name and result.ok}
    return done == set(commands[run_class])


def table(
    results: list[StepResult], commands: Commands, problems: dict[str, list[str]], cpu_s: float, wall_s: float
) -> list[str]:
    by_class: dict[str, list[StepResult]] = {}
    for result in results:
        by_class.setdefault(result.name, []).append(result)
    lines = [f"{'class':<38} {'commands':<33} {'result':<6} {'seconds':>8}"]
    for run_class in CPU_CLASSES:
        ran = by_class.get(run_class.name, [])
        passed = all_ran(run_class, commands, results) and not problems.get(run_class.name)
        names = ",".join(result.step for result in ran)
        seconds = sum(result.seconds for result in ran)
        lines.append(f"{run_class.name:<38} {names:<33} {'pass' if passed else 'FAIL':<6} {seconds:>8.1f}")
    lines.append(f"{len(CPU_CLASSES)} classes: {wall_s:.0f} s wall, {cpu_s:.0f} s CPU (this process and its children)")
    return lines


def test_every_cpu_class_fits_tests_predicts_and_resumes(template_dir: Path, tmp_path: Path, summary: Summary) -> None:
    started, cpu_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    projects = render_classes(template_dir, tmp_path / "projects", CPU_CLASSES)
    data_dir = tmp_path / "data"
    prepare_data(projects[CPU_CLASSES[0]], CPU_CLASSES[0].package, data_dir)
    inputs = {run_class: write_new_inputs(projects[run_class]) for run_class in CPU_CLASSES}
    commands = {run_class: steps(run_class, data_dir, path) for run_class, path in inputs.items()}
    in_process = [run_class for run_class in CPU_CLASSES if runs_in_process(run_class)]
    launched = [run_class for run_class in CPU_CLASSES if not runs_in_process(run_class)]
    with ThreadPoolExecutor(2) as lanes:
        worker = lanes.submit(run_in_worker, in_process, projects, commands, tmp_path / "jobs.json")
        results = lanes.submit(run_through_launchers, launched, projects, commands).result() + worker.result()

    ran = {run_class.name for run_class in CPU_CLASSES if all_ran(run_class, commands, results)}
    problems = {
        run_class.name: check_results(run_class, projects[run_class], inputs[run_class]) for run_class in CPU_CLASSES
    }
    problems = {name: found for name, found in problems.items() if found and name in ran}
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    summary("run matrix (CPU classes)", table(results, commands, problems, cpu_s, time.perf_counter() - started))

    failures = [f"{result.name} {result.step}: {result.error}" for result in results if not result.ok]
    assert not failures, "\n\n".join(failures)
    assert ran == {run_class.name for run_class in CPU_CLASSES}
    assert not problems, problems
