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

Sparse ``X`` (a SciPy matrix: a torch CSR tensor on the device, :mod:`implementations._torch_sparse`).
Full batch: ``X^T`` is its own CSR tensor, built once in ``prepare``; ``z = addmv(b, X, w)`` and
``g = mv(X^T, r)`` (``addmm``/``mm`` for K classes): two CSR products, nothing transposed in the loop.
Mini-batch: step ``t``'s rows are gathered from the CSR arrays on the device (no host copy),
``z = addmv(b, X_S, w)``, and ``X_S^T r`` is a scatter of the batch's non-zeros
(``index_add_``, :func:`implementations._torch_sparse.scatter_t`), no transpose of ``X_S``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._loop import gradient_descent
from ._optim import HAND_WRITTEN, stepper
from ._torch_common import TorchTrainerBase, softmax_loss, synchronize, to_host
from ._torch_sparse import scatter_t, transpose_csr


class TorchManualTrainer(TorchTrainerBase):
    name = "torch-manual"
    library = "torch"
    gradient = "hand-derived"
    engine = "eager"
    style = "the seed's loop, no autograd"
    supports_multiclass = True
    supports_sparse = True  # X as a torch CSR tensor; X^T as its own CSR
    optimizers = HAND_WRITTEN  # momentum, nesterov, adam: implementations._optim's update on tensors

    def _prepare(self, X, y, w0, b0):
        super()._prepare(X, y, w0, b0)
        self.Xt = transpose_csr(X, self.config.dtype, self.dev) if self.sparse and self.schedule is None else None

    def _xt(self, X, R, T):
        """``X^T R``: dense ``X.T``; sparse full batch ``T`` = the CSR ``X^T``; sparse mini-batch ``T`` =
        the batch's non-zeros ``(col, val, row)``."""
        if T is None:
            return torch.mv(X.T, R) if R.ndim == 1 else torch.mm(X.T, R)
        if isinstance(T, tuple):
            return scatter_t(*T, R, X.shape[1])
        return torch.mv(T, R) if R.ndim == 1 else torch.mm(T, R)

    @torch.no_grad()
    def _step_softmax(self, X, y, w, b, record, T=None):
        Z = torch.addmm(b, X, w)
        loss, l2 = None, self.config.l2
        if record:
            loss = softmax_loss(Z, y, self.config.formulation)
            if l2:
                loss = loss + 0.5 * l2 * (w * w).sum()
        R = torch.softmax(Z, 1).sub_(F.one_hot(y, self.k).to(Z.dtype))
        gw = self._xt(X, R, T).div_(X.shape[0])
        if l2:
            gw.add_(w, alpha=l2)
        return loss, gw, R.mean(0)

    @torch.no_grad()
    def _step(self, X, y, w, b, record, T=None):
        if self.k >= 3:
            return self._step_softmax(X, y, w, b, record, T)
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
        gw = self._xt(X, r, T).div_(X.shape[0])
        if l2:
            gw.add_(w, alpha=l2)
        return loss, gw, r.mean()

    def _update(self, X, y, w, b, record, T=None):
        """One step of :func:`implementations._loop.gradient_descent`, in place."""
        loss, gw, gb = self._step(X, y, w, b, record, T)
        w.sub_(gw, alpha=self.config.lr)
        b.sub_(gb, alpha=self.config.lr)
        return w, b, loss

    @torch.no_grad()
    def _run(self):
        w, b, losses = self._start()
        full = (self.X, self.y)
        if self.sparse:  # a third argument T for X^T (see _xt)
            full = (self.X, self.y, self.Xt)
            batch = None if self.schedule is None else self._sparse_batches()
            update, grad = (lambda X, y, T, w, b, record: self._update(X, y, w, b, record, T),
                            lambda X, y, T, w, b, record: self._step(X, y, w, b, record, T))
        else:
            batch = self._batches(lambda A, rows: A.index_select(0, rows))  # a device gather
            update, grad = self._update, self._step
        step = (update if self.config.optimizer == "gd" else  # other optimizers: fresh state every run
                stepper(self.config, grad, torch.zeros_like, torch.sqrt))
        self._w, self._b = gradient_descent(self.config, step, w, b, losses, full, batch)
        self._losses = losses
        synchronize(self.dev)

    def _loss_and_grad(self, w, b):
        w, b = self._params(w, b)
        Xt = self.Xt
        if self.sparse and Xt is None:  # a mini-batch trainer keeps no X^T: made here, untimed
            Xt = transpose_csr(self.X_host, self.config.dtype, self.dev)
        loss, gw, gb = self._step(self.X, self.y, w, b, record=True, T=Xt)  # full data, penalised
        return to_host(loss), to_host(gw), to_host(gb)
