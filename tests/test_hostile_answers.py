"""Hostile answers: every typed value renders a valid project or is refused by name, and is never run as code.

Hypothesis draws project_name, package_name, description, author_name and author_email from quotes, backslashes,
YAML/TOML/Jinja/shell syntax, line breaks and control characters, unicode, very long strings, Python keywords and
module names. Each draw must either render a project whose pyproject.toml, YAML files, Python files and package
metadata parse and carry the typed text unchanged, or raise a ValueError naming the question, leaving no folder.
"""

import ast
import email.parser
import email.utils
import keyword
import os
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Render, answers_of
from copier import run_copy
from hatchling.metadata.core import ProjectMetadata
from hatchling.metadata.spec import construct_metadata_file_2_2
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

MAX_EXAMPLES = 100
FREE_TEXT = ("project_name", "description", "author_name")
# Characters with a meaning somewhere in the generated files: TOML, YAML, Jinja, shell, Python, Markdown, e-mail.
SYNTAX = [*list("\"'\\`$(){}[]<>|&;:#*!%@,=.?~^/+-_ "), '"""', "'''", "{{", "}}", "{%", "%}", "${", "$(", "\\n", "\\u"]
BREAKS = ["\n", "\r\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"]
UNICODE = ["é", "Zoë", "ß", "日本語", "Ωμέγα", "עברית", "🚀", "\u200b", "\ufeff", "ﬁ", "Ǆ"]
MODULE_NAMES = ["torch", "lightning", "pytorch_lightning", "torchmetrics", "os", "sys", "json", "typing", "site", "src"]
INJECTIONS = [
    '"""; import os; os.system("touch PWNED") #',
    "'; import os #",
    "{{ 7 * 7 }}",
    "{% raw %}",
    "$(touch PWNED)",
    "`touch PWNED`",
    "]\n[tool.evil]\nx = 1",
    "key: value\n- item",
    "!!python/object/apply:os.system ['touch PWNED']",
]


def fragments() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(SYNTAX + UNICODE + MODULE_NAMES + INJECTIONS + keyword.kwlist),
        st.sampled_from(BREAKS),
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
        st.from_regex(r"[A-Za-z][A-Za-z0-9 ]{0,20}", fullmatch=True),
    )


def free_text() -> st.SearchStrategy[str]:
    joined = st.lists(fragments(), max_size=6).map("".join)
    very_long = st.tuples(st.sampled_from(["x", "Zoë ", "\\", '"', "{{"]), st.integers(300, 3000)).map(
        lambda piece_count: piece_count[0] * piece_count[1]
    )
    return st.one_of(joined, joined, joined, very_long)


def package_names() -> st.SearchStrategy[str]:
    return st.one_of(
        st.from_regex(r"[a-z][a-z0-9_]{0,55}", fullmatch=True),
        st.sampled_from(keyword.kwlist + MODULE_NAMES + ["Bad-Name", "9lives", "_private", "a b", "ünïcode"]),
        free_text(),
    )


def emails() -> st.SearchStrategy[str]:
    return st.one_of(
        st.emails(),
        st.tuples(free_text(), st.sampled_from(["@example.org", "@b", "@@x.io", ""])).map("".join),
    )


ANSWERS = st.fixed_dictionaries(
    {},
    optional={
        "project_name": free_text(),
        "package_name": package_names(),
        "description": free_text(),
        "author_name": free_text(),
        "author_email": emails(),
    },
)


def check_rendered(project: Path, answers: dict[str, Any], python_sources: str) -> None:
    """Every file parses, and the typed text arrives unchanged where it belongs and nowhere in Python code."""
    recorded = answers_of(project)
    for question, value in answers.items():
        assert recorded[question] == value, f"{question} was not recorded unchanged"
    package = recorded["package_name"]
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert pyproject["description"] == recorded["description"]
    assert pyproject["authors"] == [{"name": recorded["author_name"], "email": recorded["author_email"]}]
    assert pyproject["scripts"][package] == f"{package}.cli:main"
    metadata = email.parser.Parser().parsestr(construct_metadata_file_2_2(ProjectMetadata(str(project), None)))
    assert (metadata["Summary"] or "").strip() == recorded["description"].strip()
    name, address = email.utils.parseaddr(metadata["Author-email"])
    assert (name, address) == (recorded["author_name"].strip(), recorded["author_email"])
    assert (project / "README.md").read_text(encoding="utf-8").startswith(f"# {recorded['project_name']}\n")
    for path in project.rglob("*.y*ml"):
        yaml.safe_load(path.read_text(encoding="utf-8"))
    python_text = ""
    for path in project.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        ast.parse(source, str(path))
        python_text += source
    assert (project / "src" / package / "__init__.py").is_file()
    for question in FREE_TEXT:
        value = recorded[question].strip()
        # A project name that is already a valid identifier is the package name, which Python code imports.
        if len(value) >= 6 and value not in python_sources and value not in package:
            assert value not in python_text, f"{question} was written into Python source"


def test_hostile_answers_render_valid_projects_or_are_refused_by_name(
    template_dir: Path, tmp_path: Path, render: Render
) -> None:
    reference = render({}, name="reference")
    python_sources = "".join(path.read_text() for path in reference.rglob("*.py"))
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: it can take minutes; the failing draw is printed
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(answers=ANSWERS)
    def render_or_refuse(answers: dict[str, Any]) -> None:
        destination = tmp_path / f"case{sum(outcomes.values())}"
        try:
            # Tasks (git init, pre-commit) skipped for speed: the fixed hostile set below runs them.
            run_copy(
                str(template_dir), destination, data=answers, defaults=True, unsafe=True, quiet=True, skip_tasks=True
            )
        except ValueError as refusal:
            message = str(refusal)
            assert "Validation error for question '" in message
            question = message.split("'")[1]
            outcomes[f"refused ({question})"] += 1
            assert question in {*answers, "package_name"}, f"refusal names {question}, not a typed answer"
            assert not destination.exists(), "a refused answer left files behind"
            return
        outcomes["rendered"] += 1
        check_rendered(destination, answers, python_sources)

    render_or_refuse()
    print(f"\nhostile answer sets tried: {sum(outcomes.values())} ({dict(outcomes)})")
    assert outcomes["rendered"] >= MAX_EXAMPLES // 10, outcomes
    assert outcomes.total() - outcomes["rendered"] >= MAX_EXAMPLES // 10, outcomes


HOSTILE = {
    "package_name": "hostile_project",
    "project_name": '{{ 7 * 7 }} "Quoted" \\ Zoë; $(touch PWNED) `id` 🚀',
    "description": '"""; import os; os.system("touch PWNED") # \' ]] [tool.evil] {% raw %}',
    "author_name": "O'Brien \\ Zoë (ML) $HOME",
    "author_email": "o.brien+ml@example.org",
}


def test_hostile_text_is_kept_literal_and_the_package_imports(render: Render, tmp_path: Path) -> None:
    project = render(HOSTILE)
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert readme.startswith(f"# {HOSTILE['project_name']}\n"), "typed Jinja must not be evaluated"
    assert "49" not in readme.splitlines()[0]
    assert not list(tmp_path.rglob("PWNED")), "typed shell or Python was executed"
    package = answers_of(project)["package_name"]
    result = subprocess.run(
        [sys.executable, "-c", f"import {package}; print({package}.__name__)"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project / "src")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == package
    assert not list(tmp_path.rglob("PWNED"))


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"project_name": "Two\nLines"}, 'project_name "Two\\\\nLines" holds a line break'),
        ({"project_name": "Tab\there"}, "holds a line break or control character"),
        ({"description": "one\u2028two"}, "description .* holds a line break"),
        ({"description": "bell\x07"}, "Type it on one line"),
        ({"author_name": "Doe, John"}, 'author_name "Doe, John" holds one of'),
        ({"author_name": "Ada\r\nLovelace"}, "author_name .* holds a line break"),
        ({"author_email": "ada@example.org\n"}, "is not an e-mail address"),
        ({"author_email": "a\\b@example.org"}, "is not an e-mail address"),
        ({"package_name": "trailing_newline\n"}, "is not a lower-case Python identifier"),
    ],
)
def test_one_line_answers_refuse_breaks_and_control_characters(
    render: Render, tmp_path: Path, answers: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render(answers)
    assert not (tmp_path / "project").exists()
