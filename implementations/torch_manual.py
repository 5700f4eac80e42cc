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

Mini-batches and L2 (``batch_size = B``, ``l2 = λ``; derivation in the ``numpy`` backend): step
``t`` gathers its rows ``S_t`` with ``index_select`` on the device inside the timed loop, divides by
``m = |S_t|``, and adds the penalty's exact gradient, not on ``b``::

    dL/dw = X_S^T (p_S - y_S) / m + λ w       gw.add_(w, alpha=λ)
    L     = BCE(S_t) + (λ/2) w.w              recorded steps only

``batch_size=None`` with ``λ = 0`` is the loop above unchanged. ``loss_and_grad(w, b)`` returns the
penalised loss and gradient on the *full* prepared data.

Softmax regression (``n_classes = K >= 3``; derivation in the ``numpy`` backend)::

    Z = X W + b                 torch.addmm(b, X, W)                  (m, K)
    P = softmax(Z)              torch.softmax(Z, 1)
    dL/dW = X^T (P - Y) / m     torch.mm(X.T, P - one_hot(y)) / m     (+ λ W)
    dL/db = mean_rows(P - Y)

the loss by the same :func:`implementations._torch_common.softmax_loss` as the ``torch`` backend
(``F.cross_entropy``, or the clamped ``log(softmax)`` + ``F.nll_loss`` for ``probs``), recorded steps only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._loop import gradient_descent
from ._optim import HAND_WRITTEN, stepper
from ._torch_common import TorchTrainerBase, softmax_loss, synchronize, to_host


class TorchManualTrainer(TorchTrainerBase):
    name = "torch-manual"
    library = "torch"
    gradient = "hand-derived"
    engine = "eager"
    style = "the seed's loop, no autograd"
    supports_multiclass = True
    optimizers = HAND_WRITTEN  # momentum, nesterov, adam: implementations._optim's update on tensors

    @torch.no_grad()
    def _step_softmax(self, X, y, w, b, record):
        Z = torch.addmm(b, X, w)
        loss, l2 = None, self.config.l2
        if record:
            loss = softmax_loss(Z, y, self.config.formulation)
            if l2:
                loss = loss + 0.5 * l2 * (w * w).sum()
        R = torch.softmax(Z, 1).sub_(F.one_hot(y, self.k).to(Z.dtype))
        gw = torch.mm(X.T, R).div_(X.shape[0])
        if l2:
            gw.add_(w, alpha=l2)
        return loss, gw, R.mean(0)

    @torch.no_grad()
    def _step(self, X, y, w, b, record):
        if self.k >= 3:
            return self._step_softmax(X, y, w, b, record)
        z = torch.addmv(b, X, w)
        p = torch.sigmoid(z)
        loss, l2 = None, self.config.l2
        if record:
            if self.config.formulation == "probs":
                loss = F.binary_cross_entropy(p, y, reduction="mean")
            else:
                loss = F.binary_cross_entropy_with_logits(z, y, reduction="mean")
            if l2:
                loss = loss + 0.5 * l2 * torch.dot(w, w)
        r = p.sub_(y)
        gw = torch.mv(X.T, r).div_(X.shape[0])
        if l2:
            gw.add_(w, alpha=l2)
        return loss, gw, r.mean()

    def _update(self, X, y, w, b, record):
        """One step of :func:`implementations._loop.gradient_descent`, in place."""
        loss, gw, gb = self._step(X, y, w, b, record)
        w.sub_(gw, alpha=self.config.lr)
        b.sub_(gb, alpha=self.config.lr)
        return w, b, loss

    @torch.no_grad()
    def _run(self):
        w, b, losses = self._start()
        batch = self._batches(lambda A, rows: A.index_select(0, rows))  # a device gather
        step = (self._update if self.config.optimizer == "gd" else  # other optimizers: fresh state every run
                stepper(self.config, self._step, torch.zeros_like, torch.sqrt))
        self._w, self._b = gradient_descent(self.config, step, w, b, losses, (self.X, self.y), batch)
        self._losses = losses
        synchronize(self.dev)

    def _loss_and_grad(self, w, b):
        w, b = self._params(w, b)
        loss, gw, gb = self._step(self.X, self.y, w, b, record=True)  # full data, penalised
        return to_host(loss), to_host(gw), to_host(gb)
