"""The generated sbatch scripts run on a real SLURM cluster: DDP across tasks, requeue on SIGUSR1, a sweep array.

Run by `nox -s tests` as root with Debian's SLURM packages (.ci/run installs them); `-- -m slurm` runs only these.
"""

import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Render, Summary
from pause_at_step import PAUSED, RESUME
from slurm_cluster import SlurmCluster, slurm_cluster, two_node_slurm_cluster
from test_generated import install_editable

pytestmark = pytest.mark.slurm
__all__ = ["slurm_cluster", "two_node_slurm_cluster"]  # fixtures, used by name

CPU_DDP_SLURM = {"accelerator": "cpu", "devices": "2", "strategy": "ddp", "launcher": "slurm"}
SHORT_FIT = ["--trainer.limit_train_batches=4", "--trainer.limit_val_batches=2", "--trainer.enable_progress_bar=false"]


def job_environment() -> dict[str, str]:
    """What the job inherits from sbatch: this environment's commands first (the project is installed here), and
    this folder on the path for pause_at_step."""
    return {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(Path(__file__).parent)}


JOBS = "SLURM jobs (wall seconds from sbatch to the job's end)"


def submit(cluster: SlurmCluster, project: Path, summary: Summary, *args: str) -> tuple[str, str]:
    """sbatch `args` from the project folder, wait for the job and report its wall time; returns its id and output."""
    started = time.monotonic()
    job = cluster.sbatch(*args, cwd=project, env=job_environment())
    states = cluster.wait_for(job)
    output = "\n".join(path.read_text() for path in sorted(project.glob("slurm-*.out")))
    assert set(states.values()) == {"COMPLETED"}, f"{states}\n{output[-12000:]}\n{cluster.log_tails()}"
    summary(JOBS, [f"{time.monotonic() - started:6.1f}  sbatch {' '.join(args)}"])
    return job, output


def load_checkpoint(path: Path) -> dict[str, Any]:
    import torch  # noqa: PLC0415  (here, so that collecting these tests elsewhere does not import torch)

    checkpoint: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return checkpoint


def only_checkpoint(project: Path, name: str) -> dict[str, Any]:
    found = list(project.glob(f"logs/**/{name}"))
    assert len(found) == 1, found
    return load_checkpoint(found[0])


def train_samples(project: Path) -> int:
    """The size of the project's training split, from its own datamodule."""
    script = (
        "from lightning_project.datamodule import DigitsDataModule as D; d = D(); d.setup(); print(len(d.train_set))"
    )
    return int(
        subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True, check=True).stdout
    )


def test_fit_sbatch_runs_ddp_over_two_tasks_to_one_last_checkpoint(
    slurm_cluster: SlurmCluster, render: Render, summary: Summary
) -> None:
    project = render(CPU_DDP_SLURM)
    install_editable(project)
    _, output = submit(
        slurm_cluster, project, summary, "slurm/fit.sbatch", "--trainer.max_epochs=2", "--data.batch_size=32"
    )
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in output
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in output
    last = only_checkpoint(project, "last.ckpt")
    # The options after the script reached fit: two epochs of batches of 32, each rank on half the samples.
    assert last["epoch"] == 1
    assert last["global_step"] == 2 * math.ceil(math.ceil(train_samples(project) / 2) / 32)


def test_sigusr1_checkpoints_requeues_and_the_job_resumes_to_the_uninterrupted_step(
    slurm_cluster: SlurmCluster, render: Render, summary: Summary
) -> None:
    project = render(CPU_DDP_SLURM)
    install_editable(project)
    started = time.monotonic()
    # One task: options before the script's name override its #SBATCH lines.
    job = slurm_cluster.sbatch(
        "--ntasks-per-node=1",
        "slurm/fit.sbatch",
        "--trainer.devices=1",
        "--trainer.strategy=auto",
        "--trainer.max_epochs=3",
        *SHORT_FIT,
        "--trainer.callbacks+=pause_at_step.PauseAtStep",
        cwd=project,
        env=job_environment(),
    )
    slurm_cluster.wait_until((project / PAUSED).exists, f"job {job} to reach step 5", timeout=300)
    signalled = slurm_cluster.query("scancel", "--signal=USR1", job)
    assert signalled.returncode == 0, signalled.stderr
    slurm_cluster.wait_until(lambda: slurm_cluster.job_field(job, "Restarts") == "1", f"job {job} to be requeued", 120)
    (project / RESUME).touch()
    states = slurm_cluster.wait_for(job)
    output = (project / f"slurm-{job}.out").read_text()
    assert states == {job: "COMPLETED"}, output[-4000:]
    summary(JOBS, [f"{time.monotonic() - started:6.1f}  sbatch fit.sbatch, SIGUSR1 at step 5, requeued, resumed"])
    saved = load_checkpoint(project / "logs/hpc_ckpt_1.ckpt")
    assert saved["global_step"] == 5
    assert re.search(r"Restored all states from the checkpoint at \S*logs/hpc_ckpt_1\.ckpt", output), output[-4000:]
    # The requeued run logs to a new version folder; its last.ckpt is the newest.
    newest = max(project.glob("logs/**/last.ckpt"), key=lambda path: path.stat().st_mtime)
    last = load_checkpoint(newest)
    assert (last["epoch"], last["global_step"]) == (2, 3 * 4)  # max_epochs x limit_train_batches, as if never stopped


def test_sweep_sbatch_array_tasks_share_one_study(
    slurm_cluster: SlurmCluster, render: Render, summary: Summary
) -> None:
    import optuna  # noqa: PLC0415  (only this test needs it)
    from optuna.trial import TrialState  # noqa: PLC0415

    project = render({**CPU_DDP_SLURM, "devices": "1", "strategy": "auto", "hpo": "optuna"})
    install_editable(project)
    n_trials = 4
    _, output = submit(
        slurm_cluster,
        project,
        summary,
        "--array=0-1",
        "slurm/sweep.sbatch",
        f"--n-trials={n_trials}",
        "--trainer.max_epochs=1",
        *SHORT_FIT,
    )
    settings = yaml.safe_load((project / "configs/sweep.yaml").read_text())
    study = optuna.load_study(study_name=settings["study_name"], storage=f"sqlite:///{project / 'logs/sweep.db'}")
    finished = [trial for trial in study.trials if trial.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == n_trials, output[-4000:]
    best = yaml.safe_load((project / "configs/best.yaml").read_text())
    assert best["model"]["lr"] == study.best_trial.params["model.lr"]


def test_fit_sbatch_runs_ddp_across_two_nodes(
    two_node_slurm_cluster: SlurmCluster, render: Render, summary: Summary
) -> None:
    project = render({**CPU_DDP_SLURM, "devices": "1", "num_nodes": 2})
    install_editable(project)
    cluster = two_node_slurm_cluster
    job, output = submit(cluster, project, summary, "slurm/fit.sbatch", "--trainer.max_epochs=1", *SHORT_FIT)
    summary("SLURM job on two nodes: its output", output.splitlines())
    assert cluster.job_field(job, "NodeList") == "node[1-2]"
    assert f"launch task StepId={job}.0" in (cluster.folder / "log/slurmd-node2.out").read_text()
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in output
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in output
    last = only_checkpoint(project, "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (0, 4)
