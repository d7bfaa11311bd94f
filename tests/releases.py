"""The template's releases, for the real-history update tests (tests/test_release_updates.py, `nox -s history`).

Tags do not travel with this repository, so each release is the commit that stands in for its tag; the tests tag
these commits in a clone and commit the working tree there as `CURRENT`. A new release appends its line: its version,
its commit, and the dataset answers it offered (`git show <commit>:copier.yml`; before v0.3.0 there was no `dataset`
question, and every project trained on the digits).
"""

from typing import NamedTuple


class Release(NamedTuple):
    version: str  # the tag, a PEP 440 version: copier's `_migrations` compare these
    commit: str
    datasets: tuple[str, ...]  # the dataset answers it offered; ("digits",) where it did not ask


ALL_DATASETS = ("digits", "csv", "image_folder")

RELEASES = (
    Release("v0.1.0", "76a41ee", ("digits",)),
    Release("v0.2.0", "25201f1", ("digits",)),
    Release("v0.3.0", "027ea2b", ALL_DATASETS),
    Release("v0.4.3", "01ceaa8", ALL_DATASETS),
    Release("v0.5.0", "13f19be", ALL_DATASETS),
)

CI_RELEASES = 2  # plain `nox -s tests` updates from the newest releases only; `nox -s history` from all of them


def next_version(release: Release) -> str:
    """The version after `release` (its minor bumped): what the working tree is tagged in the tests."""
    major, minor, _ = release.version.removeprefix("v").split(".")
    return f"v{major}.{int(minor) + 1}.0"


CURRENT = next_version(RELEASES[-1])
