"""Project callbacks; Lightning's own (checkpoints, early stopping) are configured in YAML, some through subclasses."""

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    BasePredictionWriter,
    Callback,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    RichProgressBar,
)
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.utilities import grad_norm, rank_zero_info


def run_directory(trainer: L.Trainer) -> Path:
    """The directory of this run: where ModelCheckpoint puts `checkpoints/`, whichever logger is configured.

    TensorBoard and CSV write their files here too; W&B and MLflow name it by their run id.
    """
    if not trainer.loggers:
        return Path(trainer.default_root_dir)
    logger = trainer.loggers[0]
    version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
    return Path(logger.save_dir or trainer.default_root_dir, str(logger.name), version)


def is_logging_step(trainer: L.Trainer) -> bool:
    """Whether Lightning writes step metrics to the loggers after the optimizer step in progress.

    That is every `log_every_n_steps` optimizer steps, every step under `fast_dev_run`, and the step a run stops at.
    A value that `self.log` records on any other step is replaced before it is written, and each call costs the host
    about a millisecond, as long as a small model's whole step: log per-step values only where this is true.
    """
    settings: Any = trainer  # fast_dev_run and log_every_n_steps are set by Lightning, not declared on the class
    if settings.fast_dev_run:
        return True
    every: int = settings.log_every_n_steps
    return every > 0 and ((trainer.global_step + 1) % every == 0 or trainer.should_stop)


class RunProgressBar(RichProgressBar):
    """Lightning's RichProgressBar without `v_num`, the logger's version number, which it shows as a metric
    (`v_num: 0.000`); the run directory and the run summary name the run."""

    def get_metrics(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


def with_progress_bar(callbacks: list[Callback] | Callback | None) -> list[Callback]:
    """The configured callbacks, plus a RunProgressBar that redraws 10 times a second when none is configured.

    Lightning's default bar redraws 100 times a second from a thread of its own, which costs a small model's fit
    about 7% of its CPU time, and much more on a busy machine.
    """
    callbacks = [] if callbacks is None else callbacks if isinstance(callbacks, list) else [callbacks]
    if any(isinstance(callback, ProgressBar) for callback in callbacks):
        return callbacks
    return [*callbacks, RunProgressBar(refresh_rate=10)]


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, except that it ranks a training epoch's end only after a validation in that epoch.

    An epoch cut short by `max_steps` or `max_time`, or run with `limit_val_batches=0`, has no score of its own: the
    monitored metric is an earlier epoch's (which cannot rank the weights it did not score) or missing, which Lightning
    warns about as if the model never logged it. The checkpoint is still written at the epoch's end, as `last.ckpt`
    is, so that a run killed between the two resumes from the same point either way.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.validated = False  # whether a validation ran since the last training epoch's end

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.validated = self.validated or not trainer.sanity_checking
        super().on_validation_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.validated:
            super().on_train_epoch_end(trainer, pl_module)
        self.validated = False


class LearningRateLogger(LearningRateMonitor):
    """Lightning's LearningRateMonitor, except that a run without a logger (`--trainer.logger=false`) trains on,
    logging no learning rates, where LearningRateMonitor refuses to start."""

    def on_train_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_batch_start(trainer, *args, **kwargs)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_epoch_start(trainer, *args, **kwargs)


class RunConfigSaver(SaveConfigCallback):
    """Save the run's full config as `config.yaml` in its run directory, next to `checkpoints/`.

    Lightning's SaveConfigCallback writes to `trainer.log_dir`, which for W&B, MLflow and no logger is shared by all
    runs; this keeps one config per run for every logger.
    """

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        directory = run_directory(trainer)
        directory.mkdir(parents=True, exist_ok=True)
        self.parser.save(self.config, directory / self.config_filename, skip_unset=False, overwrite=True)


class GradNormLogger(Callback):
    """Log the total gradient norm, and per-layer norms when asked, every `every_n_steps` optimizer steps.

    The norms are computed in `on_before_optimizer_step`, after gradient accumulation and unscaling, and only on the
    logged steps: computing them costs a pass over all parameters and a device sync. They are computed on the steps
    that end with `global_step` a multiple of `every_n_steps`, which are Lightning's logging steps when
    `every_n_steps` is a multiple of the Trainer's `log_every_n_steps`, and go straight to the loggers at their own
    step, as LearningRateMonitor does: through `self.log` the value of one step would be written again, stale, at
    every later logging step of the epoch.
    """

    def __init__(self, every_n_steps: int = 50, norm_type: float = 2.0, per_layer: bool = False) -> None:
        self.every_n_steps = every_n_steps
        self.norm_type = norm_type
        self.per_layer = per_layer

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        if (trainer.global_step + 1) % self.every_n_steps:
            return
        norms = grad_norm(pl_module, norm_type=self.norm_type)
        total_key = f"grad_{float(self.norm_type)}_norm_total"
        if total_key not in norms:
            return
        if not self.per_layer:
            norms = {total_key: norms[total_key]}
        metrics = {f"grad/{key}": float(value) for key, value in norms.items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)


class PredictionWriter(BasePredictionWriter):
    """Write `predict` outputs to a CSV file, one row per sample, and print where it went.

    Args:
        output_file: The CSV path; relative paths are taken from the working directory.
    """

    def __init__(self, output_file: str = "predictions.csv") -> None:
        super().__init__(write_interval="epoch")
        self.output_file = Path(output_file)

    def write_on_epoch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        rows = {key: concatenate([batch[key] for batch in predictions]) for key in predictions[0]}
        path = self.output_file
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}-rank{trainer.global_rank}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(rows)
            writer.writerows(zip(*rows.values(), strict=True))
        rank_zero_info(f"Wrote {len(next(iter(rows.values())))} predictions to {path.resolve()}")


def concatenate(batches: list[Any]) -> list[Any]:
    """One column of the predictions: tensors joined, and lists (class names, file paths) chained."""
    return [item for batch in batches for item in (batch.tolist() if isinstance(batch, torch.Tensor) else batch)]
