"""Serving a freshly generated default project over HTTP, against calling its model in process; prints a markdown table.

1. generate the default project and train it for one epoch (what it predicts does not matter here);
2. in process (`in_process.py`): `Predictor.predict` on one request's inputs, call after call;
3. over HTTP: `<package> serve` on 127.0.0.1, with one client and with several at once (the server batches requests that
   arrive together), each client on its own keep-alive connection, sending a bounded number of requests.

Requests per second and p50/p99 latency of each, the server's against in process as a ratio, as median (min-max) over
repeats. The clients run in this process, on the same CPUs as the server: on a machine with few cores they compete
with it, as local clients do. `python benchmarks/serve.py --help` lists the options.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path

from report import Row, Spread, machine_description, markdown_table
from run import PACKAGE, copy_template, generate, json_run, timed

HERE = Path(__file__).resolve().parent
START_SECONDS = 300
SERVERS = [("batching", []), ("--max_batch_size=1", ["--max_batch_size=1"])]  # the default, and one request at a time


class Server:
    """`<package> serve` on a free port of 127.0.0.1, from start to /health 200, stopped by SIGTERM."""

    def __init__(self, run: Path, env: dict[str, str], options: list[str]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        command = [sys.executable, "-m", PACKAGE, "serve", "--ckpt_path=last", f"--port={self.port}", *options]
        log = run / "serve.log"  # a file, not a pipe: the access log of thousands of requests would fill a pipe
        start = time.perf_counter()
        with log.open("wb") as output:
            self.process = subprocess.Popen(command, cwd=run, env=env, stdout=output, stderr=subprocess.STDOUT)
        while not self.healthy():
            if self.process.poll() is not None or time.perf_counter() - start > START_SECONDS:
                sys.exit(f"the server did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        self.start_seconds = time.perf_counter() - start

    def healthy(self) -> bool:
        try:
            return request(self.port, "GET", "/health")[0] == 200
        except OSError:
            return False

    def stop(self) -> float:
        """Seconds from SIGTERM to the server's exit."""
        start = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        if self.process.wait(timeout=60) != 0:
            sys.exit(f"the server exited with {self.process.returncode} on SIGTERM")
        return time.perf_counter() - start


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def load(port: int, body: bytes, clients: int, requests: int) -> dict[str, float]:
    """`clients` threads, each sending `requests` POST /predict on one keep-alive connection; every answer must be 200."""
    latencies: list[float] = []
    failures: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(requests):
            start = time.perf_counter()
            connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
            latencies.append(time.perf_counter() - start)  # list.append is atomic under the GIL
            if response.status != 200:
                failures.append(f"{response.status}: {answer[:300]!r}")
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if failures:
        sys.exit(f"{len(failures)} requests failed, the first: {failures[0]}")
    return {"requests/s": len(latencies) / seconds, **percentiles(latencies)}


def percentiles(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50 ms": 1000 * cuts[49], "p99 ms": 1000 * cuts[98]}


def rows(name: str, served: dict[str, Spread], in_process: dict[str, Spread]) -> list[Row]:
    """Requests/s (higher is better) and latencies (lower is better) of the server against in process."""
    table = []
    for key, unit, digits in (("requests/s", "req/s", 0), ("p50 ms", "ms", 2), ("p99 ms", "ms", 2)):
        ratio = served[key].median / in_process[key].median
        table.append(
            Row(
                f"{name}: {key}",
                served[key].show(unit, digits),
                in_process[key].show(unit, digits),
                f"{ratio:.2f}x",
                "",
                "",
            )
        )
    return table


def measure(project: Path, run: Path, args: argparse.Namespace, env: dict[str, str]) -> list[Row]:
    """Train in `run`, then per repeat: the in-process baseline, and each server configuration with 1 and N clients."""
    fit = [sys.executable, "-m", PACKAGE, "fit", "--trainer.max_epochs=1", "--trainer.accelerator=cpu"]
    timed([*fit, "--trainer.enable_progress_bar=false"], cwd=run, env=env)
    in_process_command = [sys.executable, str(HERE / "in_process.py"), "--project", str(project), "--package", PACKAGE]
    in_process_command += ["--checkpoint=last", f"--inputs={args.inputs}", f"--requests={args.requests}"]
    baseline: dict[str, list[float]] = {}
    served: dict[tuple[str, int], dict[str, list[float]]] = {}
    starts, stops = [], []
    for _ in range(args.repeats):
        result = json_run(in_process_command, run, env)
        calls = result["latencies"]
        for key, value in {"requests/s": len(calls) / sum(calls), **percentiles(calls)}.items():
            baseline.setdefault(key, []).append(value)
        body = json.dumps({"inputs": result["inputs"]}).encode()
        for name, options in SERVERS:
            server = Server(run, env, ["--accelerator=cpu", *options])
            starts.append(server.start_seconds)
            load(server.port, body, args.clients, 20)  # warm-up
            for clients in (1, args.clients):
                for key, value in load(server.port, body, clients, args.requests).items():
                    served.setdefault((name, clients), {}).setdefault(key, []).append(value)
            stops.append(server.stop())
    in_process = {key: Spread.of(values) for key, values in baseline.items()}
    table = []
    for (name, clients), measured in served.items():
        spreads = {key: Spread.of(values) for key, values in measured.items()}
        table += rows(f"serve ({name}), {clients} client{'s' if clients > 1 else ''}", spreads, in_process)
    table.append(Row("serve: start to /health 200", Spread.of(starts).show(digits=1), "", "", "", ""))
    table.append(Row("serve: SIGTERM to exit", Spread.of(stops).show(digits=1), "", "", "", ""))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each measurement (default 3)")
    parser.add_argument("--requests", type=int, default=300, help="requests per client and repeat (default 300)")
    parser.add_argument("--clients", type=int, default=8, help="clients at once in the concurrent runs (default 8)")
    parser.add_argument("--inputs", type=int, default=1, help="inputs per request (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads on both sides (default 1)")
    parser.add_argument("--project", type=Path, help="a generated default project to use instead of generating one")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}

    with tempfile.TemporaryDirectory(prefix="copier-lightning-serve-") as folder:
        work = Path(folder)
        project = args.project or work / "project"
        if not args.project:
            generate(copy_template(Path(tempfile.mkdtemp(dir=work))), project)
        env["PYTHONPATH"] = os.pathsep.join([str(project.resolve() / "src"), env.get("PYTHONPATH", "")])
        table = measure(project.resolve(), work, args, env)  # runs in `work`: data, logs and checkpoints land there
    versions = {name: version(name) for name in ("torch", "lightning", "litserve")}
    print(
        "\n".join(
            [
                markdown_table(table),
                "",
                f"Machine: {machine_description(versions)}; torch threads: {args.threads}.",
                (
                    f"Default project (digits MLP) after one epoch; {args.inputs} input(s) per request; "
                    f"{args.requests} requests per client and repeat; baseline: `Predictor.predict` in one process."
                ),
                f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python benchmarks/serve.py`.",
            ]
        )
    )


if __name__ == "__main__":
    main()
