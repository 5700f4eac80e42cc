"""docs/schema.md lists every runs.csv column, in order, each with its description (bench.records)."""

from __future__ import annotations

import re
from pathlib import Path

from bench.records import DESCRIPTIONS, SCHEMA
from bench.report.documents import schema_markdown

DOC = Path(__file__).resolve().parent.parent / "docs" / "schema.md"
REGENERATE = "regenerate it: python -m bench report --schema docs/schema.md"


def test_every_row_field_has_a_description():
    missing = [c for c in SCHEMA if not DESCRIPTIONS.get(c, "").strip()]
    assert not missing, f"Row fields without a description in bench.records.DESCRIPTIONS: {missing}"
    unknown = [c for c in DESCRIPTIONS if c not in SCHEMA]
    assert not unknown, f"DESCRIPTIONS names fields Row does not have: {unknown}"


def test_schema_doc_lists_the_csv_columns_in_order():
    documented = re.findall(r"^\| `([^`]+)` \|", DOC.read_text(), flags=re.M)
    assert documented == list(SCHEMA), f"docs/schema.md and runs.csv's columns disagree; {REGENERATE}"


def test_schema_doc_is_the_generated_text():
    assert DOC.read_text() == schema_markdown(), f"docs/schema.md is not what the generator writes; {REGENERATE}"
