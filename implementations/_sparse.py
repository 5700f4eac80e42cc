"""Host helpers for a sparse ``X``, written once for the backends that declare ``supports_sparse``.

``prepare`` hands a backend a canonical ``scipy.sparse.csr_array`` of its dtype
(:func:`implementations.validation.check_inputs`). A step needs two products on it::

    z = X w          CSR matvec: one pass over the rows, gathering w[indices]
    g = X^T r        on the transpose stored as CSR (= X in CSC): one pass over the features, gathering r

The transpose is made once, in ``prepare`` (:func:`transpose`), never per step. A mini-batch is the CSR
rows ``X[S_t]`` (:func:`take_rows`, SciPy's fancy row indexing: one copy of those rows' values and
indices per step, as a user's ``X[idx]`` pays it); its ``X_S^T r`` is ``X_S.T @ r`` (SciPy's CSC
matvec, a scatter over the batch's non-zeros: transposing the batch would cost a sort per step).

:class:`WithTranspose` carries ``X`` and its CSR transpose together, so that a step written for a
dense array (``X @ w``, ``X.T @ r``, ``X.shape``) runs unchanged on it; :class:`ThreadedCSR` does the
same with both products cut into row blocks (:func:`row_blocks`, :func:`nnz_cuts`: views that share
the matrix's memory, balanced by non-zeros) run on a thread pool.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse


def is_csr(X) -> bool:
    """True for a SciPy CSR matrix or array (what ``prepare`` hands a backend for a sparse ``X``)."""
    return scipy.sparse.issparse(X) and X.format == "csr"


def as_csr(X, dtype) -> scipy.sparse.csr_array:
    """``X`` (any SciPy sparse format) as a canonical ``csr_array`` of ``dtype``; no copy when it is one."""
    X = scipy.sparse.csr_array(X, dtype=np.dtype(dtype))
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return X


def transpose(X) -> scipy.sparse.csr_array:
    """``X^T`` as a CSR array (the CSC layout of ``X``): ``transpose(X) @ r`` is a row-wise gather."""
    T = scipy.sparse.csr_array(X.T.tocsr())
    T.sort_indices()
    return T


def take_rows(X, rows) -> scipy.sparse.csr_array:
    """The CSR rows ``X[rows]`` in the order given (``rows`` a host integer array)."""
    return X[np.asarray(rows)]


def row_blocks(X, cuts) -> list:
    """``X``'s rows ``cuts[k]:cuts[k + 1]`` as CSR arrays that share ``X``'s values and indices (only
    each block's ``indptr`` is new): a zero-copy view per block."""
    blocks = []
    for lo, hi in itertools.pairwise(cuts):
        a, b = int(X.indptr[lo]), int(X.indptr[hi])
        indptr = (X.indptr[lo:hi + 1] - a).astype(X.indptr.dtype)
        blocks.append(scipy.sparse.csr_array((X.data[a:b], X.indices[a:b], indptr), shape=(hi - lo, X.shape[1]),
                                             copy=False))
    return blocks


def nnz_cuts(X, target_nnz: int) -> list[int]:
    """Row cuts ``0 = c_0 < ... < c_B = n`` giving blocks of about ``target_nnz`` non-zeros each (at
    least one row each): balanced by work, not by row count, since rows of text data differ a lot."""
    n, nnz = X.shape[0], X.nnz
    nb = max(1, min(n, -(-nnz // max(1, target_nnz))))
    cuts = np.searchsorted(X.indptr, np.arange(1, nb) * (nnz / nb), side="left")
    cuts = np.unique(np.clip(cuts, 1, n - 1)) if n > 1 else np.empty(0, np.int64)
    return [0, *(int(c) for c in cuts), n]


class WithTranspose:
    """A CSR matrix and its CSR transpose, made once: ``A @ v`` is ``X @ v`` and ``A.T @ r`` is
    ``transpose(X) @ r``, so a step written as ``X @ w`` / ``X.T @ r`` runs on the precomputed
    transpose without a change. ``shape``, ``dtype`` and ``nnz`` are ``X``'s."""

    def __init__(self, X, XT=None):
        self.X = X
        self._XT = transpose(X) if XT is None else XT

    @property
    def T(self):
        return self._XT

    @property
    def shape(self):
        return self.X.shape

    @property
    def dtype(self):
        return self.X.dtype

    @property
    def nnz(self):
        return self.X.nnz

    def __matmul__(self, v):
        return self.X @ v


class ThreadedCSR:
    """A CSR matrix cut into row blocks of about ``block_nnz`` non-zeros (zero-copy views), whose
    ``A @ v`` runs the blocks on ``pool`` (:class:`implementations._reduce.BlockPool`) with ``threads``
    threads: SciPy's CSR matvec releases the GIL but runs on one thread, so the blocks give each core a
    contiguous range of rows. Each output row is one row's dot product whatever the cut, so the result
    is bit for bit SciPy's serial ``X @ v``, for any thread count. ``A.T`` is the transpose, made once
    and cut the same way (``X^T r`` as row blocks of the transpose: no partial sums to add up)."""

    def __init__(self, X, pool, block_nnz: int, XT=None, _transpose=True):
        self.X, self.pool, self.threads = X, pool, 1
        self.cuts = nnz_cuts(X, block_nnz)
        self.blocks = row_blocks(X, self.cuts)
        self._T = (ThreadedCSR(transpose(X) if XT is None else XT, pool, block_nnz, _transpose=False)
                   if _transpose else None)
        if self._T is not None:
            self._T._T = self

    @property
    def T(self):
        return self._T

    @property
    def shape(self):
        return self.X.shape

    @property
    def dtype(self):
        return self.X.dtype

    def set_threads(self, threads: int) -> None:
        """Threads for ``@`` on this matrix and on its transpose (at most one per block of each)."""
        for A in (self, self._T):
            if A is not None:
                A.threads = max(1, min(threads, len(A.blocks)))

    def _work(self, k, first, last, v, out):
        for blk in range(first, last):
            out[self.cuts[blk]:self.cuts[blk + 1]] = self.blocks[blk] @ v

    def __matmul__(self, v):
        out = np.empty((self.X.shape[0],) + np.shape(v)[1:], np.result_type(self.X.dtype, v.dtype))
        self.pool.run(self._work, len(self.blocks), self.threads, v, out)
        return out
