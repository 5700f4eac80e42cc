"""``example-torch-loop``: a logreg-bench backend shipped as a pip-installable plugin.

Its ``pyproject.toml`` registers it in the entry-point group ``logreg_bench.backends``::

    [project.entry-points."logreg_bench.backends"]
    example-torch-loop = "logreg_bench_example_plugin:TorchLoop"

so that, once installed, ``python -m bench backends`` lists it and every command that takes
backends accepts ``example-torch-loop``; this module is imported only when the backend is used.

The loop is the seed's torch step written the way a torch user writes it (autograd through the
formulation's loss, the update under ``no_grad``, ``grad.zero_()``), with the L2 penalty added to the
loss. It declares what it does not support: mini-batches and any device but the CPU; those cases are
``skipped`` rows with the reason, not failures.
"""

import torch
import torch.nn.functional as F

from implementations import Trainer


class TorchLoop(Trainer):
    library = "torch"
    gradient = "autograd"
    engine = "eager"
    style = "a plugin's loop"
    supports_minibatch = False
    supports_l2 = True
    devices = ("cpu",)

    def _prepare(self, X, y, w0, b0):
        dt = getattr(torch, self.config.dtype)
        self.X, self.y = torch.tensor(X, dtype=dt), torch.tensor(y, dtype=dt)
        self.w0, self.b0 = torch.tensor(w0, dtype=dt), torch.tensor([b0], dtype=dt)

    def _loss(self, w, b):
        z = self.X @ w + b
        if self.config.formulation == "probs":
            loss = F.binary_cross_entropy(torch.sigmoid(z), self.y)
        else:
            loss = F.binary_cross_entropy_with_logits(z, self.y)
        return loss + 0.5 * self.config.l2 * (w @ w) if self.config.l2 else loss

    def _run(self):
        c = self.config
        w = self.w0.clone().requires_grad_(True)
        b = self.b0.clone().requires_grad_(True)
        losses = torch.empty(c.n_records, dtype=self.X.dtype)
        for t in range(c.n_iters):
            loss = self._loss(w, b)
            if t % c.record_every == 0:
                losses[t // c.record_every] = loss.detach()
            loss.backward()
            with torch.no_grad():
                w -= c.lr * w.grad
                b -= c.lr * b.grad
            w.grad.zero_()
            b.grad.zero_()
        self.w, self.b, self.losses = w.detach(), b.detach(), losses

    def _result(self):
        return self.w.numpy(), self.b.numpy(), self.losses.numpy()

    def _loss_and_grad(self, w, b):
        dt = self.X.dtype
        w = torch.tensor(w, dtype=dt, requires_grad=True)
        b = torch.tensor([b], dtype=dt, requires_grad=True)
        loss = self._loss(w, b)
        loss.backward()
        return loss.item(), w.grad.numpy(), b.grad.numpy()
