"""The float64 oracle over a folder of shards, one part in memory at a time.

The same math as :mod:`implementations.reference` (its formulas and optimizer updates are reused,
not rewritten), computed as partial sums over the parts, so that a data set no process holds is still
judged against float64::

    per part p:   s_p = [ X_{S_t∩p}^T (p - y),  sum_{S_t∩p} (p - y),  sum_{S_t∩p} l_i ]     (float64)
    step t:       g_w = (sum_p s_p[:d]) / |S_t| + λ w,   g_b = (sum_p s_p[d]) / |S_t|,
                  L   = (sum_p s_p[d+1]) / |S_t| + (λ/2) ||w||^2

(softmax: ``X^T (P - Y)``, the column sums of ``P - Y`` and the loss sum). Mini-batches follow the
global schedule :func:`implementations.batch_schedule` over all ``n`` rows: each step's global row
indices are mapped to ``(part, local index)`` through the parts' starting rows, rows of one part in
schedule order. The result equals :func:`implementations.reference.reference_run` on the concatenated
data up to the order of the float64 sums (``tests/test_multihost.py`` checks ``<= 1e-12``).

Cost: every step reads every part its batch touches (one part held at a time, the last one kept), so
this oracle is for judging runs of a few to a few hundred steps, not for training.
"""

from __future__ import annotations

import numpy as np

from .base import TrainConfig, TrainResult
from .reference import OptimizerSteps, one_hot, rounded, sample_losses, sigmoid, softmax
from .schedule import batch_schedule
from .shards import ShardMeta, load_part, read_meta


class _Parts:
    """Part ``p`` as the oracle sees it (rounded to ``dtype``, float64), the last one read kept."""

    def __init__(self, meta: ShardMeta, dtype: str):
        self.meta, self.dtype = meta, dtype
        self.at, self.data = None, None

    def __call__(self, p: int):
        if self.at != p:
            self.data = None  # let the previous part go before the next one is read
            X, y = load_part(self.meta, p)
            self.at, self.data = p, (rounded(X, self.dtype), np.asarray(y, dtype=np.float64))
        return self.data


def _part_sums(X, y, w, b, formulation: str):
    """``(X^T R, sum_rows R, sum l_i)`` in float64 of one part's rows (``R = p - y`` or ``P - Y``)."""
    if np.ndim(w) == 2:
        Z = X @ w + b
        R = softmax(Z) - one_hot(y, w.shape[1])
        return X.T @ R, R.sum(axis=0), float(np.sum(sample_losses(Z, y, formulation)))
    z = X @ w + b
    r = sigmoid(z) - y
    return X.T @ r, float(r.sum()), float(np.sum(sample_losses(z, y, formulation)))


def _step_sums(parts: _Parts, meta: ShardMeta, rows, w, b, formulation: str):
    """The summed ``(X^T R, sum R, sum l)`` over the parts for the global ``rows`` (None: all rows)."""
    total = None
    if rows is None:
        pieces = [(p, None) for p in range(meta.parts)]
    else:
        where = np.searchsorted(meta.starts, rows, side="right") - 1
        pieces = [(int(p), rows[where == p] - meta.starts[p]) for p in np.unique(where)]
    for p, local in pieces:
        X, y = parts(p)
        s = _part_sums(X if local is None else X[local], y if local is None else y[local], w, b, formulation)
        total = s if total is None else tuple(a + c for a, c in zip(total, s, strict=True))
    return total


def stream_loss_and_grad(root, w, b, formulation: str = "logits", l2: float = 0.0, dtype: str = "float64"):
    """Full-data ``(loss, g_w, g_b)`` in float64 over the shards (as :func:`implementations.reference.loss`
    and :func:`~implementations.reference.grad`), one part at a time."""
    meta = read_meta(root) if isinstance(root, str) else root
    w = np.asarray(w, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64) if w.ndim == 2 else float(b)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        gw, gb, ls = _step_sums(_Parts(meta, dtype), meta, None, w, b, formulation)
    pen = 0.5 * l2 * float(np.sum(w * w))
    return ls / meta.n + pen, gw / meta.n + l2 * w, gb / meta.n


def stream_reference_run(root, w0, b0, config: TrainConfig) -> TrainResult:
    """:func:`implementations.reference.reference_run` over a shard folder (``root`` a path or a
    :class:`~implementations.shards.ShardMeta`): float64, data and init rounded to ``config.dtype``."""
    meta = read_meta(root) if isinstance(root, str) else root
    k = config.n_classes
    if k >= 3:
        w, b = rounded(w0, config.dtype).reshape(-1, k).copy(), rounded(b0, config.dtype).reshape(k)
    else:
        w, b = rounded(w0, config.dtype).copy(), float(rounded(b0, config.dtype))
    schedule = (None if config.batch_size is None else
                batch_schedule(meta.n, config.batch_size, config.n_iters, config.shuffle_seed))
    parts = _Parts(meta, config.dtype)
    losses = np.empty(config.n_records)
    update = OptimizerSteps(config)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for t in range(config.n_iters):
            rows = None if schedule is None else schedule[t]
            m = meta.n if rows is None else len(rows)
            gw, gb, ls = _step_sums(parts, meta, rows, w, b, config.formulation)
            if t % config.record_every == 0:
                losses[t // config.record_every] = ls / m + 0.5 * config.l2 * float(np.sum(w * w))
            w, b = update(w, b, gw / m + config.l2 * w, gb / m)
    return TrainResult.from_arrays(w, b, losses, config.record_every, k)
