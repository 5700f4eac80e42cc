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
``BLOCK_MIN_BYTES`` of ``X`` the rows are walked in blocks of ``BLOCK_BYTES`` (a quarter of the
last-level cache) and each block does both products while it is still in cache::

    z_B = b + X_B w ;  r_B = sigmoid(z_B) - y_B ;  g += X_B^T r_B ;  s += sum(r_B)

so memory sees one pass over ``X``; every op still runs on all of torch's intra-op threads. The
partial sums are accumulated in block order (same bits whatever the thread timing).

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

import torch
import torch.nn.functional as F

from ._torch_common import TorchTrainerBase, synchronize, to_device, to_host
from .base import BackendUnavailableError

STEPS_PER_CALL = 5  # 56 µs/step on Iris on the first machine (10: 40 µs, 1: 173 µs); compile time grows with it
COMPILE_MAX_N = 4096  # CPU: larger n runs eagerly (compiled 100k x 100: 21.2 ms vs 14.4 ms eager per step)
BLOCK_MIN_BYTES = 32 * 2**20  # X below a typical last-level cache is re-read from cache anyway: the plain step
BLOCK_BYTES = 8 * 2**20  # a quarter of a 32 MiB L3. 1M x 100 f32, one process, loaded VM: 2 MiB 40.3 ms, 4 MiB 44.3,
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

    def __init__(self, config, block_bytes: int | None = None):
        super().__init__(config)
        if self.dev.type == "cpu" and not _has_cxx():
            raise BackendUnavailableError("torch-compiled on cpu needs a C++ compiler (none of g++, c++, clang++ found)")
        if self.dev.type == "mps":
            raise BackendUnavailableError("torch-compiled: torch.compile is not supported on 'mps' here")
        self.block_bytes = block_bytes

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

    def _eager_step(self, X, y, w, b, record):
        form = self.config.formulation if record else None
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
        else:
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
        self._w, self._b, self._losses = w, b, losses
        synchronize(self.dev)

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
