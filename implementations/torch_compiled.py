"""``torch-compiled``: torch at its best at every size — compiled steps on small data, a
cache-blocked one-pass step on large data.

The math of ``torch-manual`` with the contract's mini-batches and L2 penalty (on the step's ``m``
rows: ``r = sigmoid(X w + b) - y``, ``g_w = X^T r / m + l2 w``, ``g_b = mean(r)``), and never more
work than ``torch-manual``: the configured formulation's loss only, on recorded steps only.

**Small data** (full batch, ``n <= COMPILE_MAX_N`` on CPU; always on CUDA): ``K = STEPS_PER_CALL``
steps are traced into one call and compiled by Inductor, which fuses the elementwise work
(sigmoid, residual, loss) around the two matrix-vector products and amortises Python's per-step
overhead over ``K`` steps. One graph per (formulation, recording): with ``record_every = 1`` every
step of the call records its loss; otherwise the graph computes no loss, and each recorded step
runs once eagerly with its loss (``1/record_every`` of the steps). The ``n_iters mod K`` leftover
steps run the same math eagerly.

**Large data** (CPU, ``n > COMPILE_MAX_N``, and every mini-batch step): eager torch. The
seed-style step reads ``X`` twice from memory (``addmv`` for ``X w``, ``mv`` for ``X^T r``). Above
``BLOCK_MIN_BYTES`` of ``X`` the step is one pass over ``X`` in fixed row blocks, each block doing
both products while it is still in cache::

    z_B = b + X_B w ;  r_B = sigmoid(z_B) - y_B ;  G[B] = X_B^T r_B ;  s[B] = sum(r_B)

**Threads** (the recipe of ``numpy-fused``): the blocks (``THREAD_BLOCK_BYTES`` of ``X`` each) are
split into one contiguous range per thread; the calling thread takes the first, a persistent
``ThreadPoolExecutor`` (created at the first run, reused) the others. torch ops release the GIL.
The thread count is torch's intra-op count when ``run`` starts (the harness's); during the run
torch's intra-op pool is set to 1 (process-global: saved and restored in ``finally``), so every op
is single-threaded on its own Python thread, with a preallocated ``z`` buffer per thread. Each
block writes ``G[B]``, ``s[B]`` (and its loss sum on recorded steps) into its own row of a
preallocated array; the rows are summed in block order after the threads join, so the bits depend
on the block size, never on the thread count or timing. With one thread (or fewer than two
blocks) the former single-threaded blocked step (``BLOCK_BYTES`` blocks, all intra-op threads)
runs instead.

Measured (AMD EPYC 2-core VM, 1M x 100 float32, step alone, 2 threads; ``python -m bench sweep
--datasets synthetic-1Mx100 --record-every 1000 --iters 10``, one run, another process at nice 10
on the machine): threaded blocks 21.1 ms per step = 0.46 of the parallel-read floor (numpy-fused
15.0 ms = 0.64, torch-manual 42.9 ms = 0.23, numba 13.2 ms = 0.73, in the same run). The loser,
the former cache-blocked step on torch's two intra-op threads (8 MiB blocks): 39.6 ms = 0.21
(numpy-fused 13.4 ms in that run, quiet machine), 37.4 ms in a run where numpy-fused took 22.1 ms.
Kernel choice, single-threaded, one 4096 x 100 block in cache: ``addmv``/``mv``/``mm`` for
``X_B w`` 26 µs each; for ``X_B^T r`` ``mm(r[None], X_B)`` 19.5 µs, ``mv(X_B.T, r)`` 20.4 µs,
``matmul(r, X_B)`` about the same, ``(X_B * r[:, None]).sum(0)`` 67 µs. Block size, whole step in a
standalone loop (2 threads): 0.4 MiB 22.0 ms, 0.8 MiB 18.8, 1.6 MiB 18.3, 3.1 MiB 18.8. Replacing
``addmv`` by ATen's ``mul`` + ``sum(1)`` (AVX2) did not help (18.8 ms). The 0.60 target is still
missed: both products go to MKL's generic ``mkl_blas_def_xsgemv``/sgemm path on this AMD CPU
(py-spy, 88% of the former step); numpy-fused runs the same blocked recipe on OpenBLAS.

Inductor was tried on the blocked formulation and lost. 1M x 100 float32, 2 threads, gradient
of one step, best of 4, all in one process (AMD EPYC 2-core VM, shared, load average ~6):
eager blocked (this class) 45 ms; Inductor on ``X`` viewed as ``(n/B, B, d)`` with
``z = (X3 w).sum(-1)``, ``G = (X3 r3).sum((0, 1))`` 154 ms (it emits one loop nest per reduction
axis: two passes over ``X``, and compiles for 9 s per shape); Inductor on ``addmv``/``mv`` 132 ms
(it calls the same BLAS); eager two-pass step 122 ms. Eager blocking is kept.

CPU: Inductor generates C++ and needs a C++ compiler (none found -> the row is ``skipped``).
CUDA: always compiled; ``mode="reduce-overhead"`` replays the K-step call as a CUDA graph.
"""

from __future__ import annotations

import functools
import os
import shutil
import weakref
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from ._torch_common import TorchTrainerBase, synchronize, to_device, to_host
from .base import BackendUnavailableError

STEPS_PER_CALL = 5  # 56 µs/step on Iris on the first machine (10: 40 µs, 1: 173 µs); compile time grows with it
COMPILE_MAX_N = 4096  # CPU: larger n runs eagerly (compiled 100k x 100: 21.2 ms vs 14.4 ms eager per step)
BLOCK_MIN_BYTES = 32 * 2**20  # X below a typical last-level cache is re-read from cache anyway: the plain step
THREAD_BLOCK_BYTES = 1536 * 1024  # threaded path: rows per block ~ this (see the module docstring)
BLOCK_BYTES = 8 * 2**20  # single-thread path: a quarter of a 32 MiB L3. 1M x 100 f32, one process, loaded VM: 2 MiB 40.3 ms, 4 MiB 44.3,
# 8 MiB 41.2, 16 MiB 148 (torch-manual 87.7). py-spy: 89% of the step in MKL's generic mkl_blas_def_xsgemv
# (MKL takes its non-AVX2 path on this AMD CPU), the rest dispatch and the sigmoid.


def _loss(z, p, y, formulation: str):
    if formulation == "probs":
        return F.binary_cross_entropy(p, y)
    return F.binary_cross_entropy_with_logits(z, y)


def _step(X, y, w, b, lr, l2, formulation: str | None):
    """One step on rows ``X, y``; the penalised loss at ``(w, b)`` if ``formulation`` is not None."""
    z = torch.addmv(b, X, w)
    p = torch.sigmoid(z)
    loss = None if formulation is None else _loss(z, p, y, formulation)
    if loss is not None and l2 is not None:
        loss = loss + (0.5 * l2) * torch.dot(w, w)
    r = p - y
    g = torch.mv(X.T, r) / X.shape[0]
    if l2 is not None:  # eager runs pass None for l2 = 0: no op more than torch-manual
        g = g + l2 * w
    return w - lr * g, b - lr * r.mean(), loss


def _k_steps(X, y, w, b, lr, l2, formulation: str | None):
    out = []
    for _ in range(STEPS_PER_CALL):
        w, b, loss = _step(X, y, w, b, lr, l2, formulation)
        out.append(loss)
    return w, b, (torch.stack(out) if formulation is not None else None)


@functools.lru_cache(maxsize=None)
def _compiled(device_type: str, formulation: str | None):
    mode = "reduce-overhead" if device_type == "cuda" else None
    return torch.compile(functools.partial(_k_steps, formulation=formulation), mode=mode)


def _has_cxx() -> bool:
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


class TorchCompiledTrainer(TorchTrainerBase):
    name = "torch-compiled"
    library = "torch"
    gradient = "hand-derived"
    engine = "inductor"
    compiled = True
    style = "torch.compile"

    def __init__(self, config, block_bytes: int | None = None):
        super().__init__(config)
        if self.dev.type == "cpu" and not _has_cxx():
            raise BackendUnavailableError("torch-compiled on cpu needs a C++ compiler (none of g++, c++, clang++ found)")
        if self.dev.type == "mps":
            raise BackendUnavailableError("torch-compiled: torch.compile is not supported on 'mps' here")
        self.block_bytes = block_bytes
        self._pool = None
        self._pool_size = 0
        self._threads = 1

    def _prepare(self, X, y, w0, b0):
        super()._prepare(X, y, w0, b0)
        cfg = self.config
        self.mode = ("compiled" if self.schedule is None and (self.dev.type == "cuda" or self.n <= COMPILE_MAX_N)
                     else "eager")
        itemsize = self.X.element_size()
        block = self.block_bytes or BLOCK_BYTES
        m = self.n if self.schedule is None else self.schedule.batch_size
        self.rows = max(1, block // (self.d * itemsize))
        self.blocked = self.dev.type == "cpu" and m * self.d * itemsize >= (BLOCK_MIN_BYTES if self.block_bytes is None
                                                                            else 2 * self.block_bytes)
        dt = self.X.dtype
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
            self._parts = torch.empty((self.tblocks, self.d), dtype=dt, device=self.dev)
            self._psums = torch.empty((self.tblocks, 2), dtype=dt, device=self.dev)
            self._tbufs = {}
        if self.schedule is not None:
            self._idx = torch.from_numpy(self.schedule.indices).to(self.dev)
            self._offsets = self.schedule.offsets.tolist()

    # -- eager steps ----------------------------------------------------------------------

    def _blocked_step(self, X, y, w, b, formulation):
        """The one-pass step: both products per cache-sized block of rows, sums in block order."""
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
                ls.add_(_loss(z, torch.sigmoid(z), yb, formulation), alpha=Xb.shape[0])
            r = z.sigmoid_().sub_(yb)
            s.add_(r.sum())
            g.addmv_(Xb.T, r)
        loss = None if formulation is None else ls / m + (0.5 * self._l2) * torch.dot(w, w)
        return w - self._lr * (g / m + self._l2 * w), b - self._lr * (s / m), loss

    def _thread_blocks(self, k, first, last, X, y, w, b, formulation):
        """Blocks ``first:last`` on thread ``k``'s buffer; block ``B`` writes ``G[B]``, ``s[B]``, loss[B]."""
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
                ps[1] = _loss(z, torch.sigmoid(z), yb, formulation) * Xb.shape[0]
            r = z.sigmoid_().sub_(yb)
            torch.sum(r, 0, out=ps[0])
            torch.mm(r[None], Xb, out=parts[blk:blk + 1])  # 1 x d GEMM: the fastest X_B^T r here

    def _threaded_step(self, X, y, w, b, formulation, threads):
        """The one-pass step over fixed row blocks split between ``threads`` Python threads;
        the per-block partials are summed in block order (same bits whatever the thread count)."""
        m = X.shape[0]
        nb = -(-m // self.trows)
        cuts = [nb * k // threads for k in range(threads + 1)]
        futures = [self._pool.submit(self._thread_blocks, k, cuts[k], cuts[k + 1], X, y, w, b, formulation)
                   for k in range(1, threads)]
        try:
            self._thread_blocks(0, cuts[0], cuts[1], X, y, w, b, formulation)
        finally:
            for f in futures:
                f.result()
        g = self._parts[:nb].sum(0)
        sums = self._psums[:nb].sum(0)
        loss = None if formulation is None else sums[1] / m + (0.5 * self._l2) * torch.dot(w, w)
        return w - self._lr * (g / m + self._l2 * w), b - self._lr * (sums[0] / m), loss

    def _ensure_pool(self, threads):
        if threads > 1 and self._pool_size != threads - 1:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="torch-compiled")
            self._pool_size = threads - 1
            weakref.finalize(self, self._pool.shutdown, wait=False)

    def _eager_step(self, X, y, w, b, record):
        form = self.config.formulation if record else None
        if self.blocked and self._threads > 1:
            return self._threaded_step(X, y, w, b, form, self._threads)
        if self.blocked:
            return self._blocked_step(X, y, w, b, form)
        return _step(X, y, w, b, self._lr, self._l2 if self.config.l2 else None, form)

    # -- the run ----------------------------------------------------------------------------

    @torch.no_grad()
    def _run(self):
        cfg = self.config
        w, b = self.w0.clone(), self.b0.clone()
        losses = torch.empty(cfg.n_records, dtype=w.dtype, device=self.dev)
        if self.mode == "compiled":
            w, b = self._run_compiled(w, b, losses)
        elif self.blocked:
            # torch's intra-op thread count is the harness's thread count; during the run it becomes
            # that many Python threads, each running single-threaded torch ops (they release the GIL)
            saved = torch.get_num_threads()
            self._threads = max(1, min(saved, self.tblocks))
            self._ensure_pool(self._threads)
            torch.set_num_threads(1)
            try:
                w, b = self._eager_loop(w, b, losses)
            finally:
                torch.set_num_threads(saved)
        else:
            w, b = self._eager_loop(w, b, losses)
        self._w, self._b, self._losses = w, b, losses
        synchronize(self.dev)

    def _eager_loop(self, w, b, losses):
        cfg = self.config
        for i in range(cfg.n_iters):
            record = i % cfg.record_every == 0
            if self.schedule is None:
                X, y = self.X, self.y
            else:
                idx = self._idx[self._offsets[i]:self._offsets[i + 1]]
                X, y = self.X.index_select(0, idx), self.y.index_select(0, idx)
            w, b, loss = self._eager_step(X, y, w, b, record)
            if record:
                losses[i // cfg.record_every] = loss
        return w, b

    def _run_compiled(self, w, b, losses):
        """record_every = 1: K-step calls that record every loss. Otherwise: each recorded step eagerly,
        the steps up to the next recorded one in K-step calls without a loss, the rest eagerly."""
        cfg, K = self.config, STEPS_PER_CALL
        X, y, lr, l2, cuda = self.X, self.y, self._lr, self._l2, self.dev.type == "cuda"
        if cfg.record_every == 1:
            fn = _compiled(self.dev.type, cfg.formulation)
            full, rest = divmod(cfg.n_iters, K)
            for c in range(full):
                w, b, ls = fn(X, y, w, b, lr, l2)
                if cuda:  # CUDA-graph outputs are overwritten by the next replay
                    w, b, ls = w.clone(), b.clone(), ls.clone()
                losses[c * K:(c + 1) * K] = ls
            for i in range(full * K, cfg.n_iters):
                w, b, losses[i] = _step(X, y, w, b, lr, l2, cfg.formulation)
            return w, b
        fn = None
        for r in range(cfg.n_records):
            w, b, losses[r] = _step(X, y, w, b, lr, l2, cfg.formulation)
            span = min(cfg.record_every, cfg.n_iters - r * cfg.record_every) - 1  # unrecorded steps that follow
            full, rest = divmod(span, K)
            if full and fn is None:
                fn = _compiled(self.dev.type, None)
            for _ in range(full):
                w, b, _unused = fn(X, y, w, b, lr, l2)
                if cuda:
                    w, b = w.clone(), b.clone()
            for _ in range(rest):
                w, b, _unused = _step(X, y, w, b, lr, l2, None)
        return w, b

    @torch.no_grad()
    def _loss_and_grad(self, w, b):
        dt = self.config.dtype
        w, b = to_device(w, dt, self.dev), to_device([b], dt, self.dev)
        z = torch.addmv(b, self.X, w)
        p = torch.sigmoid(z)
        loss = _loss(z, p, self.y, self.config.formulation) + 0.5 * self.config.l2 * torch.dot(w, w)
        r = p - self.y
        return to_host(loss), to_host(torch.mv(self.X.T, r) / self.n + self.config.l2 * w), to_host(r.mean())
