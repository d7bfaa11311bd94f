"""One request's inputs predicted again and again in process by the generated project's `Predictor`, timed per call:
the baseline of `serve.py`. The inputs are the project's test inputs (`tests/raw_inputs.py`), as a client sends them.

Run it as `python in_process.py --project DIR --package NAME --checkpoint PATH --inputs K --requests N`; it prints one
JSON line last: the latency of each call in seconds and the inputs, for the server's clients to send the same.
"""

import argparse
import importlib
import json
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", type=Path, required=True, help="the generated project")
    parser.add_argument("--package", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--inputs", type=int, default=1, help="inputs per request")
    parser.add_argument("--requests", type=int, default=500, help="timed calls, after as many untimed ones")
    args = parser.parse_args()
    sys.path[:0] = [str(args.project / "src"), str(args.project / "tests")]
    inference = importlib.import_module(f"{args.package}.inference")
    raw_inputs = importlib.import_module("raw_inputs")
    items = raw_inputs.request_inputs(list(range(args.inputs)))
    predictor = inference.Predictor.from_checkpoint(args.checkpoint, device="cpu")
    latencies = []
    for call in range(2 * args.requests):
        start = time.perf_counter()
        predictor.predict(items)
        if call >= args.requests:  # the first half warms up allocators and caches
            latencies.append(time.perf_counter() - start)
    print(json.dumps({"latencies": latencies, "inputs": items}))


if __name__ == "__main__":
    main()
