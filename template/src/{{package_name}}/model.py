"""The LightningModule: what to compute, not where or how often (that is the Trainer's job)."""

from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torch.optim import AdamW
from torch.optim.lr_scheduler import CosineAnnealingLR
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

Batch = tuple[torch.Tensor, torch.Tensor]


class Classifier(L.LightningModule):
    """A multilayer perceptron classifier; replace `self.net` with your own architecture.

    Every `__init__` argument is a hyperparameter: LightningCLI exposes it as `--model.<name>`, it is saved in each
    checkpoint, and the tuner can change `lr`. `compile=True` (`configs/compile.yaml`) compiles the network with
    `torch.compile`: the first steps wait for the compiler, later ones run fused kernels. Only `self.net` is compiled,
    in place, so checkpoints keep the same keys with or without it and load either way.
    """

    def __init__(
        self,
        input_dim: int = 64,
        hidden_dim: int = 128,
        num_classes: int = 10,
        dropout: float = 0.1,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Linear(input_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, num_classes),
        )
        if compile:
            self.net.compile()  # not the LightningModule, whose hooks and logging would break the graphs
        self.criterion = nn.CrossEntropyLoss()
        # Metrics per stage: each keeps its own running state and syncs across processes itself. They are updated
        # every batch and logged once per epoch (which computes and resets them): every `self.log` call costs time.
        self.train_acc = MulticlassAccuracy(num_classes)
        self.val_acc = MulticlassAccuracy(num_classes)
        self.test_acc = MulticlassAccuracy(num_classes)
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        self.example_input_array = torch.zeros(1, input_dim)  # for the model summary's layer shapes and FLOPs

    def setup(self, stage: str) -> None:
        """Cast the summary's example input as the precision plugin casts every batch (float64 for 64-true, bfloat16
        for bf16-true and DeepSpeed): the summary runs it through weights already converted to that dtype."""
        strategy = self.trainer.strategy
        if isinstance(strategy, FSDPStrategy) and strategy.world_size > 1:
            rank_zero_info(
                f"Model summary without layer shapes and FLOPs: FSDP shards the weights over {strategy.world_size}"
                " processes, and the summary would run the example input outside FSDP, on one process's shard."
            )
            self.example_input_array = None
            return
        example = torch.zeros(1, self.hparams["input_dim"])
        self.example_input_array = self.trainer.precision_plugin.convert_input(example)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.net(x)
        return logits

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss: torch.Tensor = self.criterion(logits, y)
        self.train_acc.update(logits, y)
        # Logged every `log_every_n_steps` steps. Not on the progress bar: the bar would copy it to the host every
        # step, a device sync that stalls a GPU; the bar shows the epoch metrics instead.
        self.log("train/loss", loss)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train/acc", self.train_acc, prog_bar=True)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_acc.update(logits, y)
        self.val_loss.update(self.criterion(logits, y), weight=len(y))

    def on_validation_epoch_end(self) -> None:
        self.log_dict({"val/loss": self.val_loss, "val/acc": self.val_acc}, prog_bar=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.test_acc.update(logits, y)
        self.test_loss.update(self.criterion(logits, y), weight=len(y))

    def on_test_epoch_end(self) -> None:
        self.log_dict({"test/loss": self.test_loss, "test/acc": self.test_acc})

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        x, y = batch
        probabilities = self(x).softmax(dim=-1)
        return {"prediction": probabilities.argmax(dim=-1), "confidence": probabilities.amax(dim=-1), "target": y}

    def configure_optimizers(self) -> Any:
        optimizer = AdamW(self.parameters(), lr=self.lr, weight_decay=self.hparams["weight_decay"])
        # Cosine decay over the whole run, stepped per batch so it also fits runs shorter than an epoch.
        scheduler = CosineAnnealingLR(optimizer, T_max=max(1, int(self.trainer.estimated_stepping_batches)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
