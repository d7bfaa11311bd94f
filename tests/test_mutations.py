"""The mutation check: every mutation in tests/mutations.py must make the generated suite fail.

Each mutation is applied to its own copy of a rendered project, and only the tests it names run there, those of the
generated full tier too, one pytest process per mutation, as many at once as there are CPUs. The copies are imported
through PYTHONPATH: one editable install (of the sweep project, whose console scripts are a superset) provides the
commands, and each copy's `src/` comes first on the path, in the child processes too. A table of mutation, catching
test and seconds (wall, and CPU of the pytest process and its children) is printed at the end.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from answer_sets import ANSWER_SETS
from conftest import Summary, answers_of, render_project
from mutations import MUTATIONS, Mutation, MutationTargetError, apply, mutate, slug, target_file
from test_generated import install_editable

pytestmark = pytest.mark.generated
INSTALLED = "optuna_sweep"  # its console scripts include every other answer set's


@dataclass(frozen=True)
class Outcome:
    mutation: Mutation
    returncode: int
    failed: list[str]
    output: str
    wall_s: float
    cpu_s: float


@pytest.fixture(scope="module")
def pristine(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("mutations")
    names = {mutation.answer_set for mutation in MUTATIONS} | {INSTALLED}
    return {name: render_project(template_dir, folder / f"pristine-{name}", ANSWER_SETS[name]) for name in names}


def run_tests(mutation: Mutation, project: Path) -> Outcome:
    """Run the mutation's tests in `project`; the CPU time is this pytest process's and its children's (wait4)."""
    # `-m ""`: the full tier too, which a generated project's pytest leaves out by default (addopts `-m "not full"`)
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-rfE", "-p", "no:cacheprovider", "-m", "", *mutation.tests]
    python_path = os.pathsep.join(filter(None, [str(project / "src"), os.environ.get("PYTHONPATH")]))
    log = project / "mutation-check.log"
    start = time.perf_counter()
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=project, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": python_path}
        )
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    # A test that fails, or errors in its own setup (a fixture the mutation breaks, such as an export that refuses
    # itself); an error without a test id is a collection error: the mutation broke imports, not behaviour.
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+::\S+)", text, re.MULTILINE)
    return Outcome(
        mutation, process.returncode, failed, text, time.perf_counter() - start, usage.ru_utime + usage.ru_stime
    )


def table(outcomes: list[Outcome]) -> list[str]:
    width = max(len(outcome.mutation.name) for outcome in outcomes)
    lines = [f"{'mutation':<{width}}  {'wall s':>6}  {'CPU s':>6}  caught by"]
    for outcome in outcomes:
        caught_by = outcome.failed[0] if outcome.failed else f"NOT CAUGHT (exit {outcome.returncode})"
        lines.append(f"{outcome.mutation.name:<{width}}  {outcome.wall_s:6.1f}  {outcome.cpu_s:6.1f}  {caught_by}")
    total_cpu = sum(outcome.cpu_s for outcome in outcomes)
    lines.append(f"{f'{len(outcomes)} mutations, CPU total':<{width}}  {'':>6}  {total_cpu:6.1f}")
    return lines


def test_every_mutation_targets_the_current_template(pristine: dict[str, Path]) -> None:
    """All targets are checked at once, before any mutation runs: a template change that moves several re-aims them
    in one go."""
    problems = []
    for mutation in MUTATIONS:
        project = pristine[mutation.answer_set]
        try:
            path = target_file(mutation, project, answers_of(project)["package_name"])
            mutate(mutation, path.read_text(encoding="utf-8"), path)
        except MutationTargetError as error:
            problems.append(str(error))
        for test in mutation.tests:
            test_file, _, name = test.partition("::")
            if f"def {name.partition('[')[0]}(" not in (project / test_file).read_text(encoding="utf-8"):
                problems.append(f"mutation {mutation.name!r}: the generated suite has no test {test}")
    assert not problems, "\n".join(problems)
    assert len({slug(mutation) for mutation in MUTATIONS}) == len(MUTATIONS), "two mutations share a name"


def test_the_generated_suite_catches_every_mutation(
    pristine: dict[str, Path], tmp_path: Path, summary: Summary
) -> None:
    install_editable(pristine[INSTALLED])
    copies = []
    for mutation in MUTATIONS:
        copy = tmp_path / slug(mutation)
        shutil.copytree(pristine[mutation.answer_set], copy, ignore=shutil.ignore_patterns("__pycache__", ".git"))
        apply(mutation, copy, answers_of(copy)["package_name"])
        copies.append(copy)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        outcomes = list(pool.map(run_tests, MUTATIONS, copies))
    summary("mutations of the generated project", table(outcomes))
    survivors = [f"{o.mutation.name}: add a test that fails ({o.mutation.why})" for o in outcomes if o.returncode == 0]
    broken = [
        f"{o.mutation.name}: {o.mutation.tests} did not run (exit {o.returncode}): a test was renamed, or the mutation "
        f"breaks imports rather than behaviour:\n{o.output[-2000:]}"
        for o in outcomes
        if o.returncode != 0 and (o.returncode != 1 or not o.failed)
    ]
    assert not survivors, "mutations the generated suite does not catch:\n" + "\n".join(survivors)
    assert not broken, "\n".join(broken)
