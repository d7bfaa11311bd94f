"""The LightningDataModule: where the data comes from and how it is split and batched.

The example data is scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes), so the project trains
without network access. To use your own data, change `prepare_data` (fetch or convert once, to `data_dir`) and
`_load` (read it back as tensors); the splitting and loaders below work for any `(features, label)` dataset.
"""

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import DataLoader, Dataset, TensorDataset, random_split

Sample = tuple[torch.Tensor, ...]


class DigitsDataModule(L.LightningDataModule):
    """Handwritten digits, split reproducibly into train / val / test.

    Args:
        data_dir: Where the prepared dataset file is written and read.
        batch_size: Samples per batch on each device; the global batch is this times devices times nodes.
        val_fraction: Share of the samples held out for validation.
        test_fraction: Share of the samples held out for testing.
        num_workers: DataLoader worker processes; 0 loads in the main process, fastest for small in-memory data.
        split_seed: Seed of the split, independent of the training seed so the test set never moves.
    """

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 64,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        num_workers: int = 0,
        split_seed: int = 1234,
    ) -> None:
        super().__init__()
        if not 0 < val_fraction + test_fraction < 1:
            total = val_fraction + test_fraction
            raise ValueError(f"val_fraction + test_fraction must lie between 0 and 1, got {total}")
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.data_file = Path(data_dir) / "digits.pt"

    def prepare_data(self) -> None:
        """Write the dataset to `data_dir` once; Lightning calls this on one process per node, so it sets no state."""
        if self.data_file.exists():
            return
        from sklearn.datasets import load_digits  # noqa: PLC0415  (only the first run pays for the import)

        features, labels = load_digits(return_X_y=True)
        self.data_file.parent.mkdir(parents=True, exist_ok=True)
        dataset = {"features": torch.tensor(features / 16.0, dtype=torch.float32), "labels": torch.tensor(labels)}
        torch.save(dataset, self.data_file)

    def setup(self, stage: str | None = None) -> None:
        """Load and split on every process; the fixed generator gives each process the same split."""
        if hasattr(self, "train_set"):
            return
        dataset = self._load()
        n_val = round(len(dataset) * self.hparams["val_fraction"])
        n_test = round(len(dataset) * self.hparams["test_fraction"])
        generator = torch.Generator().manual_seed(self.hparams["split_seed"])
        self.train_set, self.val_set, self.test_set = random_split(
            dataset, [len(dataset) - n_val - n_test, n_val, n_test], generator=generator
        )

    def _load(self) -> TensorDataset:
        data = torch.load(self.data_file, weights_only=True)
        return TensorDataset(data["features"], data["labels"])

    def train_dataloader(self) -> DataLoader[Sample]:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader[Sample]:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader[Sample]:
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader[Sample]:
        return self._loader(self.test_set)

    def _loader(self, dataset: Dataset[Sample], shuffle: bool = False) -> DataLoader[Sample]:
        workers = self.hparams["num_workers"]
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self._on_cuda(),
        )

    def _on_cuda(self) -> bool:
        """Pinned host memory only pays off when batches are copied to a CUDA device."""
        trainer = self.trainer
        return trainer is not None and isinstance(trainer.accelerator, CUDAAccelerator)
