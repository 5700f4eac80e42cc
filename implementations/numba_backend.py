"""``numba``: whole-run compiled kernels — the physical-limit reference.

Not a NumPy or torch contender: it shows how close to the hardware (one read of ``X`` per step on
large data, the cores' arithmetic on small data) this machine lets a step get. Same math as
``numpy`` (see its docstring), with mini-batches and the L2 penalty of the contract
(:mod:`implementations.base`). Per step, over the step's rows ``S`` (``m = |S|``), row by row while
the row is in L1::

    z_i = x_i . w + b            (d-term dot product, vectorised: reassociation allowed)
    r_i = sigmoid(z_i) - y_i
    g  += r_i x_i                (axpy into a private accumulator)
    w  -= lr (g / m + l2 w),  b -= lr sum(r) / m

**All ``n_iters`` steps run inside one compiled call** (as JAX's ``fori_loop`` does): no Python,
no dispatch between steps. Two kernels:

* ``serial``   when a step touches fewer than ``PARALLEL_MIN_ELEMENTS`` elements of ``X``: one
  thread, no parallel region to open and close each step.
* ``parallel`` above it: the same loop over steps, and inside each step a ``prange`` over the
  threads, each taking one static contiguous range of fixed blocks of ``ROWS_PER_BLOCK`` rows with
  one thread-private accumulator (allocated once per thread per step, zeroed per block), each block
  writing its own partial gradient; the partials are then summed in block order, so the bits do
  not depend on the thread count or timing. Both kernels use the same 4-row-unrolled ``accumulate``
  (the four dot products share each load of ``w``; ``acc`` is loaded and stored once per four rows).

The loss of a recorded step costs one ``log1p`` per row, not two or three: with ``e = exp(-z)``
(already computed for ``p``) and ``s = log(1 + e^-|z|)`` (``e``, or ``1/e`` for ``z < 0``),
``log p = -s`` and ``log(1 - p) = -s - z`` for ``z >= 0`` (``z - s`` and ``-s`` for ``z < 0``), and
``softplus(z) = max(z, 0) + s`` — exact identities, more accurate than ``log`` of a rounded ``p``.
Where ``p`` itself rounds to exactly 0 or 1, the ``probs`` loss keeps torch's clamped ``log(0) = -100``.
Transcendentals dominate a step on Iris (d = 4), so this matters there.

The only floating-point licence taken is reassociation/contraction (``fastmath={"reassoc",
"contract"}``), so NaN and inf still propagate and a diverging run is still reported.

Threads: the harness gives numba the same count as torch and the BLAS (``bench.timing.thread_parity``).
Every step of the parallel kernel ends in a barrier of all threads, so when another process holds a
core for a time slice the whole step waits for it: on a shared machine the parallel kernel is noisy.
It is therefore kept for data that one core cannot stream fast enough (``m d >= PARALLEL_MIN_ELEMENTS``,
16 MB of float32: beyond a core's L2), and everything smaller runs the serial whole-run kernel,
which has no barrier and no thread hand-off at all.

Softmax regression (``n_classes = K >= 3``; math in the ``numpy`` backend): two more whole-run
kernels of the same shape (serial, and the parallel one with per-block partials summed in block order),
row by row::

    z_k = b_k + x_i . W[:, k]      (K dot products of d terms)
    s   = sum_k e^{z_k - max z},  P_k = e^{z_k - max z} / s
    l_i = log s - (z_y - max z)  (logits)   or   -max(log P_y, -100)  (probs)
    G  += x_i (P - e_y)^T        (d x K rank-1 update),  g_b += P - e_y

with ``y`` as int64 labels, ``W (d, K)``, ``b (K,)`` and the update ``W -= lr (G/m + l2 W)``,
``b -= lr g_b / m``.

``momentum``, ``nesterov`` and ``adam``: four more whole-run kernels (serial and parallel, binary and
softmax), the same loops and sums with the update of :mod:`implementations._optim` written entry by
entry (``opt_param``); their state arrays are made zero by every ``run()``, and Adam's two per-step
scalars come in as host-computed tables. ``gd`` runs the kernels above, untouched.

Sparse ``X`` (``supports_sparse``): CSR kernels, the whole run in one call as above
(``_numba_kernels.csr_run``, ``softmax_csr_run``), ``X`` as CSR and its transpose as CSR (= ``X`` in CSC,
made once in ``prepare``). Full batch, each step: ``prange`` over the rows for ``z_i = b + sum_q x_iq w_q``
and ``r_i = p_i - y_i`` (row by row, no shared writes), then ``prange`` over the features for
``g_j = sum_i x_ij r_i`` on the transpose (no scatter, no per-thread accumulators, no partial sums):
the bits do not depend on the thread count. A mini-batch runs its rows on one thread: ``z_i``, ``r_i``,
then ``g[indices] += r_i x_i`` while the row is in L1.

The loop over steps lives inside the compiled kernels, not in :mod:`implementations._loop` (the
Python loop would cost more than a step on small data); the result tail is
:func:`implementations._reduce.mean_penalised`. Measurements: ``docs/performance.md``.
"""

from __future__ import annotations

import time

import numpy as np

from ._optim import adam_coefficient_table
from ._reduce import mean_penalised
from ._sparse import is_csr, transpose
from .base import BackendUnavailableError, DeviceUnavailableError, Trainer

ROWS_PER_BLOCK = 2048
PARALLEL_MIN_ELEMENTS = 2**22  # m d below this: the serial kernel (see the module docstring)

def _softmax_kernels():
    from . import _numba_kernels as k  # imports numba (seconds): only when a kernel is called

    return k.softmax_run_serial, k.softmax_run_parallel, k.softmax_loss_grad


def _sparse_kernels(multiclass: bool):
    from . import _numba_kernels as k  # imports numba (seconds): only when a kernel is called

    return (k.softmax_csr_run, k.softmax_csr_loss_grad) if multiclass else (k.csr_run, k.csr_loss_grad)


def _kernels():
    from . import _numba_kernels as k  # imports numba (seconds): only when a kernel is called

    return k.run_serial, k.run_parallel, k.loss_grad


class NumbaTrainer(Trainer):
    name = "numba"
    library = "numba"
    gradient = "hand-derived"
    engine = "numba"
    compiled = True
    style = "whole run in one compiled call"
    supports_multiclass = True
    supports_sparse = True  # CSR kernels, parallel over rows then over features (module docstring)
    optimizers = ("gd", "momentum", "nesterov", "adam")  # one whole-run kernel for all: _numba_kernels.opt_param's kind

    def _opt_args(self, W, b):
        """The kernels' optimizer arguments: ``kind`` (``gd`` 0, ``momentum`` 1, ``nesterov`` 2, ``adam``
        3), Adam's per-step host scalars (:func:`implementations._optim.adam_coefficient_table`) and
        zero state ``(2, size of W)``, ``(2, size of b)`` made here, so every run starts from zero
        buffers. ``gd`` reads none of them: zeros made once in ``prepare``, and empty state."""
        cfg, dt = self.config, self.X.dtype
        if cfg.optimizer == "gd":
            return (0, self._no_table, self._no_table, np.empty((2, 0), dt), np.empty((2, 0), dt))
        kind = {"momentum": 1, "nesterov": 2, "adam": 3}[cfg.optimizer]
        sizes, bc2s = adam_coefficient_table(cfg.lr, cfg.n_iters, dt)
        return (kind, sizes, bc2s, np.zeros((2, W.size), dt), np.zeros((2, np.size(b)), dt))

    def __init__(self, config):
        super().__init__(config)
        if config.device != "cpu":
            raise DeviceUnavailableError(f"device {config.device!r}: the numba backend runs on 'cpu' only")
        try:
            import numba  # noqa: F401
        except ImportError:
            raise BackendUnavailableError("the numba backend needs numba, which is not installed "
                                          "(pip install '.[numba]')") from None
        self.compile_s = 0.0  # seconds this trainer's runs spent compiling kernels (or loading them from numba's cache)
        self._kernels_called: set = set()

    @property
    def compiled_graphs(self) -> int:
        """Kernel specialisations this trainer's runs called (one whole-run kernel per run; 0 before it)."""
        return len(self._kernels_called)

    def _call(self, kernel, *args):
        """``kernel(*args)``, compiled first for these argument types if this process has not yet (from
        numba's on-disk cache when it holds them): that compilation is timed into ``compile_s``, apart
        from the run, as torch-compiled's and jax's are."""
        import numba

        sig = tuple(numba.typeof(a) for a in args)
        if sig not in kernel.overloads:
            t0 = time.perf_counter()
            kernel.compile(sig)
            self.compile_s += time.perf_counter() - t0
        self._kernels_called.add((kernel.py_func.__name__, sig))
        return kernel(*args)

    def _prepare(self, X, y, w0, b0):
        dt = np.dtype(self.config.dtype)
        self.sparse = is_csr(X)
        if self.sparse:  # CSR arrays for the kernels: X and its transpose, the same index type
            X = X.astype(dt, copy=False)
            T = transpose(X)
            itype = np.int64 if max(X.indptr.dtype.itemsize, T.indptr.dtype.itemsize) > 4 else np.int32
            self._csr = tuple(np.ascontiguousarray(a, dtype=itype) for a in (X.indptr, X.indices))
            self._csr += (np.ascontiguousarray(X.data),)
            self._csrT = tuple(np.ascontiguousarray(a, dtype=itype) for a in (T.indptr, T.indices))
            self._csrT += (np.ascontiguousarray(T.data),)
            self.X = X
            self._rows = np.empty((self.n, self.k) if self.k >= 3 else self.n, dt)  # r (or R) per row
            self._row_losses = np.empty(self.n, dt)
        else:
            self.X = np.ascontiguousarray(X, dtype=dt)
        self.y = np.ascontiguousarray(y, dtype=np.int64 if self.k >= 3 else dt)  # K classes: int labels
        self.w0, self.b0 = w0.astype(dt), (np.ascontiguousarray(b0, dtype=dt) if self.k >= 3 else dt.type(b0))
        if self.schedule is None:
            self._idx, self._offsets, m = np.empty(0, np.int64), np.zeros(1, np.int64), self.n
        else:
            self._idx, self._offsets, m = self.schedule.indices, self.schedule.offsets, self.schedule.batch_size
        self.parallel = m * self.d >= PARALLEL_MIN_ELEMENTS and not self.sparse
        nblocks = 0 if self.sparse else -(-m // ROWS_PER_BLOCK)  # the dense parallel kernels' partials
        self._gw_parts = np.empty((nblocks, self.d) + ((self.k,) if self.k >= 3 else ()), dt)
        self._gb_parts = np.empty((nblocks, self.k) if self.k >= 3 else nblocks, dt)
        self._loss_parts = np.empty(nblocks, dt)
        self._no_table = np.zeros(self.config.n_iters, dt)  # gd's per-step optimizer scalars (unread)

    def _run_softmax(self):
        cfg, dt = self.config, self.X.dtype
        run_serial, run_parallel, _ = _softmax_kernels()
        W, b = self.w0.copy(), self.b0.copy()  # C-contiguous copies: the kernel updates them in place
        losses = np.empty(cfg.n_records, dt)
        args = (self.X, self.y, W, b, dt.type(cfg.lr), dt.type(cfg.l2), cfg.n_iters, cfg.record_every,
                cfg.formulation == "logits", self._idx, self._offsets, self.schedule is None, losses)
        opt = self._opt_args(W, b)
        if self.parallel:
            import numba

            self._call(run_parallel, *args, ROWS_PER_BLOCK, self._gw_parts, self._gb_parts, self._loss_parts,
                       numba.get_num_threads(), *opt)
        else:
            self._call(run_serial, *args, *opt)
        self._out = W, b, losses

    def _run_sparse(self):
        cfg, dt = self.config, self.X.dtype
        run, _ = _sparse_kernels(self.k >= 3)
        w = self.w0.copy()
        b = self.b0.copy() if self.k >= 3 else self.b0
        losses = np.empty(cfg.n_records, dt)
        out = self._call(run, *self._csr, *self._csrT, self.y, w, b, dt.type(cfg.lr), dt.type(cfg.l2), cfg.n_iters,
                         cfg.record_every, cfg.formulation == "logits", self._idx, self._offsets, self.schedule is None,
                         losses, self._rows, self._row_losses, *self._opt_args(w, b))
        self._out = w, (b if self.k >= 3 else out), losses

    def _run(self):
        if self.sparse:
            return self._run_sparse()
        if self.k >= 3:
            return self._run_softmax()
        cfg, dt = self.config, self.X.dtype
        run_serial, run_parallel, _ = _kernels()
        w = self.w0.copy()
        losses = np.empty(cfg.n_records, dt)
        args = (self.X, self.y, w, self.b0, dt.type(cfg.lr), dt.type(cfg.l2), cfg.n_iters, cfg.record_every,
                cfg.formulation == "logits", self._idx, self._offsets, self.schedule is None, losses)
        opt = self._opt_args(w, self.b0)
        if self.parallel:
            import numba

            b = self._call(run_parallel, *args, ROWS_PER_BLOCK, self._gw_parts, self._gb_parts, self._loss_parts,
                           numba.get_num_threads(), *opt)
        else:
            b = self._call(run_serial, *args, *opt)
        self._out = w, b, losses

    def _result(self):
        return self._out

    def _loss_and_grad(self, w, b):
        dt = self.X.dtype
        w = w.astype(dt)
        if self.sparse:
            _, loss_grad = _sparse_kernels(self.k >= 3)
            logits = self.config.formulation == "logits"
            if self.k >= 3:
                gw, gb = np.empty((self.d, self.k), dt), np.empty(self.k, dt)
                loss = loss_grad(*self._csr, self.y, np.ascontiguousarray(w), b.astype(dt), logits, gw, gb)
            else:
                gw = np.empty(self.d, dt)
                gb, loss = loss_grad(*self._csr, self.y, w, dt.type(b), logits, gw)
            return mean_penalised(loss, gw, gb, self.n, w, self.config.l2)
        if self.k >= 3:
            gw, gb = np.empty((self.d, self.k), dt), np.empty(self.k, dt)
            loss = _softmax_kernels()[2](self.X, self.y, np.ascontiguousarray(w), b.astype(dt),
                                         self.config.formulation == "logits", gw, gb)
            return mean_penalised(loss, gw, gb, self.n, w, self.config.l2)
        gw = np.empty(self.d, dt)
        gb, loss = _kernels()[2](self.X, self.y, w, dt.type(b), self.config.formulation == "logits", gw)
        return mean_penalised(loss, gw, gb, self.n, w, self.config.l2)
