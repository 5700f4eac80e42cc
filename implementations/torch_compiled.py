"""``torch-compiled``: torch at its best — the hand-derived step under ``torch.compile``.

The math of ``torch-manual`` (``r = sigmoid(X w + b) - y``, ``g_w = X^T r / n``,
``g_b = mean(r)``), traced once and compiled by Inductor: the elementwise work (sigmoid, the
residual, both losses) fuses into one generated kernel around the two matrix-vector products.
Python's per-step overhead, which dominates on small data, is amortised by compiling ``K`` steps
into one call (``K = STEPS_PER_CALL``); the ``n_iters mod K`` leftover steps run the same math
eagerly. The loss of both formulations is computed in the graph (a few fused flops) and the
configured one is kept, so one compiled graph serves both formulations: the gradient of the
hand-derived step does not depend on the formulation.

Where compiling does not pay, it is not used: above ``COMPILE_MAX_N`` samples on CPU a step is
two BLAS matrix-vector passes over ``X`` that Inductor leaves to the same BLAS, and the compiled
step measured *slower* than eager here (100k x 100 float32: 21.2 ms vs 14.4 ms per step, and a
second ~40 s compile per dtype), so large problems run the identical math eagerly.

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

STEPS_PER_CALL = 5  # 56 µs/step on Iris here (10: 40 µs, 1: 173 µs); compile time grows with it (25 s vs 39 s cold)
COMPILE_MAX_N = 4096  # CPU: larger n runs eagerly (see the module docstring)


def _step(X, y, w, b, lr: float, n: int):
    z = torch.addmv(b, X, w)
    p = torch.sigmoid(z)
    losses = torch.stack([F.binary_cross_entropy(p, y), F.binary_cross_entropy_with_logits(z, y)])
    r = p - y
    return w - (lr / n) * torch.mv(X.T, r), b - lr * r.mean(), losses


def _k_steps(X, y, w, b, lr: float, n: int):
    out = []
    for _ in range(STEPS_PER_CALL):
        w, b, losses = _step(X, y, w, b, lr, n)
        out.append(losses)
    return w, b, torch.stack(out)


@functools.lru_cache(maxsize=None)
def _compiled(device_type: str):
    mode = "reduce-overhead" if device_type == "cuda" else None
    return torch.compile(_k_steps, mode=mode)


def _has_cxx() -> bool:
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


class TorchCompiledTrainer(TorchTrainerBase):
    name = "torch-compiled"

    def __init__(self, config):
        super().__init__(config)
        if self.dev.type == "cpu" and not _has_cxx():
            raise BackendUnavailableError("torch-compiled on cpu needs a C++ compiler (none of g++, c++, clang++ found)")
        if self.dev.type == "mps":
            raise BackendUnavailableError("torch-compiled: torch.compile is not supported on 'mps' here")

    @torch.no_grad()
    def _run(self):
        cfg = self.config
        which = 0 if cfg.formulation == "probs" else 1
        w, b = self.w0.clone(), self.b0.clone()
        chunks = []
        full, rest = divmod(cfg.n_iters, STEPS_PER_CALL)
        if self.dev.type == "cpu" and self.n > COMPILE_MAX_N:
            full, rest = 0, cfg.n_iters
        fn = _compiled(self.dev.type) if full else None
        for _ in range(full):
            w, b, losses = fn(self.X, self.y, w, b, cfg.lr, self.n)
            if self.dev.type == "cuda":  # CUDA-graph outputs are overwritten by the next replay
                w, b, losses = w.clone(), b.clone(), losses.clone()
            chunks.append(losses[:, which])
        for _ in range(rest):
            w, b, losses = _step(self.X, self.y, w, b, cfg.lr, self.n)
            chunks.append(losses[which:which + 1])
        all_losses = torch.cat(chunks) if chunks else torch.empty(0, dtype=w.dtype, device=self.dev)
        self._w, self._b, self._losses = w, b, all_losses[:: cfg.record_every]
        synchronize(self.dev)

    @torch.no_grad()
    def _loss_and_grad(self, w, b):
        dt = self.config.dtype
        w, b = to_device(w, dt, self.dev), to_device([b], dt, self.dev)
        z = torch.addmv(b, self.X, w)
        p = torch.sigmoid(z)
        loss = (F.binary_cross_entropy(p, self.y) if self.config.formulation == "probs"
                else F.binary_cross_entropy_with_logits(z, self.y))
        r = p - self.y
        return to_host(loss), to_host(torch.mv(self.X.T, r) / self.n), to_host(r.mean())
