"""From `copier copy` to an HTTP endpoint answering on a table of the user's own, with the model also exported to run
without torch: each step timed as a user runs it, and their sum against the 10 minutes a laptop user would grant.

1. `copier copy --defaults --data dataset=csv` (`csv`: the answer for a user's own table);
2. install into a new venv (uv, warm cache; the CPU torch wheel from UV_FIND_LINKS where there is one);
3. `fit` on a table the user brings (scikit-learn's wine measurements with a text column, written as CSV), the default
   config's 40 epochs and early stopping;
4. `predict --data.predict_path` on new rows of it;
5. `export`, then the export's `predict.py` on the same rows;
6. `serve`, until the first `POST /predict` is answered; then SIGTERM.

Prints one markdown table; `python benchmarks/to_endpoint.py --help` lists the options.
"""

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import Row, machine_description, markdown_table
from run import PACKAGE, copy_template, install, timed
from serve import request

BUDGET_S = 600.0


def write_table(path: Path, rows: range) -> Path:
    """Rows of the wine table as a user would bring it: an id, 13 measurements, a region (text) and the cultivar."""
    from sklearn.datasets import load_wine  # noqa: PLC0415  (only this benchmark's parent process needs it)

    wine = load_wine()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *wine.feature_names, "region", "cultivar"])
        for index in rows:
            region = ["north", "south", "east"][index % 3]
            writer.writerow([f"bottle-{index}", *wine.data[index], region, wine.target_names[wine.target[index]]])
    return path


def first_answer(python: str, project: Path, env: dict[str, str], rows_file: Path) -> str:
    """Start `serve` on a free port of 127.0.0.1, send two rows once it is healthy, stop it; its answer."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [python, "-m", PACKAGE, "serve", "--ckpt_path=best", f"--port={port}", "--accelerator=cpu"]
    with (project / "serve.log").open("wb") as log:
        server = subprocess.Popen(command, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        rows = list(csv.DictReader(rows_file.open()))[:2]
        inputs = [
            {
                name: value if name == "region" else float(value)
                for name, value in row.items()
                if name not in ("id", "cultivar")
            }
            for row in rows
        ]
        deadline = time.monotonic() + 300
        while True:
            try:
                status, body = request(port, "POST", "/predict", json.dumps({"inputs": inputs}).encode())
                break
            except OSError:  # not listening yet: it listens once the model is loaded
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"serve did not start:\n{(project / 'serve.log').read_text()[-3000:]}")
                time.sleep(0.1)
        if status != 200:
            sys.exit(f"POST /predict answered {status}: {body[:300]!r}")
        return body.decode()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, help="a folder for the project (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="to-endpoint-"))
    (work / "template").mkdir(parents=True)
    template = copy_template(work / "template")
    project, venv = work / "project", work / "venv"
    steps: dict[str, float] = {}
    copier = ["copier", "copy", "--trust", "--defaults", "--quiet", "--data", "dataset=csv"]
    steps["copier copy --data dataset=csv"] = timed([*copier, str(template), str(project)])
    start = time.perf_counter()
    install(project, venv)
    steps["install (uv, warm cache)"] = time.perf_counter() - start
    bin_folder = venv / "bin"
    env = {**os.environ, "PATH": f"{bin_folder}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    write_table(project / "wine.csv", range(178))
    new_rows = write_table(project / "new_wine.csv", range(0, 178, 7))
    data = ["--data.csv_path=wine.csv", "--data.target_column=cultivar", "--data.drop_columns=[id]"]
    quiet = ["--trainer.enable_progress_bar=false", "--trainer.accelerator=cpu", "--trainer.devices=1"]
    run = {"cwd": project, "env": env}
    steps["fit on the user's table"] = timed([PACKAGE, "fit", *data, *quiet], **run)
    predict = [PACKAGE, "predict", "--ckpt_path=best", f"--data.predict_path={new_rows}", *data, *quiet]
    steps["predict new rows"] = timed(predict, **run)
    steps["export"] = timed([PACKAGE, "export", "--ckpt_path=best", "--output=export"], **run)
    python = str(bin_folder / "python")
    steps["export/predict.py (onnxruntime)"] = timed(
        [python, "export/predict.py", str(new_rows), "--output=out.csv"], **run
    )
    start = time.perf_counter()
    answer = first_answer(python, project, env, new_rows)
    steps["serve, to the first answer"] = time.perf_counter() - start
    total = sum(steps.values())
    table_rows = [Row(step, f"{seconds:.1f} s", "", "", "", "") for step, seconds in steps.items()]
    verdict = "met" if total <= BUDGET_S else "missed"
    share = f"{total / BUDGET_S:.2f} of the budget"
    table_rows.append(Row("total", f"{total:.1f} s", "", share, f"<= {BUDGET_S:.0f} s", verdict))
    print(markdown_table(table_rows))
    print(f"The first answer: {answer[:160]}")
    print(machine_description({}))


if __name__ == "__main__":
    main()
