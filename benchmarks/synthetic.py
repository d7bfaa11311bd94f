"""The GPU-sized workload: synthetic data and a model large enough that the device's compute dominates each step.

Both sides of the comparison (`plain_loop.py`, `cli_fit.py`) train the project's `LitModel` and `MLP` network with
these sizes on these loaders, so they differ only in the training loop around them.
"""

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

MODEL = {"input_dim": 1024, "hidden_dim": 4096, "num_classes": 100}
BATCH_SIZE = 512


class Samples(Dataset):
    """Samples in the generated project's batch format: `{"inputs": [features], "target": label, ...}`."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"inputs": [self.features[index]], "target": self.labels[index], "id": index, "position": index}


def loaders(samples: int, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Training and validation loaders of `samples` and `samples // 8` random points, labelled by a fixed linear map."""
    generator = torch.Generator().manual_seed(seed)
    mapping = torch.randn(MODEL["input_dim"], MODEL["num_classes"], generator=generator)

    def dataset(size: int) -> Samples:
        features = torch.randn(size, MODEL["input_dim"], generator=generator)
        return Samples(features, (features @ mapping).argmax(dim=-1))

    train = DataLoader(dataset(samples), batch_size=BATCH_SIZE, shuffle=True, drop_last=True, generator=generator)
    return train, DataLoader(dataset(max(BATCH_SIZE, samples // 8)), batch_size=BATCH_SIZE)


def model_arguments(compiled: bool) -> list[str]:
    """The CLI options that give the generated `LitModel` and its `MLP` this workload's sizes."""
    return [
        f"--model.input_dim={MODEL['input_dim']}",
        f"--model.num_outputs={MODEL['num_classes']}",
        f"--model.network.init_args.hidden_dim={MODEL['hidden_dim']}",
        f"--model.compile={str(compiled).lower()}",
    ]


def model(package: Any, compiled: bool) -> Any:
    """The generated `LitModel` with this workload's sizes (`package`: its model and network modules)."""
    network = {"class_path": f"{package.network.__name__}.MLP", "init_args": {"hidden_dim": MODEL["hidden_dim"]}}
    sizes = {"input_dim": MODEL["input_dim"], "num_outputs": MODEL["num_classes"]}
    return package.model.LitModel(network=network, compile=compiled, **sizes)
