"""One rank of ``torch-ddp``: its shard of the rows and the per-step math written out in
:mod:`implementations.torch_ddp` (partial sums, one ``all_reduce``, the same update on every rank).
The same code runs in a spawned rank and in a torchrun process."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ._loop import gradient_descent
from ._optim import stepper
from ._reduce import partial_sums, softmax_partial_sums
from ._torch_common import synchronize, to_device, to_host
from .base import LOG_CLAMP
from .shards import load_parts, peak_rss_bytes


class Shard:
    """One rank's rows and the per-step math above (module docstring)."""

    def __init__(self, dev: torch.device, rank: int):
        self.dev, self.rank = dev, rank
        self.loaded = False

    def load(self, X, y, w0, b0, n, config, sched) -> None:
        dt, dev = config.dtype, self.dev
        self.cfg, self.n, self.d = config, n, X.shape[1]
        self.k = k = config.n_classes
        if k >= 3:  # softmax: the shard's one-hot Y (rows, K), W (d, K), b (K,)
            y = np.eye(k)[np.asarray(y, dtype=np.int64)]
        self.X, self.y = to_device(X, dt, dev), to_device(y, dt, dev)
        self.w0, self.b0 = to_device(w0, dt, dev), to_device(b0 if k >= 3 else [b0], dt, dev)
        if sched is None:
            self.idx = None
        else:
            idx, self.offsets, self.sizes = sched
            self.idx = torch.from_numpy(idx).to(dev)
        self.buf = torch.empty((self.d + 1) * k + 1 if k >= 3 else self.d + 2, dtype=self.X.dtype, device=dev)
        if k >= 3:
            self.loss_sum = ((lambda Z, P, Y: -(Y * torch.clamp(torch.log(P), min=LOG_CLAMP)).sum())
                             if config.formulation == "probs"
                             else (lambda Z, P, Y: torch.logsumexp(Z, 1).sum() - (Y * Z).sum()))
        else:
            self.loss_sum = ((lambda z, p, y: F.binary_cross_entropy(p, y, reduction="sum"))
                             if config.formulation == "probs"
                             else (lambda z, p, y: F.binary_cross_entropy_with_logits(z, y, reduction="sum")))
        synchronize(dev)
        self.loaded = True

    def load_shards(self, meta, group, w0, b0, n, config, sched) -> None:
        """This rank's parts of a shard folder (:mod:`implementations.shards`), read here: no other
        process ever holds these rows."""
        X, y = load_parts(meta, group, "float64")
        self.load(X, y, w0, b0, n, config, sched)

    def peak_rss(self) -> list[int]:
        """Every rank's peak resident memory in bytes (all-gathered, so rank 0 reports them all)."""
        mine = torch.tensor([peak_rss_bytes()], dtype=torch.int64, device=self.dev)
        out = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(out, mine)
        return [int(t.item()) for t in out]

    def reset(self) -> None:
        for name in ("X", "y", "w0", "b0", "idx", "buf"):
            self.__dict__.pop(name, None)
        self.loaded = False

    @torch.no_grad()
    def _sums(self, w, b, t, record):
        """This rank's ``[X^T (p - y), sum(p - y), sum l_i]`` on its part of step ``t``'s batch,
        all-reduced (SUM) over the ranks; ``t=None``: every row."""
        if t is None or self.idx is None:
            X, y = self.X, self.y
        else:
            rows = self.idx[self.offsets[t]:self.offsets[t + 1]]
            X, y = self.X[rows], self.y[rows]
        if self.k >= 3:
            softmax_partial_sums(X, y, w, b, record, self.buf, lambda Z: torch.softmax(Z, 1), self.loss_sum)
        else:
            partial_sums(X, y, w, b, record, self.buf, torch.sigmoid, self.loss_sum)
        dist.all_reduce(self.buf, op=dist.ReduceOp.SUM)
        return self.buf

    def _update(self, t, w, b, record):
        """One step of :func:`implementations._loop.gradient_descent`, identical on every rank; in place."""
        loss, gw, gb = self._gradient(t, w, b, record)
        w.sub_(gw, alpha=self.cfg.lr)
        b.sub_(gb, alpha=self.cfg.lr)
        return w, b, loss

    def _gradient(self, t, w, b, record):
        """``(loss, g_w, g_b)`` of step ``t`` from the all-reduced sums, for
        :func:`implementations._optim.stepper` (``momentum``, ``nesterov``, ``adam``): every rank holds the
        same state and applies the same update."""
        d, l2 = self.d, self.cfg.l2
        s = self._sums(w, b, t, record)
        m = self.n if self.idx is None else int(self.sizes[t])
        if self.k >= 3:
            dk = d * self.k
            loss = (s[-1] / m + (0.5 * l2) * (w * w).sum() if l2 else s[-1] / m) if record else None
            gw = s[:dk].reshape(d, self.k) / m
            if l2:
                gw.add_(w, alpha=l2)
            return loss, gw, s[dk:-1] / m
        loss = (s[d + 1] / m + (0.5 * l2) * torch.dot(w, w) if l2 else s[d + 1] / m) if record else None
        gw = s[:d] / m
        if l2:
            gw.add_(w, alpha=l2)
        return loss, gw, s[d:d + 1] / m

    @torch.no_grad()
    def run(self):
        cfg = self.cfg
        w, b = self.w0.clone(), self.b0.clone()
        losses = torch.empty(cfg.n_records, dtype=w.dtype, device=self.dev)
        step = (self._update if cfg.optimizer == "gd" else  # other optimizers: fresh state every run
                stepper(cfg, self._gradient, torch.zeros_like, torch.sqrt))
        w, b = gradient_descent(cfg, step, w, b, losses, batch=lambda t: (t,))
        synchronize(self.dev)
        return to_host(w), to_host(b), to_host(losses)

    @torch.no_grad()
    def loss_and_grad(self, w, b):
        cfg, d, l2 = self.cfg, self.d, self.cfg.l2
        if self.k >= 3:
            w, b = to_device(w, cfg.dtype, self.dev), to_device(b, cfg.dtype, self.dev)
            s, dk = self._sums(w, b, None, True), d * self.k
            return (to_host(s[-1] / self.n + 0.5 * l2 * (w * w).sum()),
                    to_host(s[:dk].reshape(d, self.k) / self.n + l2 * w), to_host(s[dk:-1] / self.n))
        w, b = to_device(w, cfg.dtype, self.dev), to_device([b], cfg.dtype, self.dev)
        s = self._sums(w, b, None, True)
        loss = s[d + 1] / self.n + 0.5 * l2 * torch.dot(w, w)
        gw = s[:d] / self.n + l2 * w
        return to_host(loss), to_host(gw), to_host(s[d] / self.n)

    def bench_allreduce(self, size: int, reps: int) -> float:
        """Median seconds of one ``all_reduce`` (SUM) of ``size`` values in this group."""
        buf = torch.zeros(size, dtype=getattr(self, "buf", torch.zeros(1)).dtype, device=self.dev)
        times = []
        for _ in range(reps + 2):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            synchronize(self.dev)
            times.append(time.perf_counter() - t0)
        return float(np.median(times[2:]))
