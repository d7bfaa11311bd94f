"""The GPU-sized workload: synthetic data and a model large enough that the device's compute dominates each step.

Both sides of the comparison (`plain_loop.py`, `cli_fit.py`) train the project's `Classifier` with these sizes on
these loaders, so they differ only in the training loop around them.
"""

import torch
from torch.utils.data import DataLoader, TensorDataset

MODEL = {"input_dim": 1024, "hidden_dim": 4096, "num_classes": 100}
BATCH_SIZE = 512


def loaders(samples: int, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Training and validation loaders of `samples` and `samples // 8` random points, labelled by a fixed linear map."""
    generator = torch.Generator().manual_seed(seed)
    mapping = torch.randn(MODEL["input_dim"], MODEL["num_classes"], generator=generator)

    def dataset(size: int) -> TensorDataset:
        features = torch.randn(size, MODEL["input_dim"], generator=generator)
        return TensorDataset(features, (features @ mapping).argmax(dim=-1))

    train = DataLoader(dataset(samples), batch_size=BATCH_SIZE, shuffle=True, drop_last=True, generator=generator)
    return train, DataLoader(dataset(max(BATCH_SIZE, samples // 8)), batch_size=BATCH_SIZE)


def model_arguments(compiled: bool) -> list[str]:
    """The CLI options that give the generated `Classifier` this workload's sizes."""
    return [f"--model.{name}={value}" for name, value in MODEL.items()] + [f"--model.compile={str(compiled).lower()}"]
