"""Synthetic sparse sets (``sparse-<n>x<d>-d<density>[-k<K>]``) and a LIBSVM writer for tests and
the documented big-file check.

The set is text-like, as rcv1 or news20 (bag-of-words, TF-IDF): column ``j``'s share of the
non-zeros follows Zipf's law (``∝ 1/(j + 1)``, capped at every row), each non-zero a positive
term weight, each row scaled to unit length; the labels come from a planted weight vector
(``W (d, K)`` for ``K`` classes: the best class) with 5 % of them replaced at random. Seeded: the
same name and seed give the same matrix. The matrix is built in CSR without ever forming ``n x d``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from .dataset import Dataset
from .names import short_count

ZIPF_EXPONENT = 1.0
LABEL_NOISE = 0.05


def column_counts(n: int, d: int, nnz: int, exponent: float = ZIPF_EXPONENT) -> np.ndarray:
    """Non-zeros per column summing to ``nnz``: ``min(n, c / (j + 1)^s)`` with ``c`` found by bisection
    (a column is at most full), the rounding remainder spread over the rarest columns."""
    share = 1.0 / np.arange(1, d + 1, dtype=np.float64) ** exponent
    lo, hi = 0.0, float(n) * d
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.minimum(n, mid * share).sum() < nnz:
            lo = mid
        else:
            hi = mid
    counts = np.floor(np.minimum(n, hi * share)).astype(np.int64)
    short = nnz - int(counts.sum())
    room = np.flatnonzero(counts < n)[::-1]  # rarest first
    while short > 0 and len(room):
        take = room[:short]
        counts[take] += 1
        short -= len(take)
        room = np.flatnonzero(counts < n)[::-1]
    return counts


def _unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a sort and a mask: NumPy's hash-based ``unique`` is slower here)."""
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys


def _rows_per_column(rng, n: int, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each column ``j``, ``counts[j]`` distinct rows (uniformly): dense columns by a permutation,
    the others drawn with replacement and redrawn where they collide."""
    rows, cols = [], []
    dense = np.flatnonzero(counts > n // 8)
    for j in dense:
        rows.append(rng.choice(n, int(counts[j]), replace=False))
        cols.append(np.full(int(counts[j]), j, np.int64))
    light = counts.copy()
    light[dense] = 0
    col = np.repeat(np.arange(len(counts), dtype=np.int64), light)
    key = _unique(col * n + rng.integers(0, n, len(col)))
    for _ in range(100):  # redraw the collisions (rare for columns at most n/8 full)
        missing = light - np.bincount(key // n, minlength=len(counts))
        if not missing.any():
            break
        extra = np.repeat(np.arange(len(counts), dtype=np.int64), missing)
        key = _unique(np.concatenate([key, extra * n + rng.integers(0, n, len(extra))]))
    rows.append(key % n)
    cols.append(key // n)
    return np.concatenate(rows), np.concatenate(cols)


def sparse_text(n: int, d: int, density: float, k: int = 2, seed: int = 0,
                flip_y: float = LABEL_NOISE) -> Dataset:
    """The text-like sparse set of the module's docstring: ``round(n d density)`` non-zeros (at least
    one), CSR float64, labels in ``{0, 1}`` or ``0 .. K-1``."""
    rng = np.random.default_rng([seed, n, d, k, int(round(density * 1e12))])
    nnz = max(1, int(round(n * d * density)))
    rows, cols = _rows_per_column(rng, n, column_counts(n, d, nnz))
    vals = 1.0 + rng.exponential(1.0, len(rows))  # term weights, positive
    X = scipy.sparse.csr_array((vals, (rows, cols)), shape=(n, d))
    X.sum_duplicates()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X.data /= np.repeat(np.where(norms > 0, norms, 1.0), np.diff(X.indptr))
    # the planted model: logits with unit spread, centred so that the classes are balanced
    if k >= 3:
        W = rng.standard_normal((d, k))
        Z = X @ W
        y = np.argmax(Z - np.median(Z, axis=0), axis=1).astype(np.float64)
        noisy = rng.random(n) < flip_y
        y[noisy] = rng.integers(0, k, int(noisy.sum()))
    else:
        z = X @ rng.standard_normal(d)
        y = (z > np.median(z)).astype(np.float64)
        noisy = rng.random(n) < flip_y
        y[noisy] = rng.integers(0, 2, int(noisy.sum()))
    name = f"sparse-{short_count(n)}x{short_count(d)}-d{density:g}" + (f"-k{k}" if k >= 3 else "")
    origin = (f"bench.data.sparse.sparse_text(n={n}, d={d}, density={density:g}, k={k}, seed={seed}): Zipf column "
              f"frequencies, unit rows, planted weights, {flip_y:.0%} labels redrawn")
    return Dataset(name, X, y, 1.0, origin, density=X.nnz / (n * d), n_classes=k)


def write_svmlight(path, X, y, zero_based: bool = False) -> None:
    """``X`` (SciPy sparse) and ``y`` as a LIBSVM file (``label index:value ...``, indices from 1
    unless ``zero_based``), written in blocks of rows: the LIBSVM file of the big check
    (``python -c "from bench.data.sparse import *; ..."``, see docs) without scikit-learn's writer."""
    X = scipy.sparse.csr_array(X)
    base = 0 if zero_based else 1
    with open(path, "w") as fh:
        for lo in range(0, X.shape[0], 4096):
            block = X[lo:lo + 4096]
            lines = []
            for i in range(block.shape[0]):
                a, b = block.indptr[i], block.indptr[i + 1]
                pairs = zip(block.indices[a:b], block.data[a:b], strict=True)
                feats = " ".join(f"{j + base}:{v:.17g}" for j, v in pairs)
                lines.append(f"{y[lo + i]:g} {feats}".rstrip())
            fh.write("\n".join(lines) + "\n")
