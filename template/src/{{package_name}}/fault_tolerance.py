"""Callbacks that keep a run recoverable: stop on a non-finite loss, checkpoint on preemption, resume exactly.

A killed run (SIGKILL, out of memory, a node failure) resumes from the newest `last.ckpt`, written every epoch; a
stopped one (SIGTERM from SLURM or `kill`, Ctrl+C) first writes `last-interrupted.ckpt`. `--ckpt_path last` picks
whichever is newer. A run that ended (max_epochs reached, or stopped early) continues with more epochs the same way.
"""

import os
from typing import Any, cast

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.loops.fit_loop import _FitLoop
from lightning.pytorch.loops.loop import _Loop
from lightning.pytorch.loops.progress import _ProcessedTracker
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(Callback):
    """Stop training at a NaN or infinite loss, before a checkpoint can hold weights trained on it.

    Reading the loss on the host every step would make the host wait for the device each step, stalling a GPU's
    queue, and even a test on the device costs a few kernel launches a step. So each step only keeps a reference to
    its loss, and the host tests the losses kept so far, all at once, at logging steps (every
    `trainer.log_every_n_steps` optimizer steps), before each validation, at the end of each epoch, before any
    checkpoint is written, and every `max_unchecked` losses. A run therefore stops at most `log_every_n_steps - 1`
    optimizer steps after the bad one, and never writes a checkpoint from weights updated after a non-finite loss.

    Args:
        max_unchecked: Test the kept losses when this many are waiting, even between logging steps: bounds the
            memory they hold when logging is rare or off.
    """

    def __init__(self, max_unchecked: int = 1024) -> None:
        self.max_unchecked = max_unchecked
        self.losses: list[torch.Tensor] = []  # one per backward pass since the last check, on the device
        self.steps: list[int] = []  # the global step of each

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.losses, self.steps = [], []

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        self.losses.append(loss.detach())
        self.steps.append(trainer.global_step)
        if len(self.losses) >= self.max_unchecked:
            self.check(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        every: int = trainer.log_every_n_steps  # type: ignore[attr-defined]  # set by Lightning, not declared
        if every and trainer.global_step % every == 0:  # the steps at which Lightning reads the logged metrics
            self.check(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.check(trainer)  # raised before the file is written

    def check(self, trainer: L.Trainer) -> None:
        """Raise if a loss kept so far is not finite: one device-to-host copy for all of them."""
        if not self.losses:
            return
        losses = torch.stack(self.losses)
        finite = torch.isfinite(losses)
        if finite.all():
            self.losses, self.steps = [], []
            return
        first = int((~finite).nonzero()[0])
        raise NonFiniteLossError(
            f"training stopped: the loss is {losses[first].item()} at global step {self.steps[first]} "
            f"(noticed at step {trainer.global_step}, epoch {trainer.current_epoch}). Look for NaN/Inf in the inputs, "
            "lower model.lr, or train in precision 32-true; the checkpoints written so far hold the weights from "
            "before that step."
        )


class PreemptionCheckpoint(Checkpoint):
    """Save a checkpoint when `fit` is stopped by SIGTERM (SLURM preemption, `kill`) or Ctrl+C, to resume from.

    Errors are not checkpointed: the weights at an error are rarely worth resuming. The file goes next to the run's
    other checkpoints unless `dirpath` is given, and is removed again when a run finishes normally.

    Not Lightning's `OnExceptionCheckpoint`: with one among the callbacks, Lightning turns every fresh `fit` into
    `fit(ckpt_path="last")` and warns twice about a checkpoint nobody asked for. `--ckpt_path last` finds this file.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "last-interrupted") -> None:
        self.dirpath = dirpath or ""
        self.filename = filename
        self.follow_run_directory = dirpath is None

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.dirpath, f"{self.filename}.ckpt")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.follow_run_directory:
            checkpoint = trainer.checkpoint_callback
            run_directory = getattr(checkpoint, "dirpath", None)
            self.dirpath = run_directory or trainer.default_root_dir

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        stopped = isinstance(exception, SIGTERMException | KeyboardInterrupt)
        if not stopped or trainer.state.fn != TrainerFn.FITTING:
            return
        trainer.save_checkpoint(self.ckpt_path, weights_only=False)  # everything, to resume from
        rank_zero_info(f"Stopped at step {trainer.global_step}: saved {self.ckpt_path}; resume with --ckpt_path last")

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == TrainerFn.FITTING:
            trainer.strategy.remove_checkpoint(self.ckpt_path)


class ExtendableEarlyStopping(EarlyStopping):
    """Lightning's EarlyStopping, except that a run it stopped can be extended: `fit --ckpt_path last` with more
    `max_epochs` trains until `patience` more epochs pass without beating the best score reached so far.

    Restored from a run it had not stopped (a killed or preempted run), its state is kept as it was, so the resumed
    run stops where the uninterrupted run would. `patience` is always the configured one, not the checkpoint's.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        patience = self.patience
        super().load_state_dict(state_dict)
        self.patience = patience
        if self.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED:
            self.wait_count, self.stopped_epoch = 0, 0
            self.stopping_reason, self.stopping_reason_message = EarlyStoppingReason.NOT_STOPPED, None


class EpochEndResumeFitLoop(_FitLoop):
    """Lightning's fit loop, except that a run resumed from an end-of-epoch checkpoint starts the next epoch even when
    `max_steps` is set.

    Lightning 2.6 treats every resume under `max_steps` as a restart inside the saved epoch (`_FitLoop.restarting` is
    always true under `max_steps`): it runs that epoch's end again and counts it as one more epoch, so a run resumed
    from the end of epoch 0 with `--trainer.max_steps` and `max_epochs: 2` stops without a single step. Mid-epoch
    checkpoints still restart mid-epoch.
    """

    @classmethod
    def replacing(cls, loop: _FitLoop) -> "EpochEndResumeFitLoop":
        replacement = cls(loop.trainer, min_epochs=loop.min_epochs, max_epochs=loop.max_epochs)
        replacement.epoch_loop = loop.epoch_loop
        return replacement

    @_Loop.restarting.setter  # type: ignore[attr-defined]  # a property of _Loop, overridden as _FitLoop does
    def restarting(self, restarting: bool) -> None:
        progress = cast(_ProcessedTracker, self.epoch_progress.current)  # declared as its base class
        epoch_finished = progress.ready == progress.started == progress.processed
        _Loop.restarting.fset(self, restarting and not epoch_finished)  # type: ignore[attr-defined]


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
