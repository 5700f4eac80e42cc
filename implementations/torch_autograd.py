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

Mini-batches and L2 (``batch_size = B``, ``l2 = λ``). Step ``t`` indexes its rows ``S_t`` of the
shared schedule on the device (``X[idx]``, ``y[idx]``: a gather inside the timed loop, as a user's
loop does), so ``reduction="mean"`` divides by ``m = |S_t|``. The penalty goes into the loss that
autograd differentiates::

    loss = BCE(S_t) + 0.5 * λ * (w * w).sum()       # autograd adds d/dw (λ/2)||w||^2 = λ w to w.grad
                                                   # b is not penalised

``batch_size=None`` and ``λ = 0`` is the seed's loop exactly (no gather, no penalty term). The
recorded loss is this penalised mini-batch loss. ``loss_and_grad(w, b)`` returns the penalised loss
and its autograd gradient on the *full* prepared data.

Softmax regression (``n_classes = K >= 3``; ``W (d, K)``, ``b (K,)``, int64 labels ``y``)::

    z = X @ W + b                                                    # (m, K)
    loss = F.cross_entropy(z, y)                                     # logits
    loss = F.nll_loss(torch.clamp(torch.log(F.softmax(z, 1)), min=-100), y)   # probs, the tutorials' spelling
    loss = loss + 0.5 * λ * (W * W).sum()                            # when λ > 0

then the same ``backward()`` and update. Autograd's gradient is ``X^T (P - Y) / m + λ W`` and
``mean_rows(P - Y)`` except, for ``probs``, on samples whose label's ``log P`` is clamped (the
probability underflowed): there the clamp's zero derivative drops the sample (see
:func:`implementations._torch_common.softmax_loss`).

Sparse ``X`` (a SciPy matrix; a torch CSR tensor on the device, :mod:`implementations._torch_sparse`):
``F.linear`` takes no sparse input, so the product is written as users write it, autograd through it::

    z = torch.sparse.mm(X, w.T) + b          # (n, 1);  K classes: X @ W + b
    loss.backward()                          # w.grad = X^T dL/dz, by sparse.mm's backward

Mini-batches gather step ``t``'s rows from the CSR arrays on the device (no host copy), then the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _optim
from ._lbfgs import torch_lbfgs
from ._loop import gradient_descent
from ._torch_common import TorchTrainerBase, softmax_loss, synchronize, to_host


class TorchTrainer(TorchTrainerBase):
    name = "torch"
    library = "torch"
    gradient = "autograd"
    engine = "eager"
    style = "the seed's loop"
    seed_shapes = True
    supports_multiclass = True
    supports_sparse = True  # autograd through torch.sparse.mm on a CSR X
    optimizers = _optim.HAND_WRITTEN  # the update by hand under no_grad, as the seed's, from autograd's grads
    optimizers += ("lbfgs",)  # torch.optim.LBFGS(line_search_fn="strong_wolfe"), implementations._lbfgs

    def _loss(self, w, b, X, y):
        if self.k >= 3:
            loss = softmax_loss(X @ w + b, y, self.config.formulation)
            return loss + 0.5 * self.config.l2 * (w * w).sum() if self.config.l2 else loss
        z = torch.sparse.mm(X, w.T) + b if X.layout != torch.strided else F.linear(X, w, b)
        if self.config.formulation == "probs":
            loss = F.binary_cross_entropy(torch.sigmoid(z), y, reduction="mean")
        else:
            loss = F.binary_cross_entropy_with_logits(z, y, reduction="mean")
        if self.config.l2:
            loss = loss + 0.5 * self.config.l2 * (w * w).sum()
        return loss

    def _update(self, X, y, w, b, record):
        """One step of :func:`implementations._loop.gradient_descent`, the article's lines."""
        lr = self.config.lr
        loss = self._loss(w, b, X, y)
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
            w.grad.zero_()
            b -= lr * b.grad
            b.grad.zero_()
        return w, b, loss.detach()  # stays on the device: no per-step sync

    def _optimizer_update(self):
        """The step of ``momentum``, ``nesterov`` or ``adam``: ``backward()``, then
        :func:`implementations._optim.update` of ``w.grad``, ``b.grad`` by hand under ``no_grad``, written
        into ``w`` and ``b`` in place (the seed's shape of update). A new closure (zero state) per run."""
        cfg, state, t = self.config, None, 0

        def update(X, y, w, b, record):
            nonlocal state, t
            loss = self._loss(w, b, X, y)
            loss.backward()
            with torch.no_grad():
                if state is None:
                    state = _optim.init_state(cfg.optimizer, w, b, torch.zeros_like)
                t += 1
                coeffs = _optim.adam_coefficients(cfg.lr, t) if cfg.optimizer == "adam" else None
                new_w, new_b, state = _optim.update(cfg.optimizer, cfg.lr, w, b, w.grad, b.grad, state, coeffs,
                                                    torch.sqrt)
                w.copy_(new_w)
                w.grad.zero_()
                b.copy_(new_b)
                b.grad.zero_()
            return w, b, loss.detach()

        return update

    def _run(self):
        w, b, losses = self._start()
        w.requires_grad_(True)
        b.requires_grad_(True)
        if self.config.optimizer == "lbfgs":
            return self._run_lbfgs(w, b)
        batch = self._batches(lambda A, rows: A[rows])  # a device gather
        step = self._update if self.config.optimizer == "gd" else self._optimizer_update()
        w, b = gradient_descent(self.config, step, w, b, losses, (self.X, self.y), batch)
        self._w, self._b, self._losses = w.detach(), b.detach(), losses
        synchronize(self.dev)

    def _run_lbfgs(self, w, b):
        """One ``torch.optim.LBFGS([w, b], ...).step(closure)`` on the same autograd loss (penalty included)."""
        trace = torch_lbfgs([w, b], lambda: self._loss(w, b, self.X, self.y), self.config)
        losses, self.point_times_s = trace.finish()
        self.evaluations, self.run_s = trace.evaluations, trace.run_s
        self._w, self._b, self._losses = w.detach(), b.detach(), torch.from_numpy(losses)
        synchronize(self.dev)

    def _loss_and_grad(self, w, b):
        w, b = (t.requires_grad_(True) for t in self._params(w, b))
        loss = self._loss(w, b, self.X, self.y)  # full data, penalised
        gw, gb = torch.autograd.grad(loss, (w, b))
        return to_host(loss), to_host(gw), to_host(gb)
