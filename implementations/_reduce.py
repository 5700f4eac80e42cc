"""Partial sums, written once: a row block's or a shard's, the thread pool that runs blocks, and the
tail that turns sums into the contract's mean, penalised loss and gradient.

Every hand-derived step of this package is a reduction over rows. Over any set of rows ``R`` (a
cache-sized block of one step's rows, or a worker's shard)::

    s(R) = [ X_R^T (p_R - y_R),  sum_R (p_R - y_R),  sum_R l_i ]        p = sigmoid(X_R w + b)   (d + 2,)

and the step's rows ``S`` being the disjoint union of such ``R``, the contract's quantities are::

    L     = (sum_R s(R)[d+1]) / |S| + (λ/2) w.w
    dL/dw = (sum_R s(R)[:d])  / |S| + λ w          dL/db = (sum_R s(R)[d]) / |S|

Summed in a fixed order (block order, shard order), the bits depend on how the rows are cut, never
on which thread or worker finished first.

Softmax regression (``n_classes = K >= 3``; ``Y`` the one-hot labels, ``W (d, K)``, ``b (K,)``): the
vector grows to ``(d + 1) K + 1`` values::

    s(R) = [ vec(X_R^T (P_R - Y_R)),  sum_R (P_R - Y_R),  sum_R l_i ]       P = softmax(X_R W + b)

    L = s[-1] / |S| + (λ/2) ||W||_F^2,   dL/dW = s[:dK].reshape(d, K) / |S| + λ W,   dL/db = s[dK:dK+K] / |S|
"""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .base import LOG_CLAMP


def partial_sums(X, y, w, b, record, out, sigmoid, loss_sum):
    """``s(R)`` of the rows ``X, y`` written into ``out`` (``d + 2`` values) of any array library whose
    arrays have ``@``, ``-`` and ``.sum()``; ``sigmoid(z)`` and ``loss_sum(z, p, y)`` are the library's.
    ``z = X @ w + b`` (``mv`` then add: an empty part of a batch stays empty); ``out[d+1]`` is 0 when
    ``record`` is false (no loss is computed)."""
    z = X @ w + b
    p = sigmoid(z)
    out[-1] = loss_sum(z, p, y) if record else 0
    r = p - y
    out[:-2] = X.T @ r
    out[-2] = r.sum()
    return out


def softmax_partial_sums(X, Y, w, b, record, out, softmax, loss_sum):
    """``s(R)`` for K classes written into ``out`` (``(d + 1) K + 1`` values), ``Y`` one-hot; ``softmax(Z)``
    (row-wise) and ``loss_sum(Z, P, Y)`` are the library's. ``out[-1]`` is 0 unless ``record``."""
    Z = X @ w + b
    P = softmax(Z)
    out[-1] = loss_sum(Z, P, Y) if record else 0
    R = P - Y
    dk = w.shape[0] * w.shape[1]
    out[:dk] = (X.T @ R).reshape(-1)
    out[dk:-1] = R.sum(0)
    return out


def numpy_softmax(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def numpy_softmax_loss_sum(formulation):
    """``loss_sum(Z, P, Y)`` for K classes in NumPy: ``probs`` ``-sum(Y max(log P, -100))``, ``logits``
    ``sum(logsumexp(Z) - sum_k Y Z)``."""
    if formulation == "probs":
        return lambda Z, P, Y: -np.sum(Y * np.maximum(np.log(P), LOG_CLAMP))

    def logits(Z, P, Y):
        zmax = Z.max(axis=1)
        return np.sum(zmax + np.log(np.sum(np.exp(Z - zmax[:, None]), axis=1))) - np.sum(Y * Z)
    return logits


def numpy_loss_sum(formulation):
    """``loss_sum(z, p, y)`` in NumPy: ``probs`` clamps each log at -100 (torch's BCE), ``logits`` is
    ``sum(log(1 + e^z) - y z)``."""
    if formulation == "probs":
        return lambda z, p, y: -np.sum(y * np.maximum(np.log(p), LOG_CLAMP)
                                       + (1 - y) * np.maximum(np.log1p(-p), LOG_CLAMP))
    return lambda z, p, y: np.sum(np.logaddexp(0, z) - y * z)


def numpy_sigmoid(z):
    return 1 / (1 + np.exp(-z))


def mean_penalised(loss_sum, gw_sum, gb_sum, m, w, l2):
    """The tail, in float64 (sklearn's ``_loss_and_grad`` style): sums over ``m`` rows and the point
    ``w`` -> ``(L, dL/dw, dL/db)`` with the penalty ``(l2/2) ||w||^2`` on ``w`` only."""
    w64 = np.asarray(w, dtype=np.float64)
    if w64.ndim == 2:  # softmax: W (d, K), the penalty (l2/2) ||W||_F^2, db (K,)
        return (float(loss_sum) / m + 0.5 * l2 * float(np.sum(w64 * w64)),
                np.asarray(gw_sum, dtype=np.float64) / m + l2 * w64, np.asarray(gb_sum, dtype=np.float64) / m)
    return (float(loss_sum) / m + 0.5 * l2 * float(w64 @ w64),
            np.asarray(gw_sum, dtype=np.float64) / m + l2 * w64, float(gb_sum) / m)


class BlockPool:
    """Runs ``work(k, first, last, *args)`` over ``nblocks`` blocks cut into one contiguous range per
    thread: the calling thread takes range 0, a persistent ``ThreadPoolExecutor`` (created on first
    use, resized if the count changes, shut down with its owner) the others. NumPy's BLAS and ufuncs
    and torch's ops release the GIL, so the ranges run in parallel."""

    def __init__(self, owner, prefix: str):
        self._owner = weakref.ref(owner)
        self.prefix = prefix
        self._pool = None
        self.size = 0

    def ensure(self, threads: int) -> None:
        """Have ``threads - 1`` workers ready (untimed: call before the loop)."""
        if threads > 1 and self.size != threads - 1:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix=self.prefix)
            self.size = threads - 1
            weakref.finalize(self._owner(), self._pool.shutdown, wait=False)

    def run(self, work, nblocks: int, threads: int, *args) -> None:
        if threads <= 1:
            work(0, 0, nblocks, *args)
            return
        cuts = [nblocks * k // threads for k in range(threads + 1)]
        futures = [self._pool.submit(work, k, cuts[k], cuts[k + 1], *args) for k in range(1, threads)]
        try:
            work(0, cuts[0], cuts[1], *args)
        finally:
            for f in futures:
                f.result()
