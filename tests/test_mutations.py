"""The mutation check: every mutation in tests/mutations.py must make the generated suite fail.

Each mutation is applied to a fresh copy of a rendered project, always at the same path, so one editable install per
answer set serves them all; only the tests the mutation names run. A table of mutation, catching test and seconds
(wall and CPU) is printed at the end of the module.
"""

import re
import resource
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from answer_sets import ANSWER_SETS
from conftest import answers_of, render_project
from mutations import MUTATIONS, Mutation, MutationTargetError, apply, mutate, slug, target_file
from test_generated import install_editable, run_suite

pytestmark = pytest.mark.generated
Row = tuple[str, str, float, float]


class Workbench:
    """Pristine renders (one per answer set) and the working copy each mutation gets, installed in editable mode."""

    def __init__(self, template: Path, folder: Path) -> None:
        self.template, self.folder = template, folder
        self.pristine: dict[str, Path] = {}
        self.installed: str | None = None

    def pristine_project(self, answer_set: str) -> Path:
        if answer_set not in self.pristine:
            self.pristine[answer_set] = render_project(
                self.template, self.folder / f"pristine-{answer_set}", ANSWER_SETS[answer_set]
            )
        return self.pristine[answer_set]

    def fresh_copy(self, answer_set: str) -> Path:
        """The pristine project copied again to the same path, so the editable install keeps pointing at it."""
        work = self.folder / f"work-{answer_set}"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(self.pristine_project(answer_set), work, ignore=shutil.ignore_patterns("__pycache__", ".git"))
        if self.installed != answer_set:
            install_editable(work)
            self.installed = answer_set
        return work


@pytest.fixture(scope="module")
def workbench(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Workbench:
    return Workbench(template_dir, tmp_path_factory.mktemp("mutations"))


@pytest.fixture(scope="module")
def table(request: pytest.FixtureRequest) -> Iterator[list[Row]]:
    rows: list[Row] = []
    yield rows
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not rows:
        return
    width = max(len(row[0]) for row in rows)
    reporter.write_sep("-", f"mutation check: {len(rows)} mutations")
    reporter.write_line(f"{'mutation':<{width}}  {'wall s':>6}  {'CPU s':>6}  caught by")
    for name, caught_by, wall_s, cpu_s in rows:
        reporter.write_line(f"{name:<{width}}  {wall_s:6.1f}  {cpu_s:6.1f}  {caught_by}")
    reporter.write_line(f"{'total':<{width}}  {sum(r[2] for r in rows):6.1f}  {sum(r[3] for r in rows):6.1f}")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_every_mutation_targets_the_current_template(workbench: Workbench) -> None:
    """All targets are checked at once, before any mutation runs: a template change that moves several re-aims them
    in one go."""
    problems = []
    for mutation in MUTATIONS:
        project = workbench.pristine_project(mutation.answer_set)
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


@pytest.mark.parametrize("mutation", MUTATIONS, ids=slug)
def test_the_generated_suite_catches_the_mutation(workbench: Workbench, table: list[Row], mutation: Mutation) -> None:
    project = workbench.fresh_copy(mutation.answer_set)
    apply(mutation, project, answers_of(project)["package_name"])
    wall, cpu = time.perf_counter(), children_cpu_s()
    result = run_suite(project, "-x", "-rf", *mutation.tests)
    wall_s, cpu_s = time.perf_counter() - wall, children_cpu_s() - cpu
    failed = re.findall(r"^FAILED (\S+)", result.stdout, re.MULTILINE)
    table.append((mutation.name, failed[0] if failed else f"SURVIVED (exit {result.returncode})", wall_s, cpu_s))
    output = result.stdout[-3000:] + result.stderr[-2000:]
    if result.returncode == 0:
        pytest.fail(
            f"mutation {mutation.name!r} survived {mutation.tests}: add a test that catches it ({mutation.why})"
        )
    if result.returncode != 1 or not failed:
        raise MutationTargetError(
            f"mutation {mutation.name!r}: the tests {mutation.tests} did not run (exit {result.returncode}); a test "
            f"was renamed, or the mutation breaks imports rather than behaviour:\n{output}"
        )
