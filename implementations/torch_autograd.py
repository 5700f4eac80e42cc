"""``torch``: the seed article's PyTorch loop, gradients by autograd.

One step, literally as the article writes it (``w`` is ``(1, d)``, ``b`` is ``(1,)``, ``y`` is ``(n, 1)``)::

    z = F.linear(X, w, b)                                    # X w^T + b       (n, 1)
    p = torch.sigmoid(z)                                     #                 (n, 1)
    loss = F.binary_cross_entropy(p, y, reduction="mean")    # logs clamped at -100
    loss.backward()                                          # fills w.grad, b.grad
    with torch.no_grad():
        w -= lr * w.grad; w.grad.zero_()
        b -= lr * b.grad; b.grad.zero_()

``logits`` replaces the two middle lines by ``F.binary_cross_entropy_with_logits(z, y)``.

Autograd differentiates what was computed, so for ``probs`` the gradient reaching ``z`` is
``(p - y) / max(p (1 - p), 1e-12) * p (1 - p)`` (torch's BCE backward, then sigmoid's): equal to
``p - y`` except when ``p`` rounds to exactly 0 or 1, where it becomes 0 — the sample stops
contributing — while the hand-derived backends keep ``p - y``. That is a real difference of the
``probs`` formulation, reported by ``python -m bench grad``; ``logits`` has no such gap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._torch_common import TorchTrainerBase, synchronize, to_device, to_host


class TorchTrainer(TorchTrainerBase):
    name = "torch"
    seed_shapes = True

    def _loss(self, w, b):
        z = F.linear(self.X, w, b)
        if self.config.formulation == "probs":
            return F.binary_cross_entropy(torch.sigmoid(z), self.y, reduction="mean")
        return F.binary_cross_entropy_with_logits(z, self.y, reduction="mean")

    def _run(self):
        cfg = self.config
        w = self.w0.clone().requires_grad_(True)
        b = self.b0.clone().requires_grad_(True)
        losses = []
        for i in range(cfg.n_iters):
            loss = self._loss(w, b)
            loss.backward()
            with torch.no_grad():
                w -= cfg.lr * w.grad
                w.grad.zero_()
                b -= cfg.lr * b.grad
                b.grad.zero_()
            if i % cfg.record_every == 0:
                losses.append(loss.detach())  # stays on the device: no per-step sync
        self._w, self._b, self._losses = w.detach(), b.detach(), torch.stack(losses)
        synchronize(self.dev)

    def _loss_and_grad(self, w, b):
        w = to_device(w.reshape(1, -1), self.config.dtype, self.dev).requires_grad_(True)
        b = to_device([b], self.config.dtype, self.dev).requires_grad_(True)
        loss = self._loss(w, b)
        gw, gb = torch.autograd.grad(loss, (w, b))
        return to_host(loss), to_host(gw), to_host(gb)
