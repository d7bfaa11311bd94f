"""Run-time classes: the valid hardware combinations grouped by what Lightning does differently when they train.

A class is platform x strategy x precision x processes x launcher, with these equivalences (Lightning 2.6):
- accelerator `auto` trains as `cpu` on a machine without CUDA (CI's) and as `gpu` on a CUDA machine: it belongs to
  the cpu class and to the gpu class with the same strategy and precision.
- the strategy is the one the rendered config runs (`trainer_strategy`: `auto` with several processes is `ddp`).
- processes = devices x num_nodes, where `devices: auto` is 1 on CPU (CPUAccelerator counts one device) and on the
  one GPU `nox -s gpu` has; two or more processes run the same code paths, so 2 stands for every count above 1.
- a torchrun or SLURM launcher only sets each process's rank variables: with one process it trains as the local
  class; with several, the combination needs the local class of its strategy, precision and process count (the
  precision plugin and the collectives act the same whoever started the processes) and the launcher's own class,
  which runs ddp in 32-true over two single-process nodes on CPU.
- `ddp_spawn` is Lightning's DDPStrategy started by spawning its processes (`start_method="spawn"`, one process
  spawned even for one device) instead of re-running the command: for the same reason, a combination with it needs
  ddp's class of its precision and process count and the spawn launcher's class, ddp_spawn in 32-true.
The dataset answer changes the model and data, not what Lightning does with the hardware: the digits run every
class, and each other dataset runs the single-process CPU classes, where its model's own dtype handling is what differs.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from combinations import all_combinations, expected_refusal

PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "bf16-true", "64-true")


@dataclass(frozen=True, order=True)
class RunClass:
    platform: str  # cpu, gpu or mps
    strategy: str
    precision: str
    processes: int  # 1, or 2 for any count above 1
    launcher: str = "local"
    dataset: str = "digits"

    @property
    def name(self) -> str:
        data = "" if self.dataset == "digits" else f"-{self.dataset}"
        return f"{self.platform}-{self.strategy}-{self.precision}-{self.processes}p-{self.launcher}{data}"

    @property
    def package(self) -> str:
        """The rendered project's package name: one per class, so their modules can share one Python process."""
        return "m_" + self.name.replace("-", "_")

    def answers(self) -> dict[str, Any]:
        """Answers that render a project of this class (the launcher classes use two single-process nodes)."""
        nodes = 2 if self.launcher != "local" else 1
        devices = 1 if self.launcher != "local" else self.processes
        return {
            "package_name": self.package,
            "accelerator": self.platform,
            "devices": str(devices),
            "strategy": self.strategy,
            "num_nodes": nodes,
            "precision": self.precision,
            "launcher": self.launcher,
            "dataset": self.dataset,
            "logger": "csv",
            "ci": False,
        }


def processes(answers: dict[str, Any]) -> int:
    devices = 1 if answers["devices"] == "auto" else int(answers["devices"])
    return min(2, devices * answers["num_nodes"])


def trainer_strategy(answers: dict[str, Any]) -> str:
    return "ddp" if answers["strategy"] == "auto" and processes(answers) > 1 else answers["strategy"]


def launcher_class(launcher: str) -> RunClass:
    return RunClass("cpu", "ddp", "32-true", 2, launcher)


def classes_of(answers: dict[str, Any]) -> set[RunClass]:
    """The classes that must run for a valid combination to count as valid."""
    platforms = {"cpu": ["cpu"], "auto": ["cpu", "gpu"], "gpu": ["gpu"], "mps": ["mps"]}[answers["accelerator"]]
    count, strategy, precision = processes(answers), trainer_strategy(answers), answers["precision"]
    if strategy == "ddp_spawn":
        classes = {RunClass(platform, "ddp", precision, count) for platform in platforms}
        classes |= {RunClass(platform, "ddp_spawn", "32-true", count) for platform in platforms}
    else:
        classes = {RunClass(platform, strategy, precision, count) for platform in platforms}
    if answers["launcher"] != "local" and count > 1:
        classes.add(launcher_class(answers["launcher"]))
    return classes


def valid_combinations() -> list[dict[str, Any]]:
    return [answers for answers in all_combinations() if expected_refusal(answers) is None]


def needed_classes() -> set[RunClass]:
    return {run_class for answers in valid_combinations() for run_class in classes_of(answers)}


HARDWARE_CPU_CLASSES = sorted(run_class for run_class in needed_classes() if run_class.platform == "cpu")
DATASET_CLASSES = [
    RunClass("cpu", "auto", precision, 1, dataset=dataset)
    for dataset in ("csv", "image_folder")
    for precision in ("32-true", "bf16-mixed", "bf16-true", "64-true")
]
CPU_CLASSES = HARDWARE_CPU_CLASSES + DATASET_CLASSES
# Run by `nox -s gpu` (tests/test_device_classes.py); the mps ones there too, on a Mac.
DEVICE_CLASSES = sorted(run_class for run_class in needed_classes() if run_class.platform != "cpu")

SHORT_RUN = ["--config", "configs/limit_batches.yaml", "--trainer.enable_progress_bar=false"]


def exports(run_class: RunClass) -> bool:
    """The classes whose checkpoint `export` turns into ONNX: each dataset's network in each precision. A data-parallel
    strategy saves the same checkpoint as one process, so one strategy stands for them."""
    return run_class.strategy == "auto" and run_class.processes == 1


def steps(run_class: RunClass, data_dir: Path, inputs: Path) -> dict[str, list[str]]:
    """The commands a class runs, in order: a 2-epoch fit, test on its last.ckpt and predict on new inputs, a resume
    to epoch 3, and for `exports` classes an export of the resumed model (checked against it by the command)."""
    run = [*SHORT_RUN, f"--data.data_dir={data_dir}"]
    commands = {
        "fit": ["fit", *run],
        "test": ["test", "--ckpt_path", "last", *run],
        "predict": ["predict", "--ckpt_path", "last", *run, f"--data.predict_path={inputs}"],
        "resume": ["fit", "--ckpt_path", "last", *run, "--trainer.max_epochs=3"],
    }
    if exports(run_class):
        commands["export"] = ["export", "--ckpt_path", "last", "--output", "export"]
    return commands


def runs_in_process(run_class: RunClass) -> bool:
    """One Python process can hold it: one process and no launcher. ddp_spawn goes through the command: inside the
    matrix's worker process its spawned ranks never wrote a run directory (not diagnosed yet)."""
    return run_class.launcher == "local" and run_class.processes == 1 and run_class.strategy != "ddp_spawn"
