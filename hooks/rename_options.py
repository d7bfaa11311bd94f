"""Migration: rename the config keys a release renamed, in the user's YAML files under configs/.

copier runs this after an update that crosses the release (`_migrations` in copier.yml, after stage) with the
template's `renamed_options` (old dotted option -> new). copier's own three-way merge cannot tell a moved key from an
edit: a value the user changed under the old key conflicts with the template's new layout. So each config the template
generates is merged again, three ways, with the user's file and the old template's render both renamed first: the
user's values arrive under the new keys and only real clashes are marked. The user's own configs (an experiment file)
are renamed in place. Keys are renamed where they are mapping keys (`model:` / `  hidden_dim: 64`), whole dotted keys
(a sweep's `model.hidden_dim: {type: int, ...}`) or command-line options in strings (`--model.hidden_dim=64`).

The files are rewritten line by line, comments and layout kept (copier's Python has PyYAML, which drops comments, and
no round-trip YAML library). The result must read, with PyYAML, as the original data renamed: a file this cannot
rewrite (flow mappings, anchors) is left as it is, with a line naming the keys to rename by hand. A rename whose old
key the new template still writes is not applied. Running it again changes nothing.
"""

from __future__ import annotations  # runs on the Python that runs copier, which may be 3.9

import argparse
import contextlib
import copy
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from migrate import committed, merge, render_template, say

KeyPath = tuple  # of str, or None for a sequence item on the way
KEY = re.compile(r"""(?P<key>"[^"\n]*"|'[^'\n]*'|[^\s#'"{}\[\],&*!|>%@`-][^#\n]*?)[ \t]*:(?=[ \t]|$)""")


class CannotRename(Exception):
    """The file's layout is one this line-based rewrite does not handle; it is left unchanged."""


@dataclass
class Entry:
    """A `key:` line of a block mapping."""

    line: int
    column: int
    key: str  # unquoted
    raw_key: str
    path: KeyPath
    has_value: bool  # a scalar or flow value on the same line, rather than a nested block


def split_comment(text: str) -> tuple[str, str]:
    """A line's YAML and its comment (` # ...`), split outside quotes."""
    quote = None
    for index, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"" and (index == 0 or text[index - 1] in " \t:[{,-"):
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t"):
            return text[:index], text[index:]
    return text, ""


def is_structural(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and not stripped.startswith("#")


def indent_of(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def scan(lines: list[str]) -> list[Entry]:
    """The mapping keys of a block-style YAML file, each with its path (lines of block scalars are skipped)."""
    entries: list[Entry] = []
    stack: list[tuple[int, str | None]] = []
    block_scalar_column = -1
    for number, text in enumerate(lines):
        if not is_structural(text):
            continue
        column = indent_of(text)
        if block_scalar_column >= 0 and column > block_scalar_column:
            continue
        block_scalar_column = -1
        content = text[column:].rstrip("\n")
        while content == "-" or content.startswith("- "):
            stack = [item for item in stack if item[0] < column]
            stack.append((column, None))
            step = 1 + indent_of(content[1:])
            column, content = column + step, content[step:]
        match = KEY.match(content)
        if not match:
            continue
        raw_key = match["key"]
        key = raw_key[1:-1] if raw_key[:1] in "'\"" else raw_key
        stack = [item for item in stack if item[0] < column]
        value = split_comment(content[match.end() :])[0].strip()
        entries.append(Entry(number, column, key, raw_key, (*(item[1] for item in stack), key), bool(value)))
        stack.append((column, key))
        if value[:1] in ("|", ">"):
            block_scalar_column = column
    return entries


def extent(lines: list[str], entry: Entry) -> int:
    """The index after the last line of `entry`'s value: its deeper lines, without trailing blanks and comments."""
    end = entry.line + 1
    for number in range(entry.line + 1, len(lines)):
        text = lines[number]
        if not is_structural(text):
            continue
        column = indent_of(text)
        compact_sequence = column == entry.column and text.lstrip(" ").startswith("-") and not entry.has_value
        if column <= entry.column and not compact_sequence:
            break
        end = number + 1
    return end


def indent_step(entries: list[Entry]) -> int:
    steps = [
        entries[index].column - entries[index - 1].column
        for index in range(1, len(entries))
        if entries[index].path[:-1] == entries[index - 1].path and entries[index].column > entries[index - 1].column
    ]
    return min(steps, default=2)


def find(entries: list[Entry], path: KeyPath) -> Entry | None:
    return next((entry for entry in entries if entry.path == path), None)


def reindented(block: list[str], shift: int) -> list[str]:
    if shift >= 0:
        return [" " * shift + text if text.strip() else text for text in block]
    return [text[min(-shift, indent_of(text)) :] for text in block]


def move_key(lines: list[str], old: KeyPath, new: KeyPath) -> list[str]:
    """Move the entry at `old` (its line and nested lines) to `new`, creating the mappings on the way."""
    entries = scan(lines)
    entry = find(entries, old)
    if entry is None:
        return lines
    if find(entries, new) is not None:
        raise CannotRename(f"both {'.'.join(old)} and {'.'.join(new)} are set: keep one")
    step = indent_step(entries)
    start, end = entry.line, extent(lines, entry)
    block = list(lines[start:end])
    block[0] = block[0][: entry.column] + new[-1] + block[0][entry.column + len(entry.raw_key) :]
    rest = lines[:start] + lines[end:]
    if rest and not rest[-1].endswith("\n"):
        rest[-1] += "\n"
    if block and not block[-1].endswith("\n"):
        block[-1] += "\n"
    common = 0
    while common < min(len(old), len(new)) - 1 and old[common] == new[common]:
        common += 1
    remaining = scan(rest)
    anchor = None
    for depth in range(len(new) - 1, common, -1):
        anchor = find(remaining, new[:depth])
        if anchor is not None:
            break
    if anchor is not None:
        if anchor.has_value:
            raise CannotRename(f"{'.'.join(new[:depth])} has a value of its own: cannot add {'.'.join(new)} under it")
        children = [item for item in remaining if item.path[:-1] == anchor.path]
        position, column, chain = (
            extent(rest, anchor),
            (children[0].column if children else anchor.column + step),
            new[depth:-1],
        )
    elif common == len(old) - 1:
        position, column, chain = start, entry.column, new[common:-1]
    else:
        parent = find(remaining, new[:common]) if common else None
        if common and parent is None:
            raise CannotRename(f"no {'.'.join(new[:common])} mapping to move {'.'.join(old)} into")
        position = extent(rest, parent) if parent else len(rest)
        column, chain = (parent.column + step) if parent else 0, new[common:-1]
    created = [" " * (column + level * step) + name + ":\n" for level, name in enumerate(chain)]
    moved = reindented(block, column + len(chain) * step - entry.column)
    result = rest[:position] + created + moved + rest[position:]
    return drop_emptied_parents(result, old[:-1])


def drop_emptied_parents(lines: list[str], path: KeyPath) -> list[str]:
    """Remove the `key:` lines left with nothing under them by a move, innermost first."""
    while path:
        entries = scan(lines)
        parent = find(entries, path)
        if parent is None or parent.has_value or any(item.path[:-1] == path for item in entries):
            break
        lines = lines[: parent.line] + lines[extent(lines, parent) :]
        path = path[:-1]
    return lines


def option_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.-])--{re.escape(name)}(?=[=\s\"',\]}}]|$)")


def rename_in_place(lines: list[str], old: str, new: str) -> list[str]:
    """A whole dotted key (`model.hidden_dim:`), and `--model.hidden_dim` options in values; comments are left."""
    result = list(lines)
    for entry in scan(lines):
        if entry.key == old:
            text = result[entry.line]
            result[entry.line] = text[: entry.column] + new + text[entry.column + len(entry.raw_key) :]
    pattern = option_pattern(old)
    for number, text in enumerate(result):
        code, comment = split_comment(text.rstrip("\n"))
        if pattern.search(code):
            result[number] = pattern.sub(f"--{new}", code) + comment + ("\n" if text.endswith("\n") else "")
    return result


def renamed_data(data: Any, renames: dict[str, str]) -> Any:
    """What the file must read as after the renames: the same rewrite done on PyYAML's reading of it."""
    data = copy.deepcopy(data)
    for old, new in renames.items():
        old_path, new_path = old.split("."), new.split(".")
        parents = [data]
        for name in old_path[:-1]:
            parents.append(parents[-1].get(name) if isinstance(parents[-1], dict) else None)
        if isinstance(parents[-1], dict) and old_path[-1] in parents[-1]:
            value = parents[-1].pop(old_path[-1])
            target = data
            for name in new_path[:-1]:
                target = target.setdefault(name, {})
            target[new_path[-1]] = value
            for depth in range(len(old_path) - 1, 0, -1):  # the line rewrite drops the `key:` lines left empty
                if parents[depth] != {}:
                    break
                del parents[depth - 1][old_path[depth - 1]]
        data = rename_everywhere(data, old, new)
    return data


def rename_everywhere(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {(new if key == old else key): rename_everywhere(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [rename_everywhere(item, old, new) for item in value]
    if isinstance(value, str):
        return option_pattern(old).sub(f"--{new}", value)
    return value


def rename_keys(text: str, renames: dict[str, str]) -> str:
    """`text` with every old key of `renames` renamed; raises CannotRename where the layout is not handled."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise CannotRename(f"PyYAML cannot read it ({error.__class__.__name__})") from error
    lines = text.splitlines(keepends=True)
    for old, new in renames.items():
        lines = move_key(lines, tuple(old.split(".")), tuple(new.split(".")))
        lines = rename_in_place(lines, old, new)
    result = "".join(lines)
    try:
        renamed = yaml.safe_load(result)
    except yaml.YAMLError as error:
        raise CannotRename("the renamed text is not YAML") from error
    if renamed != renamed_data(data, renames):
        raise CannotRename("its layout is one this rewrite does not handle")
    return result


def mentions(text: str, renames: dict[str, str]) -> bool:
    """Whether any old key may be in `text` (a quick look before parsing)."""
    return any(old.rsplit(".", 1)[-1] in text for old in renames)


def changes(text: str, old: str, new: str) -> bool:
    try:
        return rename_keys(text, {old: new}) != text
    except CannotRename:
        return False


def set_index(path: str, conflicted: bool, stages: tuple[bytes, bytes, bytes]) -> None:
    """Mark `path` unmerged (base, ours, theirs) as copier does for its conflicts; or merged, the index at HEAD's."""
    listed = subprocess.run(["git", "ls-tree", "HEAD", "--", path], capture_output=True, text=True, check=True)
    mode, _, head_blob = listed.stdout.split("\t")[0].split()
    prefix = subprocess.run(["git", "rev-parse", "--show-prefix"], capture_output=True, text=True, check=True)
    full_path = prefix.stdout.strip() + path  # --index-info takes paths from the repository's top (a subproject)
    none = "0" * 40
    entries = [f"0 {none} {stage}\t{full_path}" for stage in (1, 2, 3)] + [f"0 {none}\t{full_path}"]
    if not conflicted:
        entries.append(f"{mode} {head_blob} 0\t{full_path}")
    for stage, content in enumerate(stages if conflicted else (), start=1):
        blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], input=content, capture_output=True, check=True)
        entries.append(f"{mode} {blob.stdout.decode().strip()} {stage}\t{full_path}")
    subprocess.run(["git", "update-index", "--index-info"], input="\n".join(entries).encode(), check=True)


def committed_configs(folder: str) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "HEAD", "--", folder], capture_output=True, text=True, check=False
    )
    return [path for path in listed.stdout.splitlines() if path.endswith((".yaml", ".yml"))]


def still_written(renames: dict[str, str], rendered: Path, folder: str) -> dict[str, str]:
    """The renames whose old key the new template's own configs still hold: not in effect yet."""
    kept = {}
    for path in sorted((rendered / folder).rglob("*.y*ml")):
        text = path.read_text(encoding="utf-8")
        for old, new in renames.items():
            if old not in kept and mentions(text, {old: new}) and changes(text, old, new):
                kept[old] = str(path.relative_to(rendered))
    return kept


def rename(renames: dict[str, str], answers_file: str, from_ref: str, to_ref: str, folder: str) -> None:
    users = {}
    for path in committed_configs(folder):
        text = (committed(path) or b"").decode("utf-8")
        if mentions(text, renames):
            users[path] = text
    if not users:
        return
    with tempfile.TemporaryDirectory() as old_folder, tempfile.TemporaryDirectory() as new_folder:
        old_render, new_render = Path(old_folder), Path(new_folder)
        answers = (committed(answers_file) or b"").decode("utf-8")
        render_template(answers, from_ref, old_render, answers_file)
        render_template(Path(answers_file).read_text(encoding="utf-8"), to_ref, new_render, answers_file)
        for old, where in still_written(renames, new_render, folder).items():
            say(f"{old} is renamed to {renames.pop(old)}, but the template still writes {old} in {where}: not renamed.")
        for path, user in users.items():
            rename_file(path, user, renames, old_render / path, new_render / path)


def rename_file(path: str, user: str, renames: dict[str, str], base_file: Path, theirs_file: Path) -> None:
    try:
        ours = rename_keys(user, renames)
    except CannotRename as error:
        say(f"{path}: {error}; rename by hand: {', '.join(f'{old} -> {new}' for old, new in renames.items())}.")
        return
    if ours == user:
        return
    target = Path(path)
    what = ", ".join(f"{old} -> {new}" for old, new in renames.items() if changes(user, old, new))
    if not base_file.is_file():
        if target.is_file() and target.read_text(encoding="utf-8") == user:
            target.write_text(ours, encoding="utf-8")
            say(f"{path}: renamed {what}.")
        else:
            say(f"{path}: the update changed it too; rename by hand: {what}.")
        return
    if not theirs_file.is_file() or not target.is_file():
        return  # the new template no longer writes it, and copier removed it
    base = base_file.read_text(encoding="utf-8")
    with contextlib.suppress(CannotRename):  # then the merge marks the renamed lines as the user's edits
        base = rename_keys(base, renames)
    stages = (base.encode(), ours.encode(), theirs_file.read_bytes())
    merged, conflicts = merge(stages[1], stages[0], stages[2], ("before updating", "last update", "after updating"))
    target.write_bytes(merged)
    set_index(path, bool(conflicts), stages)
    if conflicts:
        say(f"{path}: renamed {what}; {conflicts} conflict(s) between your edits and the template's, marked inline.")
    else:
        say(f"{path}: renamed {what}, your values merged into the template's new version.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--renames", required=True, help='JSON object, old option -> new: {"model.a": "model.b.a"}')
    parser.add_argument("--answers-file", default=".copier-answers.yml")
    parser.add_argument("--folder", default="configs", help="where the project's YAML configs are")
    parser.add_argument("--from-ref", default=os.environ.get("VERSION_FROM"), help="copier sets VERSION_FROM")
    parser.add_argument("--to-ref", default=os.environ.get("VERSION_TO"), help="copier sets VERSION_TO")
    args = parser.parse_args(argv)
    if not (args.from_ref and args.to_ref):
        parser.error("--from-ref and --to-ref are needed outside `copier update` (which sets VERSION_FROM/VERSION_TO)")
    renames = json.loads(args.renames)
    if renames:
        rename(renames, args.answers_file, args.from_ref, args.to_ref, args.folder)


if __name__ == "__main__":
    main()
