"""Every combination of accelerator x strategy x precision x devices x num_nodes x launcher: each valid one renders a
lint-clean, compiling project that states its answers; each invalid one is refused, naming the question, and writes
nothing. The combinations render in-process, split over worker processes; identical outputs are linted once.
"""

import os
import re
import subprocess
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from answer_sets import expected_files
from combinations import AXES, all_combinations, expected_refusal, output_digest, render_many
from conftest import answers_of
from run_matrix import CPU_CLASSES, DEVICE_CLASSES, HARDWARE_CPU_CLASSES, classes_of

JINJA_MARKERS = ("{{", "{%", "{#")
GITHUB_EXPRESSION = re.compile(r"\$\{\{[^}]*\}\}")  # `${{ github.ref }}` in workflows is GitHub's, not Jinja
DEVICE_MOVES = re.compile(r"\.cuda\(|\.to\(\s*(device|\"cuda|'cuda)")
WORKERS = max(1, min(4, os.cpu_count() or 1))
REFUSAL = re.compile(r"^(?:Invalid choice for|Validation error for question) '(\w+)': (.+)$", re.DOTALL)


def render_all(template: Path, root: Path) -> tuple[list[dict[str, Any]], dict[int, str]]:
    combinations = list(all_combinations())
    indexed = list(enumerate(combinations))
    batches = [indexed[worker::WORKERS] for worker in range(WORKERS)]
    # Half the refusals find an existing destination (it must stay untouched), half none (none may be created).
    existing = frozenset(index for index, answers in indexed if index % 2 and expected_refusal(answers))
    with ProcessPoolExecutor(WORKERS, mp_context=get_context("fork")) as pool:
        results = pool.map(render_many, [template] * WORKERS, [root] * WORKERS, batches, [existing] * WORKERS)
        return combinations, {index: error for batch in results for index, error in batch}


def check_trainer_config(project: Path, answers: dict[str, Any]) -> None:
    trainer = yaml.safe_load((project / "configs/default.yaml").read_text())["trainer"]
    devices = answers["devices"]
    assert trainer["accelerator"] == answers["accelerator"]
    assert str(trainer["devices"]) == devices
    assert trainer["num_nodes"] == answers["num_nodes"]
    assert trainer["precision"] == answers["precision"]
    spans_processes = answers["num_nodes"] > 1 or (devices != "auto" and int(devices) > 1)
    runs = "ddp" if answers["strategy"] == "auto" and spans_processes else answers["strategy"]
    assert trainer["strategy"] == runs


def check_run_classes(project: Path, launcher: str) -> None:
    """The hardware the rendered config trains on belongs to classes that the run matrix (CPU, in CI) or `nox -s gpu`
    runs: a combination counts as valid only when its classes ran."""
    trainer = yaml.safe_load((project / "configs/default.yaml").read_text())["trainer"]
    hardware = {key: trainer[key] for key in ("accelerator", "strategy", "num_nodes", "precision")}
    classes = classes_of({**hardware, "devices": str(trainer["devices"]), "launcher": launcher})
    assert classes <= {*CPU_CLASSES, *DEVICE_CLASSES}, f"{project}: {classes} run nowhere"


def check_sbatch(project: Path, answers: dict[str, Any]) -> None:
    directives = dict(
        re.findall(r"^#SBATCH --([\w-]+)=(\S+)", (project / "slurm/fit.sbatch").read_text(), re.MULTILINE)
    )
    assert directives["nodes"] == str(answers["num_nodes"])
    assert directives["ntasks-per-node"] == answers["devices"]
    assert directives.get("gpus-per-node") == (answers["devices"] if answers["accelerator"] == "gpu" else None)


def check_refusal(answers: dict[str, Any], expected: str, error: str, destination: Path, *, existed: bool) -> None:
    refusal = REFUSAL.match(error)
    assert refusal, f"{answers} should be refused for {expected!r}, got {error!r}"
    question, message = refusal.groups()
    assert question == expected, f"{answers}: {question!r} refused, expected {expected!r}: {message}"
    assert "answer" in message.lower(), f"the message must say what to answer instead: {message}"
    if existed:
        assert [path.name for path in destination.iterdir()] == ["keep.txt"], f"{answers}: {destination} changed"
        assert (destination / "keep.txt").read_text() == "mine\n"
    else:
        assert not destination.exists(), f"{answers}: refused, but {destination} was created"


def test_every_hardware_combination(template_dir: Path, tmp_path: Path) -> None:
    started = time.perf_counter()
    combinations, errors = render_all(template_dir, tmp_path)
    rendered_s = time.perf_counter() - started
    valid = [index for index, error in errors.items() if not error]

    for index, answers in enumerate(combinations):
        expected = expected_refusal(answers)
        if expected is None:
            assert not errors[index], f"{answers} was refused: {errors[index]}"
        else:
            check_refusal(answers, expected, errors[index], tmp_path / str(index), existed=bool(index % 2))

    unique: dict[str, Path] = {}
    for index in valid:
        project = tmp_path / str(index)
        answers = {**combinations[index], **answers_of(project)}
        files = {str(path.relative_to(project)) for path in project.rglob("*") if path.is_file()}
        assert files == expected_files(answers), combinations[index]
        check_trainer_config(project, combinations[index])
        check_run_classes(project, combinations[index]["launcher"])
        if combinations[index]["launcher"] == "slurm":
            check_sbatch(project, combinations[index])
        unique.setdefault(output_digest(project), project)

    sources: dict[str, str] = {}
    for project in unique.values():
        for path in project.rglob("*"):
            if path.is_file():
                sources.setdefault(path.read_text(), str(path))
    for text, path in sources.items():
        leftovers = [marker for marker in JINJA_MARKERS if marker in GITHUB_EXPRESSION.sub("", text)]
        assert not leftovers, f"{path} still holds {leftovers}"
        if path.endswith(".py"):
            compile(text, path, "exec")
            outside_lightning = path.endswith("inference.py")  # Predictor: a model in Python or behind `serve`
            assert outside_lightning or not DEVICE_MOVES.search(text), (
                f"{path} moves tensors itself: Lightning places them"
            )
    folders = [str(project) for project in unique.values()]
    for command in (["ruff", "check", "--no-cache", "--quiet"], ["ruff", "format", "--check", "--no-cache", "--quiet"]):
        result = subprocess.run([*command, *folders], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    total = 1
    for values in AXES.values():
        total *= len(values)
    assert len(combinations) == total
    print(
        f"\n{total} combinations: {len(valid)} valid ({len(unique)} distinct outputs, {len(sources)} distinct files),"
        f" {total - len(valid)} refused; rendered in {rendered_s:.1f} s with {WORKERS} workers,"
        f" all checks in {time.perf_counter() - started:.1f} s"
    )


def test_the_oracle_agrees_with_lightning_on_cpu() -> None:
    """On this CPU machine, Lightning's own Trainer accepts (and keeps) exactly the single-node CPU answers the
    oracle calls valid. DeepSpeed is left out: without the package installed Lightning fails for that reason first."""
    checked = 0
    for answers in all_combinations():
        if answers["accelerator"] != "cpu" or answers["num_nodes"] != 1 or answers["launcher"] != "local":
            continue
        if answers["strategy"] == "deepspeed":
            continue
        devices = answers["devices"] if answers["devices"] == "auto" else int(answers["devices"])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trainer = L.Trainer(
                    accelerator="cpu",
                    devices=devices,
                    strategy=answers["strategy"],
                    precision=answers["precision"],
                    logger=False,
                    enable_checkpointing=False,
                    enable_progress_bar=False,
                )
        except ValueError:
            kept = False
        else:
            kept = trainer.precision == answers["precision"]
        assert kept == (expected_refusal(answers) is None), answers
        checked += 1
    assert checked == 3 * 4 * 5


def test_cpu_classes_are_every_cpu_strategy_precision_and_process_count_and_both_launchers() -> None:
    """What tests/test_run_matrix.py runs: cpu x {auto (one process), ddp} x the four CPU precisions x {1, 2 processes},
    the spawn launcher (ddp_spawn in 32-true) with 1 and 2 processes, and the torchrun and SLURM launchers."""
    precisions = {"32-true", "bf16-mixed", "bf16-true", "64-true"}
    local = {(c.strategy, c.precision, c.processes) for c in HARDWARE_CPU_CLASSES if c.launcher == "local"}
    expected = (
        {("auto", precision, 1) for precision in precisions}
        | {("ddp", precision, processes) for precision in precisions for processes in (1, 2)}
        | {("ddp_spawn", "32-true", processes) for processes in (1, 2)}
    )
    assert local == expected
    assert {c.launcher for c in HARDWARE_CPU_CLASSES} == {"local", "torchrun", "slurm"}
    assert len(HARDWARE_CPU_CLASSES) == len(expected) + 2
    datasets = {(c.dataset, c.strategy, c.precision, c.processes) for c in CPU_CLASSES if c.dataset != "digits"}
    assert datasets == {(d, "auto", precision, 1) for d in ("csv", "image_folder") for precision in precisions}
