"""The judge: a float64 oracle written apart from every backend.

This module owns everything the harness uses to decide whether a backend is *right*: the loss and
its gradient in float64, the reference gradient-descent trajectory, the tolerance derivation, the
saturation count and scikit-learn's optimum. It imports nothing from ``implementations/`` but the
contract's types (``TrainConfig``, ``TrainResult``, ``batch_schedule``), so a bug in a backend
cannot move the reference it is judged against. Each formula is written once here.

Math (labels ``y`` in {0, 1}, ``z = X w + b``, ``p = sigmoid(z)``, batch ``S`` of ``m`` rows, penalty λ)::

    probs : l_i = -(y_i max(log p_i, -100) + (1 - y_i) max(log(1 - p_i), -100))   (torch's clamp)
    logits: l_i = log(1 + e^{z_i}) - y_i z_i                                       (the same function, stable)
    L_S(w, b)   = (1/m) sum_{i in S} l_i + (λ/2) ||w||^2
    dL_S/dw     = X_S^T (p_S - y_S) / m + λ w          since dl_i/dz_i = p_i - y_i
    dL_S/db     = mean(p_S - y_S)

The reference run (:func:`reference_run`) is plain float64 NumPy gradient descent, ``θ ← θ - lr ∇L_S``,
on the data and init *as the backend's dtype sees them* (rounded to it), over the shared batch
schedule. ``tests/test_oracle.py`` pins it against the seed article's loop and ``torch.autograd``.

Tolerance model (final parameters and whole loss histories). Two correct implementations differ
only by rounding. Per step each rounds the update (~``u |w|``), the ``d``-term dot products
(~``d u``) and the ``m``-term reduction (~``log2(m) u``), relative to the parameters' scale. A
gradient step on this convex loss with ``lr < 2/L`` is non-expansive, so an error made at one step
is not amplified by later ones, and uncorrelated rounding errors add like a random walk::

    rtol(dtype, K, m, d) = u sqrt(K) (1 + d + log2 m)          (float64: at least 1e-10)

float32 (``u = 2^-24``) on the seed task (K = 5000, m = n = 100, d = 4): 4.9e-5. Differences are
relative to the reference's largest magnitude (``max|Δθ| / max|θ_ref|``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from implementations.base import TrainConfig, TrainResult, batch_schedule

LOG_CLAMP = -100.0  # torch.nn.functional.binary_cross_entropy clamps log() at -100
BCE_BACKWARD_EPS = 1e-12  # torch's binary_cross_entropy backward divides by max(p (1 - p), 1e-12)
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}
FLOAT64_FLOOR = 1e-10


# -- the formulas, float64 ---------------------------------------------------------------------

def sigmoid(z):
    return expit(z)


def sample_losses(z, y, formulation: str) -> np.ndarray:
    """Per-sample loss ``l_i`` of either formulation at logits ``z`` (see module docstring)."""
    if formulation == "logits":
        return np.logaddexp(0.0, z) - y * z
    p = sigmoid(z)
    with np.errstate(divide="ignore"):
        return -(y * np.maximum(np.log(p), LOG_CLAMP) + (1 - y) * np.maximum(np.log1p(-p), LOG_CLAMP))


def loss(X, y, w, b, formulation: str = "logits", l2: float = 0.0) -> float:
    """``mean(l_i) + (l2/2) ||w||^2`` in float64."""
    X, y, w = (np.asarray(a, dtype=np.float64) for a in (X, y, w))
    z = X @ w + float(b)
    return float(np.mean(sample_losses(z, y, formulation)) + 0.5 * l2 * (w @ w))


def grad(X, y, w, b, l2: float = 0.0) -> tuple[np.ndarray, float]:
    """``(X^T (p - y) / m + l2 w, mean(p - y))`` in float64 (the exact loss's gradient, both formulations)."""
    X, y, w = (np.asarray(a, dtype=np.float64) for a in (X, y, w))
    r = sigmoid(X @ w + float(b)) - y
    return X.T @ r / X.shape[0] + l2 * w, float(np.mean(r))


def rounded(a, dtype: str) -> np.ndarray:
    """``a`` as a backend of ``dtype`` sees it, back in float64: the reference computes on this,
    so a float32 backend is compared on the same (rounded) data, not on data it never saw."""
    with np.errstate(over="ignore"):  # beyond the dtype: inf, as the backend would see it
        return np.asarray(a).astype(dtype).astype(np.float64)


# -- the reference trajectory ---------------------------------------------------------------------

def reference_run(X, y, w0, b0, config: TrainConfig) -> TrainResult:
    """Float64 gradient descent of ``config`` (lr, steps, formulation, batch schedule, l2,
    record_every) on the data and init rounded to ``config.dtype``."""
    X, w, b = rounded(X, config.dtype), rounded(w0, config.dtype).copy(), float(rounded(b0, config.dtype))
    y = np.asarray(y, dtype=np.float64)
    schedule = None if config.batch_size is None else batch_schedule(X.shape[0], config.batch_size,
                                                                     config.n_iters, config.shuffle_seed)
    losses = np.empty(config.n_records)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(config.n_iters):
            Xb, yb = (X, y) if schedule is None else (X[schedule[t]], y[schedule[t]])
            z = Xb @ w + b
            if t % config.record_every == 0:
                losses[t // config.record_every] = np.mean(sample_losses(z, yb, config.formulation)) + 0.5 * config.l2 * (w @ w)
            r = sigmoid(z) - yb
            w, b = w - config.lr * (Xb.T @ r / len(yb) + config.l2 * w), b - config.lr * float(np.mean(r))
    return TrainResult.from_arrays(w, b, losses, config.record_every)


def full_losses_along(X, y, w0, b0, config: TrainConfig, steps) -> np.ndarray:
    """The full-data objective ``mean_i l_i + (l2/2) ||w||^2`` (``logits`` form: the exact function)
    at the parameters *before* each of ``steps`` (sorted) of :func:`reference_run`'s path. For a
    mini-batch run the recorded loss is the batch's; this is the loss time-to-accuracy needs."""
    steps = np.asarray(steps, dtype=np.int64)
    X, w, b = rounded(X, config.dtype), rounded(w0, config.dtype).copy(), float(rounded(b0, config.dtype))
    y = np.asarray(y, dtype=np.float64)
    schedule = None if config.batch_size is None else batch_schedule(X.shape[0], config.batch_size,
                                                                     config.n_iters, config.shuffle_seed)
    out = np.full(steps.size, np.nan)
    k = 0
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(config.n_iters):
            while k < steps.size and steps[k] == t:
                out[k] = loss(X, y, w, b, "logits", config.l2)
                k += 1
            if k == steps.size:
                break
            Xb, yb = (X, y) if schedule is None else (X[schedule[t]], y[schedule[t]])
            r = sigmoid(Xb @ w + b) - yb
            w, b = w - config.lr * (Xb.T @ r / len(yb) + config.l2 * w), b - config.lr * float(np.mean(r))
    return out


# -- tolerances and agreement ----------------------------------------------------------------------

def tolerance(dtype: str, n_iters: int, m: int, d: int) -> float:
    """Relative tolerance for a ``dtype`` run of ``n_iters`` steps on batches of ``m`` rows and ``d``
    features (see the module docstring)."""
    tol = UNIT_ROUNDOFF[dtype] * math.sqrt(n_iters) * (1 + d + math.log2(max(m, 2)))
    return max(tol, FLOAT64_FLOOR) if dtype == "float64" else tol


def config_tolerance(config: TrainConfig, n: int, d: int) -> float:
    return tolerance(config.dtype, config.n_iters, config.batch_size or n, d)


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
    dw, db, dloss = np.abs(res.w - ref.w), abs(res.b - ref.b), np.abs(res.losses - ref.losses)
    scale_p = max(np.max(np.abs(ref.w)), abs(ref.b), np.finfo(float).tiny)
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


def saturated_count(X, w, b, dtype: str) -> int:
    """Samples where sigmoid saturates for the ``probs`` formulation, computed in ``dtype``:
    ``p (1 - p) < 1e-12`` (``|z| > 27.6``), which includes ``p`` rounded to exactly 0 or 1
    (``z > 16.6`` in float32, ``36.7`` in float64). There autograd through sigmoid->BCE returns
    ``(p - y) p (1 - p) / 1e-12`` (0 once ``p`` is 0 or 1) instead of the hand-derived ``p - y``."""
    dt = np.dtype(dtype)
    z = np.asarray(X, dtype=dt) @ np.asarray(w, dtype=dt) + dt.type(b)
    p = sigmoid(z).astype(dt)
    return int(np.count_nonzero(p * (1 - p) < BCE_BACKWARD_EPS))


def rounding_bound(X, y, w, b, dtype: str, l2: float = 0.0) -> np.ndarray:
    """A-priori bound on the rounding error of the gradient ``(X^T (p - y) / n + l2 w, mean(p - y))``
    computed in ``dtype`` (forward error analysis, first order in the unit roundoff ``u``):

    * ``z_i = x_i . w + b`` has error <= ``(d + 1) u (|x_i| . |w| + |b|)``, which moves ``p_i`` by
      ``p_i (1 - p_i)`` times that; ``exp``, the division and ``p - y`` add <= 4 u;
    * the reduction over ``n`` terms adds <= ``(log2 n + 1) u`` of ``mean |x_ij r_i|``;
    * the penalty ``l2 w`` and its addition add <= 2 u ``l2 |w|``.
    """
    u = float(np.finfo(dtype).eps) / 2
    n, d = X.shape
    z = X @ w + b
    p = sigmoid(z)
    r = p - y
    dr = u * (p * (1 - p) * (d + 1) * (np.abs(X) @ np.abs(w) + abs(b)) + 4)
    Xa = np.abs(np.hstack([X, np.ones((n, 1))]))
    bound = (Xa.T @ dr + (math.log2(max(n, 2)) + 1) * u * (Xa.T @ np.abs(r))) / n
    bound[:-1] += 2 * u * l2 * np.abs(w)
    return bound


def smoothness(X, l2: float = 0.0) -> float:
    """An upper bound on the gradient's Lipschitz constant: the Hessian is
    ``A^T diag(p (1 - p)) A / n + l2 I_w`` with ``A = [X 1]`` and ``p (1 - p) <= 1/4``, so
    ``L <= λmax(A^T A) / (4 n) + l2``. Gradient descent with ``lr = 1/L`` decreases the loss every step."""
    X = np.asarray(X, dtype=np.float64)
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    return float(np.linalg.eigvalsh(A.T @ A / X.shape[0])[-1] / 4 + l2)


# -- the optimum --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Optimum:
    """scikit-learn's exact minimiser of ``mean log-loss + (l2/2) ||w||^2`` in float64."""

    w: np.ndarray
    b: float
    loss: float
    l2: float
    converged: bool

    def suboptimality(self, X, y, w, b) -> float:
        return loss(X, y, w, b, "logits", self.l2) - self.loss

    def rel_distance(self, w, b) -> float:
        theta = np.append(np.asarray(w, dtype=np.float64), b)
        star = np.append(self.w, self.b)
        return float(np.linalg.norm(theta - star) / max(np.linalg.norm(star), np.finfo(float).tiny))


def fit_optimum(X, y, l2: float = 0.0, tol: float = 1e-12, max_iter: int = 1000) -> Optimum:
    """``LogisticRegression(C=1/(n l2))`` minimises ``C sum l_i + ||w||^2 / 2``, i.e. (divided by
    ``C n``) our ``mean l_i + (l2/2) ||w||^2``; ``l2 = 0`` is ``C = inf`` (``penalty=None`` before 1.8).
    Newton-Cholesky: second order, exact to rounding for ``n >> d``."""
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    major, minor = (int(v) for v in sklearn.__version__.split(".")[:2])
    if l2 > 0:
        kwargs = {"C": 1.0 / (X.shape[0] * l2)}
    else:
        kwargs = {"C": np.inf} if (major, minor) >= (1, 8) else {"penalty": None}
    model = LogisticRegression(**kwargs, solver="newton-cholesky", tol=tol, max_iter=max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    w, b = model.coef_.ravel().astype(np.float64), float(model.intercept_[0])
    return Optimum(w=w, b=b, loss=loss(X, y, w, b, "logits", l2), l2=float(l2), converged=converged)
