"""``numpy-fused``: NumPy at its best on CPU — one pass over ``X`` per step, in row blocks, on
one Python thread per core.

Same math as ``numpy`` (see its docstring), with the mini-batches and L2 penalty of the contract:
on the step's ``m`` rows, ``g_w = X^T (p - y) / m + l2 w``, ``g_b = mean(p - y)``. The seed-style
step reads ``X`` twice (``X w``, then ``X^T r``). Here the rows are cut into fixed blocks of ``B``
rows small enough to stay in a core's L2 (``B d`` elements ~ ``BLOCK_BYTES``), and each block does
all its work while it is hot::

    z_B = X_B w + b           (gemv, reads X_B from memory)
    r_B = sigmoid(z_B) - y_B  (in place, in the thread's preallocated buffers)
    G[B] = X_B^T r_B          (gemv, reads X_B again — from cache) ; s[B] = sum(r_B)

so memory traffic is one pass over ``X`` and no ``n``-sized temporary is created. The loss
(recorded steps only) is summed per block from ``z_B``.

**Threads.** NumPy's BLAS calls and ufunc loops release the GIL, so the blocks are split into one
contiguous range per thread: the calling thread takes the first, a persistent
thread pool (:class:`implementations._reduce.BlockPool`, created once per trainer, at its first
parallel ``run``) the others. The BLAS
is limited to one thread inside the run (threadpoolctl), or each gemv would start a BLAS team of
its own. The thread count is the harness's: the number of threads the BLAS pool under NumPy has
when ``run`` starts — ``bench.timing.thread_parity`` sets it (with torch's and numba's) around
every timed run, and threadpoolctl reports it live; outside the harness it is the BLAS default
(the cores). Data smaller than ``PARALLEL_MIN_ELEMENTS`` per step runs on the calling thread alone:
handing a block to another thread costs more than the block.

**Same bits whatever the threads.** Each block writes its partial gradient ``G[B]``, ``s[B]`` and
loss to its own row of a preallocated array, and the rows are summed in block order after the
threads join: the result depends on the block size, never on the thread count or on which thread
finished first.

Mini-batches: the step's rows are gathered (``np.take`` into a preallocated buffer) and then
treated like the full batch.

Softmax regression (``n_classes = K >= 3``; math in the ``numpy`` backend): ``y`` is stored one-hot
``Y (n, K)`` and each block does, in its ``(B, K)`` buffers::

    Z_B = X_B W + b                     (gemm)
    P_B = softmax(Z_B)                  (in place: - row max, exp, / row sum)
    l   = sum of the block's losses     (probs: -sum Y max(log P, -100); logits: log S - sum Y Z')
    R_B = P_B - Y_B ;  G[B] = X_B^T R_B (d, K) ;  s[B] = column sums of R_B (K,)

summed in block order as above.

Sparse ``X`` (``supports_sparse``): the step is the ``numpy`` backend's
(:func:`implementations.numpy_backend.sigmoid_step`, ``softmax_step``) on a
:class:`implementations._sparse.ThreadedCSR`: ``X`` and its transpose (made once, in
``prepare``) cut into row blocks of about ``SPARSE_BLOCK_NNZ`` non-zeros, the blocks of ``X w`` and then of
``X^T r`` run on the same thread pool (SciPy's CSR matvec releases the GIL but is single-threaded). Each
entry of ``X w`` and ``X^T r`` is one row's dot product, so the bits equal SciPy's serial products for
every thread count. Threads only for a full batch of at least ``SPARSE_PARALLEL_MIN_NNZ`` non-zeros; a
mini-batch is the CSR rows ``X[S_t]`` on the calling thread (as ``numpy``).

The loop (gather, record, update) is
:func:`implementations._loop.gradient_descent`; the ``loss_and_grad`` tail is
:func:`implementations._reduce.mean_penalised`. Tuning figures: ``docs/performance.md``.
"""

from __future__ import annotations

import numpy as np

from ._loop import gradient_descent
from ._optim import HAND_WRITTEN, stepper
from ._reduce import BlockPool, mean_penalised
from ._sparse import ThreadedCSR, is_csr, take_rows
from .base import LOG_CLAMP, DeviceUnavailableError, Trainer
from .numpy_backend import sigmoid_step, softmax_step

BLOCK_BYTES = 1024 * 1024  # ~ a core's L2 (figures: docs/performance.md)
PARALLEL_MIN_ELEMENTS = 2**18  # m d below this: one thread (a hand-off costs more than the block)
SPARSE_BLOCK_NNZ = 2**17  # non-zeros per row block of a sparse X (~1 MB of float32 values and int32 indices)
SPARSE_PARALLEL_MIN_NNZ = 2**17  # a sparse full batch below this: one thread

_CONTROLLER = None


def _controller():
    """threadpoolctl's view of the loaded BLAS/OpenMP libraries (scanned once per process)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def harness_threads() -> int:
    """The thread count the harness set: the BLAS pool's under NumPy now (1 if none is found)."""
    blas = _controller().select(user_api="blas")
    counts = [lib.num_threads for lib in blas.lib_controllers]
    return max(1, max(counts)) if counts else 1


class NumpyFusedTrainer(Trainer):
    name = "numpy-fused"
    library = "numpy"
    gradient = "hand-derived"
    engine = "eager"
    style = "hand-blocked, threaded"
    supports_multiclass = True
    supports_sparse = True  # threaded row blocks of SciPy CSR matvecs (module docstring)
    optimizers = HAND_WRITTEN  # momentum, nesterov, adam: implementations._optim's update of the fused gradient

    def __init__(self, config, block_bytes: int = BLOCK_BYTES, threads: int | None = None):
        super().__init__(config)
        if config.device != "cpu":
            raise DeviceUnavailableError(f"device {config.device!r}: numpy-fused runs on 'cpu' only")
        self.block_bytes = block_bytes
        self.threads = threads  # None: the harness's (see the module docstring)
        self._pool = BlockPool(self, "numpy-fused")

    def _prepare(self, X, y, w0, b0):
        dt = np.dtype(self.config.dtype)
        k = self.k
        if k >= 3:  # softmax: Y one-hot (n, K), W (d, K), b (K,)
            y = np.eye(k, dtype=dt)[y]
        self.sparse = is_csr(X)
        if self.sparse:
            return self._prepare_sparse(X, y, w0, b0)
        self.X = np.ascontiguousarray(X, dtype=dt)
        self.y = np.ascontiguousarray(y, dtype=dt)
        self.w0, self.b0 = w0.astype(dt), (b0.astype(dt) if k >= 3 else dt.type(b0))
        m = self.n if self.schedule is None else self.schedule.batch_size
        self.rows = int(max(16, min(m, self.block_bytes // (self.d * dt.itemsize))))
        self.nblocks = -(-m // self.rows)
        self._alloc(self.nblocks)
        self._bufs = {}  # thread index -> (z, r, t) of self.rows elements, made on first use
        if self.schedule is not None:
            self._Xg = np.empty((self.schedule.batch_size, self.d), dt)
            self._yg = np.empty((self.schedule.batch_size,) + self.y.shape[1:], dt)
        _controller()  # scan the libraries here, untimed
        self._parallel_ok = m * self.d >= PARALLEL_MIN_ELEMENTS
        self._lr, self._l2 = dt.type(self.config.lr), dt.type(self.config.l2)
        self._half_l2 = dt.type(0.5 * self.config.l2)

    def _prepare_sparse(self, X, y, w0, b0):
        dt = np.dtype(self.config.dtype)
        self.X = ThreadedCSR(X.astype(dt, copy=False), self._pool, SPARSE_BLOCK_NNZ)
        self.y = np.ascontiguousarray(y, dtype=dt)
        self.w0, self.b0 = w0.astype(dt), (b0.astype(dt) if self.k >= 3 else dt.type(b0))
        self._parallel_ok = self.schedule is None and X.nnz >= SPARSE_PARALLEL_MIN_NNZ
        _controller()  # scan the libraries here, untimed

    def _alloc(self, nb):
        dt = self.X.dtype
        if self.k >= 3:
            self._parts = np.empty((nb, self.d, self.k), dt)  # G[B] (d, K) per block
            self._sums = np.empty((nb, self.k + 1), dt)  # s[B] (K,) and the loss sum per block
        else:
            self._parts = np.empty((nb, self.d), dt)  # G[B], one row per block
            self._sums = np.empty((nb, 2), dt)  # s[B] and the loss sum, one row per block

    # -- one block range, on one thread -------------------------------------------------------

    def _buffers(self, k):
        buf = self._bufs.get(k)
        if buf is None:
            shape = (self.rows, self.k) if self.k >= 3 else self.rows
            buf = self._bufs[k] = tuple(np.empty(shape, self.X.dtype) for _ in range(3))
        return buf

    def _blocks_softmax(self, k, first, last, X, Y, m, w, b, record):
        """K classes: blocks ``first:last`` on thread ``k``'s ``(B, K)`` buffers (see the module docstring)."""
        zb, rb, tb = self._buffers(k)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            for blk in range(first, last):
                s = blk * self.rows
                Xb, Yb = X[s:s + self.rows], Y[s:s + self.rows]
                e = Yb.shape[0]
                z, r, t = zb[:e], rb[:e], tb[:e]
                np.dot(Xb, w, out=z)
                z += b
                z -= z.max(axis=1, keepdims=True)  # Z' = Z - max
                np.exp(z, out=r)
                S = r.sum(axis=1, keepdims=True)
                r /= S  # P
                sums = self._sums[blk]
                if not record:
                    sums[-1] = 0
                elif self.config.formulation == "probs":
                    np.log(r, out=t)
                    np.maximum(t, LOG_CLAMP, out=t)
                    t *= Yb
                    sums[-1] = -t.sum()
                else:
                    np.multiply(Yb, z, out=t)
                    sums[-1] = np.log(S).sum() - t.sum()
                r -= Yb
                r.sum(axis=0, out=sums[:-1])
                np.dot(Xb.T, r, out=self._parts[blk])

    def _block_loss(self, z, p, y, t):
        """Sum over the block of the per-sample loss (before the mean)."""
        if self.config.formulation == "probs":
            np.log(p, out=t)
            np.maximum(t, LOG_CLAMP, out=t)
            s = np.dot(y, t)
            np.negative(p, out=t)
            np.log1p(t, out=t)
            np.maximum(t, LOG_CLAMP, out=t)
            return -(s + t.sum() - np.dot(y, t))
        np.logaddexp(0, z, out=t)
        return t.sum() - np.dot(y, z)

    def _blocks(self, k, first, last, X, y, m, w, b, record):
        """Blocks ``first:last`` of the ``m`` rows ``X, y``, on thread ``k``'s buffers."""
        zb, rb, tb = self._buffers(k)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            for blk in range(first, last):
                s = blk * self.rows
                Xb, yb = X[s:s + self.rows], y[s:s + self.rows]
                e = yb.shape[0]
                z, r, t = zb[:e], rb[:e], tb[:e]
                np.dot(Xb, w, out=z)
                z += b
                np.negative(z, out=r)  # r = sigmoid(z) - y, in place
                np.exp(r, out=r)
                r += 1
                np.reciprocal(r, out=r)
                sums = self._sums[blk]
                sums[1] = self._block_loss(z, r, yb, t) if record else 0
                r -= yb
                sums[0] = r.sum()
                np.dot(r, Xb, out=self._parts[blk])

    # -- the step ---------------------------------------------------------------------------

    def _grad(self, X, y, m, w, b, record, threads):
        """``(sum_i r_i x_i, sum_i r_i, sum_i l_i)`` over the ``m`` rows, partials summed in block order."""
        nb = -(-m // self.rows)
        if self.k >= 3:
            self._pool.run(self._blocks_softmax, nb, threads, X, y, m, w, b, record)
            sums = self._sums[:nb].sum(axis=0)
            return self._parts[:nb].sum(axis=0), sums[:-1], sums[-1]
        self._pool.run(self._blocks, nb, threads, X, y, m, w, b, record)
        sums = self._sums[:nb].sum(axis=0)
        return self._parts[:nb].sum(axis=0), sums[0], sums[1]

    def _update(self, X, y, m, w, b, record):
        """One step of :func:`implementations._loop.gradient_descent` on the ``m`` rows ``X, y``; ``w`` in place."""
        dt = self.X.dtype
        gw, gb, loss = self._grad(X, y, m, w, b, record, self._threads)
        inv_m = dt.type(1) / dt.type(m)
        if self.k >= 3:
            if record:
                loss = loss * inv_m + (self._half_l2 * np.sum(w * w) if self.config.l2 else 0)
            gw *= inv_m
            if self.config.l2:
                gw += self._l2 * w
            gw *= self._lr
            w -= gw
            return w, b - self._lr * (gb * inv_m), loss
        if record:
            loss = loss * inv_m + (self._half_l2 * np.dot(w, w) if self.config.l2 else 0)
        gw *= inv_m
        if self.config.l2:
            gw += self._l2 * w
        gw *= self._lr
        w -= gw
        return w, dt.type(b - self._lr * dt.type(gb * inv_m)), loss

    def _gradient(self, X, y, m, w, b, record):
        """``(loss, g_w, g_b)`` on the ``m`` rows (the step's mean gradient, ``λ w`` included) for
        :func:`implementations._optim.stepper`: ``momentum``, ``nesterov``, ``adam``."""
        dt = self.X.dtype
        gw, gb, loss = self._grad(X, y, m, w, b, record, self._threads)
        inv_m = dt.type(1) / dt.type(m)
        if record:
            loss = loss * inv_m + (self._half_l2 * np.sum(w * w) if self.config.l2 else 0)
        gw *= inv_m
        if self.config.l2:
            gw += self._l2 * w
        return loss, gw, gb * inv_m

    def _gather(self, t):
        """Step ``t``'s rows, ``np.take`` into the preallocated buffers (timed, as a user pays it)."""
        idx = self.schedule[t]
        m = idx.size
        X, y = self._Xg[:m], self._yg[:m]
        np.take(self.X, idx, axis=0, out=X)
        np.take(self.y, idx, axis=0, out=y)
        return X, y, m

    # -- a sparse X ------------------------------------------------------------------------------

    def _sparse_gradient(self, X, y, w, b, record):
        """``(loss, g_w, g_b)`` of the ``numpy`` backend's step on the CSR rows ``X, y`` (``λ w`` included)."""
        cfg = self.config
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            return (softmax_step if self.k >= 3 else sigmoid_step)(np, X, y, w, b, record, cfg.formulation, cfg.l2)

    def _sparse_update(self, X, y, w, b, record):
        loss, gw, gb = self._sparse_gradient(X, y, w, b, record)
        return w - self.config.lr * gw, b - self.config.lr * gb, loss

    def _sparse_batch(self, t):
        """Step ``t``'s CSR rows ``X[S_t]`` and labels (timed, as a user pays it)."""
        rows = self.schedule[t]
        return take_rows(self.X.X, rows), self.y[rows]

    def _run_sparse(self):
        cfg = self.config
        self.X.set_threads((self.threads or harness_threads()) if self._parallel_ok else 1)
        self._pool.ensure(max(self.X.threads, self.X.T.threads))
        losses = np.empty(cfg.n_records, self.X.dtype)
        step = (self._sparse_update if cfg.optimizer == "gd" else  # other optimizers: fresh state every run
                stepper(cfg, self._sparse_gradient, np.zeros_like, np.sqrt))
        w, b = gradient_descent(cfg, step, self.w0.copy(), self.b0, losses, (self.X, self.y),
                                None if self.schedule is None else self._sparse_batch)
        self._w, self._b, self._losses = w, b, losses

    def _run(self):
        cfg = self.config
        if self.sparse:
            return self._run_sparse()
        threads = (self.threads or harness_threads()) if self._parallel_ok else 1
        self._threads = max(1, min(threads, self.nblocks))
        self._pool.ensure(self._threads)
        losses = np.empty(cfg.n_records, self.X.dtype)
        with _controller().limit(limits=1, user_api="blas"):
            step = (self._update if cfg.optimizer == "gd" else  # other optimizers: fresh state every run
                    stepper(cfg, self._gradient, np.zeros_like, np.sqrt))
            w, b = gradient_descent(cfg, step, self.w0.copy(), self.b0, losses, (self.X, self.y, self.n),
                                    None if self.schedule is None else self._gather)
        self._w, self._b, self._losses = w, b, losses

    def _result(self):
        return self._w, self._b, self._losses

    def _loss_and_grad(self, w, b):
        dt = self.X.dtype
        w = w.astype(dt)
        if self.sparse:
            self.X.set_threads(1)
            return self._sparse_gradient(self.X, self.y, w, b.astype(dt) if self.k >= 3 else dt.type(b), True)
        saved = self.rows, self._parts, self._sums
        self.rows = int(max(16, min(self.n, self.block_bytes // (self.d * dt.itemsize))))
        nb = -(-self.n // self.rows)
        self._alloc(nb)
        self._bufs = {}
        try:
            gw, gb, loss = self._grad(self.X, self.y, self.n, w, b.astype(dt) if self.k >= 3 else dt.type(b), True, 1)
        finally:
            self.rows, self._parts, self._sums = saved
            self._bufs = {}
        return mean_penalised(loss, gw, gb, self.n, w, self.config.l2)
