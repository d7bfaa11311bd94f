"""The generated project in its ecosystem: its license in the built package's metadata, `uv sync` taking torch from
the index the accelerator answer names, and jsonargparse deprecations failing the project's tests.

uv goes offline for torch here: the project's PyTorch index is replaced, by name, with a simple index of the local
wheel (`UV_INDEX`, conftest.local_torch_index); every other package comes from PyPI through uv as usual.
"""

import os
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import Render, local_torch_index
from hatchling.builders.wheel import WheelBuilder
from test_generated import install_editable, run_suite

LICENSES = {  # answer: (License-Expression, the LICENSE file's first line)
    "MIT": ("MIT", "MIT License"),
    "BSD-3-Clause": ("BSD-3-Clause", "BSD 3-Clause License"),
    "Apache-2.0": ("Apache-2.0", "Apache License"),
    "proprietary": ("LicenseRef-Proprietary", "Copyright (c) Ada Lovelace. All rights reserved."),
}
TORCH_INDEX = {"cpu": "cpu", "mps": "cpu", "gpu": "cu128", "auto": "cu128"}  # on Linux and Windows

needs_uv = pytest.mark.skipif(shutil.which("uv") is None, reason="uv is installed by `nox -s tests` (test group)")


def uv(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """uv in `project`, without the find-links folder: torch must come from the index the project declares."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("UV_", "VIRTUAL_ENV"))}
    command = ["uv", *args]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, check=False, env={**environment, **env})


def wheel_metadata(project: Path, output: Path) -> tuple[str, list[str]]:
    """Build the project's wheel with its backend (hatchling) and return METADATA and the files under licenses/."""
    wheel = Path(next(iter(WheelBuilder(str(project)).build(directory=str(output), versions=["standard"]))))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(name for name in names if name.endswith(".dist-info/METADATA"))).decode()
    return metadata, [name.rpartition("/licenses/")[2] for name in names if "/licenses/" in name]


@pytest.mark.parametrize("license_answer", LICENSES)
def test_the_license_answer_writes_license_and_package_metadata(
    render: Render, tmp_path: Path, license_answer: str
) -> None:
    expression, first_line = LICENSES[license_answer]
    project = render({"license": license_answer, "author_name": "Ada Lovelace"})
    text = (project / "LICENSE").read_text()
    assert text.lstrip().splitlines()[0].strip() == first_line
    assert "Ada Lovelace" in text or license_answer == "Apache-2.0"  # Apache's text names no holder: its appendix does
    metadata, license_files = wheel_metadata(project, tmp_path / "dist")
    assert f"License-Expression: {expression}\n" in metadata
    assert "License-File: LICENSE\n" in metadata
    assert license_files == ["LICENSE"]
    assert "Classifier: License ::" not in metadata, "PEP 639: a license expression replaces license classifiers"


@pytest.mark.generated
@needs_uv
def test_uv_sync_then_the_command_runs_with_torch_from_the_declared_index(render: Render, tmp_path: Path) -> None:
    """The README's uv commands, in a fresh CPU project: no index line typed, torch comes from pyproject's index."""
    project = render({"accelerator": "cpu"})
    offline_torch = local_torch_index(project, tmp_path / "torch-index")
    if not offline_torch:
        pytest.skip("no local torch wheel (UV_FIND_LINKS): this test would download torch")
    synced = uv(project, "sync", "--python", "3.11", env=offline_torch)
    assert synced.returncode == 0, synced.stderr[-3000:]
    lock = tomllib.loads((project / "uv.lock").read_text())
    torch = next(package for package in lock["package"] if package["name"] == "torch")
    assert torch["source"]["registry"] == str((tmp_path / "torch-index").resolve()), torch["source"]
    assert torch["version"].endswith("+cpu")
    fit = uv(project, "run", "lightning_project", "fit", "--config", "configs/debug.yaml", env=offline_torch)
    assert fit.returncode == 0, fit.stdout[-2000:] + fit.stderr[-3000:]
    assert "Training stopped at step 1: fast_dev_run" in fit.stdout + fit.stderr


@needs_uv
@pytest.mark.parametrize("accelerator", ["auto", "mps"])
def test_uv_locks_torch_from_the_accelerators_index_except_on_macos(
    render: Render, tmp_path: Path, accelerator: str
) -> None:
    """`uv lock` resolves the project for every platform: torch from PyTorch's CUDA or CPU index on Linux and Windows,
    from PyPI on macOS. The index is found by its name (pytorch-cu128 or pytorch-cpu), replaced by the local one."""
    project = render({"accelerator": accelerator})
    offline_torch = local_torch_index(project, tmp_path / "torch-index")
    if not offline_torch:
        pytest.skip("no local torch wheel (UV_FIND_LINKS): this test would download torch")
    assert offline_torch["UV_INDEX"].startswith(f"pytorch-{TORCH_INDEX[accelerator]}=")
    locked = uv(project, "lock", "--python", "3.11", env=offline_torch)
    assert locked.returncode == 0, locked.stderr[-3000:]
    lock = tomllib.loads((project / "uv.lock").read_text())
    project_entry = next(package for package in lock["package"] if package["name"] == "lightning-project")
    torch_requirements = [entry for entry in project_entry["metadata"]["requires-dist"] if entry["name"] == "torch"]
    sources = {entry["marker"]: entry.get("index") for entry in torch_requirements}
    local_index = (tmp_path / "torch-index").resolve().as_uri()
    assert sources == {"sys_platform != 'darwin'": local_index, "sys_platform == 'darwin'": None}


@pytest.mark.generated
def test_a_deprecated_call_in_project_code_fails_its_tests(render: Render) -> None:
    """The generated pytest settings turn a DeprecationWarning raised from the project's package into an error."""
    project = render({})
    callbacks = project / "src" / "lightning_project" / "callbacks.py"
    text = callbacks.read_text()
    assert "skip_unset=False" in text
    callbacks.write_text(text.replace("skip_unset=False", "skip_none=False"))  # jsonargparse's deprecated name
    install_editable(project)
    test = "tests/test_runs.py::test_each_run_gets_one_directory_with_checkpoints_config_and_logs"
    result = run_suite(project, test)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "skip_none parameter was deprecated" in result.stdout  # unchanged, the test passes in test_generated
