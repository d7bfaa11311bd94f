"""Named answer sets: the projects the tests render, and what each must contain."""

from typing import Any

ANSWER_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cpu_ddp_2": {"accelerator": "cpu", "devices": "2", "strategy": "ddp"},
    "csv_logger": {"logger": "csv"},
    "long_punctuated_name": {
        "project_name": "Ça c'est « Très » Long: a Lightning project for «digits», v2 (beta) & more, by Zoë!!"
    },
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
    "README.md",
    "noxfile.py",
    "pyproject.toml",
    "configs/debug.yaml",
    "configs/default.yaml",
    "configs/limit_batches.yaml",
    "configs/overfit.yaml",
    "configs/profile.yaml",
    "configs/reproducible.yaml",
    "tests/conftest.py",
    "tests/test_datamodule.py",
    "tests/test_model.py",
    "tests/test_runs.py",
    "tests/test_training.py",
}
PACKAGE_FILES = {
    "__init__.py",
    "__main__.py",
    "callbacks.py",
    "cli.py",
    "datamodule.py",
    "model.py",
    "py.typed",
    "tune.py",
}


def expected_files(answers: dict[str, Any]) -> set[str]:
    """The files a project rendered with `answers` (as recorded in its answers file) must hold, and no others."""
    package = answers["package_name"]
    return COMMON_FILES | {f"src/{package}/{name}" for name in PACKAGE_FILES}
