"""The README is one screen, its links lead somewhere, and every figure in it is read from the
committed reference run: the lines of its answer block are lines of results/reference/summary.md."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
SUMMARY = ROOT / "results" / "reference" / "summary.md"


def _answer_lines() -> list[str]:
    block = README.split("<!-- answer", 1)[1].split("<!-- /answer -->", 1)[0]
    return [line for line in block.splitlines()[1:] if line.strip()]


def test_the_readme_fits_one_screen():
    assert len(README.splitlines()) <= 150


def test_the_answer_is_read_from_the_reference_run():
    lines = _answer_lines()
    assert lines, "the README shows no answer"
    summary = SUMMARY.read_text().splitlines()
    for line in lines:
        assert line in summary, f"not a line of {SUMMARY.relative_to(ROOT)}: {line}"


def test_no_commit_hash_or_timing_history():
    assert not re.search(r"\bcommit [0-9a-f]{7,40}\b|\bat [0-9a-f]{7}\b", README)


def test_every_relative_link_exists():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if "://" not in target:
            assert (ROOT / target).exists(), target
