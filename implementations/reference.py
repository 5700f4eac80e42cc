"""The float64 oracle: the contract's math, executable, written apart from every backend.

What a right answer is, for the conformance checks (:mod:`implementations.testing`) and the harness
alike: the loss and its gradient in float64, central finite differences of that loss, the reference
trajectory of every optimizer with a fixed step, the tolerance two correct runs may differ by, and
the comparison against it. It imports nothing from ``implementations/`` but the contract's types
(``TrainConfig``, ``TrainResult``) and the shared batch schedule, so a bug in a backend cannot move
the reference it is judged against. Each formula is written once here. ``X`` may be dense or SciPy
sparse (kept sparse as a float64 ``csr_array``: :func:`as_float64`); the two agree to rounding.

Math (labels ``y`` in {0, 1}, ``z = X w + b``, ``p = sigmoid(z)``, batch ``S`` of ``m`` rows, penalty λ)::

    probs : l_i = -(y_i max(log p_i, -100) + (1 - y_i) max(log(1 - p_i), -100))   (torch's clamp)
    logits: l_i = log(1 + e^{z_i}) - y_i z_i                                       (the same function, stable)
    L_S(w, b)   = (1/m) sum_{i in S} l_i + (λ/2) ||w||^2
    dL_S/dw     = X_S^T (p_S - y_S) / m + λ w          since dl_i/dz_i = p_i - y_i
    dL_S/db     = mean(p_S - y_S)

Softmax regression (``n_classes = K >= 3``: ``W (d, K)``, ``b (K,)``, integer labels ``y``, one-hot ``Y``;
the functions below take either model and tell them apart by ``w``'s shape)::

    Z = X W + b,   P = softmax(Z) row-wise (computed as e^{Z - max Z} / sum, stable)
    probs : l_i = -max(log P[i, y_i], -100)          (softmax, then log, clamped as torch's BCE is)
    logits: l_i = logsumexp(Z_i) - Z[i, y_i]         (``F.cross_entropy``: the same function, stable)
    L_S(W, b) = (1/m) sum_{i in S} l_i + (λ/2) ||W||_F^2
    dL_S/dW   = X_S^T (P_S - Y_S) / m + λ W          since dl_i/dZ_ik = P_ik - Y_ik
    dL_S/db   = mean over rows of (P_S - Y_S)

The reference run (:func:`reference_run`) is plain float64 NumPy gradient descent, ``θ ← θ - lr ∇L_S``
(or ``config.optimizer``'s update of that gradient, momentum, Nesterov or Adam: :class:`OptimizerSteps`),
on the data and init *as the backend's dtype sees them* (rounded to it), over the shared batch
schedule. ``tests/test_oracle.py`` pins it against the seed article's loop and ``torch.autograd``.

Tolerance model (final parameters and whole loss histories). Two correct implementations differ
only by rounding. Per step each rounds the update (~``u |w|``), the ``d``-term dot products
(~``d u``) and the ``m``-term reduction (~``log2(m) u``), relative to the parameters' scale. A
gradient step on this convex loss with ``lr < 2/L`` is non-expansive, so an error made at one step
is not amplified by later ones, and uncorrelated rounding errors add like a random walk::

    rtol(dtype, T, m, d, K) = u sqrt(T) (1 + d + log2 m [+ K])          (float64: at least 1e-10)

for ``T`` steps; the ``+ K`` term is the softmax's (``K >= 3`` only): each row's normaliser is a
``K``-term sum (~``K u`` worst case) that every probability of the row divides by, so it is counted
like the ``d``-term dot product. float32 (``u = 2^-24``) on the seed task (T = 5000, m = n = 100,
d = 4): 4.9e-5. Differences are relative to the reference's largest magnitude
(``max|Δθ| / max|θ_ref|``, over every entry of ``W`` and ``b`` for K classes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse
from scipy.special import expit

from .base import TrainConfig, TrainResult
from .schedule import batch_schedule

LOG_CLAMP = -100.0  # torch.nn.functional.binary_cross_entropy clamps log() at -100
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}
FLOAT64_FLOOR = 1e-10


# -- the formulas, float64 ---------------------------------------------------------------------

def as_float64(X):
    """``X`` in float64: a SciPy sparse ``X`` as a ``csr_array`` (``X @ w``, ``X.T @ r`` and row
    indexing are then SciPy's, never densified), anything else as a NumPy array."""
    if scipy.sparse.issparse(X):
        return scipy.sparse.csr_array(X, dtype=np.float64)
    return np.asarray(X, dtype=np.float64)


def sigmoid(z):
    return expit(z)


def softmax(Z) -> np.ndarray:
    """Row-wise softmax of ``Z (m, K)``, float64, stable (``e^{Z - max}``)."""
    E = np.exp(Z - np.max(Z, axis=1, keepdims=True))
    return E / np.sum(E, axis=1, keepdims=True)


def one_hot(y, k: int) -> np.ndarray:
    """``Y (m, K)``: row ``i`` is 1 at column ``y_i``."""
    return np.eye(k)[np.asarray(y).astype(np.int64)]


def labels(y) -> np.ndarray:
    return np.asarray(y).astype(np.int64)


def sample_losses(z, y, formulation: str) -> np.ndarray:
    """Per-sample loss ``l_i`` of either formulation at logits ``z`` (see module docstring):
    ``z (m,)`` for the binary model, ``Z (m, K)`` with integer labels ``y`` for softmax."""
    if np.ndim(z) == 2:
        rows, y = np.arange(z.shape[0]), labels(y)
        if formulation == "logits":
            zmax = np.max(z, axis=1)
            return zmax + np.log(np.sum(np.exp(z - zmax[:, None]), axis=1)) - z[rows, y]
        with np.errstate(divide="ignore"):
            return -np.maximum(np.log(softmax(z)[rows, y]), LOG_CLAMP)
    if formulation == "logits":
        return np.logaddexp(0.0, z) - y * z
    p = sigmoid(z)
    with np.errstate(divide="ignore"):
        return -(y * np.maximum(np.log(p), LOG_CLAMP) + (1 - y) * np.maximum(np.log1p(-p), LOG_CLAMP))


def loss(X, y, w, b, formulation: str = "logits", l2: float = 0.0) -> float:
    """``mean(l_i) + (l2/2) ||w||^2`` in float64 (``w (d, K)``, ``b (K,)``: softmax, ``||W||_F^2``)."""
    X, y, w = as_float64(X), np.asarray(y, dtype=np.float64), np.asarray(w, dtype=np.float64)
    if w.ndim == 2:
        Z = X @ w + np.asarray(b, dtype=np.float64)
        return float(np.mean(sample_losses(Z, y, formulation)) + 0.5 * l2 * np.sum(w * w))
    z = X @ w + float(b)
    return float(np.mean(sample_losses(z, y, formulation)) + 0.5 * l2 * (w @ w))


def grad(X, y, w, b, l2: float = 0.0) -> tuple[np.ndarray, float]:
    """``(X^T (p - y) / m + l2 w, mean(p - y))`` in float64 (the exact loss's gradient, both formulations);
    softmax (``w (d, K)``): ``(X^T (P - Y) / m + l2 W, mean_rows(P - Y))``, shapes ``(d, K)`` and ``(K,)``."""
    X, y, w = as_float64(X), np.asarray(y, dtype=np.float64), np.asarray(w, dtype=np.float64)
    if w.ndim == 2:
        R = softmax(X @ w + np.asarray(b, dtype=np.float64)) - one_hot(y, w.shape[1])
        return X.T @ R / X.shape[0] + l2 * w, np.mean(R, axis=0)
    r = sigmoid(X @ w + float(b)) - y
    return X.T @ r / X.shape[0] + l2 * w, float(np.mean(r))


def rounded(a, dtype: str) -> np.ndarray:
    """``a`` as a backend of ``dtype`` sees it, back in float64: the reference computes on this,
    so a float32 backend is compared on the same (rounded) data, not on data it never saw. A SciPy
    sparse ``a`` stays sparse (a ``csr_array``; its stored values rounded)."""
    with np.errstate(over="ignore"):  # beyond the dtype: inf, as the backend would see it
        if scipy.sparse.issparse(a):
            return scipy.sparse.csr_array(a).astype(dtype).astype(np.float64)
        return np.asarray(a).astype(dtype).astype(np.float64)


# -- the reference trajectory ---------------------------------------------------------------------

class OptimizerSteps:
    """The float64 update ``θ ← step(θ, g)`` of ``config.optimizer``, written here apart from the
    backends, textbook form (the contract's docstring, ``torch.optim``'s semantics and defaults). ``g``
    is the step's gradient (``λ w`` included for the weight, none for the bias). Each parameter has its
    own state; one instance per run (the state starts empty, ``t`` at 1)::

        gd       : θ - lr g
        momentum : buf = g (t = 1) else 0.9 buf + g;          θ - lr buf
        nesterov : buf as momentum;                           θ - lr (g + 0.9 buf)
        adam     : m = 0.9 m + 0.1 g;  v = 0.999 v + 0.001 g²  (m = v = 0 before t = 1)
                   θ - lr (m / (1 - 0.9^t)) / (sqrt(v / (1 - 0.999^t)) + 1e-8)
    """

    MOMENTUM, BETA1, BETA2, EPS = 0.9, 0.9, 0.999, 1e-8

    def __init__(self, config: TrainConfig):
        if config.optimizer not in ("gd", "momentum", "nesterov", "adam"):
            raise ValueError(f"optimizer {config.optimizer!r} has no lockstep reference trajectory (its line "
                             "search is the library's own): judge it by the suboptimality it reaches")
        self.optimizer, self.lr, self.t, self.state = config.optimizer, config.lr, 0, None

    def __call__(self, w, b, gw, gb):
        lr = self.lr
        if self.optimizer == "gd":
            return w - lr * gw, b - lr * gb
        self.t += 1
        grads = (np.asarray(gw, dtype=np.float64), np.asarray(gb, dtype=np.float64))
        if self.optimizer in ("momentum", "nesterov"):
            self.state = grads if self.state is None else tuple(self.MOMENTUM * buf + g
                                                                for buf, g in zip(self.state, grads, strict=True))
            steps = (self.state if self.optimizer == "momentum"
                     else tuple(g + self.MOMENTUM * buf for g, buf in zip(grads, self.state, strict=True)))
        else:
            if self.state is None:
                self.state = tuple((np.zeros_like(g), np.zeros_like(g)) for g in grads)
            b1, b2, t = self.BETA1, self.BETA2, self.t
            self.state = tuple((b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g)
                               for (m, v), g in zip(self.state, grads, strict=True))
            steps = tuple((m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + self.EPS) for m, v in self.state)
        w_new = w - lr * steps[0]
        b_new = b - lr * steps[1]
        return w_new, (float(b_new) if np.ndim(b) == 0 and not isinstance(b, np.ndarray) else b_new)


def reference_run(X, y, w0, b0, config: TrainConfig) -> TrainResult:
    """Float64 gradient descent of ``config`` (lr, steps, formulation, batch schedule, l2,
    record_every) on the data and init rounded to ``config.dtype``. ``X`` may be SciPy sparse: it stays
    sparse (CSR rows per batch, SciPy's products), and the run equals the dense one on ``X.toarray()``
    to rounding."""
    if config.n_classes >= 3:
        return _softmax_reference_run(X, y, w0, b0, config)
    X, w, b = rounded(X, config.dtype), rounded(w0, config.dtype).copy(), float(rounded(b0, config.dtype))
    y = np.asarray(y, dtype=np.float64)
    schedule = None if config.batch_size is None else batch_schedule(X.shape[0], config.batch_size,
                                                                     config.n_iters, config.shuffle_seed)
    losses = np.empty(config.n_records)
    update = OptimizerSteps(config)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(config.n_iters):
            Xb, yb = (X, y) if schedule is None else (X[schedule[t]], y[schedule[t]])
            z = Xb @ w + b
            if t % config.record_every == 0:
                losses[t // config.record_every] = (np.mean(sample_losses(z, yb, config.formulation))
                                                    + 0.5 * config.l2 * (w @ w))
            r = sigmoid(z) - yb
            w, b = update(w, b, Xb.T @ r / len(yb) + config.l2 * w, float(np.mean(r)))
    return TrainResult.from_arrays(w, b, losses, config.record_every)


def _softmax_steps(X, y, w0, b0, config: TrainConfig):
    """The float64 softmax gradient-descent path of ``config``: yields ``(t, W, b, Xb, yb, Zb)`` before
    step ``t``'s update (``W -= lr (Xb^T (P - Y) / m + λ W)``, ``b -= lr mean_rows(P - Y)``)."""
    k = config.n_classes
    X = rounded(X, config.dtype)
    W, b = rounded(w0, config.dtype).reshape(-1, k).copy(), rounded(b0, config.dtype).reshape(k)
    y = labels(y)
    Y = one_hot(y, k)
    schedule = None if config.batch_size is None else batch_schedule(X.shape[0], config.batch_size,
                                                                     config.n_iters, config.shuffle_seed)
    update = OptimizerSteps(config)
    for t in range(config.n_iters):
        rows = None if schedule is None else schedule[t]
        Xb, yb, Yb = (X, y, Y) if rows is None else (X[rows], y[rows], Y[rows])
        Z = Xb @ W + b
        yield t, W, b, Xb, yb, Z
        R = softmax(Z) - Yb
        W, b = update(W, b, Xb.T @ R / len(yb) + config.l2 * W, np.mean(R, axis=0))
    yield config.n_iters, W, b, None, None, None


def _softmax_reference_run(X, y, w0, b0, config: TrainConfig) -> TrainResult:
    losses = np.empty(config.n_records)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        # b is read after the loop: the last step's bias
        for t, W, b, _Xb, yb, Z in _softmax_steps(X, y, w0, b0, config):  # noqa: B007
            if Z is not None and t % config.record_every == 0:
                losses[t // config.record_every] = (np.mean(sample_losses(Z, yb, config.formulation))
                                                    + 0.5 * config.l2 * np.sum(W * W))
    return TrainResult.from_arrays(W, b, losses, config.record_every, config.n_classes)


def full_losses_along(X, y, w0, b0, config: TrainConfig, steps) -> np.ndarray:
    """The full-data objective ``mean_i l_i + (l2/2) ||w||^2`` (``logits`` form: the exact function)
    at the parameters *before* each of ``steps`` (sorted) of :func:`reference_run`'s path. For a
    mini-batch run the recorded loss is the batch's; this is the loss time-to-accuracy needs."""
    steps = np.asarray(steps, dtype=np.int64)
    if config.n_classes >= 3:
        out, k = np.full(steps.size, np.nan), 0
        Xr = rounded(X, config.dtype)
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            for t, W, b, _, _, _ in _softmax_steps(X, y, w0, b0, config):
                while k < steps.size and steps[k] == t:
                    out[k] = loss(Xr, y, W, b, "logits", config.l2)
                    k += 1
                if k == steps.size:
                    break
        return out
    X, w, b = rounded(X, config.dtype), rounded(w0, config.dtype).copy(), float(rounded(b0, config.dtype))
    y = np.asarray(y, dtype=np.float64)
    schedule = None if config.batch_size is None else batch_schedule(X.shape[0], config.batch_size,
                                                                     config.n_iters, config.shuffle_seed)
    out = np.full(steps.size, np.nan)
    k = 0
    update = OptimizerSteps(config)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(config.n_iters):
            while k < steps.size and steps[k] == t:
                out[k] = loss(X, y, w, b, "logits", config.l2)
                k += 1
            if k == steps.size:
                break
            Xb, yb = (X, y) if schedule is None else (X[schedule[t]], y[schedule[t]])
            r = sigmoid(Xb @ w + b) - yb
            w, b = update(w, b, Xb.T @ r / len(yb) + config.l2 * w, float(np.mean(r)))
    return out


def reference_path(X, y, w0, b0, config: TrainConfig):
    """The float64 oracle's parameters ``θ_k`` after each step ``k = 1 .. n_iters`` (and its loss of
    each step): one :func:`reference_run` step at a time, on the data and init rounded to
    ``config.dtype``, each step on its batch of the shared schedule."""
    Xr, w, b = rounded(X, config.dtype), rounded(w0, config.dtype), float(rounded(b0, config.dtype))
    y = np.asarray(y, np.float64)
    one = replace(config, n_iters=1, record_every=1, batch_size=None, dtype="float64", device="cpu")
    sched = None if config.batch_size is None else batch_schedule(X.shape[0], config.batch_size, config.n_iters,
                                                                  config.shuffle_seed)
    thetas, losses = [], []
    for t in range(config.n_iters):
        rows = slice(None) if sched is None else sched[t]
        res = reference_run(Xr[rows], y[rows], w, b, one)
        w, b = res.w, res.b
        thetas.append(np.append(w, b))
        losses.append(res.losses[0])
    return thetas, np.array(losses)


# -- tolerances and agreement ----------------------------------------------------------------------

def tolerance(dtype: str, n_iters: int, m: int, d: int, n_classes: int = 2) -> float:
    """Relative tolerance for a ``dtype`` run of ``n_iters`` steps on batches of ``m`` rows and ``d``
    features, ``n_classes`` classes (see the module docstring)."""
    terms = 1 + d + math.log2(max(m, 2)) + (n_classes if n_classes >= 3 else 0)
    tol = UNIT_ROUNDOFF[dtype] * math.sqrt(n_iters) * terms
    return max(tol, FLOAT64_FLOOR) if dtype == "float64" else tol


def config_tolerance(config: TrainConfig, n: int, d: int) -> float:
    return tolerance(config.dtype, config.n_iters, config.batch_size or n, d, config.n_classes)


@dataclass(frozen=True)
class Agreement:
    max_abs_dw: float
    abs_db: float
    max_abs_dloss: float
    rel_dparam: float
    rel_dloss: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return bool(self.rel_dparam <= self.tolerance and self.rel_dloss <= self.tolerance)

    @property
    def verdict(self) -> str:
        return "pass" if self.ok else "fail"


def compare(res: TrainResult, ref: TrainResult, tol: float) -> Agreement:
    """Largest differences of ``res`` against ``ref`` (absolute, and relative to ``ref``'s scale)."""
    if res.losses.shape != ref.losses.shape:
        raise ValueError(f"loss histories differ in length: {res.losses.shape} vs {ref.losses.shape}")
    if np.shape(res.w) != np.shape(ref.w) or np.shape(res.b) != np.shape(ref.b):
        raise ValueError(f"parameters differ in shape: w {np.shape(res.w)} vs {np.shape(ref.w)}, "
                         f"b {np.shape(res.b)} vs {np.shape(ref.b)}")
    # b: a float (binary) or a (K,) array (softmax); its largest entry either way
    dw, db, dloss = np.abs(res.w - ref.w), float(np.max(np.abs(res.b - ref.b))), np.abs(res.losses - ref.losses)
    scale_p = max(np.max(np.abs(ref.w)), float(np.max(np.abs(ref.b))), np.finfo(float).tiny)
    scale_l = max(np.max(np.abs(ref.losses)), np.finfo(float).tiny)
    finite_p, finite_l = bool(np.all(np.isfinite(dw)) and math.isfinite(db)), bool(np.all(np.isfinite(dloss)))
    max_dw = float(np.max(dw)) if dw.size else 0.0
    max_dl = float(np.max(dloss)) if dloss.size else 0.0
    return Agreement(
        max_abs_dw=max_dw if finite_p else math.nan, abs_db=float(db),
        max_abs_dloss=max_dl if finite_l else math.nan,
        rel_dparam=max(max_dw, db) / scale_p if finite_p else math.inf,
        rel_dloss=max_dl / scale_l if finite_l else math.inf, tolerance=tol,
    )


@dataclass(frozen=True)
class Divergence:
    """Where a run first leaves the oracle's path: after ``step`` steps its parameters differ by
    ``rel`` (max |Δθ| / max |θ_oracle|; ``abs`` absolute) while ``tolerance`` allows that many steps."""

    step: int
    rel: float
    abs: float
    tolerance: float
    what: str = "parameters"
    worst: str = ""  # the parameter that differs most there: "w[2]" or "b"

    def __str__(self) -> str:
        most = f", most in {self.worst}" if self.worst else ""
        return (f"first divergent step {self.step}: {self.what} off the float64 oracle's by {self.rel:.2e} relative "
                f"({self.abs:.2e} absolute{most}; tolerance {self.tolerance:.2e} at that step)")


# -- finite differences ---------------------------------------------------------------------------

def finite_difference(X, y, w, b, formulation, l2: float = 0.0) -> np.ndarray:
    """Central differences of the oracle's ``loss`` (penalty included) over ``θ = (w, b)`` in float64,
    the five-point stencil ``(8 (L(θ+h) - L(θ-h)) - (L(θ+2h) - L(θ-2h))) / 12h`` (truncation O(h^4)), one step per
    coordinate: ``h_j = eps^(1/5) max(1, |θ_j|) / max(1, rms(x_j))``, so that ``h_j x_j`` — the
    change it makes to ``z`` — is the same size for every feature whatever its units."""
    w, X = np.asarray(w, dtype=np.float64), as_float64(X)
    if scipy.sparse.issparse(X):  # the column RMS from the stored values (the zeros add nothing)
        rms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0)).reshape(-1) / X.shape[0])
    else:
        rms = np.sqrt(np.mean(X ** 2, axis=0))
    if w.ndim == 2:  # softmax: θ = (vec W, b), W's entry (j, k) scaled by x_j's size
        d, k = w.shape
        theta = np.concatenate([w.ravel(), np.asarray(b, dtype=np.float64).ravel()])
        scale = np.concatenate([np.repeat(rms, k), np.ones(k)])
        split = lambda t: (t[:d * k].reshape(d, k), t[d * k:])  # noqa: E731
    else:
        theta = np.append(w, b)
        scale = np.append(rms, 1.0)
        split = lambda t: (t[:-1], t[-1])  # noqa: E731
    grad = np.empty_like(theta)

    def at(j, step):
        t = theta.copy()
        t[j] += step
        return loss(X, y, *split(t), formulation, l2)

    for j in range(theta.size):
        h = np.finfo(np.float64).eps ** 0.2 * max(1.0, abs(theta[j])) / max(1.0, scale[j])
        h = (theta[j] + h) - theta[j]  # a step that is exact in binary
        grad[j] = (8 * (at(j, h) - at(j, -h)) - (at(j, 2 * h) - at(j, -2 * h))) / (12 * h)
    return grad
