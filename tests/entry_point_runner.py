"""Run a project's documented commands one after another in this process, as their console scripts would.

Lightning takes seconds to import; a process per command would pay that for every one. Reads a JSON list of
{"argv": [...], "entry": "module:function" or "-m module", "environment": {...}, "stdout": file or null} on stdin,
runs each from the current directory with `sys.argv` set, and prints one JSON list of exit statuses at the end.
"""

import contextlib
import importlib
import json
import os
import runpy
import sys
import traceback


def exit_status(code: object) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def run(argv: list[str], entry: str) -> int:
    sys.argv = list(argv)
    try:
        if entry.startswith("-m "):
            runpy.run_module(entry[3:], run_name="__main__", alter_sys=True)
        else:
            module, function = entry.split(":")
            getattr(importlib.import_module(module), function)()
    except SystemExit as stop:
        if exit_status(stop.code):
            print(f"exit {stop.code}", file=sys.stderr)
        return exit_status(stop.code)
    except Exception:  # noqa: BLE001 - any error is this command's failure, reported with its traceback
        traceback.print_exc()
        return 1
    return 0


def main() -> None:
    statuses = []
    real_stdout = sys.stdout
    for command in json.load(sys.stdin):
        print(f"$ {' '.join(command['argv'])}", file=sys.stderr, flush=True)
        saved_environment = dict(os.environ)
        os.environ.update(command["environment"])
        with contextlib.ExitStack() as stack:
            target = stack.enter_context(open(command["stdout"], "w", encoding="utf-8")) if command["stdout"] else None
            stack.enter_context(contextlib.redirect_stdout(target or sys.stderr))
            statuses.append(run(command["argv"], command["entry"]))
        os.environ.clear()
        os.environ.update(saved_environment)
    print(json.dumps(statuses), file=real_stdout)


if __name__ == "__main__":
    main()
