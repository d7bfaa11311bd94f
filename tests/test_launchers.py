"""Launchers and scale: the sbatch script, the torchrun command, DeepSpeed's dependency, defaults that stay valid."""

import itertools
import re
import tomllib
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest
import yaml
from combinations import expected_refusal, render_many
from conftest import Render, answers_of

GPU_CLUSTER = {"accelerator": "gpu", "devices": "4", "strategy": "ddp", "num_nodes": 3, "launcher": "slurm"}


def sbatch_directives(project: Path) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)$", (project / "slurm/fit.sbatch").read_text(), re.MULTILINE))


def test_sbatch_script_matches_nodes_and_devices_and_runs_the_cli_with_srun(render: Render) -> None:
    project = render(GPU_CLUSTER)
    directives = sbatch_directives(project)
    assert directives["nodes"] == "3"
    assert directives["ntasks-per-node"] == "4"
    assert directives["gpus-per-node"] == "4"
    assert re.search(r"^srun lightning_project fit \"\$@\"$", (project / "slurm/fit.sbatch").read_text(), re.MULTILINE)
    trainer = yaml.safe_load((project / "configs/default.yaml").read_text())["trainer"]
    assert (trainer["num_nodes"], trainer["devices"]) == (3, 4)
    assert "sbatch slurm/fit.sbatch" in (project / "README.md").read_text()


def test_cpu_sbatch_asks_for_no_gpus(render: Render) -> None:
    directives = sbatch_directives(render({**GPU_CLUSTER, "accelerator": "cpu"}))
    assert "gpus-per-node" not in directives
    assert directives["ntasks-per-node"] == "4"


def test_torchrun_readme_gives_the_matching_launch_command(render: Render) -> None:
    project = render({"accelerator": "gpu", "devices": "2", "strategy": "fsdp", "num_nodes": 2, "launcher": "torchrun"})
    readme = (project / "README.md").read_text()
    assert "torchrun --nnodes 2 --nproc-per-node 2 --node-rank i" in readme
    assert "-m lightning_project fit" in readme
    assert not (project / "slurm").exists()


@pytest.mark.parametrize(("strategy", "has_deepspeed"), [("deepspeed", True), ("fsdp", False), ("ddp", False)])
def test_only_deepspeed_adds_a_dependency(render: Render, strategy: str, has_deepspeed: bool) -> None:
    project = render({"accelerator": "gpu", "devices": "2", "strategy": strategy})
    dependencies = tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]
    assert ("deepspeed>=0.16" in dependencies) == has_deepspeed
    assert not [name for name in dependencies if name.startswith("deepspeed") and not has_deepspeed]


def test_defaults_never_land_on_a_refused_answer(template_dir: Path, tmp_path: Path) -> None:
    """Answer only accelerator, devices and num_nodes: strategy, precision and launcher default to valid choices."""
    given = [
        {"accelerator": accelerator, "devices": devices, "num_nodes": num_nodes}
        for accelerator, devices, num_nodes in itertools.product(
            ["cpu", "gpu", "mps", "auto"], ["1", "2", "auto"], [1, 2]
        )
    ]
    with ProcessPoolExecutor(1, mp_context=get_context("fork")) as pool:  # render_many patches its process
        errors = dict(pool.submit(render_many, template_dir, tmp_path, list(enumerate(given))).result())
    refused = {index: error for index, error in errors.items() if error}
    for index in set(errors) - set(refused):
        recorded = answers_of(tmp_path / str(index))
        # Questions that cannot matter are not asked, so not recorded: they hold their defaults.
        answers = {"strategy": "auto", "launcher": "local", "num_nodes": 1, **given[index], **recorded}
        assert expected_refusal(answers) is None, answers
    for index, error in refused.items():
        assert re.match(r"Validation error for question '(devices|num_nodes)'", error), (given[index], error)
    assert len(refused) == 7  # mps with 2 devices (x2 node counts), and 2 nodes with mps or devices auto


@pytest.mark.parametrize(("hpo", "dataset"), [("none", "digits"), ("optuna", "digits"), ("none", "image_folder")])
def test_sbatch_scripts_ask_for_the_cpus_the_data_workers_use(render: Render, hpo: str, dataset: str) -> None:
    """Data in memory loads in the training process (one CPU); images decode in a worker per CPU of the task."""
    project = render({**GPU_CLUSTER, "hpo": hpo, "dataset": dataset})
    workers = yaml.safe_load((project / "configs/default.yaml").read_text())["data"]["num_workers"]
    cpus = 5 if workers is None else workers + 1
    for script in project.glob("slurm/*.sbatch"):
        assert f"#SBATCH --cpus-per-task={cpus}\n" in script.read_text(), script.name
    assert len(list(project.glob("slurm/*.sbatch"))) == (2 if hpo == "optuna" else 1)
    assert "before the script's name" in (project / "README.md").read_text()
