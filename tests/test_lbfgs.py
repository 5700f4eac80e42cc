"""L-BFGS (``optimizer="lbfgs"``) in every backend that declares it, and scikit-learn's solvers
(``optimizer="solver"``): they reach scikit-learn's penalised optimum (parameters within 1e-6
relative, float64) on a well-conditioned problem; what a row records; what is refused."""

from __future__ import annotations

import numpy as np
import pytest

from bench import data, oracle
from bench.cases import RunOptions
from bench.measure import Evaluator
from bench.records import Case
from implementations import TrainConfig, get_backend, reference
from implementations.schedule import init_params

from .conftest import make_trainer

L2 = 1e-2
DATASET = "synthetic-1000x10"  # well conditioned: L-BFGS converges in a few dozen iterations
LBFGS_BACKENDS = ("numpy", "torch", "torch-nn", "jax")
SOLVERS = ("sklearn-lbfgs", "sklearn-newton-cholesky")


@pytest.fixture(scope="module")
def problem():
    ds = data.load(DATASET, 0)
    w0, b0 = init_params(ds.d, 0, ds.init_scale, 2)
    return ds, w0, b0, oracle.fit_optimum(ds.X, ds.y, L2)


@pytest.mark.parametrize("formulation", ["logits", "probs"])
@pytest.mark.parametrize("backend", LBFGS_BACKENDS)
def test_lbfgs_reaches_the_optimum(backend, formulation, problem):
    ds, w0, b0, opt = problem
    cfg = TrainConfig(optimizer="lbfgs", n_iters=100, dtype="float64", formulation=formulation, l2=L2)
    tr = make_trainer(backend, cfg)
    tr.prepare(ds.X, ds.y, w0, b0)
    tr.run()
    res = tr.result()
    assert res.losses.shape == (100,) and np.all(np.isfinite(res.losses))
    assert res.losses[0] == pytest.approx(reference.loss(ds.X, ds.y, w0, b0, formulation, L2), rel=1e-12)
    assert np.all(np.diff(res.losses) <= 1e-12 * abs(res.losses[0]))  # a line search never goes up
    assert opt.rel_distance(res.w, res.b) <= 1e-6
    assert (res.losses[-1] - opt.loss) / abs(opt.loss) <= 1e-10
    assert tr.evaluations >= 2
    # run() starts again from (w0, b0): a second round gives the same answer
    tr.run()
    np.testing.assert_allclose(tr.result().w, res.w, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", SOLVERS)
def test_sklearn_reaches_the_optimum_with_growing_max_iter(backend, problem):
    ds, w0, b0, opt = problem
    cfg = TrainConfig(optimizer="solver", n_iters=8, dtype="float64", formulation="logits", l2=L2)
    tr = make_trainer(backend, cfg)
    tr.prepare(ds.X, ds.y, w0, b0)
    tr.run()
    res = tr.result()
    assert res.losses.shape == (8,) and tr.point_times_s.shape == (8,) and np.all(tr.point_times_s > 0)
    assert opt.rel_distance(res.w, res.b) <= 1e-6
    # losses[i] is the fit with max_iter = 2^i: its loss falls to the optimum
    assert res.losses[0] > res.losses[-1] and (res.losses[-1] - opt.loss) / abs(opt.loss) <= 1e-10
    loss, gw, gb = tr.loss_and_grad(res.w, res.b)
    assert loss == pytest.approx(opt.loss, rel=1e-10) and np.abs(gw).max() < 1e-6


def test_refusals():
    for name in ("numpy", "torch", "torch-nn"):
        why = get_backend(name).unsupported(TrainConfig(optimizer="lbfgs", batch_size=64))
        assert "full batch only" in why
    assert "'gd'" in get_backend("sklearn-lbfgs").unsupported(TrainConfig())
    assert "float64" in get_backend("sklearn-lbfgs").unsupported(TrainConfig(optimizer="solver"))


def test_rows_are_judged_by_the_optimum(problem):
    ev = Evaluator("t", RunOptions(repeats=3, warmup=1, budget_s=0.2, target=1e-6))
    base = TrainConfig(dtype="float64", formulation="logits", l2=L2)
    cases = [Case("numpy", DATASET, TrainConfig(optimizer="lbfgs", n_iters=60, dtype="float64",
                                                formulation="logits", l2=L2)),
             Case("sklearn-newton-cholesky", DATASET, TrainConfig(optimizer="solver", n_iters=6, dtype="float64",
                                                                  formulation="logits", l2=L2)),
             Case("numpy", DATASET, TrainConfig(optimizer="lbfgs", n_iters=2, dtype="float64", formulation="logits",
                                                l2=L2)),
             Case("numpy", DATASET, TrainConfig(optimizer="lbfgs", batch_size=64, dtype="float64", l2=L2))]
    assert base.optimizer == "gd"
    rows = [ev.execute(c) for c in cases]
    lb, sk, short, mini = (o.row for o in rows)
    assert lb.status == "ok" and lb.verdict == "pass" and lb.evaluations >= 2 and "no lockstep" in lb.reason
    assert lb.time_to_target_s is not None and 0 < lb.time_to_target_s <= lb.time_median_s * 1.0001
    assert sk.status == "ok" and sk.verdict == "pass" and sk.optimizer == "solver"
    curve = rows[1].curve
    assert curve["time_s"].notna().all() and curve["ref_loss"].isna().all()
    assert short.status == "ok" and short.verdict.startswith("n/a") and "not converged" in short.reason
    assert mini.status == "skipped" and "full batch only" in mini.reason
    assert "|lbfgs|" in lb.case_id and "|solver|" in sk.case_id
