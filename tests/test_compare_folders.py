"""`compare` and its output folder, as for every other command: an earlier comparison is not replaced
without --overwrite, a run folder is never written into; and rows left out because their data differ
are said to be, in the console and in compare.csv."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tests.cli import run_cli


def _write_tsv(path, shift: float = 0.0):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(int)
    X[0, 0] += shift
    path.write_text("a\tb\tlabel\n" + "".join(f"{r[0]:.6f}\t{r[1]:.6f}\t{t}\n" for r, t in zip(X, y, strict=True)))


# every test here uses two runs made in their own processes (the data-file cache is per process)
pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs A and B of numpy on iris and data.tsv, the file's first value changed between them. Each
    run is its own process, as a user's two runs are (in one process the loaded data set is kept by name)."""
    root = tmp_path_factory.mktemp("compare")
    for name, shift in (("A", 0.0), ("B", 1.0)):
        _write_tsv(root / "data.tsv", shift)
        r = run_cli("run", "--backends", "numpy", "--datasets", "iris", "data.tsv", "--dtypes", "float64",
                    "--formulations", "logits", "--iters", "20", "--repeats", "3", "--budget", "1e-9",
                    "--out", name, cwd=root, isolated=True)
        assert r.returncode == 0, r.stderr[-1500:]
    return root


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_compare_refuses_a_folder_holding_an_earlier_comparison(runs, tmp_path):
    out = tmp_path / "C"
    first = run_cli("compare", runs / "A", runs / "B", "--out", out)
    assert first.returncode == 0, first.stderr[-1500:]
    before = _files(out)
    again = run_cli("compare", runs / "B", runs / "A", "--out", out)
    assert again.returncode == 2, again.stdout.splitlines()[-1:]
    assert len([line for line in again.stderr.splitlines() if "error:" in line]) == 1, again.stderr
    assert _files(out) == before


def test_compare_overwrite_replaces_an_earlier_comparison(runs, tmp_path):
    out = tmp_path / "C"
    assert run_cli("compare", runs / "A", runs / "B", "--out", out).returncode == 0
    again = run_cli("compare", runs / "B", runs / "A", "--out", out, "--overwrite")
    assert again.returncode == 0, again.stderr[-1500:]
    table = pd.read_csv(out / "compare.csv")
    matched = table[table.note.isna()]  # data.tsv differs between A and B: left out, no ratio (see below)
    assert len(matched) == 1 and matched.ratio.notna().all(), table[["case_id", "ratio", "note"]]


def test_compare_never_writes_into_a_run_folder(runs):
    before = _files(runs / "A")
    r = run_cli("compare", runs / "A", runs / "A", "--out", runs / "A")
    assert r.returncode == 2, r.stdout.splitlines()[-1:]
    assert len([line for line in r.stderr.splitlines() if "error:" in line]) == 1, r.stderr
    assert _files(runs / "A") == before


def test_compare_says_which_rows_were_left_out_because_their_data_differ(runs, tmp_path):
    out = tmp_path / "C"
    r = run_cli("compare", runs / "A", runs / "B", "--out", out)
    assert r.returncode == 0, r.stderr[-1500:]
    summary = next(line for line in r.stdout.splitlines() if "matched" in line)
    assert "1 only in A" not in summary, summary
    why = re.compile(r"sha256|different data|data differ", re.IGNORECASE)
    assert why.search(r.stdout), r.stdout[-1500:]
    table = pd.read_csv(out / "compare.csv", dtype=str).fillna("")
    left_out = table[table.case_id.str.startswith("data.tsv|")]
    assert len(left_out) == 1, table.case_id.tolist()
    assert any(why.search(v) for v in left_out.iloc[0]), left_out.iloc[0].to_dict()
