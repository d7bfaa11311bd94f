"""Run the matrix's single-process classes in this one Python process, through each project's `cli_main` (and its
export module's `main` for `export`).

Usage: python matrix_worker.py JOBS.json, JOBS a list of {"name", "project", "package", "steps": {step: args}};
prints one JSON line per command run: {"name", "step", "ok", "seconds", "error"}. Lightning is imported once.
"""

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path


def run_job(job: dict) -> None:
    project = Path(job["project"])
    os.chdir(project)
    sys.path.insert(0, str(project / "src"))
    cli = importlib.import_module(f"{job['package']}.cli")
    for step, args in job["steps"].items():
        started = time.perf_counter()
        try:
            if args[0] == "export":  # a module of its own, which the command's `main` hands `export ...` to
                importlib.import_module(f"{job['package']}.export").main(args[1:])
            else:
                cli.cli_main(args)
        except BaseException as error:  # noqa: BLE001  (SystemExit too: the CLI's refusals are failures here)
            ok, message = False, "".join(traceback.format_exception(error))[-3000:]
        else:
            ok, message = True, ""
        result = {"name": job["name"], "step": step, "ok": ok, "seconds": time.perf_counter() - started}
        print(json.dumps({**result, "error": message}), flush=True)
        if not ok:
            return  # the later commands need this one's checkpoint


if __name__ == "__main__":
    for job in json.loads(Path(sys.argv[1]).read_text()):
        run_job(job)
