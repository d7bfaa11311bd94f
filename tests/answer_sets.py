"""Named answer sets: the projects the tests render, and what each must contain."""

from typing import Any

ANSWER_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cpu_ddp_2": {"accelerator": "cpu", "devices": "2", "strategy": "ddp"},
    "csv_logger": {"logger": "csv"},
    "gpu_fsdp_slurm": {
        "accelerator": "gpu",
        "devices": "4",
        "strategy": "fsdp",
        "num_nodes": 2,
        "precision": "bf16-mixed",
        "launcher": "slurm",
        "gpu_runner_label": "self-hosted, linux, a100",
    },
    "optuna_sweep": {"hpo": "optuna"},
    "csv_table": {"dataset": "csv", "hpo": "optuna"},
    "image_folder": {"dataset": "image_folder", "logger": "none"},
    "long_punctuated_name": {
        "project_name": "Ça c'est « Très » Long: a Lightning project for «digits», v2 (beta) & more, by Zoë!!"
    },
}

# Rendered and tested on CUDA by the repo's `nox -s gpu` sessions (GPU CI runner).
GPU_ANSWER_SETS: dict[str, dict[str, Any]] = {
    "gpu_bf16": {"accelerator": "gpu", "devices": "1", "strategy": "auto", "precision": "bf16-mixed"},
    "gpu_ddp_2": {"accelerator": "gpu", "devices": "2", "strategy": "ddp", "precision": "bf16-mixed"},
    "gpu_fsdp_2": {"accelerator": "gpu", "devices": "2", "strategy": "fsdp", "precision": "bf16-mixed"},
    "gpu_16_mixed": {"accelerator": "gpu", "devices": "1", "strategy": "auto", "precision": "16-mixed"},
}

DERIVED_PACKAGE_NAMES = {
    "defaults": "lightning_project",
    "long_punctuated_name": "ca_c_est_tres_long_a_lightning_project_for_digits",
}

COMMON_FILES = {
    ".copier-answers.yml",
    ".github/dependabot.yml",
    ".gitignore",
    ".pre-commit-config.yaml",
    "LICENSE",
    "README.md",
    "noxfile.py",
    "pyproject.toml",
    "configs/compile.yaml",
    "configs/debug.yaml",
    "configs/default.yaml",
    "configs/limit_batches.yaml",
    "configs/overfit.yaml",
    "configs/profile.yaml",
    "configs/reproducible.yaml",
    "tests/conftest.py",
    "tests/test_compile.py",
    "tests/test_device_syncs.py",
    "tests/test_fault_tolerance.py",
    "tests/test_distributed.py",
    "tests/test_gpu.py",
    "tests/test_data.py",
    "tests/test_export.py",
    "tests/test_model.py",
    "tests/test_predict.py",
    "tests/test_runs.py",
    "tests/test_serve.py",
    "tests/test_stops.py",
    "tests/test_training.py",
    "tests/test_tune.py",
}
PACKAGE_FILES = {
    "__init__.py",
    "__main__.py",
    "callbacks.py",
    "checkpoints.py",
    "cli.py",
    "data.py",
    "datamodule.py",
    "export.py",
    "fault_tolerance.py",
    "inference.py",
    "model.py",
    "network.py",
    "predictions.py",
    "preprocess.py",
    "py.typed",
    "run_summary.py",
    "serve.py",
    "tune.py",
}
# Every dataset answer has its own datamodule.py, network.py and preprocess.py (the same names, other contents) and
# their tests; the files below are the same set for each answer.
DATASET_FILES = {"tests/test_datamodule.py", "tests/test_preprocess.py", "tests/raw_inputs.py"}


HANDOFF_AGENTS = ("pytorch-agent", "ml-trainer", "data-prep", "test-agent")


def agent_files(answers: dict[str, Any]) -> set[str]:
    """The agent instruction files: always the Lightning agent, then the chosen extra files and the hand-off agents."""
    files = {".github/agents/pytorch-lightning.agent.md", *answers["agent_files"]}
    if answers["agent_handoffs"]:
        files |= {f".github/agents/{target}.agent.md" for target in HANDOFF_AGENTS}
    return files


def expected_files(answers: dict[str, Any]) -> set[str]:
    """The files a project rendered with `answers` (as recorded in its answers file) must hold, and no others."""
    package = answers["package_name"]
    files = COMMON_FILES | DATASET_FILES | {f"src/{package}/{name}" for name in PACKAGE_FILES}
    if answers.get("dataset") == "image_folder":
        files.add("tests/test_pretrained.py")  # timm backbones, run by the template's `nox -s pretrained`
    if answers.get("dataset") == "csv":
        files.add(f"src/{package}/table_cache.py")
    files |= agent_files(answers)
    if answers.get("launcher") == "slurm":
        files.add("slurm/fit.sbatch")
    if answers.get("ci", True):
        files |= {".github/workflows/ci.yml", ".github/workflows/template-sync.yml"}
    if answers.get("hpo") == "optuna":
        files |= {
            "configs/sweep.yaml",
            "tests/test_sweep.py",
            f"src/{package}/sweep.py",
            f"src/{package}/search_space.py",
        }
        if answers.get("launcher") == "slurm":
            files.add("slurm/sweep.sbatch")
    return files
