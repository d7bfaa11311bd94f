"""The baseline: the generated project's model and data trained by a hand-written PyTorch loop.

Same `LitModel` and `MLP` network, same `DigitsDataModule` loaders, same AdamW and per-step cosine schedule, same number of
optimizer steps and a validation pass (loss and accuracy) after every epoch, as the generated CLI runs them.
On CUDA with `--precision bf16-mixed` the steps run under `torch.autocast`, as Lightning's `bf16-mixed` does.
Run it as `python plain_loop.py --package NAME --src DIR --data-dir DIR --epochs N`; it prints one JSON line.
"""

import argparse
import importlib
import json
import sys
import time
from contextlib import nullcontext
from types import SimpleNamespace
from typing import Any

import synthetic
import torch
from torch.optim import AdamW
from torch.optim.lr_scheduler import CosineAnnealingLR


def train(
    package: str,
    data_dir: str,
    epochs: int,
    *,
    device: str = "cpu",
    precision: str = "32-true",
    seed: int = 42,
    synthetic_samples: int = 0,
    compiled: bool = False,
) -> dict[str, Any]:
    """Train for `epochs` epochs; return wall and CPU seconds from data setup to the last validation, and the steps.

    With `synthetic_samples`, train the GPU-sized workload of `synthetic.py` instead of the digits.
    """
    modules = SimpleNamespace(
        **{name: importlib.import_module(f"{package}.{name}") for name in ("datamodule", "model", "network")}
    )
    start, start_cpu = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    if synthetic_samples:
        train_loader, val_loader = synthetic.loaders(synthetic_samples)
        model = synthetic.model(modules, compiled).to(device)
    else:
        datamodule = modules.datamodule.DigitsDataModule(data_dir=data_dir)
        datamodule.prepare_data()
        datamodule.setup("fit")
        train_loader, val_loader = datamodule.train_dataloader(), datamodule.val_dataloader()
        network = {"class_path": f"{package}.network.MLP", "init_args": {}}
        model = modules.model.LitModel(network=network, compile=compiled, **datamodule.preprocessor.sizes()).to(device)
    autocast = torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16-mixed" else nullcontext()
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = AdamW(model.parameters(), lr=model.hparams["lr"], weight_decay=model.hparams["weight_decay"])
    scheduler = CosineAnnealingLR(optimizer, T_max=max(1, epochs * len(train_loader)))
    steps = 0
    val_acc = 0.0
    for _ in range(epochs):
        model.train()
        for batch in train_loader:
            x, y = batch["inputs"][0].to(device, non_blocking=True), batch["target"].to(device, non_blocking=True)
            with autocast:
                loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            steps += 1
        model.eval()
        total = 0
        val_loss, correct = torch.zeros((), device=device), torch.zeros((), device=device)
        with torch.no_grad(), autocast:
            for batch in val_loader:
                x, y = batch["inputs"][0].to(device, non_blocking=True), batch["target"].to(device, non_blocking=True)
                logits = model(x)
                val_loss += criterion(logits, y) * len(y)
                correct += (logits.argmax(dim=-1) == y).sum()
                total += len(y)
        val_acc = float(correct) / total  # one device-to-host copy per epoch, as a metric's compute() makes
    if device == "cuda":
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    samples = steps * (train_loader.batch_size or 1)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "steps": steps,
        "samples": samples,
        "epochs": epochs,
        "val_acc": val_acc,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--package", required=True)
    parser.add_argument("--src", required=True, help="the generated project's src folder")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true")
    parser.add_argument("--synthetic-samples", type=int, default=0, help="train the GPU-sized synthetic workload")
    parser.add_argument("--compile", action="store_true", help="compile the network, as configs/compile.yaml does")
    args = parser.parse_args()
    sys.path.insert(0, args.src)
    options = {"synthetic_samples": args.synthetic_samples, "compiled": args.compile}
    result = train(args.package, args.data_dir, args.epochs, device=args.device, precision=args.precision, **options)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
