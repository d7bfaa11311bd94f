"""The benchmark's own code: its summaries and table, and that both sides of the training comparison do equal work."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Render

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from report import (
    README_END,
    README_START,
    Spread,
    markdown_table,
    replace_readme_section,
    startup_row,
    throughput_rows,
    training_row,
)
from synthetic import BATCH_SIZE, model_arguments


def test_spread_is_median_and_range() -> None:
    spread = Spread.of([0.3, 0.1, 0.2, 10.0])
    assert (spread.median, spread.low, spread.high, spread.count) == (0.25, 0.1, 10.0, 4)
    assert spread.show() == "0.250 s (0.100-10.000, n=4)"
    with pytest.raises(ValueError, match="no measurements"):
        Spread.of([])


def test_training_target_is_the_larger_of_50_ms_and_5_percent() -> None:
    plain_fast, plain_slow = Spread.of([0.1]), Spread.of([2.0])
    assert training_row(Spread.of([0.14]), plain_fast, Spread.of([0.04])).verdict == "met"
    assert training_row(Spread.of([0.16]), plain_fast, Spread.of([0.06])).verdict == "missed"
    assert training_row(Spread.of([2.09]), plain_slow, Spread.of([0.09])).verdict == "met"
    assert training_row(Spread.of([2.11]), plain_slow, Spread.of([0.11])).verdict == "missed"


def test_startup_target_is_one_and_a_half_times_import() -> None:
    assert startup_row(Spread.of([1.5]), Spread.of([1.0])).verdict == "met"
    assert startup_row(Spread.of([1.6]), Spread.of([1.0])).comparison == "1.60x"
    assert startup_row(Spread.of([1.6]), Spread.of([1.0])).verdict == "missed"


def test_gpu_sized_rows_are_judged_on_a_gpu_only() -> None:
    eager = {("samples/s", "generated"): Spread.of([97.0]), ("samples/s", "plain"): Spread.of([100.0])}
    compiled = {("samples/s", "generated"): Spread.of([130.0]), ("samples/s", "plain"): Spread.of([140.0])}
    rows = throughput_rows(eager, compiled, on_gpu=True)
    assert [row.verdict for row in rows] == ["met", "missed", "met"]  # 0.97x, 0.93x, compiled 1.34x eager
    assert rows[2].comparison == "1.34x"
    assert {row.verdict for row in throughput_rows(eager, compiled, on_gpu=False)} == {"GPU target"}


def test_markdown_table_has_one_line_per_row_and_equal_columns() -> None:
    rows = [training_row(Spread.of([0.2]), Spread.of([0.1]), Spread.of([0.1])), startup_row(*[Spread.of([1.0])] * 2)]
    lines = markdown_table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert len({line.count("|") for line in lines}) == 1


def test_readme_section_is_appended_once_then_replaced() -> None:
    readme = replace_readme_section("# Title\n", "first table")
    assert readme.endswith(f"{README_START}\nfirst table\n{README_END}\n")
    updated = replace_readme_section(readme + "\n## After\n", "second table")
    assert "first table" not in updated
    assert updated.count(README_START) == 1
    assert "second table" in updated
    assert updated.endswith("## After\n")


def run_json(*command: str, cwd: Path) -> dict[str, float]:
    result = subprocess.run([sys.executable, *command], cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_plain_loop_takes_the_same_steps_as_the_generated_cli(render: Render, tmp_path: Path) -> None:
    project = render({})
    common = ["--package", "lightning_project", "--src", str(project / "src")]
    data_dir = str(tmp_path / "data")
    plain = run_json(str(BENCHMARKS / "plain_loop.py"), *common, "--data-dir", data_dir, "--epochs", "2", cwd=tmp_path)
    fit_args = ["fit", "--trainer.max_epochs=2", f"--data.data_dir={data_dir}", "--trainer.accelerator=cpu"]
    generated = run_json(str(BENCHMARKS / "cli_fit.py"), *common, "--", *fit_args, cwd=tmp_path)
    assert plain["steps"] == generated["steps"] > 0
    assert plain["epochs"] == generated["epochs"] == 2
    assert plain["seconds"] > 0
    assert generated["cpu_seconds"] > 0
    assert (tmp_path / "logs" / "lightning_project" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_both_sides_train_the_gpu_sized_workload_alike(render: Render, tmp_path: Path) -> None:
    project = render({})
    common = ["--package", "lightning_project", "--src", str(project / "src"), "--synthetic-samples", "1024"]
    plain_args = ["--data-dir", str(tmp_path / "data"), "--epochs", "1"]
    plain = run_json(str(BENCHMARKS / "plain_loop.py"), *common, *plain_args, cwd=tmp_path)
    fit_args = ["fit", "--trainer.max_epochs=1", "--trainer.accelerator=cpu", *model_arguments(compiled=False)]
    generated = run_json(str(BENCHMARKS / "cli_fit.py"), *common, "--", *fit_args, cwd=tmp_path)
    assert plain["steps"] == generated["steps"] == 1024 // BATCH_SIZE
    assert plain["samples"] == generated["samples"] == 1024


def test_the_tables_benchmark_measures_both_sides_on_a_small_table(render: Render, tmp_path: Path) -> None:
    """Both sides encode the same table to the same width (one-hot and indicators, plus the embedded column)."""
    project = render({"dataset": "csv"})
    command = [sys.executable, str(BENCHMARKS / "tables.py"), "--rows", "3000", "--big-rows", "6000", "--repeats", "1"]
    result = subprocess.run(
        [*command, "--work", str(tmp_path), "--src", str(project / "src")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert sum(line.startswith("| 3,000 rows to the first batch") for line in lines) == 2
    assert any(line.startswith("| 6,000 rows to the first batch") and "| met |" in line for line in lines)
    assert "encoded as 68 floats + 1 embedded index (generated project), 69 floats (baseline)" in result.stdout


def test_the_serve_benchmark_measures_the_server_against_in_process(render: Render, tmp_path: Path) -> None:
    """A few requests, once: each server configuration and client count gets its rows (every request must be answered
    200, or the benchmark stops), and the server starts and stops."""
    project = render({})
    command = [sys.executable, str(BENCHMARKS / "serve.py"), "--project", str(project), "--repeats", "1"]
    result = subprocess.run(
        [*command, "--requests", "20", "--clients", "2"], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [
        line.split(" | ")[0].removeprefix("| ") for line in result.stdout.splitlines() if line.startswith("| serve")
    ]
    configurations = [f"serve ({name}), {clients}" for name in ("batching", "--max_batch_size=1") for clients in (1, 2)]
    assert [row.rsplit(" client", 1)[0] for row in rows[:12:3]] == configurations
    assert rows[12:] == ["serve: start to /health 200", "serve: SIGTERM to exit"]
