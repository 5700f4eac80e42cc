"""The verdict of rows timed in fewer than 3 rounds: they cannot be told apart, and a range of one
point is no range."""

from __future__ import annotations

import re

from tests.cli import run_cli

ONE_POINT_RANGE = re.compile(r"range (\d[\d.]*)\s*[–-]\s*\1×")


def test_one_timed_round_prints_no_range_and_says_the_rows_cannot_be_told_apart(tmp_path):
    out = tmp_path / "out"
    r = run_cli("run", "--backends", "numpy", "torch", "--datasets", "iris", "--dtypes", "float64", "--formulations",
                "logits", "--iters", "20", "--repeats", "1", "--budget", "1e-9", "--out", out)
    assert r.returncode == 0, r.stderr[-1500:]
    summary = (out / "summary.md").read_text()
    for text in (r.stdout, summary):
        line = next(x for x in text.splitlines() if "NumPy vs PyTorch" in x or "faster" in x)
        assert not ONE_POINT_RANGE.search(" ".join(text.split())), line
        assert re.search(r"(cannot|can't|not) be told apart", text), line
