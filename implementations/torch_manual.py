"""``torch-manual``: the hand-derived gradient with torch ops, no autograd.

The same math as the ``numpy`` backend (see its docstring for the derivation)::

    z = X w + b                 torch.addmv(b, X, w)
    p = sigmoid(z)
    dL/dw = X^T (p - y) / n     torch.mv(X.T, r) / n
    dL/db = mean(p - y)

The loss value is computed with the same ``F.binary_cross_entropy`` (``probs``) or
``F.binary_cross_entropy_with_logits`` (``logits``) call as the ``torch`` backend, only on recorded
steps, and never differentiated. Against ``torch`` it isolates autograd's cost; against ``numpy``
it isolates the library's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._torch_common import TorchTrainerBase, synchronize, to_device, to_host


class TorchManualTrainer(TorchTrainerBase):
    name = "torch-manual"

    @torch.no_grad()
    def _step(self, w, b, record):
        z = torch.addmv(b, self.X, w)
        p = torch.sigmoid(z)
        loss = None
        if record:
            if self.config.formulation == "probs":
                loss = F.binary_cross_entropy(p, self.y, reduction="mean")
            else:
                loss = F.binary_cross_entropy_with_logits(z, self.y, reduction="mean")
        r = p.sub_(self.y)
        return loss, torch.mv(self.X.T, r).div_(self.n), r.mean()

    @torch.no_grad()
    def _run(self):
        cfg = self.config
        w, b = self.w0.clone(), self.b0.clone()
        losses = torch.empty(cfg.n_records, dtype=w.dtype, device=self.dev)
        for i in range(cfg.n_iters):
            record = i % cfg.record_every == 0
            loss, gw, gb = self._step(w, b, record)
            if record:
                losses[i // cfg.record_every] = loss
            w.sub_(gw, alpha=cfg.lr)
            b.sub_(gb, alpha=cfg.lr)
        self._w, self._b, self._losses = w, b, losses
        synchronize(self.dev)

    def _loss_and_grad(self, w, b):
        w = to_device(w, self.config.dtype, self.dev)
        b = to_device([b], self.config.dtype, self.dev)
        loss, gw, gb = self._step(w, b, record=True)
        return to_host(loss), to_host(gw), to_host(gb)
