"""Migration: carry a generated file that a template version moves, with the user's edits, to its new path.

copier runs this in the project after an update that crosses the version that moved the file (`_migrations` in
copier.yml, after stage). By then copier has written the new template's file at NEW and deleted OLD, which it only
knew as a template file. The user's OLD is still in the last commit (copier refuses to update a dirty project): this
merges it into NEW the way `copier update` merges any file, three ways, with the old template's OLD as the common
ancestor, so the user's edits and the template's changes both arrive and clashes show as inline conflict markers.
Running it again, or in a project that never had OLD, changes nothing.
"""

from __future__ import annotations  # runs on the Python that runs copier, which may be 3.9

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from copier import run_copy

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]


def say(message: str) -> None:
    print(f"migration: {message}", file=sys.stderr)


def committed(path: str) -> bytes | None:
    """The file as the last commit holds it, or None."""
    result = subprocess.run(["git", "show", f"HEAD:./{path}"], capture_output=True, check=False)
    return result.stdout if result.returncode == 0 else None


def render_template(answers_text: str, ref: str, destination: Path, answers_file: str) -> None:
    """The project as template version `ref` makes it with the answers of an answers file's text."""
    answers = yaml.safe_load(answers_text) or {}
    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    run_copy(
        str(TEMPLATE_ROOT),
        destination,
        data=data,
        vcs_ref=ref,
        defaults=True,
        quiet=True,
        skip_tasks=True,
        unsafe=True,
        answers_file=answers_file,
    )


def render_old_template(answers_file: str, from_ref: str, destination: Path) -> None:
    """The project as the template version it was last updated from made it: the common ancestor of the merge."""
    render_template((committed(answers_file) or b"").decode("utf-8"), from_ref, destination, answers_file)


def merge(ours: bytes, base: bytes, theirs: bytes, labels: tuple[str, str, str]) -> tuple[bytes, int]:
    """`git merge-file`: the merged text and the number of conflicts."""
    with tempfile.TemporaryDirectory() as folder:
        texts = {"ours": ours, "base": base, "theirs": theirs}
        paths = [Path(folder, name) for name in texts]
        for path in paths:
            path.write_bytes(texts[path.name])
        command = ["git", "merge-file", "--stdout"]
        for label in labels:
            command += ["-L", label]
        result = subprocess.run([*command, *map(str, paths)], capture_output=True, check=False)
    if result.returncode < 0 or result.returncode > 127:
        raise SystemExit(f"migration: `git merge-file` failed: {result.stderr.decode(errors='replace')}")
    return result.stdout, result.returncode


def move(old: str, new: str, answers_file: str, from_ref: str) -> None:
    ours = committed(old)
    if ours is None:
        say(f"{old} is not in the project: nothing to move.")
        return
    if committed(new) is not None:
        say(f"{new} was already in the project before this update: left {old} and {new} as they are.")
        return
    target = Path(new)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file():
        target.write_bytes(ours)
        say(f"moved {old} -> {new}, with your content.")
    else:
        with tempfile.TemporaryDirectory() as folder:
            render_old_template(answers_file, from_ref, Path(folder))
            base_path = Path(folder, old)
            base = base_path.read_bytes() if base_path.is_file() else b""
        merged, conflicts = merge(ours, base, target.read_bytes(), ("before updating", "last update", "after updating"))
        target.write_bytes(merged)
        if conflicts:
            say(f"moved {old} -> {new}: {conflicts} conflict(s) between your edits and the template's, marked inline.")
        else:
            say(f"moved {old} -> {new}, with your edits merged into the template's new version.")
    Path(old).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("old", help="path the older template version generated, relative to the project")
    parser.add_argument("new", help="path the newer version generates instead")
    parser.add_argument("--answers-file", default=".copier-answers.yml")
    parser.add_argument(
        "--from-ref",
        default=os.environ.get("VERSION_FROM"),
        help="template version the project is updated from (copier sets VERSION_FROM for migrations)",
    )
    args = parser.parse_args(argv)
    if not args.from_ref:
        parser.error("--from-ref is needed outside `copier update` (which sets VERSION_FROM)")
    move(args.old, args.new, args.answers_file, args.from_ref)


if __name__ == "__main__":
    main()
