"""Running a run-time class: its project rendered, the processes of each command started as its launcher starts
them, and the checks on what its commands left (tests/test_run_matrix.py on CPU, test_device_classes.py)."""

import csv
import importlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from combinations import render_many
from run_matrix import RunClass, exports

TIMEOUT_S = 900  # one command; generous for a loaded 2-core machine
# configs/limit_batches.yaml: 5 train batches a process (the train split holds 10 of 64 even per DDP rank), 2 epochs.
STEPS_PER_EPOCH, FIT_EPOCHS, RESUME_EPOCHS = 5, 2, 3
# New inputs to predict, in this order: an odd count, so two processes get unequal shares (the sampler pads one).
NEW_INPUTS = [5, 3, 17, 0, 11, *range(20, 52)]
WEIGHT_DTYPES = {"64-true": torch.float64, "bf16-true": torch.bfloat16}


@dataclass
class StepResult:
    name: str
    step: str
    ok: bool
    seconds: float
    error: str = ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_environment(project: Path) -> dict[str, str]:
    # One thread a process: the classes run side by side, and the model is a small MLP.
    return {**os.environ, "PYTHONPATH": str(project / "src"), "OMP_NUM_THREADS": "1"}


def launch(commands: list[tuple[list[str], dict[str, str]]], project: Path) -> tuple[bool, str]:
    """Start the processes of one command (one per node or SLURM task) and wait for all of them."""
    processes = [
        subprocess.Popen(
            command,
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        for command, env in commands
    ]
    try:
        outputs = [process.communicate(timeout=TIMEOUT_S)[0] for process in processes]
    except subprocess.TimeoutExpired:
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)  # its session: the ranks Lightning or torchrun started too
        return False, f"still running after {TIMEOUT_S} s: {commands[0][0]}"
    failed = [output for process, output in zip(processes, outputs, strict=True) if process.returncode]
    return not failed, (failed[0][-3000:] if failed else "")


def sbatch_command(project: Path, package: str) -> list[str]:
    """The command slurm/fit.sbatch gives srun, as `python -m` (the console script is not installed here)."""
    srun = re.search(r"^srun (\S+) fit \"\$@\"$", (project / "slurm/fit.sbatch").read_text(), re.MULTILINE)
    assert srun, "slurm/fit.sbatch must run the project's command under srun"
    assert srun[1] == package
    return [sys.executable, "-m", package]


def launcher_commands(run_class: RunClass, project: Path, args: list[str]) -> list[tuple[list[str], dict[str, str]]]:
    env, package = child_environment(project), run_class.package
    if run_class.launcher == "local":  # Lightning starts the other ranks (ddp re-runs this command, ddp_spawn spawns)
        return [([sys.executable, "-m", package, *args], env)]
    port = str(free_port())
    if run_class.launcher == "torchrun":  # the README's command: two nodes of one process each, on localhost
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1"]
        address = ["--master-addr=127.0.0.1", f"--master-port={port}"]
        return [([*torchrun, f"--node-rank={rank}", *address, "-m", package, *args], env) for rank in (0, 1)]
    # What srun gives each of the sbatch script's tasks (--nodes=2 --ntasks-per-node=1), on this machine.
    command = sbatch_command(project, package)
    slurm = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": package}
    local = {"SLURM_NODELIST": "127.0.0.1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "SLURM_LOCALID": "0"}
    return [
        ([*command, *args], {**env, **slurm, **local, "SLURM_PROCID": str(rank), "SLURM_NODEID": str(rank)})
        for rank in (0, 1)
    ]


def checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file, or a DeepSpeed checkpoint folder's training state (its weights stay sharded)."""
    if path.is_dir():
        state = path / "checkpoint" / "mp_rank_00_model_states.pt"
        return {"state_dict": {}, **torch.load(state, map_location="cpu", weights_only=False)}
    return torch.load(path, map_location="cpu", weights_only=True)


def check_results(run_class: RunClass, project: Path, inputs: Path) -> list[str]:
    """What is wrong with the files the commands left (`inputs`: the new inputs predicted), or nothing."""
    problems = []
    lasts = sorted(project.glob("logs/**/last.ckpt"), key=lambda path: path.stat().st_mtime)
    if len(lasts) != 2:
        return [f"expected the fit's and the resume's last.ckpt, found {[str(path) for path in lasts]}"]
    for path, epochs in zip(lasts, (FIT_EPOCHS, RESUME_EPOCHS), strict=True):
        saved = checkpoint(path)
        if (saved["epoch"], saved["global_step"]) != (epochs - 1, epochs * STEPS_PER_EPOCH):
            problems.append(f"{path}: epoch {saved['epoch']}, step {saved['global_step']}, expected {epochs} epochs")
        dtypes = {tensor.dtype for tensor in saved["state_dict"].values() if tensor.is_floating_point()}
        if not path.is_dir() and dtypes != {WEIGHT_DTYPES.get(run_class.precision, torch.float32)}:
            problems.append(f"{path}: weights in {dtypes} with precision {run_class.precision}")
    test_accuracies = [
        float(row["test/acc"])
        for metrics in project.glob("logs/**/metrics.csv")
        for row in csv.DictReader(metrics.open())
        if row.get("test/acc")
    ]
    if len(test_accuracies) != 1 or not 0 <= test_accuracies[0] <= 1:
        problems.append(f"test: expected one test/acc in the metrics.csv files, found {test_accuracies}")
    predictions = project / "logs/predictions.csv"
    rows = list(csv.reader(predictions.open())) if predictions.is_file() else [[]]
    found = [row[0] for row in rows[1:]]  # the input column: `row` (a row number) or `path`
    expected = [str(input_id) for input_id in raw_inputs(project).input_ids(inputs, NEW_INPUTS)]
    if found != expected:
        problems.append(f"predict: {predictions.name} names {found}, expected {expected}: the new inputs in order")
    leftovers = sorted(path.name for path in predictions.parent.glob("predictions.csv.*"))
    if leftovers:
        problems.append(f"predict: parts left beside the merged file: {leftovers}")
    exported = {path.name for path in (project / "export").glob("*")}
    if exports(run_class) and not {"model.onnx", "predict.py", "preprocess.py"} <= exported:
        problems.append(f"export: the folder holds {sorted(exported)}")
    return problems


def raw_inputs(project: Path) -> Any:
    """The project's tests/raw_inputs.py: how its dataset answer's new inputs are written and named in predictions."""
    spec = importlib.util.spec_from_file_location(f"raw_inputs_{abs(hash(project))}", project / "tests/raw_inputs.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_new_inputs(project: Path) -> Path:
    """NEW_INPUTS written as a user brings them (tests/raw_inputs.py), for `predict --data.predict_path`."""
    return Path(raw_inputs(project).write_inputs(project / "new-inputs", NEW_INPUTS))


def prepare_data(project: Path, package: str, data_dir: Path) -> None:
    """Write the dataset once, before the classes start, so no two processes write it at the same time.

    In this process, which the combination tests have made import Lightning already: a child would import it again."""
    sys.path.insert(0, str(project / "src"))
    try:
        datamodule = importlib.import_module(f"{package}.datamodule")
    finally:
        sys.path.remove(str(project / "src"))
    datamodule.DigitsDataModule(data_dir=str(data_dir)).prepare_data()


def render_classes(template: Path, root: Path, classes: list[RunClass]) -> dict[RunClass, Path]:
    indexed = [(index, run_class.answers()) for index, run_class in enumerate(classes)]
    with ProcessPoolExecutor(1, mp_context=get_context("fork")) as pool:  # render_many patches its process
        errors = dict(pool.submit(render_many, template, root, indexed).result())
    assert not any(errors.values()), errors
    return {run_class: root / str(index) for index, run_class in enumerate(classes)}
