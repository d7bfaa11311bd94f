"""The csv answer's data cost at real size, side by side with pandas (pyarrow engine) + scikit-learn's ColumnTransformer.

A synthetic table (`--rows`, default 1,000,000, x 24 columns: 20 numbers, 3 text columns of which one holds 20,000
values, a text target; 1% of the cells of three columns missing) is taken to the first training batch:
- generated project: `TableCache.load()` (read with pyarrow, split, fit on the training rows, encode, write the
  memory-mappable cache) and the first shuffled batch of 64 from the mapped arrays;
- baseline: `pandas.read_csv(engine="pyarrow")`, the same split, a ColumnTransformer (median + was-missing indicator +
  standard scaling; one-hot; an ordinal index for the large text column) fitted on the training rows, every row
  transformed to float32, the same first batch.
Each side runs in a fresh process (imports not counted in its time); its peak memory is the process's maximum
resident set (`os.wait4`). The two sides alternate, `--repeats` times. Then: a cache hit (what every other rank and
every later run pays), two processes mapping one cache (PSS from /proc/<pid>/smaps, against one process), and a
`--big-rows` table (default 10,000,000) taken to the first batch by the generated project alone, then read as new
inputs by `iter_inputs` (peak memory against the `--rows` table: flat). Children import the rendered package without
its `__init__`, which imports torch: data cost alone, as in the export bundle.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from report import Row, Spread, markdown_table, plain_row

HERE = Path(__file__).resolve().parent
PACKAGE = "lightning_project"
BATCH = 64
SEED = 1234


def write_table(path: Path, rows: int, seed: int = 0) -> Path:
    """The synthetic table, written 1,000,000 rows at a time; the target depends on numbers and text alike."""
    rng = np.random.default_rng(seed)
    colors = np.array(["red", "green", "blue", "black", "white"])
    cities = np.array([f"city_{index}" for index in range(40)])
    merchants = np.array([f"merchant_{index}" for index in range(20_000)])
    writer = None
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        numbers = np.round(rng.normal(size=(n, 20)) * rng.uniform(0.5, 100, size=20), 3)
        color, city, merchant = rng.integers(5, size=n), rng.integers(40, size=n), rng.zipf(1.3, size=n) % 20_000
        score = numbers[:, 0] / numbers[:, 0].std() + (color == 2) - (city < 10) + (merchant % 7 == 0)
        label = np.array(["low", "mid", "high", "top"])[np.digitize(score, [-1, 0, 1])]
        gaps = rng.random(size=(n, 3)) < 0.01
        columns = {f"x{index}": pa.array(numbers[:, index], mask=(index == 3) & gaps[:, 0]) for index in range(20)}
        columns["x7"] = pa.array(numbers[:, 7], mask=gaps[:, 1])
        columns |= {
            "color": pa.array(colors[color]),
            "city": pa.array(cities[city], mask=gaps[:, 2]),
            "merchant": pa.array(merchants[merchant]),
            "label": pa.array(label),
        }
        table = pa.table(columns)
        writer = writer or pacsv.CSVWriter(str(path), table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return path


def ours(table: Path, cache_dir: Path) -> dict[str, float]:
    """The generated project's path to the first batch, as `prepare_data` + `setup` + the first loader step take it."""
    from lightning_project.preprocess import Preprocessor  # noqa: PLC0415  (the rendered project, on sys.path)
    from lightning_project.table_cache import TableCache  # noqa: PLC0415

    start = time.perf_counter()
    encoded = TableCache(table, cache_dir, Preprocessor(target_column="label")).load()
    train = encoded.splits["train"]
    batch = np.sort(train[np.random.default_rng(SEED).permutation(len(train))[:BATCH]])
    inputs = [np.asarray(array[batch]) for array in encoded.inputs]
    target = np.asarray(encoded.target[batch])
    assert inputs[0].shape[0] == target.shape[0] == BATCH
    return {"seconds": time.perf_counter() - start, "width": inputs[0].shape[1]}


def baseline(table: Path) -> dict[str, float]:
    """The same with pandas and scikit-learn, the encoded table held in memory as a DataLoader would take it."""
    import pandas as pd  # noqa: PLC0415  (imports are not timed on either side)
    from sklearn.compose import ColumnTransformer  # noqa: PLC0415
    from sklearn.impute import SimpleImputer  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler  # noqa: PLC0415

    start = time.perf_counter()
    frame = pd.read_csv(table, engine="pyarrow")
    frame = frame[frame["label"].notna()]
    order = np.random.default_rng(SEED).permutation(len(frame))
    n_held = 2 * round(len(frame) * 0.15)
    train = order[n_held:]
    numbers = [f"x{index}" for index in range(20)]
    encoder = ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numbers),
            (
                "one_hot",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                ["color", "city"],
            ),
            ("index", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["merchant"]),
        ]
    )
    encoder.fit(frame.iloc[train])
    features = encoder.transform(frame).astype(np.float32)
    labels = frame["label"].astype("category").cat.codes.to_numpy()
    del frame
    batch = np.sort(train[np.random.default_rng(SEED).permutation(len(train))[:BATCH]])
    inputs, target = features[batch], labels[batch]
    assert inputs.shape[0] == target.shape[0] == BATCH
    return {"seconds": time.perf_counter() - start, "width": features.shape[1]}


def stream(table: Path, cache_dir: Path) -> dict[str, float]:
    """Every row of the table encoded as new inputs (`predict --data.predict_path`), batch by batch."""
    from lightning_project.preprocess import Preprocessor  # noqa: PLC0415
    from lightning_project.table_cache import TableCache  # noqa: PLC0415

    preprocessor = TableCache(table, cache_dir, Preprocessor(target_column="label")).load().preprocessor
    start = time.perf_counter()
    rows = sum(len(ids) for ids, _ in preprocessor.iter_inputs(table, 4096))
    return {"seconds": time.perf_counter() - start, "rows": rows}


def hold_mapped(cache_dir: Path, table: Path) -> None:
    """Map an existing cache, touch every page, say so, and hold the mapping until stdin closes."""
    from lightning_project.preprocess import Preprocessor  # noqa: PLC0415
    from lightning_project.table_cache import TableCache  # noqa: PLC0415

    encoded = TableCache(table, cache_dir, Preprocessor(target_column="label")).load()
    touched = sum(float(np.asarray(array).sum()) for array in (*encoded.inputs, encoded.target))
    print(json.dumps({"touched": touched}), flush=True)
    sys.stdin.read()


def child(role: str, src: Path, *args: Path) -> tuple[dict[str, float], float]:
    """Run `role` in a fresh process; its JSON result and its peak resident memory in MB."""
    command = [sys.executable, __file__, "--child", role, "--src", str(src), *map(str, args)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=child_env(src))
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        sys.exit(f"benchmark child failed: {' '.join(command)}")
    return json.loads(output.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def child_env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def pss_mb(pid: int, folder: Path | None = None) -> float:
    """The process's proportional set size (shared pages divided among their sharers): all of it, or only that of
    the files it maps from `folder`."""
    if folder is None:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        return sum(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")) / 1024
    total, inside = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if (
            "-" in fields[0] and len(fields) >= 5
        ):  # a mapping's header line: address range, perms, offset, dev, inode, path
            inside = len(fields) >= 6 and fields[5].startswith(str(folder))
        elif inside and fields[0] == "Pss:":
            total += int(fields[1])
    return total / 1024


def mapped_pss(src: Path, cache_dir: Path, table: Path, processes: int) -> tuple[float, float]:
    """Total PSS of `processes` processes holding the same cache mapped, every page touched: of the processes, and
    of their mappings of the cache."""
    command = [sys.executable, __file__, "--child", "map", "--src", str(src), str(cache_dir), str(table)]
    running = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env(src))
        for _ in range(processes)
    ]
    for process in running:
        assert process.stdout is not None
        process.stdout.readline()
    total = sum(pss_mb(process.pid) for process in running)
    cache = sum(pss_mb(process.pid, cache_dir) for process in running)
    for process in running:
        process.communicate("")
    return total, cache


def render(work: Path) -> Path:
    """A csv project rendered from the template as it is in the working tree."""
    sys.path.insert(0, str(HERE))
    from run import copy_template  # noqa: PLC0415

    template = copy_template(Path(tempfile.mkdtemp(dir=work)))
    project = work / "project"
    command = [
        "copier",
        "copy",
        "--defaults",
        "--trust",
        "--quiet",
        "--data",
        "dataset=csv",
        str(template),
        str(project),
    ]
    subprocess.run(command, check=True, capture_output=True)
    return project / "src"


def run_child(role: str, src: Path, paths: list[Path]) -> None:
    """One side's measurement in this fresh process: its result as JSON on the last line."""
    # The package without its __init__ (which imports the model, and so torch): the data side alone is measured,
    # as the export bundle runs preprocess.py alone.
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(src / PACKAGE)]
    sys.modules[PACKAGE] = package
    if role == "map":
        hold_mapped(*paths)
        return
    roles = {"ours": ours, "baseline": baseline, "stream": stream}
    print(json.dumps(roles[role](*paths)))


Result = tuple[dict[str, float], float]  # a child's JSON result and its peak memory in MB


def comparison_rows(rows: int, results: dict[str, list[Result]]) -> list[Row]:
    """Time and peak memory to the first batch against the baseline, and the cache hit."""

    def spread(name: str, memory: bool) -> Spread:
        return Spread.of([peak if memory else result["seconds"] for result, peak in results[name]])

    table = []
    for clock, memory, unit, digits in (("wall time", False, "s", 2), ("peak memory", True, "MB", 0)):
        generated, reference = spread("ours", memory), spread("baseline", memory)
        ratio = generated.median / reference.median
        verdict = "met" if ratio <= 1.5 else "missed"
        measure = f"{rows:,} rows to the first batch, {clock}: vs pandas + ColumnTransformer"
        table.append(
            Row(
                measure,
                generated.show(unit, digits),
                reference.show(unit, digits),
                f"{ratio:.2f}x",
                "<= 1.50x",
                verdict,
            )
        )
    table.append(
        plain_row("cache hit (another rank, a later run): load + first batch, wall time", spread("hit", False))
    )
    return table


def sharing_rows(one: tuple[float, float], two: tuple[float, float]) -> list[Row]:
    """Two processes mapping one cache against one process, in PSS: all their memory, and the cache's share."""
    table = []
    for what, index in (("PSS of the processes", 0), ("PSS of their cache mappings", 1)):
        ratio = two[index] / one[index]
        verdict = "met" if ratio <= 1.3 else "missed"
        measure = f"two processes mapping one cache vs one process: {what}"
        table.append(Row(measure, f"{two[index]:.0f} MB", f"{one[index]:.0f} MB", f"{ratio:.2f}x", "<= 1.30x", verdict))
    return table


def big_rows(src: Path, work: Path, rows: int, small: Result) -> list[Row]:
    """The `rows`-row table to the first batch (it completes), and streamed as new inputs beside the smaller one."""
    big = work / f"table-{rows}.csv"
    if not big.exists():
        write_table(big, rows)
    shutil.rmtree(work / "cache-big", ignore_errors=True)
    result, peak = child("ours", src, big, work / "cache-big")
    streamed, stream_peak = child("stream", src, big, work / "cache-big")
    small_rows, small_peak = int(small[0]["rows"]), small[1]
    ratio = stream_peak / small_peak
    return [
        Row(
            f"{rows:,} rows to the first batch",
            f"{result['seconds']:.1f} s, {peak:,.0f} MB peak",
            "",
            "",
            "completes",
            "met",
        ),
        Row(
            f"new inputs (`predict --data.predict_path`): `iter_inputs` over {rows:,} rows, batches of 4096",
            f"{streamed['seconds']:.1f} s, {stream_peak:,.0f} MB peak",
            f"{small_rows:,} rows: {small[0]['seconds']:.1f} s, {small_peak:,.0f} MB peak",
            f"{ratio:.2f}x the memory for {rows // small_rows}x the rows",
            "memory flat (<= 1.20x)",
            "met" if ratio <= 1.2 else "missed",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--big-rows", type=int, default=10_000_000, help="rows of the generated project's large run (0: skip)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, help="folder for the tables and caches (default: a temporary one)")
    parser.add_argument("--src", type=Path, help="a rendered csv project's src/ (default: render one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.src, args.paths)
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="copier-lightning-tables-"))
    work.mkdir(parents=True, exist_ok=True)
    src = args.src or render(work)
    table = work / f"table-{args.rows}.csv"
    if not table.exists():
        write_table(table, args.rows)
    results: dict[str, list[Result]] = {"ours": [], "baseline": [], "hit": []}
    for repeat in range(args.repeats):  # the sides alternate, so a busy machine slows both alike
        cache_dir = work / f"cache-{repeat}"
        shutil.rmtree(cache_dir, ignore_errors=True)  # the first run writes it, the second finds it
        results["ours"].append(child("ours", src, table, cache_dir))
        results["hit"].append(child("ours", src, table, cache_dir))
        results["baseline"].append(child("baseline", src, table))
    rows = comparison_rows(args.rows, results)
    rows += sharing_rows(mapped_pss(src, work / "cache-0", table, 1), mapped_pss(src, work / "cache-0", table, 2))
    if args.big_rows:
        rows += big_rows(src, work, args.big_rows, child("stream", src, table, work / "cache-0"))
    widths = [results[name][0][0]["width"] for name in ("ours", "baseline")]
    print(markdown_table(rows))
    print(
        f"\nTable: {args.rows:,} rows x 24 columns, {table.stat().st_size / 1e6:.0f} MB of CSV; encoded as {widths[0]:.0f} "
        f"floats + 1 embedded index (generated project), {widths[1]:.0f} floats (baseline). Times exclude imports; peak "
        "memory is each process's maximum resident set. "
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python benchmarks/tables.py`."
    )


if __name__ == "__main__":
    main()
