"""Model outputs as predictions: a class with its confidence and a probability per class, or a number in the
target's units; and the CSV file they are written to, batch by batch.

Torch-free: `predict`, `serve` and the exported model format predictions with this same code. `export` copies this
file into its folder as `predict.py`, whose `main` runs `model.onnx` in onnxruntime on new inputs.
"""

import argparse
import csv
import heapq
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities: np.ndarray = shifted / shifted.sum(axis=-1, keepdims=True)
    return probabilities


class PredictionFormat:
    """The columns and values of predictions, from what the Preprocessor knows of the target."""

    def __init__(
        self, id_column: str, class_names: Sequence[str], target_statistics: Sequence[float] | None = None
    ) -> None:
        self.id_column = id_column
        self.class_names = list(class_names)
        self.target_statistics = target_statistics

    @classmethod
    def of(cls, preprocessor: Any) -> "PredictionFormat":
        return cls(preprocessor.id_column, preprocessor.class_names, preprocessor.target_statistics)

    def header(self, with_target: bool = False) -> list[str]:
        columns = [self.id_column, "prediction"]
        if self.target_statistics is None:
            columns += ["confidence", *(f"probability_{name}" for name in self.class_names)]
        return [*columns, "target"] if with_target else columns

    def in_units(self, standardised: np.ndarray) -> np.ndarray:
        assert self.target_statistics is not None
        mean, std = self.target_statistics
        numbers: np.ndarray = standardised * std + mean
        return numbers

    def rows(self, ids: Sequence[Any], outputs: np.ndarray, targets: np.ndarray | None = None) -> list[list[Any]]:
        """One row per input, in the order of `header`; `targets` are class indices or standardised numbers."""
        if self.target_statistics is not None:
            columns: list[Sequence[Any]] = [ids, self.in_units(outputs).tolist()]
            expected = None if targets is None else self.in_units(targets).tolist()
        else:
            probabilities = softmax(outputs.astype(np.float64))
            names = np.array(self.class_names, dtype=object)
            columns = [ids, names[probabilities.argmax(axis=-1)], probabilities.max(axis=-1), *probabilities.T]
            expected = None if targets is None else names[targets].tolist()
        if expected is not None:
            columns.append(expected)
        return [list(row) for row in zip(*columns, strict=True)]

    def records(self, outputs: np.ndarray) -> list[dict[str, Any]]:
        """Predictions as served: `prediction`, and for classes `confidence` and `probabilities` by class name."""
        if self.target_statistics is not None:
            return [{"prediction": float(number)} for number in self.in_units(outputs)]
        probabilities = softmax(outputs.astype(np.float64))
        return [
            {
                "prediction": self.class_names[int(row.argmax())],
                "confidence": float(row.max()),
                "probabilities": dict(zip(self.class_names, map(float, row), strict=True)),
            }
            for row in probabilities
        ]


class PartialFile:
    """A CSV file written to `<name>.partial` and moved into place when complete, so that no half-written file, or an
    earlier run's, can be taken for this run's result."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.partial = path.with_name(f"{path.name}.partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self.handle = self.partial.open("w", newline="")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(header)
        self.count = 0

    def write(self, rows: list[list[Any]]) -> None:
        self.writer.writerows(rows)
        self.count += len(rows)

    def write_sorted(self, parts: list[Path]) -> None:
        """Merge files whose rows start with the input's position, each in increasing order, dropping that column."""
        handles = [part.open(newline="") for part in parts]
        try:
            readers = [((int(row[0]), row[1:]) for row in csv.reader(handle)) for handle in handles]
            for _, row in heapq.merge(*readers, key=lambda item: item[0]):
                self.writer.writerow(row)
                self.count += 1
        finally:
            for handle in handles:
                handle.close()

    def commit(self) -> None:
        self.handle.close()
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)


class OnnxModel:
    """The exported network, `model.onnx`, in onnxruntime: encoded inputs in, raw outputs out (as `Predictor.outputs`)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime  # noqa: PLC0415  (only exported models need it: `predict` and `serve` run torch)

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_names = [node.name for node in self.session.get_inputs()]

    def __call__(self, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        outputs: np.ndarray = self.session.run(["output"], dict(zip(self.input_names, inputs, strict=True)))[0]
        return outputs


def main(args: Sequence[str] | None = None) -> None:
    """`python predict.py INPUT --output FILE` in a folder written by `export`: the predictions `predict` writes, from
    `model.onnx`, with the preprocessing beside it (`preprocess.py`, `preprocessing.json`) and without torch."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("input", help="new inputs: what `predict --data.predict_path` takes (see README.md)")
    parser.add_argument("--output", default="predictions.csv", help="the CSV file to write (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=256, help="inputs per model call (default: %(default)s)")
    options = parser.parse_args(args)
    folder = Path(__file__).resolve().parent
    sys.path.insert(0, str(folder))  # the copy of preprocess.py beside this file, even under `python -I`
    from preprocess import Preprocessor  # noqa: PLC0415  (found only in an export folder)

    preprocessor = Preprocessor.from_state_dict(json.loads((folder / "preprocessing.json").read_text()))
    model, prediction_format = OnnxModel(folder / "model.onnx"), PredictionFormat.of(preprocessor)
    output = PartialFile(Path(options.output), prediction_format.header())
    try:
        for ids, inputs in preprocessor.iter_inputs(options.input, options.batch_size, on_bad=report_skipped):
            output.write(prediction_format.rows(ids, model(inputs)))
    except ValueError as error:  # the inputs' problem, named: a missing column, no such file
        output.discard()
        sys.exit(str(error))
    except BaseException:
        output.discard()
        raise
    output.commit()
    print(f"{output.count} predictions written to {options.output}")


def report_skipped(input_id: str, reason: str) -> None:
    print(f"{input_id}: skipped, {reason}", file=sys.stderr)


if __name__ == "__main__":
    main()
