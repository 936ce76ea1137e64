"""The docs stand alone: no tracker numbers, no paths outside the repository, no dead links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

TRACKER = re.compile(r"\b[Ii]ssues? #?\d+|(?<![\w/&])#\d{1,4}\b")
OUTSIDE = re.compile(r"/work/|/root/|\.\./shared|design\.md §|design brief")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def _ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", DOCS, ids=_ids)
def test_no_tracker_numbers_or_outside_paths(path: Path) -> None:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        assert not TRACKER.search(line), f"{_ids(path)}:{number}: tracker number: {line.strip()}"
        assert not OUTSIDE.search(line), f"{_ids(path)}:{number}: outside path: {line.strip()}"


@pytest.mark.parametrize("path", DOCS, ids=_ids)
def test_relative_links_resolve(path: Path) -> None:
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        assert (path.parent / target).exists(), f"{_ids(path)}: dead link {target}"
