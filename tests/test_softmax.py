"""Softmax regression (``TrainConfig(n_classes=K)``, K >= 3): the float64 oracle against torch
autograd and scikit-learn's multinomial optimum, the contract's K-class shapes and messages, and
every backend that declares ``supports_multiclass`` against the oracle (float64 <= 1e-10, full batch
and mini-batches with L2, both formulations, K = 3 and K = 10). The others must refuse K >= 3 at
construction with BackendUnavailableError, never train a wrong model.

Small data and few steps: each backend run is a few milliseconds (torch-compiled: one tiny case).
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import data as datasets, oracle
from implementations import BACKENDS, BackendUnavailableError, TrainConfig, create_trainer, get_backend, reference
from implementations.schedule import init_params

from .conftest import make_trainer, run_trainer


def _problem(n=60, d=5, k=3, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * scale
    y = np.arange(n) % k  # every class present
    rng.shuffle(y)
    w0 = rng.standard_normal((d, k)) / np.sqrt(d)
    b0 = rng.standard_normal(k)
    return X, y.astype(np.float64), w0, b0


# -- the oracle against torch autograd (float64) ------------------------------------------------

def _torch_loss(X, y, W, b, formulation, l2):
    import torch
    import torch.nn.functional as F

    Z = torch.from_numpy(X) @ W + b
    t = torch.from_numpy(y.astype(np.int64))
    if formulation == "logits":
        loss = F.cross_entropy(Z, t)
    else:  # the tutorials' spelling, with the documented clamp at -100
        loss = F.nll_loss(torch.clamp(torch.log(F.softmax(Z, 1)), min=-100.0), t)
    return loss + 0.5 * l2 * (W * W).sum()


@pytest.mark.parametrize("formulation", ["probs", "logits"])
@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("k", [3, 10])
def test_oracle_loss_and_grad_match_torch_autograd(formulation, l2, k):
    import torch

    X, y, W0, b0 = _problem(n=50, d=4, k=k, seed=k)
    W = torch.tensor(W0, requires_grad=True)
    b = torch.tensor(b0, requires_grad=True)
    loss = _torch_loss(X, y, W, b, formulation, l2)
    gW, gb = torch.autograd.grad(loss, (W, b))
    assert reference.loss(X, y, W0, b0, formulation, l2) == pytest.approx(loss.item(), rel=1e-13)
    ow, ob = reference.grad(X, y, W0, b0, l2)
    assert ow.shape == (4, k) and ob.shape == (k,)
    np.testing.assert_allclose(ow, gW.numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(ob, gb.numpy(), rtol=0, atol=1e-13)


def test_oracle_reference_run_matches_torch_autograd_loop():
    """Mini-batches, L2, record_every: the oracle's path is torch autograd's, step for step."""
    import torch

    X, y, W0, b0 = _problem(n=45, d=4, k=4, seed=1)
    cfg = TrainConfig(lr=0.3, n_iters=25, dtype="float64", formulation="logits", batch_size=16, l2=0.05,
                      record_every=3, n_classes=4)
    ref = reference.reference_run(X, y, W0, b0, cfg)
    sched = __import__("implementations").batch_schedule(45, 16, 25, 0)
    W, b = torch.tensor(W0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    losses = []
    for t in range(cfg.n_iters):
        rows = sched[t]
        loss = _torch_loss(X[rows], y[rows], W, b, "logits", cfg.l2)
        if t % 3 == 0:
            losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            W -= cfg.lr * W.grad
            b -= cfg.lr * b.grad
            W.grad.zero_()
            b.grad.zero_()
    assert ref.w.shape == (4, 4) and ref.b.shape == (4,)
    np.testing.assert_allclose(ref.w, W.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ref.b, b.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ref.losses, losses, rtol=1e-12)


# -- the smoothness bound and scikit-learn's multinomial optimum ---------------------------------

def test_softmax_smoothness_bounds_the_hessian():
    """L = λmax([X 1]^T [X 1]) / (2n) + λ bounds the Hessian's largest eigenvalue (Böhning's bound)."""
    import torch

    X, y, W0, b0 = _problem(n=40, d=3, k=3, seed=2)
    l2 = 0.1
    d, k = W0.shape

    def f(theta):
        return _torch_loss(X, y, theta[: d * k].reshape(d, k), theta[d * k:], "logits", l2)

    for W, b in ((W0, b0), (0 * W0, 0 * b0)):  # p = 1/K at 0: the worst case for diag(p) - p p^T
        H = torch.autograd.functional.hessian(f, torch.tensor(np.append(W.ravel(), b)))
        top = np.linalg.eigvalsh(H.numpy())[-1]
        assert top <= oracle.smoothness(X, l2, n_classes=3) * (1 + 1e-12)
    assert oracle.smoothness(X, l2, n_classes=3) == pytest.approx(2 * oracle.smoothness(X, l2) - l2)


def _descend(X, y, W, b, lr, l2, steps):
    Y = reference.one_hot(y, W.shape[1])
    for _ in range(steps):
        R = reference.softmax(X @ W + b) - Y
        W, b = W - lr * (X.T @ R / len(y) + l2 * W), b - lr * R.mean(axis=0)
    return W, b


def test_gd_reaches_sklearns_penalised_multinomial_optimum():
    """Penalised: GD at lr = 1/L (L the multinomial bound) ends within 1e-6 (relative) of
    scikit-learn's optimum, C = 1/(n λ); the bias compared centred (softmax ignores its shift).
    Standardized Iris: on the raw features the unpenalised bias direction is so weakly curved that
    GD needs far more than 1e4 steps (still 36 % away after 20000 at λ = 0.05)."""
    ds = datasets.load("iris-3class[standardize]")
    l2 = 0.01
    opt = oracle.fit_optimum(ds.X, ds.y, l2, n_classes=3)
    assert opt.converged and opt.w.shape == (4, 3) and opt.b.shape == (3,)
    W0, b0 = init_params(ds.d, 0, ds.init_scale, n_classes=3)
    lr = 1.0 / oracle.smoothness(ds.X, l2, n_classes=3)
    W, b = _descend(ds.X, ds.y, W0, b0, lr, l2, 4000)
    assert opt.rel_distance(W, b) <= 1e-6
    assert abs(opt.suboptimality(ds.X, ds.y, W, b)) <= 1e-10
    gw, gb = reference.grad(ds.X, ds.y, opt.w, opt.b, l2)
    assert max(np.abs(gw).max(), np.abs(gb).max()) <= 1e-7  # sklearn minimises *our* objective


def test_sklearns_unpenalised_optimum_compared_by_loss():
    """Unpenalised: the parameters are defined up to a shift, so the loss value is what is compared;
    sklearn's optimum is a stationary point of our objective and GD's loss approaches it from above."""
    ds = datasets.load("iris-3class")
    opt = oracle.fit_optimum(ds.X, ds.y, 0.0, n_classes=3)
    gw, gb = reference.grad(ds.X, ds.y, opt.w, opt.b)
    assert max(np.abs(gw).max(), np.abs(gb).max()) <= 1e-6
    W0, b0 = init_params(ds.d, 0, ds.init_scale, n_classes=3)
    lr = 1.0 / oracle.smoothness(ds.X, 0.0, n_classes=3)
    W, b = _descend(ds.X, ds.y, W0, b0, lr, 0.0, 300)
    early = opt.suboptimality(ds.X, ds.y, W, b)
    W, b = _descend(ds.X, ds.y, W, b, lr, 0.0, 2700)
    late = opt.suboptimality(ds.X, ds.y, W, b)
    assert 0 <= late < early


def test_tolerance_counts_the_classes():
    assert reference.tolerance("float32", 100, 64, 5, 10) > reference.tolerance("float32", 100, 64, 5)
    assert reference.tolerance("float32", 100, 64, 5, 2) == reference.tolerance("float32", 100, 64, 5)
    assert reference.tolerance("float64", 100, 64, 5, 10) == 1e-10


# -- the contract -------------------------------------------------------------------------------

BAD = {
    "label-out-of-range": (lambda X, y, w, b: (X, np.where(y == 2, 3, y), w, b),
                           r"y must contain only the labels 0 \.\. 2"),
    "negative-label": (lambda X, y, w, b: (X, np.where(y == 2, -1, y), w, b), r"labels 0 \.\. 2.*\{-1"),
    "non-integer-label": (lambda X, y, w, b: (X, y + 0.5 * (y == 1), w, b),
                          r"integer class labels.*non-integer values \{1\.5\}"),
    "bool-labels": (lambda X, y, w, b: (X, y > 0, w, b), r"integer class labels.*dtype bool"),
    "binary-w0": (lambda X, y, w, b: (X, y, w[:, 0], b), r"w0 must have shape \(5, 3\).*binary model's weight vector"),
    "scalar-b0": (lambda X, y, w, b: (X, y, w, 0.5), r"b0 must have shape \(3,\).*binary model's bias"),
    "wrong-k": (lambda X, y, w, b: (X, y, w[:, :2], b), r"w0 must have shape \(5, 3\).*got shape \(5, 2\)"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_k_class_bad_input_one_message(case):
    X, y, w0, b0 = _problem()
    make, message = BAD[case]
    trainer = create_trainer("numpy", TrainConfig(n_classes=3, dtype="float64"))
    with pytest.raises(ValueError, match=message):
        trainer.prepare(*make(X, y, w0, b0))


def test_binary_config_refuses_k_class_weights():
    X, y, w0, b0 = _problem()
    trainer = create_trainer("numpy", TrainConfig(dtype="float64"))
    with pytest.raises(ValueError, match=r"w0 must have shape \(5,\)"):
        trainer.prepare(X, (y > 0).astype(float), w0, 0.0)
    with pytest.raises(ValueError, match=r"y must contain only 0 and 1.*n_classes"):
        trainer.prepare(X, y, w0[:, 0], 0.0)


def test_n_classes_is_validated():
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        TrainConfig(n_classes=1)
    assert TrainConfig().n_classes == 2 and not TrainConfig().multiclass


def test_named_datasets():
    for name, shape, k in (("iris-3class", (150, 4), 3), ("digits", (1797, 64), 10),
                           ("synthetic-300x6-k5", (300, 6), 5)):
        assert datasets.shape(name) == shape and datasets.n_classes(name) == k
        ds = datasets.load(name)
        assert ds.X.shape == shape and ds.n_classes == k and set(np.unique(ds.y)) == set(range(k))
    assert datasets.n_classes("iris") == 2 and datasets.n_classes("synthetic-100x4") == 2
    with pytest.raises(ValueError, match="between 3 and"):
        datasets.parse_name("synthetic-100x4-k2")


# -- every backend ------------------------------------------------------------------------------

def _multiclass(name):
    try:
        return bool(get_backend(name).supports_multiclass)
    except Exception:
        return False


SUPPORTED = [n for n in BACKENDS if _multiclass(n)]
REFUSED = [n for n in BACKENDS if n not in SUPPORTED]
PARALLEL = [n for n in SUPPORTED if get_backend(n).data_parallel]
SINGLE = [n for n in SUPPORTED if n != "torch-compiled" and n not in PARALLEL]
CASES = {  # id: (k, n, d, config overrides)
    "k3-full": (3, 60, 5, {}),
    "k10-batch-l2": (10, 70, 6, {"batch_size": 16, "l2": 0.1, "record_every": 2}),
}


def _train(name, config, X, y, w0, b0):
    """The run's result and ``loss_and_grad`` at the init, from one trainer."""
    with make_trainer(name, config) as trainer:
        return run_trainer(trainer, X, y, w0, b0), trainer.loss_and_grad(w0, b0)


@pytest.mark.parametrize("formulation", ["probs", "logits"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", SINGLE)
def test_backend_matches_oracle_float64(name, case, formulation):
    k, n, d, extra = CASES[case]
    X, y, w0, b0 = _problem(n, d, k, seed=k)
    cfg = TrainConfig(lr=0.5, n_iters=12, dtype="float64", formulation=formulation, n_classes=k, **extra)
    res, (loss, gw, gb) = _train(name, cfg, X, y, w0, b0)
    ref = reference.reference_run(X, y, w0, b0, cfg)
    assert res.w.shape == (d, k) and res.b.shape == (k,) and res.losses.shape == (cfg.n_records,)
    agreement = reference.compare(res, ref, 1e-10)
    assert agreement.ok, agreement
    assert loss == pytest.approx(reference.loss(X, y, w0, b0, formulation, cfg.l2), rel=1e-12)
    ow, ob = reference.grad(X, y, w0, b0, cfg.l2)
    assert gw.shape == (d, k) and gb.shape == (k,)
    np.testing.assert_allclose(gw, ow, rtol=0, atol=1e-12)
    np.testing.assert_allclose(gb, ob, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", PARALLEL)
def test_data_parallel_two_unequal_shards(name):
    """2 workers, 61 rows (shards of 31 and 30), mini-batches of 16 (a step's rows split unevenly
    between the shards) and L2: the (d + 1) K + 1 sums all-reduced, exact in float64. One case per
    backend: each starts a group."""
    X, y, w0, b0 = _problem(61, 4, 4, seed=8)
    cfg = TrainConfig(lr=0.5, n_iters=6, dtype="float64", formulation="probs", n_classes=4, workers=2,
                      batch_size=16, l2=0.1)
    res, (loss, gw, gb) = _train(name, cfg, X, y, w0, b0)
    assert reference.compare(res, reference.reference_run(X, y, w0, b0, cfg), 1e-10).ok
    ow, ob = reference.grad(X, y, w0, b0, cfg.l2)
    np.testing.assert_allclose(gw, ow, rtol=0, atol=1e-12)
    np.testing.assert_allclose(gb, ob, rtol=0, atol=1e-12)
    assert loss == pytest.approx(reference.loss(X, y, w0, b0, cfg.formulation, cfg.l2), rel=1e-12)


@pytest.mark.parametrize("name", [n for n in SUPPORTED if n == "torch-compiled"])
def test_compiled_backend_one_tiny_case(name):
    X, y, w0, b0 = _problem(20, 3, 3, seed=3)
    # 5 steps = torch-compiled's K: one K-step graph (a leftover step would compile a 1-step graph
    # too; the leftover path is the binary model's tests' subject)
    cfg = TrainConfig(lr=0.5, n_iters=5, dtype="float64", formulation="logits", n_classes=3, l2=0.1)
    res, _ = _train(name, cfg, X, y, w0, b0)
    assert reference.compare(res, reference.reference_run(X, y, w0, b0, cfg), 1e-10).ok


@pytest.mark.parametrize("name", SUPPORTED)
def test_float32_within_the_derived_tolerance(name):
    if name == "torch-compiled" or name in PARALLEL:
        pytest.skip("one compiled case only (compile time)" if name == "torch-compiled" else
                    "data-parallel: test_data_parallel_two_unequal_shards")
    X, y, w0, b0 = _problem(60, 5, 4, seed=4)
    cfg = TrainConfig(lr=0.5, n_iters=30, dtype="float32", formulation="logits", n_classes=4)
    res, _ = _train(name, cfg, X, y, w0, b0)
    agreement = reference.compare(res, reference.reference_run(X, y, w0, b0, cfg),
                                  reference.config_tolerance(cfg, 60, 5))
    assert agreement.ok, agreement


def test_backends_without_softmax_refuse_at_construction():
    """A backend that does not declare supports_multiclass (the default: a user's binary-only trainer,
    and any built-in one still listed in REFUSED) is refused for n_classes >= 3: a skipped row, never
    a wrong model. It still runs the binary model."""
    from implementations.numpy_backend import NumpyTrainer

    class BinaryOnly(NumpyTrainer):
        name = "binary-only"
        supports_multiclass = False

    classes = [BinaryOnly]
    for name in REFUSED:
        try:
            classes.append(get_backend(name))
        except BackendUnavailableError:
            continue
    for cls in classes:
        with pytest.raises(BackendUnavailableError, match=r"n_classes >= 3 is not implemented in .* yet"):
            cls(TrainConfig(n_classes=3))
    BinaryOnly(TrainConfig())


# -- probs: where the label's probability underflows --------------------------------------------

def test_saturated_samples_counted_and_autograd_drops_them():
    """Scaled data push some labels' logits ~100+ below the largest: the probs loss clamps at 100 and
    autograd gives those samples a zero gradient, while P - Y (numpy) keeps them; logits agree."""
    X, y, w0, b0 = _problem(40, 3, 3, seed=5, scale=80.0)
    count = oracle.saturated_count(X, w0, b0, "float64", y=y)
    assert count > 0
    results = {}
    for name in ("numpy", "torch"):
        if name not in SUPPORTED:
            pytest.skip(f"{name} has no softmax")
        t = make_trainer(name, TrainConfig(dtype="float64", formulation="probs", n_classes=3))
        t.prepare(X, y, w0, b0)
        results[name] = t.loss_and_grad(w0, b0)
    ow, ob = reference.grad(X, y, w0, b0)
    np.testing.assert_allclose(results["numpy"][1], ow, atol=1e-12)  # hand-derived: P - Y
    assert np.abs(results["torch"][1] - ow).max() > 1e-3  # autograd through the clamp: the samples dropped
    assert results["torch"][0] == pytest.approx(reference.loss(X, y, w0, b0, "probs"), rel=1e-12)


def test_fused_backends_blocked_paths_k_classes():
    """The hand-blocked K-class paths (small blocks force them; two threads), float64 against the oracle."""
    from implementations.numpy_fused import NumpyFusedTrainer
    from implementations.torch_fused import TorchFusedTrainer

    X, y, w0, b0 = _problem(300, 6, 4, seed=6)
    for batch in (None, 100):
        cfg = TrainConfig(lr=0.5, n_iters=8, dtype="float64", formulation="probs", n_classes=4, l2=0.05,
                          batch_size=batch)
        ref = reference.reference_run(X, y, w0, b0, cfg)
        for trainer in (NumpyFusedTrainer(cfg, block_bytes=2048, threads=2), TorchFusedTrainer(cfg, block_bytes=2048)):
            trainer.prepare(X, y, w0, b0)
            if isinstance(trainer, TorchFusedTrainer):
                assert trainer.blocked
            trainer.run()
            agreement = reference.compare(trainer.result(), ref, 1e-10)
            assert agreement.ok, (type(trainer).__name__, batch, agreement)


@pytest.mark.compile
def test_numba_parallel_softmax_kernel(monkeypatch):
    """The parallel K-class kernel (forced by a low threshold, small blocks) against the oracle."""
    nb = pytest.importorskip("implementations.numba_backend")
    monkeypatch.setattr(nb, "PARALLEL_MIN_ELEMENTS", 1)
    monkeypatch.setattr(nb, "ROWS_PER_BLOCK", 32)
    X, y, w0, b0 = _problem(150, 5, 3, seed=7)
    cfg = TrainConfig(lr=0.5, n_iters=8, dtype="float64", formulation="logits", n_classes=3, l2=0.1, batch_size=70)
    trainer = make_trainer("numba", cfg)
    trainer.prepare(X, y, w0, b0)
    assert trainer.parallel
    trainer.run()
    assert reference.compare(trainer.result(), reference.reference_run(X, y, w0, b0, cfg), 1e-10).ok


# -- bench grad / bench trajectory on K classes ---------------------------------------------------

def _tiny_dataset(scale=1.0):
    X, y, _, _ = _problem(40, 3, 3, seed=9, scale=scale)
    return datasets.Dataset("tiny-k3", X, y, 1.0, n_classes=3)


def test_grad_diagnostic_k_classes():
    """Every pair agrees (logits everywhere; probs off the saturated point); at the saturated point
    the probs rows that fail are explained by the samples whose label probability underflows."""
    from bench.diagnostics.grad import compare_gradients, points

    ds = _tiny_dataset()
    rows = compare_gradients(ds, ["numpy", "torch"], dtypes=("float64",), pts=points(ds, n_random=1))
    assert rows and all(r["status"] == "ok" for r in rows)
    # ("trained" on random labels sits at the optimum: a ~1e-6 gradient, 1e-12 relative is below rounding)
    for r in rows:
        if r["point"] in ("init", "random-0") or (r["formulation"] == "logits" and r["point"] == "saturated"):
            assert r["passed"], r
    sat = [r for r in rows if r["point"] == "saturated" and r["formulation"] == "probs"]
    assert sat and all(r["saturated"] > 0 for r in sat)
    failed = [r for r in sat if not r["passed"]]
    assert failed and all("log P[i, y_i] < -100" in r["note"] for r in failed)


def test_trajectory_k_classes():
    from bench.diagnostics.trajectory import lockstep

    tr = lockstep(_tiny_dataset(), "numpy", "torch-manual", "float32", "logits", 10, lr=0.5)
    assert tr.first_divergence is None and tr.max_rel_dev < 1e-5


def test_lockstep_stops_where_a_backend_goes_non_finite():
    """`bench trajectory` on digits at a step too large for float32 probs: torch's autograd through
    log(softmax) turns non-finite after the label probabilities underflow; the lockstep ends there
    and says so (it used to stop with a ValueError from the next prepare), while logits runs on."""
    from bench.data import load
    from bench.diagnostics.trajectory import lockstep

    ds = load("digits", 0)
    probs = lockstep(ds, "numpy", "torch", "float32", "probs", 6, lr=0.05)
    assert "torch non-finite at step" in probs.diverged and len(probs.deviations) < 6
    assert probs.as_row()["diverged"] == probs.diverged
    logits = lockstep(ds, "numpy", "torch", "float32", "logits", 6, lr=0.05)
    assert logits.diverged == "" and len(logits.deviations) == 6
