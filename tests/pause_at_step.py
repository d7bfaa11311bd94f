"""A callback for jobs that tests signal mid-run (tests/test_slurm.py), in its own module so that collecting the
tests does not import Lightning."""

import time
from pathlib import Path

from lightning.pytorch import Callback, Trainer

PAUSED, RESUME = "paused-at-step", "resume"


class PauseAtStep(Callback):
    """Hold training after `step` until a file `resume` appears in the working folder, so a test can signal a job
    at a known step. A requeued run restored at `step` does not pause again."""

    def __init__(self, step: int = 5) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Trainer, *args: object) -> None:
        if trainer.global_step != self.step:
            return
        Path(PAUSED).touch()
        while not Path(RESUME).exists():
            time.sleep(0.1)
