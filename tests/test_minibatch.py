"""Mini-batch SGD and the L2 penalty, for every backend of the registry, against bench.oracle.

* the shared batch order (``batch_schedule``): epochs are permutations, the last short batch is kept,
  one draw per seed;
* each backend's float64 run equals the float64 reference (same batches, same order, same penalty)
  to 1e-10 relative in parameters and loss history; float32 within the derived tolerance;
* ``loss_and_grad`` with ``l2 > 0`` against the oracle's formulas, torch autograd and finite differences;
* full-batch GD with ``lr = 1/L`` reaches scikit-learn's penalised optimum.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bench.oracle import fit_optimum
from implementations import BackendUnavailableError, TrainConfig, batch_schedule, create_trainer
from implementations.reference import compare, config_tolerance, grad, loss

from .conftest import TRAINERS, dataset, reference, train, trained

# -- the schedule -------------------------------------------------------------------------------

@pytest.mark.parametrize("n, B", [(100, 16), (100, 64), (100, 100), (100, 1), (1000, 64)])
def test_schedule_epochs_are_permutations_with_the_last_batch_kept(n, B):
    n_iters = 3 * -(-n // B) + 1  # three whole epochs and the first step of a fourth
    s = batch_schedule(n, B, n_iters, shuffle_seed=5)
    spe = -(-n // B)
    assert len(s) == n_iters and s.steps_per_epoch == spe
    expected = [B] * (n // B) + ([n % B] if n % B else [])
    assert s.sizes.tolist() == (expected * 4)[:n_iters]
    for e in range(3):
        epoch = np.concatenate([s[t] for t in range(e * spe, (e + 1) * spe)])
        assert sorted(epoch.tolist()) == list(range(n)), "each epoch visits every row once"
    assert s.indices.dtype == np.int64 and s.indices.size == s.offsets[-1]


def test_schedule_is_deterministic_per_seed_and_seeds_differ():
    a, b = batch_schedule(100, 16, 50, 0), batch_schedule(100, 16, 50, 0)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    assert not np.array_equal(a.indices, batch_schedule(100, 16, 50, 1).indices)
    # one permutation per epoch from default_rng(seed): the documented draw
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(a.indices[:100], rng.permutation(100))


def test_padded_schedule_holds_the_same_batches():
    s = batch_schedule(100, 64, 9, 2)
    idx, mask = s.padded()
    assert idx.shape == mask.shape == (9, 64)
    for t in range(9):
        np.testing.assert_array_equal(idx[t][mask[t]], s[t])
        assert mask[t].sum() == s.sizes[t]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, 101])
def test_schedule_refuses_bad_batch_sizes(bad):
    with pytest.raises(ValueError, match=rf"batch_size must be an integer between 1 and n = 100 .*got {bad!r}"):
        batch_schedule(100, bad, 10)


def test_torch_nn_dataloader_yields_the_schedule_batches():
    """The DataLoader (batch_size=B, drop_last=False, sampler per epoch) cuts exactly schedule[t],
    short last batches included, for B dividing n and not."""
    X, y, w0, b0 = dataset("iris")
    for B, n_iters in ((64, 7), (16, 30), (20, 12)):
        trainer = TRAINERS["torch-nn"](TrainConfig(batch_size=B, n_iters=n_iters, dtype="float64", shuffle_seed=4))
        trainer.prepare(X, y, w0, b0)
        batches = list(trainer._batches())
        assert len(batches) == n_iters
        for t, (xb, yb) in enumerate(batches):
            rows = trainer.schedule[t]
            np.testing.assert_array_equal(xb.numpy(), X[rows])
            np.testing.assert_array_equal(yb.numpy().ravel(), y[rows])


# -- training runs against the float64 reference -----------------------------------------------------

# (dataset, batch_size, l2, n_iters, record_every, shuffle_seed, formulation). Each case varies several
# things at once, so that four cases cover: a batch that leaves a short last one in every epoch (100 =
# 6 x 16 + 4; 64 + 36; 1000 = 15 x 64 + 40), with and without the penalty, recording every step and
# every few, both formulations, another seed, more rows and features, and full batch with the penalty.
# A few epochs each: more steps would repeat the same batches.
CASES = {
    "iris-B16": ("iris", 16, 0.0, 60, 1, 0, "probs"),
    "iris-B64-l2-every3-seed3": ("iris", 64, 0.1, 41, 3, 3, "logits"),
    "synth-B64-l2": ("synthetic-1000x10", 64, 0.1, 40, 1, 0, "logits"),
    "iris-full-l2": ("iris", None, 0.1, 60, 1, 0, "probs"),
}


def _config(case, dtype):
    ds, B, l2, n_iters, every, seed, form = CASES[case]
    return ds, TrainConfig(lr=0.05, n_iters=n_iters, dtype=dtype, formulation=form, record_every=every,
                           batch_size=B, l2=l2, shuffle_seed=seed)


@pytest.mark.parametrize("name, case, dtype", [pytest.param(n, c, dt, id=f"{n}/{c}/{dt}")
                                               for n in TRAINERS for c in CASES for dt in ("float64", "float32")])
def test_run_matches_the_reference(name, case, dtype):
    ds, config = _config(case, dtype)
    res = trained(name, config, ds)
    X = dataset(ds)[0]
    tol = config_tolerance(config, *X.shape)
    if dtype == "float64":
        assert tol == 1e-10
    agreement = compare(res, reference(config, ds), tol)
    assert agreement.ok, agreement
    if dtype == "float32":
        assert agreement.rel_dparam > 0, "really computed in float32"


# -- loss_and_grad with the penalty ----------------------------------------------------------------

def _points(X):
    rng = np.random.default_rng(7)
    d = X.shape[1]
    return {"zero": (np.zeros(d), 0.0), "random": (0.3 * rng.standard_normal(d), 0.2),
            "other": (0.1 * rng.standard_normal(d), -1.0)}


def _central_difference(X, y, w, b, form, l2, h=1e-5):
    theta = np.append(w, b)
    g = np.empty_like(theta)
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = h
        f = [loss(X, y, (theta + s * e)[:-1], (theta + s * e)[-1], form, l2) for s in (1, -1)]
        g[k] = (f[0] - f[1]) / (2 * h)
    return g


@pytest.mark.parametrize("name, form, point", [pytest.param(n, f, pt, id=f"{n}/{f}/{pt}") for n in TRAINERS
                                                for f in ("probs", "logits") for pt in ("zero", "random", "other")])
def test_loss_and_grad_with_l2_against_oracles(name, form, point):
    """float64, l2 = 0.1, on the full prepared data (also with a batch_size set: loss_and_grad is
    always the full loss): the oracle's formulas and torch autograd to 1e-12, finite differences to 1e-8."""
    X, y, w0, b0 = dataset("iris")
    X = (X - X.mean(0)) / X.std(0)
    w, b = _points(X)[point]
    l2 = 0.1
    got = {}
    for n, B in ((name, 16), ("torch", None)):
        trainer = TRAINERS[n](TrainConfig(dtype="float64", formulation=form, l2=l2, batch_size=B, n_iters=10))
        trainer.prepare(X, y, w0, b0)
        value, gw, gb = trainer.loss_and_grad(w, b)
        got[n] = value, np.append(gw, gb)
    value, g = got[name]
    ref_gw, ref_gb = grad(X, y, w, b, l2)
    ref = np.append(ref_gw, ref_gb)
    assert value == pytest.approx(loss(X, y, w, b, form, l2), rel=1e-12)
    assert np.abs(g - ref).max() <= 1e-12 * np.abs(ref).max()
    assert np.abs(g - got["torch"][1]).max() <= 1e-12 * np.abs(ref).max()
    fd = _central_difference(X, y, w, b, form, l2)
    assert np.abs(g - fd).max() <= 1e-8 * np.abs(fd).max()
    assert np.abs(g[:-1] - grad(X, y, w, b, 0.0)[0] - l2 * w).max() <= 1e-12 * np.abs(ref).max(), "+ l2 w"


# -- the penalised optimum ------------------------------------------------------------------------

# steps GD with lr = 1/L needs to be within 1e-6 of the optimum (the reference run: 1e-12 after 200
# steps with l2 = 0.1, 6e-9 after 800 with l2 = 0.01)
GD_STEPS = {0.1: 200, 0.01: 800}


@pytest.mark.parametrize("l2", GD_STEPS)
@pytest.mark.parametrize("name", TRAINERS)
def test_full_batch_gd_with_lr_1_over_L_reaches_the_penalised_optimum(name, l2):
    """GD with lr = 1/L on standardized Iris reaches LogisticRegression(C=1/(n l2))'s minimiser.

    L bounds the Hessian of mean log-loss + (l2/2)||w||^2 over all (w, b): with A = [X 1],
    H = A^T diag(p(1-p)) A / n + diag(l2, ..., l2, 0) <= A^T A / (4n) + l2 I since p(1-p) <= 1/4,
    so L = ||A||_2^2 / (4n) + l2 (||A||_2 the largest singular value, computed exactly)."""
    X, y, w0, b0 = dataset("iris")
    X = (X - X.mean(0)) / X.std(0)
    n = X.shape[0]
    A = np.hstack([X, np.ones((n, 1))])
    L = np.linalg.norm(A, 2) ** 2 / (4 * n) + l2
    opt = fit_optimum(X, y, l2)
    assert opt.converged
    gw, gb = grad(X, y, opt.w, opt.b, l2)
    assert max(np.abs(gw).max(), abs(gb)) < 1e-10, "scikit-learn's point is the penalised stationary point"
    res = train(TRAINERS[name], TrainConfig(lr=1 / L, n_iters=GD_STEPS[l2], dtype="float64", formulation="logits",
                                            l2=l2), X, y, np.zeros(X.shape[1]), 0.0)
    assert opt.rel_distance(res.w, res.b) <= 1e-6
    assert abs(opt.suboptimality(X, y, res.w, res.b)) <= 1e-12  # >= 0 up to rounding


# -- jax specifics ------------------------------------------------------------------------------

def test_jax_missing_is_a_clear_backend_unavailable_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax -> ImportError
    with pytest.raises(BackendUnavailableError, match=r"needs jax, not installed \(pip install '\.\[jax\]'\)"):
        create_trainer("jax", TrainConfig())


@pytest.mark.compile
def test_jax_x64_does_not_leak_and_run_does_not_compile(caplog):
    jax = pytest.importorskip("jax")
    X, y, w0, b0 = dataset("iris")
    before = jax.config.jax_enable_x64
    trainer = create_trainer("jax", TrainConfig(n_iters=20, dtype="float64", batch_size=16))
    trainer.prepare(X, y, w0, b0)
    assert jax.config.jax_enable_x64 == before
    with jax.log_compiles(True), caplog.at_level("DEBUG"):
        trainer.run()
    assert not [r for r in caplog.records if "ompil" in r.getMessage()], "run() compiled"
    assert jax.config.jax_enable_x64 == before
    assert trainer.result().losses.shape == (20,)
    assert jax.numpy.zeros(1).dtype == (np.float64 if before else np.float32)
