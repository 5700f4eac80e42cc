"""``torch-fused``: eager torch at its best on CPU — one pass over ``X`` per step, in row blocks, on
one Python thread per core. The torch twin of ``numpy-fused``; no compiler.

The math of ``torch-manual`` with the contract's mini-batches and L2 penalty (derivation in the
``numpy`` backend). On the step's ``m`` rows::

    r = sigmoid(X w + b) - y        g_w = X^T r / m + λ w        g_b = mean(r)
    w -= lr g_w,  b -= lr g_b       loss (recorded steps only, the configured formulation only)

**Small data** (``X`` of the step under ``BLOCK_MIN_BYTES``, i.e. it fits a typical last-level
cache and a second read comes from cache anyway; and every step off the CPU): the plain eager step,
``addmv`` for ``X w + b``, ``sigmoid``, ``mv`` for ``X^T r``.

**Large data** (CPU, ``X`` of the step at least ``BLOCK_MIN_BYTES``): the plain step reads ``X``
twice from memory. Here the rows are cut into fixed blocks, each block doing both products while it
is still in cache::

    z_B = b + X_B w ;  r_B = sigmoid(z_B) - y_B ;  G[B] = X_B^T r_B ;  s[B] = sum(r_B) ;  l[B] = sum_B l_i

**Threads** (the recipe of ``numpy-fused``): the blocks (``THREAD_BLOCK_BYTES`` of ``X`` each) are
split into one contiguous range per thread by :class:`implementations._reduce.BlockPool`: the
calling thread takes the first, a persistent thread pool the others; torch ops release the GIL. The
thread count is torch's intra-op count when ``run`` starts (the harness's); during the run torch's
intra-op pool is set to 1 (process-global: saved and restored in ``finally``), so every op is
single-threaded on its own Python thread, with a preallocated ``z`` buffer per thread. Each block
writes ``G[B]``, ``s[B]`` (and ``l[B]`` on recorded steps) into its own row of a preallocated
array; the rows are summed in block order after the threads join, so the bits depend on the block
size, never on the thread count or timing. ``X_B^T r_B`` is ``mm(r_B[None], X_B)``, a ``1 x d``
GEMM (the fastest of the kernels tried, see ``docs/performance.md``). With one thread (or fewer than
two blocks) a single-threaded blocked step runs instead (``BLOCK_BYTES`` blocks, partial sums
accumulated in place, in block order).

Softmax regression (``n_classes = K >= 3``; math in the ``numpy`` backend, loss by
:func:`implementations._torch_common.softmax_loss`). Small data: the plain step ``Z = addmm(b, X, W)``,
``P = softmax(Z)``, ``R = P - one_hot(y)``, ``G = X^T R / m + λ W``, ``g_b = mean_rows(R)``. Large data:
the threaded one-pass path above with ``(B, K)`` blocks, ``G[B] = X_B^T R_B`` a ``d x K`` GEMM and
``s[B]`` the ``K`` column sums of ``R_B`` (also with one thread: ``BlockPool`` then runs every block on
the calling thread, in block order).

Sparse ``X`` (a SciPy matrix; torch CSR tensors with int32 indices, :mod:`implementations._torch_sparse`).
The formulations PyTorch offers were measured on an rcv1-shaped float32 matrix (``docs/performance.md``)
and the fastest is kept: ``z = addmv(b, X, w)`` on the CSR ``X`` and ``g = mv(X^T, r)`` on ``X^T`` made
once in ``prepare`` as its own CSR tensor (``addmm``/``mm`` for K classes). COO, CSC, ``X.t()`` of a
CSR tensor, int64 indices, ``torch.sparse.mm``, gather + ``index_add_``/``segment_reduce`` were all
slower, and so were fixed row blocks (CSR ``X_B`` and ``X_B^T`` each) on Python threads, the recipe of
the dense path: a CSR product is bound by its index and value reads, not by a cache-resident second
pass, so the row blocks only add calls. Mini-batches: the rows gathered from the CSR arrays on the
device, ``addmv`` on the batch's CSR, ``X_S^T r`` a scatter of its non-zeros (``index_add_``).

Dense mini-batches: step ``t`` gathers its rows ``schedule[t]`` with ``index_select`` on the device,
inside the timed loop, then runs the step above on them. The loop (gather, record, update) is
:func:`implementations._loop.gradient_descent`. Tuning figures: ``docs/performance.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._loop import gradient_descent
from ._optim import HAND_WRITTEN, stepper
from ._reduce import BlockPool
from ._torch_common import (
    TorchTrainerBase,
    binary_loss,
    exact_loss_and_grad,
    plain_grad,
    plain_grad_softmax,
    plain_step,
    plain_step_softmax,
    softmax_loss,
    synchronize,
)
from ._torch_sparse import scatter_t, transpose_csr

BLOCK_MIN_BYTES = 32 * 2**20  # X of a step below this (a typical last-level cache): the plain step
THREAD_BLOCK_BYTES = 1536 * 1024  # threaded path: rows per block ~ this
BLOCK_BYTES = 8 * 2**20  # single-thread blocked path: a quarter of a 32 MiB L3


class TorchFusedTrainer(TorchTrainerBase):
    name = "torch-fused"
    library = "torch"
    gradient = "hand-derived"
    engine = "eager"
    compiled = False
    style = "hand-blocked, threaded"
    supports_multiclass = True
    supports_sparse = True  # CSR addmv, and mv on X^T kept as its own CSR: the fastest measured
    optimizers = HAND_WRITTEN  # momentum, nesterov, adam: implementations._optim's update of the blocked gradient

    def __init__(self, config, block_bytes: int | None = None):
        super().__init__(config)
        self.block_bytes = block_bytes  # None: the defaults above; a test passes small blocks
        self._pool = BlockPool(self, "torch-fused")
        self._threads = 1

    def _prepare(self, X, y, w0, b0):
        super()._prepare(X, y, w0, b0)
        if self.sparse:
            return self._prepare_sparse(X)
        cfg, dt, itemsize = self.config, self.X.dtype, self.X.element_size()
        m = self.n if self.schedule is None else self.schedule.batch_size
        self.rows = max(1, (self.block_bytes or BLOCK_BYTES) // (self.d * itemsize))
        self.blocked = self.dev.type == "cpu" and m * self.d * itemsize >= (BLOCK_MIN_BYTES if self.block_bytes is None
                                                                            else 2 * self.block_bytes)
        self._lr = torch.tensor(cfg.lr, dtype=dt, device=self.dev)
        self._l2 = torch.tensor(cfg.l2, dtype=dt, device=self.dev)
        if self.blocked:
            self._z = torch.empty(self.rows, dtype=dt, device=self.dev)
            self._g = torch.empty(self.d, dtype=dt, device=self.dev)
            self._s = torch.empty((), dtype=dt, device=self.dev)
            self._ls = torch.empty((), dtype=dt, device=self.dev)
            # the threaded one-pass step: fixed blocks, one partial per block, one buffer per thread
            self.trows = max(16, min(m, (self.block_bytes or THREAD_BLOCK_BYTES) // (self.d * itemsize)))
            self.tblocks = -(-m // self.trows)
            if self.k >= 3:  # G[B] (d, K) and [s[B] (K,), l[B]] per block
                self._parts = torch.empty((self.tblocks, self.d, self.k), dtype=dt, device=self.dev)
                self._psums = torch.empty((self.tblocks, self.k + 1), dtype=dt, device=self.dev)
            else:
                self._parts = torch.empty((self.tblocks, self.d), dtype=dt, device=self.dev)
                self._psums = torch.empty((self.tblocks, 2), dtype=dt, device=self.dev)
            self._tbufs = {}

    def _prepare_sparse(self, X):
        """``X^T`` as its own CSR tensor (full batch; mini-batches scatter the batch's non-zeros)."""
        cfg = self.config
        self.blocked, self.tblocks = False, 1
        self._lr = torch.tensor(cfg.lr, dtype=self.X.dtype, device=self.dev)
        self._l2 = torch.tensor(cfg.l2, dtype=self.X.dtype, device=self.dev)
        self.Xt = None if self.schedule is not None else transpose_csr(X, cfg.dtype, self.dev)

    # -- the sparse step ---------------------------------------------------------------------

    def _sparse_grad(self, X, y, T, w, b, formulation):
        """``(g_w, g_b, loss)`` on sparse rows: ``X^T`` the CSR ``self.Xt`` (full batch, ``T`` None) or,
        for a mini-batch, the scatter of the batch's non-zeros ``T = (col, val, row)``."""
        m, K, l2 = X.shape[0], self.k, self._l2
        pen = (w * w).sum() if K >= 3 else torch.dot(w, w)
        T = self.Xt if T is None else T
        if K >= 3:
            Z = torch.addmm(b, X, w)
            loss = None if formulation is None else softmax_loss(Z, y, formulation) + (0.5 * l2) * pen
            R = Z.softmax(1).sub_(F.one_hot(y, K).to(Z.dtype))
        else:
            Z = torch.addmv(b, X, w)
            loss = None if formulation is None else binary_loss(Z, torch.sigmoid(Z), y, formulation) + (0.5 * l2) * pen
            R = Z.sigmoid_().sub_(y)
        G = scatter_t(*T, R, self.d) if isinstance(T, tuple) else (torch.mv(T, R) if R.ndim == 1 else torch.mm(T, R))
        return G / m + l2 * w, R.mean(0), loss

    def _sparse_update(self, X, y, T, w, b, record):
        gw, gb, loss = self._sparse_grad(X, y, T, w, b, self.config.formulation if record else None)
        return w - self._lr * gw, b - self._lr * gb, loss

    def _sparse_gradient(self, X, y, T, w, b, record):
        gw, gb, loss = self._sparse_grad(X, y, T, w, b, self.config.formulation if record else None)
        return loss, gw, gb

    # -- the blocked steps --------------------------------------------------------------------

    def _blocked_step(self, X, y, w, b, formulation, grad_only=False):
        """One thread: both products per cache-sized block of rows, sums accumulated in block order."""
        g, s, ls, zbuf = self._g, self._s, self._ls, self._z
        g.zero_()
        s.zero_()
        ls.zero_()
        m = X.shape[0]
        for lo in range(0, m, self.rows):
            Xb, yb = X[lo:lo + self.rows], y[lo:lo + self.rows]
            z = zbuf[:Xb.shape[0]]
            torch.addmv(b, Xb, w, out=z)
            if formulation is not None:
                ls.add_(binary_loss(z, torch.sigmoid(z), yb, formulation), alpha=Xb.shape[0])
            r = z.sigmoid_().sub_(yb)
            s.add_(r.sum())
            g.addmv_(Xb.T, r)
        loss = None if formulation is None else ls / m + (0.5 * self._l2) * torch.dot(w, w)
        gw, gb = g / m + self._l2 * w, s / m
        return (gw, gb, loss) if grad_only else (w - self._lr * gw, b - self._lr * gb, loss)

    def _thread_blocks(self, k, first, last, X, y, w, b, formulation):
        """Blocks ``first:last`` on thread ``k``'s buffer; block ``B`` writes ``G[B]``, ``s[B]``, ``l[B]``."""
        zb = self._tbufs.get(k)
        if zb is None:
            zb = self._tbufs[k] = torch.empty(self.trows, dtype=X.dtype, device=self.dev)
        rows, parts, psums = self.trows, self._parts, self._psums
        for blk in range(first, last):
            lo = blk * rows
            Xb, yb = X[lo:lo + rows], y[lo:lo + rows]
            z = zb[:Xb.shape[0]]
            torch.addmv(b, Xb, w, out=z)
            ps = psums[blk]
            if formulation is not None:
                ps[1] = binary_loss(z, torch.sigmoid(z), yb, formulation) * Xb.shape[0]
            r = z.sigmoid_().sub_(yb)
            torch.sum(r, 0, out=ps[0])
            torch.mm(r[None], Xb, out=parts[blk:blk + 1])  # 1 x d GEMM for X_B^T r

    def _thread_blocks_softmax(self, k, first, last, X, y, w, b, formulation):
        """K classes: blocks ``first:last``; block ``B`` writes ``G[B] (d, K)``, ``s[B] (K,)``, ``l[B]``."""
        rows, parts, psums, K = self.trows, self._parts, self._psums, self.k
        for blk in range(first, last):
            lo = blk * rows
            Xb, yb = X[lo:lo + rows], y[lo:lo + rows]
            Z = torch.addmm(b, Xb, w)
            ps = psums[blk]
            if formulation is not None:
                ps[K] = softmax_loss(Z, yb, formulation) * Xb.shape[0]
            R = Z.softmax(1).sub_(F.one_hot(yb, K).to(Z.dtype))
            torch.sum(R, 0, out=ps[:K])
            torch.mm(Xb.T, R, out=parts[blk])  # d x K GEMM for X_B^T R_B

    def _threaded_step_softmax(self, X, y, w, b, formulation, grad_only=False):
        m, K = X.shape[0], self.k
        nb = -(-m // self.trows)
        self._pool.run(self._thread_blocks_softmax, nb, self._threads, X, y, w, b, formulation)
        g = self._parts[:nb].sum(0)
        sums = self._psums[:nb].sum(0)
        loss = None if formulation is None else sums[K] / m + (0.5 * self._l2) * (w * w).sum()
        gw, gb = g / m + self._l2 * w, sums[:K] / m
        return (gw, gb, loss) if grad_only else (w - self._lr * gw, b - self._lr * gb, loss)

    def _threaded_step(self, X, y, w, b, formulation, grad_only=False):
        """The one-pass step over fixed row blocks split between the threads; per-block partials
        summed in block order (same bits whatever the thread count)."""
        m = X.shape[0]
        nb = -(-m // self.trows)
        self._pool.run(self._thread_blocks, nb, self._threads, X, y, w, b, formulation)
        g = self._parts[:nb].sum(0)
        sums = self._psums[:nb].sum(0)
        loss = None if formulation is None else sums[1] / m + (0.5 * self._l2) * torch.dot(w, w)
        gw, gb = g / m + self._l2 * w, sums[0] / m
        return (gw, gb, loss) if grad_only else (w - self._lr * gw, b - self._lr * gb, loss)

    def _update(self, X, y, w, b, record):
        """One step of :func:`implementations._loop.gradient_descent`."""
        form = self.config.formulation if record else None
        if self.k >= 3:
            if self.blocked:
                return self._threaded_step_softmax(X, y, w, b, form)
            return plain_step_softmax(X, y, w, b, self._lr, self._l2 if self.config.l2 else None, form, self.k)
        if self.blocked and self._threads > 1:
            return self._threaded_step(X, y, w, b, form)
        if self.blocked:
            return self._blocked_step(X, y, w, b, form)
        return plain_step(X, y, w, b, self._lr, self._l2 if self.config.l2 else None, form)

    def _gradient(self, X, y, w, b, record):
        """``(loss, g_w, g_b)`` of the step :meth:`_update` would take (same path, same blocks), for
        :func:`implementations._optim.stepper`: ``momentum``, ``nesterov``, ``adam``."""
        form = self.config.formulation if record else None
        l2 = self._l2 if self.config.l2 else None
        if self.k >= 3:
            gw, gb, loss = (self._threaded_step_softmax(X, y, w, b, form, grad_only=True) if self.blocked
                            else plain_grad_softmax(X, y, w, b, l2, form, self.k))
        elif self.blocked and self._threads > 1:
            gw, gb, loss = self._threaded_step(X, y, w, b, form, grad_only=True)
        elif self.blocked:
            gw, gb, loss = self._blocked_step(X, y, w, b, form, grad_only=True)
        else:
            gw, gb, loss = plain_grad(X, y, w, b, l2, form)
        return loss, gw, gb

    # -- the run ------------------------------------------------------------------------------

    @torch.no_grad()
    def _run(self):
        w, b, losses = self._start()
        if self.sparse:
            full = (self.X, self.y, None)
            batch = None if self.schedule is None else self._sparse_batches()
            update, grad = self._sparse_update, self._sparse_gradient
        else:
            full = (self.X, self.y)
            batch = self._batches(lambda A, rows: A.index_select(0, rows))
            update, grad = self._update, self._gradient
        saved = torch.get_num_threads()
        if self.blocked:
            # torch's intra-op thread count is the harness's thread count; during the run it becomes
            # that many Python threads, each running single-threaded torch ops
            self._threads = max(1, min(saved, self.tblocks))
            self._pool.ensure(self._threads)
            torch.set_num_threads(1)
        try:
            step = (update if self.config.optimizer == "gd" else  # other optimizers: fresh state every run
                    stepper(self.config, grad, torch.zeros_like, torch.sqrt))
            w, b = gradient_descent(self.config, step, w, b, losses, full, batch)
        finally:
            if self.blocked:
                torch.set_num_threads(saved)
        self._w, self._b, self._losses = w, b, losses
        synchronize(self.dev)

    @torch.no_grad()
    def _loss_and_grad(self, w, b):
        Xt = None
        if self.sparse:  # a mini-batch trainer keeps no X^T: made here, untimed
            Xt = self.Xt if self.Xt is not None else transpose_csr(self.X_host, self.config.dtype, self.dev)
        return exact_loss_and_grad(self.X, self.y, *self._params(w, b), self.config.l2, self.config.formulation, self.k,
                                   Xt)
