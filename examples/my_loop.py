"""A training loop of your own, in one file, checked and timed by the benchmark without editing it:

    python -m bench check examples/my_loop.py:MyLoop        # right? how fast beside numpy and torch?
    python -m bench run --backends examples/my_loop.py:MyLoop numpy --datasets iris

``MyLoop`` is plain NumPy gradient descent written the way a user writes it — one loop, the gradient
derived by hand — behind the four methods of :class:`implementations.Trainer`:

    z = X w + b,  p = sigmoid(z)
    probs : L = -mean(y log p + (1 - y) log(1 - p))   (each log clamped at -100, as torch does)
    logits: L =  mean(log(1 + e^z) - y z)              (the same function, computed stably)
    dL/dw = X^T (p - y) / m + l2 w,   dL/db = mean(p - y)      (m rows in the step's batch)

``prepare`` has already validated the arrays (``ValueError`` for bad ones) and set ``self.schedule``
(None for full batch; else ``self.schedule[t]`` are step ``t``'s rows, the same for every backend).
"""

import numpy as np

from implementations import Trainer


class MyLoop(Trainer):
    # what it is (written into every row, printed by `python -m bench backends`)
    library = "numpy"
    gradient = "hand-derived"
    engine = "eager"
    style = "a user's loop"
    # what it supports (the defaults say everything; a case outside them is a `skipped` row)
    supports_minibatch = True
    supports_l2 = True
    devices = ("cpu",)

    def _prepare(self, X, y, w0, b0):
        dt = self.config.dtype
        self.X, self.y = X.astype(dt), y.astype(dt)
        self.w0, self.b0 = w0.astype(dt), np.asarray(b0, dtype=dt)

    def _loss_grad(self, X, y, w, b, with_loss=True):
        z = X @ w + b
        with np.errstate(over="ignore", divide="ignore"):
            p = 1 / (1 + np.exp(-z))
            loss = None
            if with_loss and self.config.formulation == "probs":
                loss = -np.mean(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100))
            elif with_loss:
                loss = np.mean(np.logaddexp(0, z) - y * z)
        r = p - y
        m = X.shape[0]
        gw = X.T @ r / m + self.config.l2 * w
        gb = r.sum() / m
        if with_loss and self.config.l2:
            loss = loss + 0.5 * self.config.l2 * (w @ w)
        return loss, gw, gb

    def _run(self):
        c = self.config
        w, b = self.w0.copy(), self.b0.copy()
        losses = np.empty(c.n_records, dtype=c.dtype)
        for t in range(c.n_iters):
            X, y = (self.X, self.y) if self.schedule is None else (self.X[self.schedule[t]], self.y[self.schedule[t]])
            record = t % c.record_every == 0
            loss, gw, gb = self._loss_grad(X, y, w, b, with_loss=record)
            if record:
                losses[t // c.record_every] = loss
            w = w - c.lr * gw
            b = b - c.lr * gb
        self.w, self.b, self.losses = w, b, losses

    def _result(self):
        return self.w, self.b, self.losses

    def _loss_and_grad(self, w, b):
        dt = self.config.dtype
        return self._loss_grad(self.X, self.y, w.astype(dt), np.asarray(b, dtype=dt))
