"""Sparse ``X`` (a SciPy CSR matrix) through the contract, the oracle and every backend that takes it.

* The float64 oracle on a sparse ``X`` equals the oracle on ``X.toarray()`` (1e-14 relative), and its
  loss's finite differences match the hand-derived gradient there.
* ``check_inputs`` hands back a canonical ``csr_array`` and refuses what a dense ``X`` would be refused for.
* Every registered backend (``implementations.BACKENDS``) that declares ``supports_sparse``: float64 runs
  within 1e-10 relative of the oracle on full batch, mini-batch, L2 and K = 3, every optimizer it
  declares; ``loss_and_grad`` against the oracle. One that does not declare it refuses a sparse ``X`` at
  ``prepare`` with :class:`BackendUnavailableError` (the harness's ``skipped`` row).

The data: 200 x 500 at density 0.02, column frequencies Zipf-like (a few frequent columns, a long
tail of rare ones, as in text), one seeded draw.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from implementations import BACKENDS, BackendUnavailableError, TrainConfig, get_backend, reference
from implementations.schedule import init_params
from implementations.validation import check_inputs, is_sparse

N, D, DENSITY = 200, 500, 0.02
TOL = 1e-10
LR, STEPS = 0.5, 40


def sparse_problem(n=N, d=D, density=DENSITY, n_classes=2, seed=0):
    """``(X csr_array, y, w0, b0)``: Zipf-like column frequencies, labels from a planted weight vector."""
    rng = np.random.default_rng(seed)
    nnz = int(n * d * density)
    freq = 1.0 / np.arange(1, d + 1) ** 1.1
    cols = rng.choice(d, nnz, p=freq / freq.sum())
    rows = rng.integers(0, n, nnz)
    X = scipy.sparse.csr_array((rng.random(nnz) + 0.1, (rows, cols)), shape=(n, d))
    X.sum_duplicates()
    if n_classes >= 3:
        Z = X @ rng.standard_normal((d, n_classes))
        y = np.argmax(Z + 0.1 * rng.standard_normal(Z.shape), axis=1)
    else:
        z = X @ rng.standard_normal(d)
        y = (z + 0.1 * rng.standard_normal(n) > np.median(z)).astype(np.float64)
    w0, b0 = init_params(d, seed=1, scale=0.1, n_classes=n_classes)
    return X, y, w0, b0


def _classes():
    """Every registered backend class this machine can import, by name."""
    out = {}
    for name in list(BACKENDS):
        try:
            out[name] = get_backend(name)
        except BackendUnavailableError:
            continue
    return out


CLASSES = _classes()
SPARSE = [name for name, cls in CLASSES.items() if cls.supports_sparse]
DENSE_ONLY = [name for name, cls in CLASSES.items() if not cls.supports_sparse]


def _make(name, **kw):
    cls = CLASSES[name]
    kw.setdefault("optimizer", cls.optimizers[0] if "gd" not in cls.optimizers else "gd")
    kw.setdefault("dtype", "float64")
    try:
        return cls(TrainConfig(**kw))
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))


# -- the oracle --------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("case", ["full", "batch", "l2-adam"])
def test_sparse_oracle_equals_dense_oracle(case, n_classes):
    X, y, w0, b0 = sparse_problem(n_classes=n_classes)
    kw = dict(lr=LR, n_iters=STEPS, dtype="float64", n_classes=n_classes, formulation="probs")
    kw.update({"full": {}, "batch": dict(batch_size=32, record_every=3),
               "l2-adam": dict(l2=0.05, optimizer="adam", lr=0.05)}[case])
    config = TrainConfig(**kw)
    sparse = reference.reference_run(X, y, w0, b0, config)
    dense = reference.reference_run(X.toarray(), y, w0, b0, config)
    agreement = reference.compare(sparse, dense, 1e-14)
    assert agreement.ok, agreement
    steps = [0, 7, STEPS - 1]
    np.testing.assert_allclose(reference.full_losses_along(X, y, w0, b0, config, steps),
                               reference.full_losses_along(X.toarray(), y, w0, b0, config, steps), rtol=1e-14)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_sparse_loss_and_grad_equal_dense(n_classes):
    X, y, w0, b0 = sparse_problem(n_classes=n_classes)
    for formulation in ("probs", "logits"):
        ls, ld = (reference.loss(A, y, w0, b0, formulation, 0.1) for A in (X, X.toarray()))
        assert abs(ls - ld) <= 1e-14 * abs(ld)
    (gs, gbs), (gd, gbd) = (reference.grad(A, y, w0, b0, 0.1) for A in (X, X.toarray()))
    scale = max(np.max(np.abs(gd)), np.max(np.abs(gbd)))
    assert np.max(np.abs(gs - gd)) <= 1e-14 * scale and np.max(np.abs(np.asarray(gbs) - gbd)) <= 1e-14 * scale


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("formulation", ["probs", "logits"])
def test_finite_differences_on_sparse_X(formulation, n_classes):
    """The hand-derived gradient ``X^T (p - y) / n + λ w`` against central differences of the loss, on a
    sparse ``X`` (a narrower one: one difference per parameter)."""
    X, y, w0, b0 = sparse_problem(n=60, d=40, density=0.1, n_classes=n_classes, seed=3)
    gw, gb = reference.grad(X, y, w0, b0, l2=0.05)
    fd = reference.finite_difference(X, y, w0, b0, formulation, l2=0.05)
    hand = np.concatenate([np.ravel(gw), np.ravel(gb)])
    np.testing.assert_allclose(fd, hand, rtol=1e-7, atol=1e-9)


# -- validation --------------------------------------------------------------------------------------

def test_check_inputs_gives_canonical_csr():
    X, y, w0, b0 = sparse_problem()
    coo = scipy.sparse.coo_matrix(X)
    dup = scipy.sparse.coo_array((np.r_[coo.data, 1.0], (np.r_[coo.row, 0], np.r_[coo.col, 0])), shape=X.shape)
    for given in (coo, X.tocsc(), dup, scipy.sparse.csr_matrix(X)):
        Xc, *_ = check_inputs(given, y, w0, b0, "float32")
        assert is_sparse(Xc) and isinstance(Xc, scipy.sparse.csr_array) and Xc.has_canonical_format
        assert Xc.dtype == np.float32 and Xc.indices.dtype == np.int32
    Xc, *_ = check_inputs(dup, y, w0, b0)
    assert Xc.dtype == np.float64
    assert Xc[0, 0] == X[0, 0] + 1.0  # the duplicate summed
    before = X.copy()
    check_inputs(X, y, w0, b0, "float32")
    assert (X != before).nnz == 0 and X.dtype == np.float64  # the caller's matrix untouched


def test_check_inputs_refuses_bad_sparse():
    X, y, w0, b0 = sparse_problem()
    bad = X.copy()
    bad.data[5] = np.nan
    with pytest.raises(ValueError, match="finite"):
        check_inputs(bad, y, w0, b0)
    big = X.copy()
    big.data[0] = 1e39
    with pytest.raises(ValueError, match="fit in float32"):
        check_inputs(big, y, w0, b0, "float32")
    with pytest.raises(ValueError, match=r"y must have shape \(200,\)"):
        check_inputs(X, y[:-1], w0, b0)
    with pytest.raises(ValueError, match=r"w0 must have shape \(500,\)"):
        check_inputs(X, y, w0[:-1], b0)
    with pytest.raises(ValueError, match="at least one row"):
        check_inputs(scipy.sparse.csr_array((0, 5)), np.zeros(0), np.zeros(5), 0.0)
    with pytest.raises(ValueError, match="2-D"):
        check_inputs(scipy.sparse.coo_array(np.ones(4)), np.zeros(4), np.zeros(4), 0.0)


# -- the backends ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", DENSE_ONLY)
def test_backend_without_sparse_refuses_at_prepare(name):
    X, y, w0, b0 = sparse_problem()
    cls = CLASSES[name]
    trainer = _make(name, n_iters=2, dtype="float64" if "float64" in cls.dtypes else cls.dtypes[0])
    with trainer, pytest.raises(BackendUnavailableError, match="does not support sparse X"):
        trainer.prepare(X, y, w0, b0)


CASES = {  # name -> (TrainConfig keywords, n_classes)
    "full": (dict(), 2),
    "batch32": (dict(batch_size=32, record_every=3), 2),
    "l2": (dict(l2=0.05), 2),
    "l2-batch": (dict(l2=0.05, batch_size=50), 2),
    "K3": (dict(formulation="logits"), 3),
    "K3-batch-l2": (dict(batch_size=32, l2=0.05), 3),
}


def _agree(name, n_classes, **kw):
    X, y, w0, b0 = sparse_problem(n_classes=n_classes)
    kw = dict(dict(lr=LR, n_iters=STEPS, n_classes=n_classes), **kw)
    with _make(name, **kw) as trainer:
        trainer.prepare(X, y, w0, b0)
        trainer.run()
        res = trainer.result()
    ref = reference.reference_run(X, y, w0, b0, trainer.config)
    agreement = reference.compare(res, ref, TOL)
    assert agreement.ok, f"{name} {kw}: {agreement}"


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", SPARSE)
def test_sparse_backend_matches_oracle(name, case):
    cls = CLASSES[name]
    kw, k = CASES[case]
    if "gd" not in cls.optimizers:
        pytest.skip(f"{name} has no fixed-step loop to compare step by step (optimizers {cls.optimizers})")
    config = TrainConfig(n_classes=k, dtype="float64", **kw)
    why = cls.unsupported(config)
    if why:
        pytest.skip(why)
    _agree(name, k, **kw)


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adam"])
@pytest.mark.parametrize("name", SPARSE)
def test_sparse_backend_optimizers(name, optimizer):
    if optimizer not in CLASSES[name].optimizers:
        pytest.skip(f"{name} does not declare {optimizer}")
    _agree(name, 2, optimizer=optimizer, lr=0.05, l2=0.01)
    _agree(name, 3, optimizer=optimizer, lr=0.05, batch_size=64)


@pytest.mark.parametrize("name", SPARSE)
def test_sparse_backend_own_solvers_match_dense(name):
    """``lbfgs`` and ``solver`` have no fixed-step oracle: the sparse run must equal the same backend's
    dense run on ``X.toarray()`` (their line searches see the same numbers up to rounding)."""
    cls = CLASSES[name]
    own = [o for o in cls.optimizers if o in ("lbfgs", "solver")]
    if not own:
        pytest.skip(f"{name} declares neither lbfgs nor solver")
    X, y, w0, b0 = sparse_problem()
    for optimizer in own:
        results = []
        for data in (X, X.toarray()):
            with _make(name, optimizer=optimizer, n_iters=4, lr=1.0, l2=0.01) as trainer:
                trainer.prepare(data, y, w0, b0)
                trainer.run()
                results.append(trainer.result())
        agreement = reference.compare(results[0], results[1], 1e-6)
        assert agreement.ok, f"{name} {optimizer}: {agreement}"


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", SPARSE)
def test_sparse_loss_and_grad_against_oracle(name, n_classes):
    cls = CLASSES[name]
    if n_classes >= 3 and not cls.supports_multiclass:
        pytest.skip(f"{name} is binary only")
    X, y, w0, b0 = sparse_problem(n_classes=n_classes)
    with _make(name, n_iters=1, n_classes=n_classes, l2=0.05) as trainer:
        trainer.prepare(X, y, w0, b0)
        rng = np.random.default_rng(7)
        w = w0 + 0.1 * rng.standard_normal(np.shape(w0))
        loss, gw, gb = trainer.loss_and_grad(w, b0)
    f = trainer.config.formulation
    ref_gw, ref_gb = reference.grad(X, y, w, b0, 0.05)
    assert abs(loss - reference.loss(X, y, w, b0, f, 0.05)) <= TOL * abs(loss)
    scale = max(np.max(np.abs(ref_gw)), np.max(np.abs(ref_gb)))
    assert np.max(np.abs(gw - ref_gw)) <= TOL * scale and np.max(np.abs(np.asarray(gb) - ref_gb)) <= TOL * scale


def test_threaded_csr_is_scipy_bit_for_bit():
    """Row blocks on threads give SciPy's serial products exactly (each entry is one row's dot product)."""
    from implementations._reduce import BlockPool
    from implementations._sparse import ThreadedCSR, transpose

    X, *_ = sparse_problem()

    class Owner:
        pass

    owner = Owner()
    pool = BlockPool(owner, "test-sparse")
    pool.ensure(3)
    A = ThreadedCSR(X, pool, block_nnz=97)
    assert len(A.blocks) > 10 and len(A.T.blocks) > 10
    A.set_threads(3)
    rng = np.random.default_rng(0)
    for v, r in ((rng.standard_normal(D), rng.standard_normal(N)),
                 (rng.standard_normal((D, 3)), rng.standard_normal((N, 3)))):
        assert np.array_equal(A @ v, X @ v)
        assert np.array_equal(A.T @ r, transpose(X) @ r)


def test_numpy_fused_threads_equal_numpy(monkeypatch):
    """numpy-fused's threaded sparse path (forced on a small X) gives the numpy backend's bits."""
    from implementations import numpy_fused

    if "numpy-fused" not in SPARSE:
        pytest.skip("numpy-fused does not declare supports_sparse")
    monkeypatch.setattr(numpy_fused, "SPARSE_BLOCK_NNZ", 128)
    monkeypatch.setattr(numpy_fused, "SPARSE_PARALLEL_MIN_NNZ", 0)
    for k in (2, 3):
        X, y, w0, b0 = sparse_problem(n_classes=k)
        results = []
        for trainer in (CLASSES["numpy-fused"](TrainConfig(lr=LR, n_iters=20, dtype="float32", n_classes=k), threads=2),
                        CLASSES["numpy"](TrainConfig(lr=LR, n_iters=20, dtype="float32", n_classes=k))):
            trainer.prepare(X, y, w0, b0)
            trainer.run()
            results.append(trainer.result())
        assert trainer.config.n_classes == k
        assert np.array_equal(results[0].w, results[1].w) and np.array_equal(results[0].losses, results[1].losses)


@pytest.mark.parametrize("name", [n for n in SPARSE if CLASSES[n].data_parallel])
def test_sparse_row_shards(name):
    """Data-parallel backends on two CSR row shards: the oracle's run, full batch and mini-batch."""
    _agree(name, 2, workers=2)
    _agree(name, 3, workers=2, batch_size=32, l2=0.05)
