"""Every shell command the generated documents and this README show runs as shown, or is listed in NOT_RUNNABLE with
the reason it cannot run here. Each command's references (config files, dependency groups, extras, nox sessions,
pytest files and markers, sbatch scripts, subcommands) are checked whether it runs or not.

How the commands of a generated project (README.md, AGENTS.md, CLAUDE.md, .github/agents/*.md) run, in document order:
- The project's own programs (`<package>`, `<package>-tune`, `<package>-sweep`, `python -m <package>`) run in every
  answer set, unless an earlier answer set ran the same text with the same configs/default.yaml, cli.py and entry
  module (`optuna_sweep` changes none of them for `fit`). They run through their console-script entry points, one
  process per answer set (entry_point_runner.py: Lightning is imported once instead of once per command). A command
  that trains gets SHORT_RUN (or TUNE_SHORT, SWEEP_SHORT) appended, before any `>` redirection; where the answers, or
  the command itself, ask for a GPU or more than one device or node, SINGLE_CPU too: this machine has 2 CPU cores and
  no GPU (tests/test_distributed.py in the generated suite runs several processes).
- Install commands (pip, uv) run in one fresh virtual environment that the documented `python -m venv` line creates,
  shared by the answer sets: each distinct text runs once, in the first answer set that shows it.
- Any other command runs with bash in the project, once per distinct text across the answer sets.
- Within an answer set each distinct text runs once. A command with a `<placeholder>` is checked, not run.
"""

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from answer_sets import ANSWER_SETS
from conftest import REPO, local_torch_index, render_project
from documented_commands import Command, broken_references, collect
from test_generated import install_editable

pytestmark = pytest.mark.generated

DOCUMENTED_ANSWER_SETS = {
    name: ANSWER_SETS[name] for name in ("defaults", "csv_logger", "gpu_fsdp_slurm", "optuna_sweep")
}
SHORT_RUN = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=2",
    "--trainer.limit_test_batches=2",
    "--trainer.limit_predict_batches=2",
]
TUNE_SHORT = ["--trainer.max_epochs=1", "--scale_batch_size.max_trials=3", "--lr_find.num_training=20"]
SWEEP_SHORT = ["--n-trials", "2", *SHORT_RUN]
SINGLE_CPU = [
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.num_nodes=1",
    "--trainer.strategy=auto",
    "--trainer.precision=32-true",
]
# Files the documented commands write, which later commands read.
RUN_OUTPUTS = {"configs/tuned.yaml", "configs/best.yaml", "experiment.yaml"}

# Commands that cannot run here (a full match of the text): the reason, shown when the test lists them.
NOT_RUNNABLE = {
    r"pip install torch --index-url https://download\.pytorch\.org/whl/\S+": (
        "download.pytorch.org is not reachable from the test machine; the fresh environment takes a CPU "
        "torch from the local wheels (pip's find-links) when it installs the project"
    ),
    r"sbatch( -\S+)* slurm/\S+\.sbatch( .*)?": (
        "runs on the local SLURM cluster in tests/test_slurm.py (as root; sbatch options before the script too)"
    ),
    r"pytest( .*)?": (
        "the generated suite or a part of it: tests/test_generated.py runs the whole suite for every answer set "
        "(the files and markers named here are checked)"
    ),
    r"nox -s tests": (
        "tests/test_generated.py::test_nox_tests_session_passes_inside_a_fresh_project runs it in a fresh project"
    ),
    r"nox -s tests_full": (
        "the project's every test in a new nox environment: tests/test_generated.py runs the full tier of each answer "
        "set's suite (its selections) in this environment"
    ),
    r"nox -s lint": (
        "ruff and strict mypy in a new nox environment: tests/test_conventions.py runs mypy --strict on a rendered "
        "project, and the generated pre-commit hooks run ruff"
    ),
    r"tensorboard --logdir logs": "a server that runs until it is stopped",
    r"\S+ serve( .*)?": (
        "a server that runs until it is stopped: the generated tests/test_serve.py starts it on 127.0.0.1, sends it "
        "requests and stops it"
    ),
    # This repository's README
    r"git clone https://github\.com/\S+": (
        "GitHub is not reachable from the test machine; the test makes ./copier-lightning a git repository of this "
        "working tree instead"
    ),
    r"copier copy --trust gh:\S+ \S+": "copies from GitHub, which the test machine cannot reach",
    r"pipx install copier": "pipx is not installed here; `uv tool install copier`, the other way beside it, runs",
    r"pre-commit autoupdate": "fetches every hook's repository from GitHub",
    r"nox": "the whole CI (.ci/run runs it): a test inside it cannot run it again",
    r"nox -s tests -- .+": "a part of the template's own test session, which runs it (a test inside it cannot)",
    r"nox -s (rendered|gpu|bench|history|pretrained)( .*)?": (
        "a session outside plain nox that renders and installs projects for many minutes (the CI workflow runs "
        "rendered and gpu); its name is checked against noxfile.py"
    ),
    r"copier (copy|update)( --defaults| --data)?": (
        "names the command in prose or in the benchmark table, not a complete command; the complete forms run"
    ),
}


def not_runnable_reason(command: Command) -> str | None:
    if re.search(r"<[^>]+>", command.text):
        return "holds a <placeholder> for the reader's own value"
    texts = (command.text, " ".join(command.program_words))  # `uv run nox -s tests` is listed as `nox -s tests`
    matches = (reason for pattern, reason in NOT_RUNNABLE.items() if any(re.fullmatch(pattern, t) for t in texts))
    return next(matches, None)


def documents(project: Path) -> list[Path]:
    agents = sorted((project / ".github/agents").glob("*.md"))
    return [
        path
        for path in [project / "README.md", project / "AGENTS.md", project / "CLAUDE.md", *agents]
        if path.is_file()
    ]


def scripts_of(project: Path) -> dict[str, str]:
    return tomllib.loads((project / "pyproject.toml").read_text())["project"].get("scripts", {})


def project_commands(project: Path) -> list[Command]:
    """The commands of the project's documents, each distinct text once, in document order."""
    commands = itertools.chain.from_iterable(
        collect(path, set(scripts_of(project)), str(path.relative_to(project))) for path in documents(project)
    )
    unique: dict[str, Command] = {}
    for command in commands:
        unique.setdefault(command.text, command)
    return list(unique.values())


def entry_point(command: Command, project: Path) -> str | None:
    """The function or module a command of the project's own runs, or None for other programs."""
    words, scripts = command.program_words, scripts_of(project)
    package = Path(next(iter(scripts.values())).split(":")[0].replace(".", "/")).parts[0] if scripts else ""
    if words[0] in scripts:
        return scripts[words[0]]
    if words[:2] in (["python", "-m"], ["python3", "-m"]) and words[2:3] == [package]:
        return f"-m {package}"
    return None


def read_by(entry: str, project: Path) -> str:
    """What a command of the project's own depends on: configs/default.yaml, cli.py and its entry module."""
    module = entry.removeprefix("-m ").split(":")[0].replace(".", "/")
    package = module.split("/")[0]
    files = [project / "configs/default.yaml", project / f"src/{package}/cli.py", project / f"src/{module}.py"]
    return "\n".join(path.read_text() for path in files if path.is_file())


def needs_more_than_one_cpu(words: list[str], trainer: dict[str, Any]) -> bool:
    settings = {**{key: str(value) for key, value in trainer.items()}}
    for word in words:
        if word.startswith("--trainer.") and "=" in word:
            key, value = word[len("--trainer.") :].split("=", 1)
            settings[key] = value
    return (
        settings.get("accelerator") in {"gpu", "cuda", "mps"}
        or settings.get("devices", "1") not in {"1", "auto"}
        or settings.get("num_nodes", "1") != "1"
    )


def short_run(words: list[str], trainer: dict[str, Any]) -> list[str]:
    """The overrides appended to a command of the project's own (see the module docstring)."""
    if "--help" in words or "--print_config" in words:
        return []
    program = words[2] if words[0].startswith("python") else words[0]
    subcommand = words[3:4] if words[0].startswith("python") else words[1:2]
    if program.endswith("-tune"):
        appended = TUNE_SHORT
    elif program.endswith("-sweep"):
        appended = SWEEP_SHORT
    elif subcommand and subcommand[0] in {"fit", "validate", "test", "predict"}:
        appended = SHORT_RUN
    else:
        return []
    return appended + (SINGLE_CPU if needs_more_than_one_cpu(words, trainer) else [])


def runner_request(command: Command, project: Path, entry: str) -> dict[str, Any]:
    words = command.program_words
    stdout = None
    if ">" in words:
        index = words.index(">")
        words, stdout = words[:index], str(project / words[index + 1])
    unsupported = {"|", "&&", ";", "<", ">>"} & set(words)
    assert not unsupported, f"{command.source}: `{command.text}` uses shell syntax the runner does not run"
    trainer = yaml.safe_load((project / "configs/default.yaml").read_text())["trainer"]
    argv = [*words, *short_run(command.program_words, trainer)]
    if entry.startswith("-m"):
        argv = argv[2:]
    return {"argv": argv, "entry": entry, "environment": command.assignments, "stdout": stdout}


def run_entry_points(project: Path, requests: list[dict[str, Any]]) -> list[int]:
    if not requests:
        return []
    runner = Path(__file__).with_name("entry_point_runner.py")
    result = subprocess.run(
        [sys.executable, str(runner)],
        input=json.dumps(requests),
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(project / "src")},
    )
    assert result.returncode == 0, result.stderr[-6000:]
    statuses: list[int] = json.loads(result.stdout.strip().splitlines()[-1])
    failed = [" ".join(request["argv"]) for request, status in zip(requests, statuses, strict=True) if status]
    assert not failed, f"these commands failed: {failed}\n{result.stderr[-8000:]}"
    return statuses


def bash(command: str, cwd: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, check=False, env=environment
    )


def is_install(command: Command) -> bool:
    words = command.words[len(command.assignments) :]
    return (
        words[:1] == ["pip"]
        or words[:2] in (["uv", "sync"], ["uv", "pip"], ["uv", "lock"], ["uv", "add"])
        or words[:3] in (["python", "-m", "venv"], ["python", "-m", "pip"])
    )


class Ledger:
    """What ran, what was skipped as a duplicate, and what was listed as not runnable: the closing note's numbers."""

    def __init__(self) -> None:
        self.ran: set[str] = set()
        self.ran_with: set[tuple[str, str]] = set()  # (command text, the files it reads): its own programs
        self.rows: list[tuple[str, str, str, str]] = []  # (document set, source, text, outcome)

    def add(self, where: str, command: Command, outcome: str) -> None:
        self.rows.append((where, command.source, command.text, outcome))

    def report(self, where: str) -> str:
        rows = [row for row in self.rows if row[0] == where]
        ran = sum(row[3].startswith("ran") for row in rows)
        return "\n".join([f"{where}: {len(rows)} commands, {ran} ran", *(" | ".join(row[1:]) for row in rows)])


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture(scope="module")
def rendered(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("documented")
    return {
        name: render_project(template_dir, root / name, answers) for name, answers in DOCUMENTED_ANSWER_SETS.items()
    }


def environment_of_this_test_run() -> dict[str, str]:
    """This test environment's programs (pytest, nox, copier, pre-commit) first on PATH, and a git identity."""
    identity = {"GIT_AUTHOR_NAME": "Docs Test", "GIT_AUTHOR_EMAIL": "docs@example.com"}
    identity |= {"GIT_COMMITTER_NAME": "Docs Test", "GIT_COMMITTER_EMAIL": "docs@example.com"}
    return {**os.environ, **identity, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def install_environment(home: Path) -> dict[str, str]:
    """For the install commands: pip and uv take torch from the local wheels, as on a user's CPU-only machine."""
    find_links = os.environ.get("UV_FIND_LINKS") or os.environ.get("PIP_FIND_LINKS", "")
    inherited = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}  # proxies, certificates
    return {
        **inherited,
        "HOME": str(home),
        "PIP_FIND_LINKS": find_links,
        "UV_FIND_LINKS": find_links,
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache/uv")),
        "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache/pip")),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


class Installs:
    """The install commands of every answer set, run in the background in one fresh environment, while the other
    tests run: the first `python -m venv .venv` makes it, the later commands run with it activated, each in the project
    that shows it; each distinct text runs once."""

    def __init__(self, rendered: dict[str, Path], home: Path) -> None:
        self.commands: list[tuple[Path, Command]] = []
        for project in rendered.values():
            for command in project_commands(project):
                known = {known_command.text for _, known_command in self.commands}
                if is_install(command) and not not_runnable_reason(command) and command.text not in known:
                    self.commands.append((project, command))
        self.venv = next((p / ".venv" for p, c in self.commands if "python -m venv .venv" in c.text), None)
        self.results: list[tuple[Command, subprocess.CompletedProcess[str]]] = []
        self.thread = threading.Thread(target=self._run, args=(install_environment(home),))
        self.thread.start()

    def _run(self, environment: dict[str, str]) -> None:
        for project, command in self.commands:
            made = self.venv and (self.venv / "bin/activate").is_file()
            activate = f". {self.venv}/bin/activate && " if made else ""
            # uv takes torch from the index the project names (PyTorch's, unreachable here): the local wheel instead.
            torch_index = local_torch_index(project, Path(environment["HOME"]) / "torch-index")
            self.results.append((command, bash(activate + command.text, project, {**environment, **torch_index})))
            if self.results[-1][1].returncode:
                return

    def wait(self) -> list[tuple[Command, subprocess.CompletedProcess[str]]]:
        self.thread.join()
        return self.results


@pytest.fixture(scope="module")
def installs(rendered: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installs]:
    running = Installs(rendered, tmp_path_factory.mktemp("install-home"))
    yield running
    running.wait()


@pytest.mark.parametrize("name", DOCUMENTED_ANSWER_SETS)
def test_every_documented_command_runs(
    name: str, rendered: dict[str, Path], ledger: Ledger, installs: Installs
) -> None:
    project = rendered[name]
    commands = project_commands(project)
    problems = [f"{c.source}: `{c.text}`: {p}" for c in commands for p in broken_references(c, project, RUN_OUTPUTS)]
    assert not problems, "\n".join(problems)

    install_editable(project)  # for the other programs (pytest) that import the project
    trainer = yaml.safe_load((project / "configs/default.yaml").read_text())["trainer"]
    requests: list[dict[str, Any]] = []
    for command in commands:
        reason = not_runnable_reason(command)
        entry = entry_point(command, project)
        if reason:
            ledger.add(name, command, f"not runnable: {reason}")
        elif entry and (command.text, read_by(entry, project)) in ledger.ran_with:
            ledger.add(name, command, "ran in an earlier answer set with the same files")
        elif entry:
            ledger.ran_with.add((command.text, read_by(entry, project)))
            requests.append(runner_request(command, project, entry))
            ledger.add(name, command, "ran")
        elif is_install(command):
            ledger.add(name, command, "ran (install: test_install_commands_run_in_a_fresh_environment)")
        elif command.program_words[:1] == ["nox"] and needs_more_than_one_cpu([], trainer):
            ledger.add(name, command, "not runnable: a nox session trains with the answers' GPU or several devices")
        elif command.text in ledger.ran:
            ledger.add(name, command, "ran in an earlier answer set")
        else:
            ledger.ran.add(command.text)
            run_entry_points(project, requests)  # the project's commands shown before this one (an export it reads)
            requests = []
            torch_index = local_torch_index(project, project.parent / f"{project.name}-torch-index")
            result = bash(command.text, project, {**environment_of_this_test_run(), **torch_index})
            assert result.returncode == 0, f"{command.source}: `{command.text}` failed:\n{result.stderr[-4000:]}"
            ledger.add(name, command, "ran")
    run_entry_points(project, requests)
    print(ledger.report(name))


def test_install_commands_run_in_a_fresh_environment(installs: Installs, rendered: dict[str, Path]) -> None:
    """They give the project, its command and its development tools (the `dev` group: pytest, nox, ruff, mypy)."""
    results = installs.wait()
    assert installs.venv, "no document shows how to make the environment (`python -m venv .venv`)"
    for command, result in results:
        assert result.returncode == 0, f"{command.source}: `{command.text}` failed:\n{result.stderr[-4000:]}"
    assert len(results) == len(installs.commands)
    tools = [installs.venv / "bin" / tool for tool in ("pytest", "nox", "ruff", "mypy", "pre-commit")]
    assert all(tool.is_file() for tool in tools), [tool.name for tool in tools if not tool.is_file()]
    package = next(iter(scripts_of(rendered["defaults"])))
    assert (installs.venv / "bin" / package).is_file()
    print("installs:", *(f"{command.source} | {command.text} | ran" for command, _ in results), sep="\n")


def template_repository(template_dir: Path, destination: Path) -> Path:
    """A git repository of this working tree's template, tagged, where the README has `git clone` make one."""
    shutil.copytree(template_dir, destination)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "template"], ["tag", "v0.1.0"]):
        subprocess.run(
            ["git", *args], cwd=destination, check=True, capture_output=True, env=environment_of_this_test_run()
        )
    return destination


def test_every_command_of_this_readme_runs(template_dir: Path, tmp_path: Path, ledger: Ledger) -> None:
    """The README's commands in order, from a folder holding ./copier-lightning; `cd` moves between them."""
    generated_readme = render_project(template_dir, tmp_path / "reference", {}) / "README.md"
    run_by_the_generated_test = {command.text for command in collect(generated_readme, set())}
    template_repository(template_dir, tmp_path / "copier-lightning")
    environment = environment_of_this_test_run() | {
        "UV_TOOL_DIR": str(tmp_path / "tools"),
        "UV_TOOL_BIN_DIR": str(tmp_path / "bin"),
    }
    cwd, block = tmp_path, None
    commands = collect(REPO / "README.md", set())
    for command in commands:
        words = command.program_words
        if command.block is not None and command.block != block:
            cwd, block = tmp_path, command.block  # each block starts where the reader is: beside the clone
        # A reference holds when the folder the command runs in or this repository has it (inline spans name both).
        problems = [
            broken_references(command, folder, RUN_OUTPUTS)
            for folder in {cwd if (cwd / "pyproject.toml").is_file() else REPO, REPO}
        ]
        assert not all(problems), f"{command.source}: `{command.text}`: {problems}"
        reason = not_runnable_reason(command)
        if reason:
            ledger.add("README", command, f"not runnable: {reason}")
            continue
        if words[0] == "cd":
            cwd = cwd / words[1]
            assert cwd.is_dir(), f"{command.source}: `{command.text}`: no such folder"
            continue
        if words[:2] == ["git", "init"]:  # the README's step after a copy with --skip-tasks: make that copy
            copy = f"copier copy --quiet --trust --skip-tasks --defaults {tmp_path}/copier-lightning skip-tasks"
            assert bash(copy, tmp_path, environment).returncode == 0
            cwd = tmp_path / "skip-tasks"
        if command.text in run_by_the_generated_test and entry_point(command, cwd) is None:
            ledger.add("README", command, "ran by test_every_documented_command_runs (the generated README shows it)")
            continue
        entry = entry_point(command, cwd) if (cwd / "pyproject.toml").is_file() and cwd != tmp_path else None
        if entry:
            install_editable(cwd)
            run_entry_points(cwd, [runner_request(command, cwd, entry)])
        else:
            text = command.text
            if words[0] == "copier" and "--defaults" not in words:
                text += " --defaults"  # no terminal to answer the questions; tests/test_interactive.py drives them
            result = bash(text, cwd, environment)
            assert result.returncode == 0, (
                f"{command.source}: `{text}` failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
            )
        ledger.add("README", command, "ran")
    print(ledger.report("README"))


def test_every_not_runnable_entry_matches_a_documented_command(ledger: Ledger) -> None:
    """An entry no document needs any more goes, so the list stays the list of what cannot run."""
    if {row[0] for row in ledger.rows} != {*DOCUMENTED_ANSWER_SETS, "README"}:
        pytest.skip("runs after every answer set and the README (it reads what they collected)")
    listed = [row[2] for row in ledger.rows if row[3].startswith("not runnable")]
    unused = [pattern for pattern in NOT_RUNNABLE if not any(re.fullmatch(pattern, text) for text in listed)]
    assert not unused, f"NOT_RUNNABLE entries that match no documented command: {unused}"
