"""The shell commands a Markdown document shows, and what they refer to.

A command is a line of a fenced `bash`, `sh`, `shell` or `console` block (a `$ ` line in `console`), or an inline code
span whose first word (after `NAME=value` assignments) is a known program. Comments are cut off; a line ending in `\\`
continues on the next one.
"""

import itertools
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
SHELL_FENCES = {"bash", "sh", "shell", "console"}
INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
PROGRAMS = {
    "cd",
    "copier",
    "git",
    "mlflow",
    "mypy",
    "nox",
    "pip",
    "pipx",
    "pre-commit",
    "pytest",
    "python",
    "python3",
    "ruff",
    "sbatch",
    "srun",
    "tensorboard",
    "torchrun",
    "uv",
    "uvx",
    "wandb",
}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PROJECT_SUBCOMMANDS = {"fit", "validate", "test", "predict", "export", "serve"}


@dataclass(frozen=True)
class Command:
    text: str  # as the document shows it, without its comment
    source: str  # file:line
    block: int | None = None  # the fenced block it is in (its index in the document), None for an inline span

    @property
    def words(self) -> list[str]:
        try:
            return shlex.split(self.text)
        except ValueError:
            return self.text.split()

    @property
    def assignments(self) -> dict[str, str]:
        """The leading `NAME=value` words: the environment the command runs with."""
        pairs = itertools.takewhile(ASSIGNMENT.match, self.words)
        return dict(word.split("=", 1) for word in pairs)

    @property
    def program_words(self) -> list[str]:
        """The words after the leading assignments and a leading `uv run` (which runs them in the project's venv)."""
        words = self.words[len(self.assignments) :]
        return words[2:] if words[:2] == ["uv", "run"] else words


def without_comment(line: str) -> str:
    """The line up to an unquoted `#` that starts a word."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def block_commands(body: str, console: bool) -> list[tuple[int, str]]:
    """(line offset, command) for each command of a fenced block."""
    commands, pending, start = [], "", 0
    for offset, raw in enumerate(body.splitlines()):
        line = raw
        if console and not pending:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if not pending:
            start = offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = without_comment(pending + line).strip()
        pending = ""
        if text:
            commands.append((start, " ".join(text.split())))
    return commands


def collect(path: Path, programs: set[str], name: str | None = None) -> list[Command]:
    """Every command `path` shows, in document order: fenced ones and inline spans that start with a program."""
    text = path.read_text(encoding="utf-8")
    name = name or path.name
    found: list[tuple[int, Command]] = []
    for index, match in enumerate(FENCE.finditer(text)):
        first_line = text.count("\n", 0, match.start(2)) + 1
        if match[1] in SHELL_FENCES:
            for offset, command in block_commands(match[2], console=match[1] == "console"):
                found.append((match.start(2), Command(command, f"{name}:{first_line + offset}", index)))
    outside = FENCE.sub(lambda fence: re.sub(r"[^\n]", " ", fence[0]), text)  # keeps offsets and line numbers
    for match in INLINE.finditer(outside):
        span = Command(" ".join(match[1].split()), f"{name}:{text.count(chr(10), 0, match.start()) + 1}")
        words = span.program_words
        if len(words) > 1 and words[0] in programs | PROGRAMS:  # one word names a program, not a command
            found.append((match.start(), span))
    return [command for _, command in sorted(found, key=lambda item: item[0])]


def option_values(words: list[str], option: str) -> list[str]:
    """The values of `--option value` and `--option=value` in `words`."""
    values = [value for flag, value in itertools.pairwise(words) if flag == option]
    return values + [word.split("=", 1)[1] for word in words if word.startswith(f"{option}=")]


def nox_sessions(noxfile: Path) -> set[str]:
    """Session names a noxfile defines: `name=` of the decorator, else the function's name."""
    text = noxfile.read_text(encoding="utf-8")
    sessions = set()
    for decorator, function in re.findall(r"^@nox\.session(\([^)]*\))?\n(?:@.*\n)*def (\w+)", text, re.MULTILINE):
        named = re.search(r"name=\"([^\"]+)\"", decorator or "")
        sessions.add(named[1] if named else function)
    return sessions


def pytest_problems(words: list[str], pyproject: dict[str, Any], missing_file: Callable[[str], bool]) -> list[str]:
    """Test files that do not exist and `-m` markers that pyproject.toml does not declare."""
    marked = option_values(words, "-m")
    arguments = [word for word in words[1:] if not word.startswith("-") and word not in marked]
    problems = [f"pytest {name}: no such file" for name in arguments if missing_file(name)]
    declared = pyproject.get("tool", {}).get("pytest", {}).get("ini_options", {}).get("markers", [])
    markers = {line.split(":")[0] for line in declared}
    for expression in marked:
        unknown = set(re.findall(r"\w+", expression)) - {"not", "and", "or"} - markers
        problems += [f"pytest -m {expression!r}: undeclared marker {name}" for name in sorted(unknown)]
    return problems


def broken_references(command: Command, project: Path, outputs: set[str]) -> list[str]:
    """What the command names that `project` does not have: a config or script file, a dependency group, an extra,
    a nox session, a pytest file or marker, a subcommand. `outputs` are files that earlier commands write."""
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    scripts = set(pyproject.get("project", {}).get("scripts", {}))
    words = command.program_words
    problems = []

    def missing_file(named: str) -> bool:
        return "<" not in named and "*" not in named and named not in outputs and not (project / named).exists()

    for config in option_values(words, "--config"):
        if missing_file(config):
            problems.append(f"--config {config}: no such file")
    for group in option_values(words, "--group"):
        if group not in pyproject.get("dependency-groups", {}):
            problems.append(f"--group {group}: pyproject.toml has no such dependency group")
    for extras in re.findall(r"\.\[([^\]]+)\]", command.text):
        for extra in extras.split(","):
            if extra.strip() not in pyproject.get("project", {}).get("optional-dependencies", {}):
                problems.append(f".[{extra}]: pyproject.toml has no such extra (a dependency group needs --group)")
    if words[:1] == ["nox"]:
        sessions = nox_sessions(project / "noxfile.py")
        problems += [f"nox -s {s}: no such session" for s in option_values(words, "-s") if s not in sessions]
    if words[:1] == ["pytest"]:
        problems += pytest_problems(words, pyproject, missing_file)
    # sbatch's own options (`--cpus-per-task=5`) come before the script; what follows the script goes to it.
    script = next((word for word in words[1:] if not word.startswith("-")), None)
    if words[:1] in (["sbatch"], ["srun"]) and script and missing_file(script):
        problems.append(f"{words[0]} {script}: no such script")
    command_name = words[2] if words[:2] in (["python", "-m"], ["python3", "-m"]) and len(words) > 2 else words[0]
    if command_name in scripts and not command_name.endswith(("-tune", "-sweep")):
        subcommand = next((word for word in words[1 + (words[0] != command_name) * 2 :][:1]), "")
        if subcommand and not subcommand.startswith("-") and subcommand not in PROJECT_SUBCOMMANDS:
            problems.append(f"{command_name} {subcommand}: no such subcommand (the command has {PROJECT_SUBCOMMANDS})")
    return problems
