"""Summaries of repeated timings and the markdown table the benchmark prints and writes into README.md."""

import os
import platform
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

README_START = "<!-- benchmark:start -->"
README_END = "<!-- benchmark:end -->"


@dataclass(frozen=True)
class Spread:
    """Median and range of repeated measurements: the median is robust to a busy machine, the range shows the noise."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        if not values:
            raise ValueError("no measurements to summarise")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def show(self, unit: str = "s", digits: int = 3) -> str:
        return f"{self.median:.{digits}f} {unit} ({self.low:.{digits}f}-{self.high:.{digits}f}, n={self.count})"


@dataclass(frozen=True)
class Row:
    """One line of the table: what was measured, the generated project's time, the baseline's, their comparison."""

    measure: str
    generated: str
    baseline: str
    comparison: str
    target: str
    verdict: str


def training_row(generated: Spread, plain: Spread, overheads: Spread, clock: str = "wall") -> Row:
    """Per-epoch time of the generated CLI against the plain loop; the target is max(0.05 s, 5 %) per epoch."""
    allowed = max(0.05, 0.05 * plain.median)
    ratio = generated.median / plain.median if plain.median > 0 else float("inf")
    return Row(
        f"training per epoch, {clock} time",
        generated.show(),
        plain.show(),
        f"+{overheads.show()} ({ratio:.2f}x)",
        f"overhead <= {allowed:.3f} s",
        "met" if overheads.median <= allowed else "missed",
    )


def startup_row(generated: Spread, baseline: Spread, clock: str = "wall") -> Row:
    """`<package> fit --trainer.fast_dev_run=true` against `python -c "import lightning"`; the target is 1.5x."""
    ratio = generated.median / baseline.median
    return Row(
        f"start-up, {clock} time: `fit --trainer.fast_dev_run=true` vs `import lightning`",
        generated.show(digits=2),
        baseline.show(digits=2),
        f"{ratio:.2f}x",
        "<= 1.50x",
        "met" if ratio <= 1.5 else "missed",
    )


def throughput_rows(eager: dict, compiled: dict, *, on_gpu: bool) -> list[Row]:
    """The GPU-sized workload in samples/s: generated vs plain loop (eager, compiled), and compiled vs eager.

    Targets (on a GPU): the generated project within 3% of the plain loop, and compiled at least 1.3x eager. On a CPU
    the rows are shown without a verdict: compute there is too slow for the loop's overhead to matter.
    """
    rows = []
    for name, timings in (("eager", eager), ("compiled", compiled)):
        generated, plain = timings["samples/s", "generated"], timings["samples/s", "plain"]
        ratio = generated.median / plain.median
        verdict = ("met" if ratio >= 0.97 else "missed") if on_gpu else "GPU target"
        rows.append(
            Row(
                f"GPU-sized workload, {name}: samples/s, wall time",
                generated.show("samples/s", 0),
                plain.show("samples/s", 0),
                f"{ratio:.3f}x",
                ">= 0.970x",
                verdict,
            )
        )
    speedup = compiled["samples/s", "generated"].median / eager["samples/s", "generated"].median
    rows.append(
        Row(
            "GPU-sized workload: compiled vs eager, generated project",
            compiled["samples/s", "generated"].show("samples/s", 0),
            eager["samples/s", "generated"].show("samples/s", 0),
            f"{speedup:.2f}x",
            ">= 1.30x",
            ("met" if speedup >= 1.3 else "missed") if on_gpu else "GPU target",
        )
    )
    return rows


def plain_row(measure: str, timing: Spread) -> Row:
    return Row(measure, timing.show(digits=2), "", "", "", "")


def markdown_table(rows: Sequence[Row]) -> str:
    header = ("measure", "generated project", "baseline", "comparison", "target", "")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = (row.measure, row.generated, row.baseline, row.comparison, row.target, row.verdict)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_description(versions: dict[str, str]) -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and (match := re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())):
        cpu = match[1].strip()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    packages = ", ".join(f"{name} {version}" for name, version in versions.items())
    return f"{cpu}, {cores} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}, {packages}"


def replace_readme_section(readme: str, section: str) -> str:
    """Put `section` between the benchmark markers, or append the markers and section when there are none yet."""
    block = f"{README_START}\n{section.strip()}\n{README_END}"
    if README_START in readme and README_END in readme:
        before, rest = readme.split(README_START, 1)
        return before + block + rest.split(README_END, 1)[1]
    return readme.rstrip("\n") + "\n\n" + block + "\n"
