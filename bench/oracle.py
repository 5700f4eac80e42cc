"""The harness's judgement beyond the oracle: why a backend parts from it, and where the optimum is.

The float64 oracle itself (loss, gradient, reference trajectories, tolerances, the agreement of a run
with it) is :mod:`implementations.reference`, beside the contract. What stays here is what only the
harness asks: how many samples saturate (the reason a ``probs`` run leaves the oracle), an a-priori
bound on a float32 gradient's rounding error (``bench grad``'s tolerance), the smoothness bound that
picks a case's step size, and scikit-learn's exact optimum (suboptimality, time to target).

Each takes a dense array or a SciPy sparse ``X`` (CSR); a sparse one is never densified: the
smoothness bound's largest eigenvalue comes from ``eigsh`` on the operator ``v -> A^T (A v) / n``,
the optimum from L-BFGS (Newton-Cholesky's ``d x d`` Hessian would be dense).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from implementations.reference import LOG_CLAMP, labels, loss, one_hot, sigmoid, softmax

BCE_BACKWARD_EPS = 1e-12  # torch's binary_cross_entropy backward divides by max(p (1 - p), 1e-12)
SPARSE_OPTIMUM_MAX_ITER = 2000  # L-BFGS iterations for a sparse optimum (each: two sparse products)


def _in(X, dtype):
    """``X`` as ``dtype`` computes on it: a sparse ``X`` stays sparse (its values cast)."""
    return X.astype(dtype) if scipy.sparse.issparse(X) else np.asarray(X, dtype=dtype)


def _abs_with_ones(X):
    """``|[X 1]|``: dense, or sparse (CSR) for a sparse ``X``."""
    if scipy.sparse.issparse(X):
        return scipy.sparse.hstack([abs(scipy.sparse.csr_array(X)), np.ones((X.shape[0], 1))], format="csr")
    return np.abs(np.hstack([X, np.ones((X.shape[0], 1))]))


def saturated_count(X, w, b, dtype: str, y=None) -> int:
    """Samples where sigmoid saturates for the ``probs`` formulation, computed in ``dtype``:
    ``p (1 - p) < 1e-12`` (``|z| > 27.6``), which includes ``p`` rounded to exactly 0 or 1
    (``z > 16.6`` in float32, ``36.7`` in float64). There autograd through sigmoid->BCE returns
    ``(p - y) p (1 - p) / 1e-12`` (0 once ``p`` is 0 or 1) instead of the hand-derived ``p - y``.

    Softmax (``w (d, K)``; needs the labels ``y``): samples whose label's probability, computed in
    ``dtype`` as the tutorials do (softmax, then log), has ``log P[i, y_i] < -100``: ``P[i, y_i]``
    underflowed to 0, or to within a few powers of ``e`` of it (the label's logit about 100 below the
    largest; ``e^-100 = 3.7e-44`` is subnormal in float32, and ``P`` is exactly 0 past ``e^-103.3``
    there, past ``e^-745`` in float64). The ``probs`` loss of such a sample is clamped at 100 and the
    clamp's derivative is 0, so autograd drops the sample from the gradient while the hand-derived
    ``P - Y`` keeps ``-(1 - P[i, y_i]) ≈ -1`` for its label. Probabilities of *other* classes that
    underflow are not counted: their ``P - Y`` entry is 0 either way, to within ``P`` itself."""
    dt = np.dtype(dtype)
    if np.ndim(w) == 2:
        if y is None:
            raise ValueError("saturated_count needs the labels y for a softmax model (w of shape (d, K))")
        Z = _in(X, dt) @ np.asarray(w, dtype=dt) + np.asarray(b, dtype=dt)
        with np.errstate(under="ignore", divide="ignore", over="ignore", invalid="ignore"):
            E = np.exp(Z - np.max(Z, axis=1, keepdims=True))
            P = E / np.sum(E, axis=1, keepdims=True)
            logp = np.log(P[np.arange(P.shape[0]), labels(y)])
        return int(np.count_nonzero(~(logp >= LOG_CLAMP)))
    z = _in(X, dt) @ np.asarray(w, dtype=dt) + dt.type(b)
    p = sigmoid(z).astype(dt)
    return int(np.count_nonzero(p * (1 - p) < BCE_BACKWARD_EPS))


def rounding_bound(X, y, w, b, dtype: str, l2: float = 0.0) -> np.ndarray:
    """A-priori bound on the rounding error of the gradient ``(X^T (p - y) / n + l2 w, mean(p - y))``
    computed in ``dtype`` (forward error analysis, first order in the unit roundoff ``u``):

    * ``z_i = x_i . w + b`` has error <= ``(d + 1) u (|x_i| . |w| + |b|)``, which moves ``p_i`` by
      ``p_i (1 - p_i)`` times that; ``exp``, the division and ``p - y`` add <= 4 u;
    * the reduction over ``n`` terms adds <= ``(log2 n + 1) u`` of ``mean |x_ij r_i|``;
    * the penalty ``l2 w`` and its addition add <= 2 u ``l2 |w|``.

    Softmax (``w (d, K)``; returned as ``(vec dL/dW, dL/db)``, ``(d + 1) K`` values): ``Z_ik`` has error
    ``δ_ik <= (d + 1) u (|x_i| . |W_k| + |b_k|)``, which moves ``P_ik`` by at most
    ``P_ik (δ_ik + sum_j P_ij δ_ij)`` (``dP = P (dZ - P . dZ)``); the max shift, the ``exp``, the
    ``K``-term normaliser, the division and ``P - Y`` add ``<= (K + 4) u``; the reduction and the
    penalty as above.
    """
    u = float(np.finfo(dtype).eps) / 2
    n, d = X.shape
    if np.ndim(w) == 2:
        W, bb = np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)
        k = W.shape[1]
        P = softmax(X @ W + bb)
        R = P - one_hot(y, k)
        Xa = _abs_with_ones(X)
        delta = (d + 1) * u * (Xa[:, :-1] @ np.abs(W) + np.abs(bb))
        dR = P * (delta + np.sum(P * delta, axis=1, keepdims=True)) + (k + 4) * u
        bound = (Xa.T @ dR + (math.log2(max(n, 2)) + 1) * u * (Xa.T @ np.abs(R))) / n  # (d + 1, K)
        bound[:-1] += 2 * u * l2 * np.abs(W)
        return np.concatenate([bound[:-1].ravel(), bound[-1]])
    z = X @ w + b
    p = sigmoid(z)
    r = p - y
    Xa = _abs_with_ones(X)
    dr = u * (p * (1 - p) * (d + 1) * (Xa[:, :-1] @ np.abs(w) + abs(b)) + 4)
    bound = (Xa.T @ dr + (math.log2(max(n, 2)) + 1) * u * (Xa.T @ np.abs(r))) / n
    bound[:-1] += 2 * u * l2 * np.abs(w)
    return bound


def smoothness(X, l2: float = 0.0, n_classes: int = 2) -> float:
    """An upper bound on the gradient's Lipschitz constant: the Hessian is
    ``A^T diag(p (1 - p)) A / n + l2 I_w`` with ``A = [X 1]`` and ``p (1 - p) <= 1/4``, so
    ``L <= λmax(A^T A) / (4 n) + l2``. Gradient descent with ``lr = 1/L`` decreases the loss every step.

    Softmax (``n_classes = K >= 3``), over ``θ = vec([W; b])``: the Hessian is
    ``(1/n) sum_i H_i ⊗ a_i a_i^T + l2 I_W`` with ``a_i = [x_i, 1]`` and ``H_i = diag(p_i) - p_i p_i^T``
    the softmax Jacobian. ``H_i ⪯ (1/2) (I - 11^T/K) ⪯ (1/2) I`` (Böhning 1992: for any ``v``,
    ``v^T H_i v = Var_{p_i}(v) <= (max v - min v)^2 / 4 <= ||v||^2 / 2``), so the Hessian is
    ``⪯ (1/2) I_K ⊗ A^T A / n + l2 I`` and ``L <= λmax(A^T A) / (2 n) + l2``: twice the binary bound."""
    if scipy.sparse.issparse(X):
        return sparse_lambda_max(X) / (2 if n_classes >= 3 else 4) + l2
    X = np.asarray(X, dtype=np.float64)
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    return float(np.linalg.eigvalsh(A.T @ A / X.shape[0])[-1] / (2 if n_classes >= 3 else 4) + l2)


def sparse_lambda_max(X, tol: float = 1e-8) -> float:
    """``λmax(A^T A / n)`` with ``A = [X 1]`` for a SciPy sparse ``X``, never densified: ARPACK's
    Lanczos (``eigsh``) on the operator ``v -> A^T (A v) / n`` (two sparse products a call), raised
    by the relative tolerance so that it stays an upper bound."""
    X = scipy.sparse.csr_array(X, dtype=np.float64)
    n, d = X.shape
    XT = X.T.tocsr()

    def apply(v):
        v = np.ravel(v)
        r = X @ v[:-1] + v[-1]
        return np.append(XT @ r, r.sum()) / n

    op = scipy.sparse.linalg.LinearOperator((d + 1, d + 1), matvec=apply, dtype=np.float64)
    if d + 1 <= 2:  # ARPACK needs k < dimension: the 2 x 2 case by hand
        M = np.column_stack([apply(e) for e in np.eye(d + 1)])
        return float(np.linalg.eigvalsh(M)[-1])
    v0 = np.ones(d + 1)  # deterministic: a run's 1/L does not depend on ARPACK's random start
    top = scipy.sparse.linalg.eigsh(op, k=1, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return float(top[0] * (1 + 10 * tol))


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
        """``||θ - θ*|| / ||θ*||``. Softmax: the bias is compared centred (``b - mean(b)``: softmax is
        unchanged by a common shift of ``b``, which the penalty does not fix), and with ``l2 = 0`` the
        rows of ``W`` too (``W - mean over classes``: unpenalised, ``W`` is defined up to the same shift)."""
        if self.w.ndim == 2:
            w, b = np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)
            b = b - b.mean()
            if self.l2 == 0:
                w = w - w.mean(axis=1, keepdims=True)
        theta = np.append(np.asarray(w, dtype=np.float64), b)
        star = np.append(self.w, self.b)
        return float(np.linalg.norm(theta - star) / max(np.linalg.norm(star), np.finfo(float).tiny))


def fit_optimum(X, y, l2: float = 0.0, tol: float = 1e-12, max_iter: int = 1000, n_classes: int = 2) -> Optimum:
    """``LogisticRegression(C=1/(n l2))`` minimises ``C sum l_i + ||w||^2 / 2``, i.e. (divided by
    ``C n``) our ``mean l_i + (l2/2) ||w||^2``; ``l2 = 0`` is ``C = inf`` (``penalty=None`` before 1.8).
    Newton-Cholesky: second order, exact to rounding for ``n >> d``.

    ``n_classes = K >= 3``: the same estimator fits the multinomial model (``coef_ (K, d)``, so
    ``W = coef_.T``) for the same objective with ``||W||_F^2``. Its bias is returned centred
    (``b - mean(b)``), and so is ``W``'s every row when ``l2 = 0``: only that representative of the
    optimum's shift class is defined (see :meth:`Optimum.rel_distance`); with ``l2 = 0`` compare the
    loss value."""
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    sparse = scipy.sparse.issparse(X)
    X = scipy.sparse.csr_array(X, dtype=np.float64) if sparse else np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if sparse and l2 == 0 and X.shape[1] + 1 >= X.shape[0]:
        raise ValueError(f"sparse data with more features than rows ({X.shape[1]} >= {X.shape[0]}) and no penalty: "
                         "the data is almost surely separable and the unpenalised optimum lies at infinity; give "
                         "--l2 for an optimum")
    major, minor = (int(v) for v in sklearn.__version__.split(".")[:2])
    if l2 > 0:
        kwargs = {"C": 1.0 / (X.shape[0] * l2)}
    else:
        kwargs = {"C": np.inf} if (major, minor) >= (1, 8) else {"penalty": None}
    # sparse: L-BFGS (Newton-Cholesky would form a dense d x d Hessian), to its gradient tolerance
    model = (LogisticRegression(**kwargs, solver="lbfgs", tol=tol, max_iter=max(max_iter, SPARSE_OPTIMUM_MAX_ITER))
             if sparse else LogisticRegression(**kwargs, solver="newton-cholesky", tol=tol, max_iter=max_iter))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    if n_classes >= 3:
        if model.coef_.shape[0] != n_classes:
            raise ValueError(f"y has {model.coef_.shape[0]} distinct classes, expected n_classes={n_classes}")
        w, b = model.coef_.T.astype(np.float64), model.intercept_.astype(np.float64)
        b = b - b.mean()
        if l2 == 0:
            w = w - w.mean(axis=1, keepdims=True)
        return Optimum(w=w, b=b, loss=loss(X, y, w, b, "logits", l2), l2=float(l2), converged=converged)
    w, b = model.coef_.ravel().astype(np.float64), float(model.intercept_[0])
    return Optimum(w=w, b=b, loss=loss(X, y, w, b, "logits", l2), l2=float(l2), converged=converged)
