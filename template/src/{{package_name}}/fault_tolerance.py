"""Callbacks that keep a run recoverable: stop on a non-finite loss, checkpoint on preemption, resume exactly.

A killed run (SIGKILL, out of memory, a node failure) resumes from the newest `last.ckpt`, written every epoch; a
stopped one (SIGTERM from SLURM or `kill`, Ctrl+C) first writes `last-interrupted.ckpt`. `--ckpt_path last` picks
whichever is newer.
"""

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, OnExceptionCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(Callback):
    """Stop training at the first NaN or infinite loss, before it reaches the weights.

    The check runs before the backward pass, so the weights (and any checkpoint saved later) are still those of the
    last good step. It costs one device-to-host sync per step.
    """

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if torch.isfinite(loss).all():
            return
        raise NonFiniteLossError(
            f"training stopped: the loss is {loss.item()} at global step {trainer.global_step} "
            f"(epoch {trainer.current_epoch}). Look for NaN/Inf in the inputs, lower model.lr, or train in "
            "precision 32-true; the checkpoints written so far hold the weights before this step."
        )


class PreemptionCheckpoint(OnExceptionCheckpoint):
    """Save a checkpoint when `fit` is stopped by SIGTERM (SLURM preemption, `kill`) or Ctrl+C, to resume from.

    Errors are not checkpointed: the weights at an error are rarely worth resuming. The file goes next to the run's
    other checkpoints unless `dirpath` is given, and is removed again when a run finishes normally.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "last-interrupted") -> None:
        super().__init__(dirpath=dirpath or "", filename=filename)
        self.follow_run_directory = dirpath is None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.follow_run_directory:
            checkpoint = trainer.checkpoint_callback
            run_directory = getattr(checkpoint, "dirpath", None)
            self.dirpath = run_directory or trainer.default_root_dir

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        stopped = isinstance(exception, SIGTERMException | KeyboardInterrupt)
        if not stopped or trainer.state.fn != TrainerFn.FITTING:
            return
        super().on_exception(trainer, pl_module, exception)
        rank_zero_info(f"Stopped at step {trainer.global_step}: saved {self.ckpt_path}; resume with --ckpt_path last")


class RNGStateCheckpoint(Callback):
    """Store torch's random state in checkpoints, so a resumed run shuffles and drops out as an uninterrupted one.

    Restored from an end-of-epoch checkpoint, the next epoch sees the same batch order and dropout masks as if the
    run had never stopped. Only tensors are stored, so checkpoints still load with `weights_only=True`.
    """

    def state_dict(self) -> dict[str, Any]:
        cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {"torch": torch.get_rng_state(), "torch.cuda": cuda_states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        cuda_states = state_dict["torch.cuda"]
        if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
