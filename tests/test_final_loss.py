"""One row, one meaning of "final": ``final_loss`` is the loss at the final parameters L(θ_T), the
point ``suboptimality`` = L(θ_T) − L* is measured at."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.cli import run_cli


def test_final_loss_is_the_loss_at_the_final_parameters(tmp_path):
    out = tmp_path / "out"
    r = run_cli("run", "--backends", "numpy", "--datasets", "iris", "--dtypes", "float64", "--formulations", "logits",
                "--iters", "50", "--repeats", "1", "--budget", "1e-9", "--out", out)
    assert r.returncode == 0, r.stderr[-1500:]
    row = pd.read_csv(out / "runs.csv").iloc[0]
    assert row.final_loss - row.optimum_loss == pytest.approx(row.suboptimality, rel=1e-9, abs=1e-14), (
        row.final_loss, row.optimum_loss, row.suboptimality)
