"""``momentum``, ``nesterov`` and ``adam`` (``TrainConfig.optimizer``) in every backend, against bench.oracle.

* the float64 oracle's update (:class:`implementations.reference.OptimizerSteps`) is ``torch.optim``'s own:
  ``SGD(momentum=0.9[, nesterov=True])`` and ``Adam()`` with the penalty as ``weight_decay`` on ``w``;
* each backend's float64 run equals the oracle's to 1e-10 relative (parameters and loss history), full
  batch and batch 64 on 150 rows (a short last batch every epoch), with and without L2, the binary model
  and K = 3 where the backend has softmax; float32 within ``config_tolerance``;
* ``torch-nn`` builds the real ``torch.optim.SGD(momentum=0.9, nesterov=...)`` / ``torch.optim.Adam`` with
  the penalty on the weight's group only; the fused backends' blocked (and threaded) paths agree too;
* the state is reset by every ``run()``; the oracle's ``gd`` is untouched; an optimizer a backend does not
  declare is refused with ``BackendUnavailableError`` (a ``skipped`` row).

Small on purpose (150 rows, 30 steps): the data-parallel backends and ``torch-compiled`` get one case each.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from implementations import BACKENDS, BackendUnavailableError, TrainConfig, create_trainer, get_backend, reference

from .conftest import TRAINERS

OPTIMIZERS = ("momentum", "nesterov", "adam")
LR = {"momentum": 0.1, "nesterov": 0.1, "adam": 0.05}
N_ITERS = 30
CASES = {  # id: (n_classes, batch_size, l2, formulation)
    "binary-full-l2": (2, None, 0.1, "logits"),
    "k3-B64": (3, 64, 0.0, "probs"),
    "binary-B64-l2": (2, 64, 0.1, "probs"),
    "k3-full": (3, None, 0.0, "logits"),
}
# Each optimizer meets full batch and batch 64, with and without L2, binary and K = 3; Adam (the most
# state) every case. 8 runs per backend, not 12: a JAX or numba configuration compiles for seconds.
PLAN = [(opt, case) for opt, cases in (("momentum", ["binary-full-l2", "k3-B64"]),
                                       ("nesterov", ["binary-B64-l2", "k3-full"]),
                                       ("adam", list(CASES))) for case in cases]


@functools.lru_cache(maxsize=None)
def problem(k: int):
    """150 rows (150 = 2 x 64 + 22), 4 features, labels from a noisy linear model; init as (d,) or (d, K)."""
    rng = np.random.default_rng(11 + k)
    n, d = 150, 4
    X = rng.standard_normal((n, d))
    if k == 2:
        y = (X @ rng.standard_normal(d) + 0.5 * rng.standard_normal(n) > 0).astype(np.float64)
        return X, y, 0.1 * rng.standard_normal(d), 0.1
    y = np.argmax(X @ rng.standard_normal((d, k)) + 0.5 * rng.standard_normal((n, k)), axis=1)
    return X, y, 0.1 * rng.standard_normal((d, k)), 0.1 * rng.standard_normal(k)


def _cls(name):
    if name == "numpy[array_api_strict]":
        name = "numpy"
    try:
        return get_backend(name)
    except BackendUnavailableError:
        return None


def _implements(name, optimizer):
    cls = _cls(name)
    return cls is None or optimizer in tuple(cls.optimizers)  # not importable here: its test skips


def _config(optimizer, case, dtype, **extra):
    k, B, l2, form = CASES[case]
    return TrainConfig(lr=LR[optimizer], n_iters=N_ITERS, dtype=dtype, formulation=form, batch_size=B, l2=l2,
                       n_classes=k, optimizer=optimizer, **extra)


def _run(name, config, runs=1):
    X, y, w0, b0 = problem(config.n_classes)
    with TRAINERS[name](config) as trainer:
        trainer.prepare(X, y, w0, b0)
        out = []
        for _ in range(runs):
            trainer.run()
            out.append(trainer.result())
    return out if runs > 1 else out[0]


@functools.lru_cache(maxsize=None)
def _reference(config):
    return reference.reference_run(*problem(config.n_classes), config)


def _check(name, config):
    cls = _cls(name)
    if cls is not None and config.n_classes >= 3 and not cls.supports_multiclass:
        pytest.skip(f"{name} has no softmax path")
    res = _run(name, config)
    X = problem(config.n_classes)[0]
    tol = reference.config_tolerance(config, *X.shape)
    agreement = reference.compare(res, _reference(config), tol)
    assert agreement.ok, agreement
    if config.dtype == "float32":
        assert agreement.rel_dparam > 0, "really computed in float32"
    return res


def _loop(name):
    """A gradient loop (it runs ``gd``): every such backend implements the hand-written optimizers. Solver
    rows (scikit-learn's, ``optimizers = ("solver",)``) are not loops and are left out."""
    cls = _cls(name)
    return cls is None or "gd" in tuple(cls.optimizers)


LOOPS = [n for n in BACKENDS if _loop(n)]
SINGLE = [n for n in LOOPS if n != "torch-compiled" and not getattr(_cls(n), "data_parallel", False)]
SINGLE.append("numpy[array_api_strict]")  # the numpy backend on a strict array-API namespace: stays generic
PARALLEL = [n for n in LOOPS if getattr(_cls(n), "data_parallel", False)]


# -- the oracle is torch.optim ------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("case", ["binary-B64-l2", "k3-full"])
def test_oracle_is_torch_optim(optimizer, case):
    """torch.optim in float64, written as a user writes it (penalty as weight_decay on w only, the bias
    in its own group), follows the oracle's trajectory to 1e-12."""
    torch = pytest.importorskip("torch")
    cfg = _config(optimizer, case, "float64")
    X, y, w0, b0 = problem(cfg.n_classes)
    Xt = torch.tensor(X)
    yt = torch.tensor(y) if cfg.n_classes == 2 else torch.tensor(y, dtype=torch.int64)
    w = torch.tensor(np.asarray(w0, dtype=np.float64), requires_grad=True)
    b = torch.tensor(np.asarray(b0, dtype=np.float64), requires_grad=True)
    groups = [{"params": [w], "weight_decay": cfg.l2}, {"params": [b], "weight_decay": 0.0}]
    opt = (torch.optim.Adam(groups, lr=cfg.lr) if optimizer == "adam" else
           torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=optimizer == "nesterov"))
    schedule = None if cfg.batch_size is None else \
        __import__("implementations").batch_schedule(X.shape[0], cfg.batch_size, cfg.n_iters, cfg.shuffle_seed)
    for t in range(cfg.n_iters):
        rows = slice(None) if schedule is None else torch.as_tensor(schedule[t])
        z = Xt[rows] @ w + b
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(z, yt[rows]) if cfg.n_classes == 2
                else torch.nn.functional.cross_entropy(z, yt[rows]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    ref = _reference(cfg)
    scale = max(np.max(np.abs(ref.w)), np.max(np.abs(ref.b)))
    assert np.max(np.abs(w.detach().numpy() - ref.w)) <= 1e-12 * scale
    assert np.max(np.abs(b.detach().numpy() - ref.b)) <= 1e-12 * scale


def test_oracle_gd_is_unchanged_and_lbfgs_has_no_lockstep_reference():
    X, y, w0, b0 = problem(2)
    cfg = TrainConfig(lr=0.1, n_iters=5, dtype="float64", l2=0.1)
    w, b = np.array(w0), b0
    for _ in range(5):
        gw, gb = reference.grad(X, y, w, b, 0.1)
        w, b = w - 0.1 * gw, b - 0.1 * gb
    ref = reference.reference_run(X, y, w0, b0, cfg)
    np.testing.assert_array_equal(ref.w, w)
    assert ref.b == b
    with pytest.raises(ValueError, match="lbfgs"):
        reference.OptimizerSteps(TrainConfig(optimizer="lbfgs"))


# -- every backend against the oracle ---------------------------------------------------------------

@pytest.mark.parametrize("optimizer, case", PLAN)
@pytest.mark.parametrize("name", SINGLE)
def test_backend_matches_oracle_float64(name, optimizer, case):
    if not _implements(name, optimizer):
        pytest.fail(f"{name} does not declare {optimizer!r}")
    _check(name, _config(optimizer, case, "float64"))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("name", SINGLE)
def test_backend_float32_within_tolerance(name, optimizer):
    _check(name, _config(optimizer, "binary-B64-l2", "float32"))


@pytest.mark.parametrize("name", PARALLEL)
def test_data_parallel_backends_one_case_each(name):
    """2 workers (75 rows each), batch 64 with L2, Adam: the state is the same on every worker."""
    _check(name, _config("adam", "binary-B64-l2", "float64", workers=2))


@pytest.mark.parametrize("name", [n for n in BACKENDS if n == "torch-compiled"])
def test_compiled_backend_one_tiny_case(name):
    cfg = TrainConfig(lr=0.1, n_iters=8, dtype="float64", formulation="logits", batch_size=64, l2=0.1,
                      optimizer="nesterov")
    _check(name, cfg)


@pytest.mark.parametrize("name", ["numpy-fused", "torch-fused"])
def test_fused_backends_blocked_paths(name):
    """Small blocks, so that the blocked steps run (several blocks, one and two threads): the optimizer
    updates the gradient those paths sum in block order."""
    torch = pytest.importorskip("torch")
    cls = _cls(name)
    saved = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for optimizer, case in (("adam", "binary-B64-l2"), ("nesterov", "k3-full")):
                cfg = _config(optimizer, case, "float64")
                X, y, w0, b0 = problem(cfg.n_classes)
                trainer = cls(cfg, block_bytes=256)
                trainer.prepare(X, y, w0, b0)
                if name == "numpy-fused":
                    trainer._parallel_ok, trainer.threads = True, threads
                trainer.run()
                assert trainer.blocked if name == "torch-fused" else trainer.nblocks > 1
                agreement = reference.compare(trainer.result(), _reference(cfg), 1e-10)
                assert agreement.ok, (threads, optimizer, agreement)
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_torch_nn_uses_the_real_torch_optim(optimizer):
    torch = pytest.importorskip("torch")
    cfg = _config(optimizer, "binary-B64-l2", "float64")
    trainer = TRAINERS["torch-nn"](cfg)
    trainer.prepare(*problem(2))
    opt = trainer.optimizer
    if optimizer == "adam":
        assert type(opt) is torch.optim.Adam and opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["eps"] == 1e-8
    else:
        assert type(opt) is torch.optim.SGD and opt.defaults["momentum"] == 0.9 and opt.defaults["dampening"] == 0
        assert opt.defaults["nesterov"] == (optimizer == "nesterov")
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0], "L2 on the weight only"


@pytest.mark.parametrize("name", ["numpy", "torch", "torch-nn", "jax"])
def test_state_is_reset_by_every_run(name):
    first, second = _run(name, _config("adam", "binary-B64-l2", "float64"), runs=2)
    np.testing.assert_array_equal(first.w, second.w)
    np.testing.assert_array_equal(first.losses, second.losses)


# -- what a backend does not declare is refused ------------------------------------------------------

def test_an_undeclared_optimizer_is_refused():
    from implementations.numpy_backend import NumpyTrainer

    class GdOnly(NumpyTrainer):
        name = "gd-only"
        optimizers = ("gd",)

    GdOnly(TrainConfig())
    for optimizer in OPTIMIZERS:
        with pytest.raises(BackendUnavailableError, match=rf"optimizer {optimizer!r} is not implemented in "
                                                          r"backend 'gd-only'"):
            GdOnly(TrainConfig(optimizer=optimizer))


@pytest.mark.parametrize("name", LOOPS)
def test_every_backend_declares_the_hand_written_optimizers(name):
    cls = _cls(name)
    if cls is None:
        pytest.skip(f"{name} cannot be imported here")
    assert {"gd", *OPTIMIZERS} <= set(cls.optimizers), cls.optimizers
    for optimizer in set(("lbfgs",)) - set(cls.optimizers):
        with pytest.raises(BackendUnavailableError, match="not implemented"):
            create_trainer(name, TrainConfig(optimizer=optimizer))
