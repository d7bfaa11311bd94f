"""One `<package> fit` run of the generated CLI with its default config, timed from inside the process.

The imports are done before the clock starts (start-up is measured on its own); the clock covers argument parsing,
Trainer and callback construction, training, validation, checkpointing, logging and teardown, as a user's run has.
Run it as `python cli_fit.py --package NAME --src DIR -- fit --trainer.max_epochs=N ...`; it prints one JSON line last.
"""

import argparse
import importlib
import json
import sys
import time

import synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--package", required=True)
    parser.add_argument("--src", required=True, help="the generated project's src folder")
    parser.add_argument("--synthetic-samples", type=int, default=0, help="fit the GPU-sized synthetic workload")
    parser.add_argument("cli_args", nargs=argparse.REMAINDER, help="arguments of the generated command, after --")
    args = parser.parse_args()
    sys.path.insert(0, args.src)
    cli_module = importlib.import_module(f"{args.package}.cli")
    cli_args = args.cli_args[1:] if args.cli_args[:1] == ["--"] else args.cli_args
    start, start_cpu = time.perf_counter(), time.process_time()
    if args.synthetic_samples:  # the default config's Trainer, callbacks and logger, on synthetic.py's loaders
        cli = cli_module.cli_main([arg for arg in cli_args if arg != "fit"], run=False)
        train, val = synthetic.loaders(args.synthetic_samples)
        cli.trainer.fit(cli.model, train_dataloaders=train, val_dataloaders=val)
    else:
        cli = cli_module.cli_main(cli_args)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    trainer = cli.trainer
    batch_size = synthetic.BATCH_SIZE if args.synthetic_samples else cli.datamodule.batch_size
    result = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "steps": trainer.global_step,
        "samples": trainer.global_step * batch_size,
        "epochs": trainer.current_epoch,
    }
    result["val_acc"] = float(trainer.callback_metrics.get("val/acc", float("nan")))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
