"""Measure a freshly generated default project side by side with its baselines and print a markdown table.

1. training: the generated CLI (`fit`, default config: logger, checkpoints, callbacks, progress bar) against the
   hand-written loop in `plain_loop.py`, per epoch, from runs of N and N+k epochs so that start-up cancels out;
2. start-up: `<package> fit --trainer.fast_dev_run=true` against `python -c "import lightning"`;
3. generation: `copier copy --defaults`;
4. time to green: generate, create a venv, install (warm package cache), run the generated tests.

Every measurement is repeated and reported as median (min-max). The runs of one kind are interleaved, so a busy
machine slows both sides of a comparison alike. `python benchmarks/run.py --help` lists the options;
`nox -s bench` runs it in a fresh environment.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from importlib.metadata import version
from pathlib import Path

import synthetic
from report import (
    Spread,
    machine_description,
    markdown_table,
    plain_row,
    replace_readme_section,
    startup_row,
    throughput_rows,
    training_row,
)

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PACKAGE = "lightning_project"  # the default answer's package name
TORCH = os.environ.get("TORCH", "torch==2.13.0")


def copy_template(destination: Path) -> Path:
    """The template as it is in the working tree, without git, so uncommitted edits are measured too."""
    shutil.copy2(REPO / "copier.yml", destination / "copier.yml")
    for folder in ("template", "hooks"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, destination / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


def timed(command: list[str], **kwargs: object) -> float:
    """Wall seconds of a command that must succeed; its output is kept only to explain a failure."""
    return timed_with_cpu(command, **kwargs)[0]


def timed_with_cpu(command: list[str], **kwargs: object) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of a command that must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"benchmark step failed: {' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def generate(template: Path, destination: Path) -> float:
    return timed(["copier", "copy", "--defaults", "--trust", "--quiet", str(template), str(destination)])


def json_run(command: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"benchmark run failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


HARDWARE = {
    "cpu": ["--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.strategy=auto", "--trainer.num_nodes=1"],
    "cuda": ["--trainer.accelerator=gpu", "--trainer.devices=1", "--trainer.strategy=auto", "--trainer.num_nodes=1"],
}


def training(
    project: Path,
    work: Path,
    epochs: tuple[int, int],
    *,
    repeats: int,
    env: dict[str, str],
    device: str,
    precision: str,
    synthetic_samples: int = 0,
    compiled: bool = False,
) -> dict:
    """Per-epoch seconds (wall and CPU) of the generated CLI, of the plain loop, and the difference, per repeat.

    With `synthetic_samples`, both train the GPU-sized workload of `synthetic.py`; `compiled` compiles the network.
    """
    workload = ["--synthetic-samples", str(synthetic_samples)]
    model_options = synthetic.model_arguments(compiled) if synthetic_samples else []
    data_dir = work / "data"
    src = project / "src"
    short, long = epochs

    def lightning(n: int) -> dict[str, float]:
        run_dir = Path(tempfile.mkdtemp(dir=work))  # a fresh logs/ folder, as in a new run
        args = ["fit", f"--trainer.max_epochs={n}", f"--data.data_dir={data_dir}", *HARDWARE[device], *model_options]
        args.append(f"--trainer.precision={precision}")
        script = [sys.executable, str(HERE / "cli_fit.py"), "--package", PACKAGE, "--src", str(src), *workload]
        result = json_run(
            [*script, "--", *args],
            run_dir,
            env,
        )
        if result["epochs"] != n:
            sys.exit(f"the generated run stopped after {result['epochs']} of {n} epochs (early stopping?)")
        shutil.rmtree(run_dir)
        return result

    def plain(n: int) -> dict[str, float]:
        command = [sys.executable, str(HERE / "plain_loop.py"), "--package", PACKAGE, "--src", str(src)]
        options = ["--data-dir", str(data_dir), "--epochs", str(n), "--device", device, "--precision", precision]
        return json_run([*command, *options, *workload, *(["--compile"] if compiled else [])], work, env)

    plain(1)  # writes the dataset and warms the file cache
    lightning(1)
    per_epoch: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeats):
        runs = {name: {n: run(n) for n in (short, long)} for name, run in (("generated", lightning), ("plain", plain))}
        steps = {name: runs[name][long]["steps"] for name in runs}
        if steps["generated"] != steps["plain"]:
            sys.exit(f"the two sides took different numbers of optimizer steps: {steps}")
        samples_per_epoch = (runs["plain"][long]["samples"] - runs["plain"][short]["samples"]) / (long - short)
        for clock in ("seconds", "cpu_seconds"):
            for name, by_epochs in runs.items():
                value = (by_epochs[long][clock] - by_epochs[short][clock]) / (long - short)
                per_epoch.setdefault((clock, name), []).append(value)
                if clock == "seconds":
                    per_epoch.setdefault(("samples/s", name), []).append(samples_per_epoch / value)
            overhead = per_epoch[clock, "generated"][-1] - per_epoch[clock, "plain"][-1]
            per_epoch.setdefault((clock, "overhead"), []).append(overhead)
    return {key: Spread.of(values) for key, values in per_epoch.items()}


def install(project: Path, venv: Path) -> None:
    """A new venv with the project and its `test` group, torch pinned first (CPU build from UV_FIND_LINKS when set:
    then the project's own PyTorch index in `tool.uv.sources` is ignored, as it may be out of reach).

    Bytecode is compiled at install time, as pip does by default: otherwise every later import compiles from source
    again wherever PYTHONDONTWRITEBYTECODE is set, and start-up would be measured on a cold path no user sees.
    """
    find_links = os.environ.get("UV_FIND_LINKS") or os.environ.get("PIP_FIND_LINKS") or ""
    index_args = ["--find-links", find_links, "--no-sources"] if find_links else []
    python = str(venv / "bin" / "python")
    timed(["uv", "venv", "--quiet", "--python", sys.executable, str(venv)])
    timed(["uv", "pip", "install", "--quiet", "--compile-bytecode", "--python", python, TORCH, *index_args])
    test_group = tomllib.loads((project / "pyproject.toml").read_text())["dependency-groups"]["test"]
    command = ["uv", "pip", "install", "--quiet", "--compile-bytecode", "--python", python, "-e", str(project)]
    timed([*command, *test_group, *index_args])


def time_to_green(template: Path, work: Path, repeats: int) -> tuple[Spread, Path]:
    """Generate, install into a new venv (warm cache), run the generated test suite; return the last venv too."""
    timings = []
    for index in range(repeats):
        start = time.perf_counter()
        project = work / f"green-{index}"
        generate(template, project)
        install(project, project / ".venv")
        timed([str(project / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project)
        timings.append(time.perf_counter() - start)
    return Spread.of(timings), project


def startup(project: Path, repeats: int, env: dict[str, str]) -> dict[tuple[str, str], Spread]:
    """Wall and CPU time of the installed command's one-batch run, and of importing Lightning, in the same venv."""
    bin_dir = project / ".venv" / "bin"
    command = [str(bin_dir / PACKAGE), "fit", "--trainer.fast_dev_run=true"]
    baseline = [str(bin_dir / "python"), "-c", "import lightning"]
    timed(command, cwd=project, env=env)  # the first run writes data/ and warms the file cache
    timed(baseline, cwd=project, env=env)
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeats):
        for name, argv in (("generated", command), ("import", baseline)):
            wall, cpu = timed_with_cpu(argv, cwd=project, env=env)
            times.setdefault(("seconds", name), []).append(wall)
            times.setdefault(("cpu_seconds", name), []).append(cpu)
    return {key: Spread.of(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each timing (default 5)")
    parser.add_argument("--green-repeats", type=int, default=2, help="repeats of time to green (default 2)")
    parser.add_argument("--epochs", type=int, nargs=2, default=(2, 12), metavar=("N", "N_PLUS_K"))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads on both sides (default 1)")
    parser.add_argument("--device", choices=tuple(HARDWARE), default="cpu", help="where both sides train")
    parser.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true")
    parser.add_argument(
        "--synthetic-samples",
        type=int,
        help="training samples per epoch of the GPU-sized workload (default 32768 on cuda, 1024 on cpu; 0: skip it)",
    )
    parser.add_argument("--update-readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    if not 0 < args.epochs[0] < args.epochs[1]:
        parser.error("--epochs needs 0 < N < N_PLUS_K")
    if args.synthetic_samples is None:
        args.synthetic_samples = 32768 if args.device == "cuda" else 1024
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}

    with tempfile.TemporaryDirectory(prefix="copier-lightning-bench-") as folder:
        work = Path(folder)
        template = copy_template(Path(tempfile.mkdtemp(dir=work)))
        generation = Spread.of([generate(template, work / f"generated-{index}") for index in range(args.repeats)])
        green, project = time_to_green(template, work, args.green_repeats)
        starts = startup(project, args.repeats, env)
        epochs = training(
            project,
            work,
            tuple(args.epochs),
            repeats=args.repeats,
            env=env,
            device=args.device,
            precision=args.precision,
        )
        gpu_sized = {}
        if args.synthetic_samples:
            for compiled in (False, True):
                gpu_sized[compiled] = training(
                    project,
                    work,
                    (1, 3),
                    repeats=args.repeats,
                    env=env,
                    device=args.device,
                    precision=args.precision,
                    synthetic_samples=args.synthetic_samples,
                    compiled=compiled,
                )

    rows = [
        training_row(epochs["seconds", "generated"], epochs["seconds", "plain"], epochs["seconds", "overhead"]),
        training_row(
            epochs["cpu_seconds", "generated"], epochs["cpu_seconds", "plain"], epochs["cpu_seconds", "overhead"], "CPU"
        ),
        startup_row(starts["seconds", "generated"], starts["seconds", "import"]),
        startup_row(starts["cpu_seconds", "generated"], starts["cpu_seconds", "import"], "CPU"),
        plain_row("generation (`copier copy --defaults`)", generation),
        plain_row("time to green (generate, install with warm cache, generated tests)", green),
    ]
    if gpu_sized:
        rows += throughput_rows(gpu_sized[False], gpu_sized[True], on_gpu=args.device == "cuda")
    versions = {name: version(name) for name in ("torch", "lightning", "copier")}
    hardware = "CPU"
    if args.device == "cuda":
        import torch  # noqa: PLC0415  (only here: the CPU benchmark never needs it in this process)

        hardware = torch.cuda.get_device_name()
    short, long = args.epochs
    section = "\n".join(
        [
            markdown_table(rows),
            "",
            f"Machine: {machine_description(versions)}; torch threads: {args.threads}.",
            f"Training: epochs {short} and {long} of the default config on {hardware} at {args.precision}.",
            f"Per epoch = (time of {long} epochs - time of {short} epochs) / {long - short}.",
            (
                f"GPU-sized workload (`benchmarks/synthetic.py`): {synthetic.MODEL}, batch {synthetic.BATCH_SIZE}, "
                f"{args.synthetic_samples} samples per epoch, epochs 1 and 3."
            ),
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `nox -s bench`.",
        ]
    )
    print(section)
    if args.update_readme:
        readme = REPO / "README.md"
        readme.write_text(replace_readme_section(readme.read_text(), section))


if __name__ == "__main__":
    main()
