"""The time-to-a-trained-model block: its cases in the default run, the measured point
times behind time to target, the verdict lines, and optimizer as part of a row's identity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench import cli, runner as pipeline, selection, time_to_model as ttm
from bench.compare import compare_runs
from bench.records import as_run
from bench.report import pivot_times, time_to_target
from bench.report.time_to_model import time_to_model_verdict
from bench.targets import point_times


def _args(argv):
    args = cli.build_parser().parse_args(argv)
    selection.common(args)
    return args


def test_the_block_in_the_reference_run_and_time_to_model_alone():
    cases = selection.cases(_args(["run", "--blocks", "all"]))
    block = [c for c in cases if c.dataset == ttm.DATASET]
    got = {(c.backend, c.config.optimizer) for c in block}
    for b in ttm.BACKENDS:
        assert {(b, "gd"), (b, "adam"), (b, "lbfgs")} <= got
    assert {(s, "solver") for s in ttm.SOLVERS} <= got
    assert all(c.config.dtype == "float64" and c.config.formulation == "logits" and c.config.l2 == ttm.L2
               and c.device == "cpu" for c in block)
    # scikit-learn's solvers have no gradient descent: they are in no other block
    assert not [c for c in cases if c.backend.startswith("sklearn") and c.dataset != ttm.DATASET]
    only = selection.cases(_args(["run", "--time-to-model", "--backends", "numpy", "sklearn-newton-cholesky"]))
    assert {(c.backend, c.config.optimizer) for c in only} == {("numpy", "gd"), ("numpy", "adam"), ("numpy", "lbfgs"),
                                                                ("sklearn-newton-cholesky", "solver")}
    block = selection.cases(_args(["run", "--blocks", "time-to-model",
                                   "--backends", "numpy", "sklearn-newton-cholesky"]))
    assert [c.case_id for c in block] == [c.case_id for c in only], "--backends picks the block's loops either way"


def test_point_times_one_definition():
    np.testing.assert_allclose(point_times([0, 2, 4], 0.5), [0, 1, 2])
    np.testing.assert_allclose(point_times([0, 2, 4], 0.5, [np.nan, 0.3, np.nan]), [0, 0.3, 2])


@pytest.fixture(scope="module")
def run():
    cases = [c for c in ttm.cases(("cpu",), 0, ("numpy",), ("sklearn-newton-cholesky",))
             if c.config.optimizer != "adam"]
    return pipeline.run(cases, options=pipeline.RunOptions(repeats=3, budget_s=0.2))


@pytest.mark.slow
def test_block_verdict(run):
    rows, losses, _ = as_run(run.frame(), run.losses())
    assert set(rows["status"]) == {"ok"}, rows[["backend", "optimizer", "status", "reason"]]
    ttt = time_to_target(rows, losses, targets=(1e-6,))
    lb = ttt[ttt["optimizer"] == "lbfgs"].iloc[0]
    # a measured time (the iteration's end), not step x time per step
    cur = losses[losses["case_id"] == lb["case_id"]]
    assert lb["time_s"] == pytest.approx(float(cur.loc[cur["step"] == lb["step"], "time_s"].iloc[0]))
    sections = dict(time_to_model_verdict(rows, losses))
    assert len(sections) == 1
    text = "\n".join(next(iter(sections.values())))
    assert "NumPy+SciPy: 1e-04 in" in text and "scikit-learn: 1e-04 in" in text and "1e-06 in" in text
    assert "Fixed-step gradient descent" in text and "never gets to 1e-04" in text
    assert "`numpy` lbfgs" in text


def test_optimizer_is_identity(run):
    rows = as_run(run.frame()).rows
    gd = rows[rows["optimizer"] == "gd"].copy()
    adam = gd.assign(optimizer="adam", case_id=gd["case_id"].str.replace("|w1|", "|adam|w1|", regex=False))
    both = pd.concat([gd, adam], ignore_index=True)
    pivot = pivot_times(both, "float64")
    assert pivot.shape[1] == 2 and any("adam" in c for c in pivot.columns)
    # matched on the keys (no case_id): a gd row is never compared with an adam row
    cmp = compare_runs(as_run(gd.drop(columns=["case_id"])).rows, as_run(adam.drop(columns=["case_id"])).rows,
                       by_case_id=False)
    assert cmp.empty or not len(cmp.dropna(subset=["time_per_iter_b_s"]))
