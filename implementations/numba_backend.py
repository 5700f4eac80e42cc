"""``numba``: a compiled one-pass kernel, parallel over row blocks — the physical-limit reference.

Not a NumPy or torch contender: it shows how close to the memory floor (one read of ``X`` per
step) this hardware lets a step get. Same math as ``numpy`` (see its docstring). Per step, each
thread takes whole blocks of rows and, row by row while the row is in L1::

    z_i = x_i . w + b            (d-term dot product, vectorised: reassociation allowed)
    r_i = sigmoid(z_i) - y_i
    g  += r_i x_i                (axpy into the block's private accumulator)

then the block accumulators are summed (``O(blocks d)``) and ``w, b`` updated. The only
floating-point licence taken is reassociation/contraction (``fastmath={"reassoc", "contract"}``),
so NaN and inf still propagate and a diverging run is still reported.
"""

from __future__ import annotations

import numpy as np

from .base import LOG_CLAMP, BackendUnavailableError, DeviceUnavailableError, Trainer

ROWS_PER_BLOCK = 2048


def _build_kernel():
    import numba

    @numba.njit(parallel=True, fastmath={"reassoc", "contract"}, cache=True)
    def grad_kernel(X, y, w, b, rows, logits, record, gw_parts, gb_parts, loss_parts):
        n, d = X.shape
        one = X.dtype.type(1)  # keep float32 math in float32 (a 1.0 literal would promote to float64)
        zero = X.dtype.type(0)
        clamp = X.dtype.type(LOG_CLAMP)
        for t in numba.prange(gw_parts.shape[0]):
            acc = np.zeros(d, X.dtype)  # block-private: provably unaliased, so the axpy vectorises
            gb = zero
            ls = zero
            for i in range(t * rows, min(n, (t + 1) * rows)):
                z = b
                for j in range(d):
                    z += X[i, j] * w[j]
                p = one / (one + np.exp(-z))
                r = p - y[i]
                for j in range(d):
                    acc[j] += r * X[i, j]
                gb += r
                if record:
                    if logits:
                        ls += max(z, zero) + np.log1p(np.exp(-abs(z))) - y[i] * z
                    else:
                        ls -= y[i] * max(np.log(p), clamp) + (one - y[i]) * max(np.log1p(-p), clamp)
            gw_parts[t] = acc
            gb_parts[t] = gb
            loss_parts[t] = ls

    return grad_kernel


_KERNEL = None


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _build_kernel()
    return _KERNEL


class NumbaTrainer(Trainer):
    name = "numba"

    def __init__(self, config):
        super().__init__(config)
        if config.device != "cpu":
            raise DeviceUnavailableError(f"device {config.device!r}: the numba backend runs on 'cpu' only")
        try:
            import numba  # noqa: F401
        except ImportError:
            raise BackendUnavailableError("the numba backend needs numba, which is not installed (pip install '.[numba]')") from None

    def _prepare(self, X, y, w0, b0):
        dt = np.dtype(self.config.dtype)
        self.X, self.y = np.ascontiguousarray(X, dtype=dt), np.ascontiguousarray(y, dtype=dt)
        self.w0, self.b0 = w0.astype(dt), dt.type(b0)
        nblocks = -(-self.n // ROWS_PER_BLOCK)
        self._gw_parts = np.empty((nblocks, self.d), dt)
        self._gb_parts = np.empty(nblocks, dt)
        self._loss_parts = np.empty(nblocks, dt)

    def _grad(self, w, b, record):
        _kernel()(self.X, self.y, w, b, ROWS_PER_BLOCK, self.config.formulation == "logits", record,
                  self._gw_parts, self._gb_parts, self._loss_parts)
        return self._gw_parts.sum(axis=0), self._gb_parts.sum(), self._loss_parts.sum()

    def _run(self):
        cfg, dt = self.config, self.X.dtype
        w, b = self.w0.copy(), self.b0
        losses = np.empty(cfg.n_records, dt)
        step = dt.type(cfg.lr / self.n)
        for i in range(cfg.n_iters):
            record = i % cfg.record_every == 0
            gw, gb, loss = self._grad(w, b, record)
            if record:
                losses[i // cfg.record_every] = loss / self.n
            w -= step * gw
            b = dt.type(b - step * gb)
        self._w, self._b, self._losses = w, b, losses

    def _result(self):
        return self._w, self._b, self._losses

    def _loss_and_grad(self, w, b):
        dt = self.X.dtype
        gw, gb, loss = self._grad(w.astype(dt), dt.type(b), True)
        return loss / self.n, gw / self.n, gb / self.n
