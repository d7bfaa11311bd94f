"""Finding and checking checkpoints: `--ckpt_path last` and `best` in any new process, and a file's faults named
before Lightning reads it.

Only training runs are searched (`test` and `predict` write no checkpoints) and never a sweep's trials (named
`sweep-<study>-trial<number>` by `<package>-sweep`, in their folder or their saved config), so a search never
shadows your own runs.
"""

import pickle
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch

SWEEP_TRIAL = re.compile(r"sweep-.+-trial\d+")


def training_checkpoints(root: Path, pattern: str = "*.ckpt") -> list[Path]:
    """Checkpoints below `root` matching `pattern`, newest first, outside sweep trials."""
    found = (path for path in root.glob(f"**/{pattern}") if not is_sweep_trial(path))
    return sorted(found, key=lambda path: path.stat().st_mtime, reverse=True)


def is_sweep_trial(checkpoint: Path) -> bool:
    """A trial's run folder is named after it (TensorBoard, CSV, W&B, no logger); MLflow's is a run id, but the run's
    `config.yaml` beside `checkpoints/` names it."""
    if any(SWEEP_TRIAL.fullmatch(part) for part in checkpoint.parts):
        return True
    config = checkpoint.parent.parent / "config.yaml"
    return config.is_file() and SWEEP_TRIAL.search(config.read_text(errors="replace")) is not None


def find_last_checkpoint(root: Path) -> Path:
    """The most recently written readable checkpoint below `root`, or exit saying why there is none.

    That is the newest run's `last.ckpt` or `last-interrupted.ckpt`, or its `best-*.ckpt` when the run was killed
    while writing `last.ckpt` (best is written first). Lightning writes to a temporary file and moves it into place,
    so a kill while saving leaves the previous file; one that is unreadable all the same (copied in part, a full
    disk) is skipped, saying so.
    """
    for path in training_checkpoints(root):
        if path.is_dir() or zipfile.is_zipfile(path):
            return path
        print(f"--ckpt_path last: skipped {path}: truncated or not a checkpoint", file=sys.stderr)
    sys.exit(
        f"--ckpt_path last: no readable checkpoint under {root.resolve()}; train first, or pass a checkpoint path."
    )


def find_best_checkpoint(root: Path) -> Path:
    """The best checkpoint (`best-*.ckpt`, by the monitored metric) of the newest training run below `root`."""
    newest_run = find_last_checkpoint(root).parent
    best = training_checkpoints(newest_run, "best-*.ckpt")
    if not best:
        sys.exit(
            f"--ckpt_path best: the newest run, {newest_run.parent}, has no best-*.ckpt yet (it has not finished a "
            "validation epoch); pass --ckpt_path last, or a checkpoint path."
        )
    return best[0]


def resolve(path: str, root: Path) -> str:
    """`last` and `best` as files of the newest training run; any other path as it is."""
    if path == "last":
        return str(find_last_checkpoint(root))
    if path == "best":
        return str(find_best_checkpoint(root))
    return path


def check_checkpoint(path: Path) -> dict[str, Any] | None:
    """Exit with what is wrong with `path` before Lightning loads it: missing, truncated, corrupt or unsafe.

    Returns the checkpoint (memory-mapped), or None for a sharded one.
    """
    if path.is_dir():
        return None  # a sharded (FSDP, DeepSpeed) checkpoint: its strategy checks it
    if not path.is_file():
        sys.exit(f"--ckpt_path {path}: no such file. Pass an existing .ckpt file, or 'last' for the newest run.")
    if not zipfile.is_zipfile(path):
        sys.exit(
            f"--ckpt_path {path}: not a checkpoint, or truncated ({path.stat().st_size} bytes, no zip directory at "
            "the end); a run killed while saving leaves such a file. Use an earlier last.ckpt or best-*.ckpt."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            sys.exit(f"--ckpt_path {path}: corrupt, its pickled data cannot be read: {error}")
        sys.exit(
            f"--ckpt_path {path}: holds pickled objects besides tensors and plain data, which could run code when "
            "loaded, so it is refused. Load only checkpoints you trust, saved by Lightning."
        )
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile) as error:
        reason = str(error).strip().splitlines()[0]
        sys.exit(f"--ckpt_path {path}: corrupt, it cannot be read as a checkpoint: {reason}")
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        sys.exit(f"--ckpt_path {path}: a torch file, but not a Lightning checkpoint (it has no 'state_dict').")
    if "preprocessor" not in checkpoint:
        sys.exit(
            f"--ckpt_path {path}: written by an earlier version of this project, without the fitted preprocessing "
            "that turns raw inputs into model inputs; train again to get a checkpoint that predicts on new data."
        )
    return checkpoint
