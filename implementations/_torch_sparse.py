"""Sparse ``X`` for the torch backends: a SciPy CSR matrix as a torch CSR tensor on the device, its
transpose as its own CSR tensor, and the rows of a mini-batch gathered on the device.

**Index width.** The CSR tensors keep int32 indices when ``nnz < 2**31`` (SciPy's own choice for
such matrices), else int64: torch's CPU ``addmv`` on an int32 CSR matrix reads half the index
bytes (``docs/performance.md``), and ``torch.sparse.mm``/autograd accept both.

**Mini-batch rows** (:class:`CsrBatches`). ``index_select`` on a CSR tensor is not implemented on
CPU (torch 2.13), and slicing the SciPy matrix on the host would put a host-to-device copy in every
timed step on CUDA; so the rows of step ``t`` are gathered from the device arrays of ``X`` with a
handful of dense ops (no host sync: each step's non-zero count is computed once in ``prepare`` from
the schedule)::

    starts = crow[rows] ;  lens = crow[rows + 1] - starts ;  crow_b = [0, cumsum(lens)]
    pos    = arange(nnz_b) + repeat_interleave(starts - crow_b[:-1], lens)     positions in X's arrays
    X_b    = CSR(crow_b, col[pos], val[pos])   (m, d) ;  rid_b = repeat_interleave(arange(m), lens)

``X_b^T r`` on the batch is then ``zeros(d).index_add_(0, col_b, val_b * r[rid_b])`` (a scatter of the
batch's non-zeros), which needs no transpose of ``X_b``. The same ops run on CUDA.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse
import torch

INT32_MAX = 2**31 - 1


def index_dtype(nnz: int, d: int):
    return np.int32 if max(nnz, d) <= INT32_MAX else np.int64


def to_torch_csr(A, dtype: str, dev: torch.device) -> torch.Tensor:
    """A SciPy CSR matrix/array as a torch CSR tensor of ``dtype`` on ``dev``."""
    A = scipy.sparse.csr_array(A)
    it = index_dtype(A.nnz, max(A.shape))
    crow, col = (torch.from_numpy(np.ascontiguousarray(a, dtype=it)) for a in (A.indptr, A.indices))
    val = torch.from_numpy(np.ascontiguousarray(A.data, dtype=dtype))
    with warnings.catch_warnings():  # torch's once-per-process "CSR support is in beta" notice
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
        return torch.sparse_csr_tensor(crow.to(dev), col.to(dev), val.to(dev), size=A.shape, check_invariants=False)


def transpose_csr(A, dtype: str, dev: torch.device) -> torch.Tensor:
    """``A^T`` as its own CSR tensor (``(d, n)``), built once on the host."""
    return to_torch_csr(scipy.sparse.csr_array(A).T.tocsr(), dtype, dev)


class CsrBatches:
    """The rows of each mini-batch of a schedule, gathered from ``X`` (a torch CSR tensor) on its
    device; see the module docstring. ``batch(t)`` gives ``(X_b, col_b, val_b, rid_b, rows)``."""

    def __init__(self, X_host, X: torch.Tensor, schedule):
        dev = X.device
        self.d = X.shape[1]
        self.crow = X.crow_indices().long()
        self.col, self.val = X.col_indices(), X.values()
        self.idx_dtype = self.col.dtype
        self.rows = torch.from_numpy(schedule.indices).to(dev)
        self.offsets = schedule.offsets.tolist()
        counts = np.diff(scipy.sparse.csr_array(X_host).indptr)[schedule.indices]
        cum = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self.nnz = [int(cum[self.offsets[t + 1]] - cum[self.offsets[t]]) for t in range(len(self.offsets) - 1)]

    def __len__(self) -> int:
        return len(self.nnz)

    def batch(self, t: int):
        rows = self.rows[self.offsets[t]:self.offsets[t + 1]]
        return (*self.gather(rows, self.nnz[t]), rows)

    def gather(self, rows: torch.Tensor, nnz: int | None = None):
        """``(X_b, col_b, val_b, rid_b)`` of ``rows``; ``nnz`` their non-zero count (None: read it back)."""
        crow = self.crow
        starts = crow[rows]
        lens = crow[rows + 1] - starts
        crow_b = torch.zeros(rows.numel() + 1, dtype=torch.int64, device=rows.device)
        torch.cumsum(lens, 0, out=crow_b[1:])
        if nnz is None:
            nnz = int(crow_b[-1])
        pos = torch.arange(nnz, device=rows.device) + torch.repeat_interleave(starts - crow_b[:-1], lens,
                                                                              output_size=nnz)
        col_b, val_b = self.col[pos], self.val[pos]
        rid_b = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), lens, output_size=nnz)
        X_b = torch.sparse_csr_tensor(crow_b.to(self.idx_dtype), col_b, val_b, size=(rows.numel(), self.d),
                                      check_invariants=False)
        return X_b, col_b, val_b, rid_b


def scatter_t(col_b: torch.Tensor, val_b: torch.Tensor, rid_b: torch.Tensor, R: torch.Tensor, d: int) -> torch.Tensor:
    """``X_b^T R`` from the batch's non-zeros: ``R`` ``(m,)`` gives ``(d,)``, ``(m, K)`` gives ``(d, K)``."""
    contrib = val_b * R[rid_b] if R.ndim == 1 else val_b[:, None] * R[rid_b]
    out = torch.zeros((d, *R.shape[1:]), dtype=R.dtype, device=R.device)
    return out.index_add_(0, col_b, contrib)
