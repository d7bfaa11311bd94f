"""The `hpo` answer: the Optuna sweep's files, dependencies and SLURM array script exist only when asked for."""

import subprocess
import tomllib

import pytest
import yaml
from conftest import Render

SWEEP_DEPENDENCIES = {"optuna>=4.2", "optuna-integration[pytorch_lightning]>=4.2"}


def test_without_hpo_there_is_no_sweep(render: Render) -> None:
    project = render({"launcher": "slurm"})
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert not SWEEP_DEPENDENCIES & set(pyproject["project"]["dependencies"])
    assert not any(name.endswith("-sweep") for name in pyproject["project"]["scripts"])
    assert not list(project.rglob("*sweep*"))
    assert "-sweep" not in (project / "README.md").read_text()
    assert "-sweep" not in (project / ".github/agents/pytorch-lightning.agent.md").read_text()


def test_optuna_adds_the_command_its_dependencies_and_the_slurm_array(render: Render) -> None:
    project = render({"hpo": "optuna", "launcher": "slurm", "accelerator": "gpu", "precision": "bf16-mixed"})
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert set(pyproject["project"]["dependencies"]) >= SWEEP_DEPENDENCIES
    assert pyproject["project"]["scripts"]["lightning_project-sweep"] == "lightning_project.sweep:main"
    script = (project / "slurm/sweep.sbatch").read_text()
    assert "#SBATCH --array=" in script
    assert "#SBATCH --gpus-per-task=1" in script
    assert 'srun lightning_project-sweep "$@"' in script
    syntax = subprocess.run(["bash", "-n", project / "slurm/sweep.sbatch"], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    readme = (project / "README.md").read_text()
    assert "lightning_project-sweep" in readme
    assert "sbatch slurm/sweep.sbatch" in readme
    agent = (project / ".github/agents/pytorch-lightning.agent.md").read_text()
    tuning = agent[agent.index("### Hyperparameter Tuning") : agent.index("### Advanced Training Hooks")]
    assert "`lightning_project-sweep` runs an Optuna study over `configs/sweep.yaml`" in tuning
    assert "lightning_project fit --config configs/best.yaml" in tuning


@pytest.mark.parametrize(
    ("logger", "run_name_option"),
    [
        ("tensorboard", "--trainer.logger.init_args.version="),
        ("csv", "--trainer.logger.init_args.version="),
        ("wandb", "--trainer.logger.init_args.version="),  # its run id: the run folder, skipped by --ckpt_path last
        ("mlflow", "--trainer.logger.init_args.run_name="),
        ("none", "--trainer.default_root_dir="),
    ],
)
def test_every_trial_gets_its_own_run_folder_with_each_logger(
    render: Render, logger: str, run_name_option: str
) -> None:
    project = render({"hpo": "optuna", "logger": logger})
    fit_args = yaml.safe_load((project / "configs/sweep.yaml").read_text())["fit_args"]
    assert any(arg.startswith(run_name_option) and "{trial}" in arg for arg in fit_args)
