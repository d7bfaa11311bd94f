"""Every combination of the hardware answers, what Lightning 2.6 makes of it, and a fast in-process renderer.

`expected_refusal` restates, independently of copier.yml, the rules of Lightning's accelerator connector
(lightning/pytorch/trainer/connectors/accelerator_connector.py), its FSDP/DeepSpeed precision plugins and its
SLURM/torchelastic environments; the exhaustive test checks copier.yml against it in both directions.
"""

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import copier._main
import jinja2
from copier._main import Worker  # run_copy without reparsing copier.yml; internal, pinned by copier>=9.11 tests

AXES: dict[str, list[Any]] = {
    "accelerator": ["cpu", "gpu", "mps", "auto"],
    "strategy": ["auto", "ddp", "ddp_spawn", "fsdp", "deepspeed"],
    "precision": ["32-true", "16-mixed", "bf16-mixed", "bf16-true", "64-true"],
    "devices": ["1", "2", "auto"],
    "num_nodes": [1, 2],
    "launcher": ["local", "torchrun", "slurm"],
}
# copier asks (and validates) in this order, so the first broken rule names this question.
QUESTION_ORDER = ["devices", "strategy", "num_nodes", "precision", "launcher"]
ANSWERS_FILE = ".copier-answers.yml"


def all_combinations() -> Iterator[dict[str, Any]]:
    for values in itertools.product(*AXES.values()):
        yield dict(zip(AXES, values, strict=True))


def broken_rules(answers: dict[str, Any]) -> dict[str, str]:
    """Question -> why Lightning (or the launcher) would reject or silently change the combination."""
    accelerator, strategy, precision = answers["accelerator"], answers["strategy"], answers["precision"]
    devices, num_nodes, launcher = answers["devices"], answers["num_nodes"], answers["launcher"]
    rules: dict[str, str] = {}
    if accelerator == "mps" and devices not in ("1", "auto"):
        rules["devices"] = "MPSAccelerator has one device"
    if accelerator == "mps" and "ddp" in strategy:
        rules["strategy"] = "connector: DDP family not supported on MPS"
    if strategy == "fsdp" and accelerator != "gpu":
        rules["strategy"] = "connector: FSDP requires a GPU accelerator"
    if strategy == "deepspeed" and accelerator != "gpu":
        rules["strategy"] = "DeepSpeedStrategy.setup_environment: CUDA only"
    if num_nodes > 1 and strategy not in ("ddp", "fsdp", "deepspeed"):
        rules["num_nodes"] = "multi-node needs a strategy started by torchrun/SLURM (ddp_spawn spawns its own)"
    elif num_nodes > 1 and devices == "auto":
        rules["num_nodes"] = "torchrun/SLURM start a fixed number of processes per node"
    if precision == "16-mixed" and accelerator in ("cpu", "auto"):
        rules["precision"] = "connector: 16-mixed on CPU is swapped for bf16-mixed"
    if precision == "64-true" and (accelerator == "mps" or strategy in ("fsdp", "deepspeed")):
        rules["precision"] = "MPS has no float64; FSDP/DeepSpeed precision plugins take no 64-true"
    if launcher == "local" and num_nodes > 1:
        rules["launcher"] = "Lightning starts processes on one machine only"
    if launcher in ("torchrun", "slurm") and (strategy == "ddp_spawn" or devices == "auto"):
        rules["launcher"] = "one process per device started outside Lightning: ddp_spawn and devices auto conflict"
    if launcher == "slurm" and accelerator == "mps":
        rules["launcher"] = "no MPS on SLURM clusters"
    return rules


def expected_refusal(answers: dict[str, Any]) -> str | None:
    """The question copier must refuse first, or None when the combination is valid."""
    rules = broken_rules(answers)
    return next((question for question in QUESTION_ORDER if question in rules), None)


def _cached_compile(original: Any) -> Any:
    """Jinja compiles each of copier's small templates anew on every copy; identical sources compile identically."""
    cache: dict[tuple[Any, ...], Any] = {}

    def compile_once(self: jinja2.Environment, source: Any, name: Any = None, filename: Any = None, *args: Any) -> Any:
        key = (type(self), self.block_start_string, self.variable_start_string, str(source), name, filename, *args)
        if key not in cache:
            cache[key] = original(self, source, name, filename, *args)
        else:
            self.preprocess(str(source), name, filename)  # extensions reset per-render state here (copier's yield tag)
        return cache[key]

    return compile_once


def render_many(
    template: Path, root: Path, combinations: list[tuple[int, dict[str, Any]]], existing: frozenset[int] = frozenset()
) -> list[tuple[int, str]]:
    """Render each (index, answers) into root/<index>: "" on success, else copier's error. Meant for a worker process.

    The destinations of the indices in `existing` are created first, holding keep.txt.

    The template's parsed configuration is shared between copies and Jinja's compiled templates cached: what
    `copier copy` does, without reparsing copier.yml and recompiling every expression for each of the combinations,
    and without the per-file `git` call that syncs executable bits into a destination repository (there is none).
    """
    jinja2.Environment.compile = _cached_compile(jinja2.Environment.compile)  # type: ignore[method-assign]
    copier._main.is_git_available = lambda: False  # type: ignore[attr-defined]
    shared: dict[str, Any] = {}
    results = []
    for index, answers in combinations:
        destination = root / str(index)
        if index in existing:
            destination.mkdir()
            (destination / "keep.txt").write_text("mine\n")
        worker = Worker(
            src_path=str(template),
            dst_path=destination,
            data=answers,
            defaults=True,
            unsafe=True,
            quiet=True,
            skip_tasks=True,  # the post-copy git init and pre-commit install have their own tests
        )
        if "template" in shared:
            worker.__dict__["template"] = shared["template"]
        else:
            shared["template"] = worker.template
        try:
            with worker:
                worker.run_copy()
        except ValueError as error:
            results.append((index, str(error)))
        else:
            results.append((index, ""))
    return results


def output_digest(project: Path) -> str:
    """Hash of the rendered files, the answers file aside: projects with equal digests are lint-checked once."""
    digest = hashlib.sha256()
    for path in sorted(project.rglob("*")):
        if path.is_file() and path.name not in (ANSWERS_FILE, "keep.txt"):
            digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
