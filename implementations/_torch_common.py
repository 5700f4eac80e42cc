"""Device handling shared by the torch backends: resolve, validate, synchronize, convert; the
softmax losses (``n_classes >= 3``) every torch backend computes the same way; and the plain eager
hand-derived step that ``torch-fused`` runs on small data and ``torch-compiled`` compiles.

A sparse ``X`` (a backend declaring ``supports_sparse``) becomes a torch CSR tensor on the device in
``prepare`` (:mod:`implementations._torch_sparse`); ``self.sparse`` says which, and with mini-batches
``self.csr_batches`` gathers each step's rows on the device."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ._loop import gather
from ._torch_sparse import CsrBatches, to_torch_csr
from .base import LOG_CLAMP, DeviceUnavailableError, Trainer
from .validation import is_sparse


def torch_device(device: str, dtype: str) -> torch.device:
    """Resolve ``cpu``, ``cuda[:N]`` or ``mps`` to a usable ``torch.device`` or raise clearly."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise DeviceUnavailableError(f"device must be 'cpu', 'cuda[:N]' or 'mps' for torch, got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {device!r}: this torch ({torch.__version__}) sees no CUDA device"
                + (" (it is a CPU-only build)" if torch.version.cuda is None else "")
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceUnavailableError(f"device {device!r}: MPS is not available on this machine")
        if dtype == "float64":
            raise DeviceUnavailableError("device 'mps' does not support float64")
    elif dev.type != "cpu":
        raise DeviceUnavailableError(f"device must be 'cpu', 'cuda[:N]' or 'mps' for torch, got {device!r}")
    return dev


def synchronize(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def to_device(a: np.ndarray, dtype: str, dev: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(dev)


def to_host(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def softmax_loss(Z: torch.Tensor, y: torch.Tensor, formulation: str) -> torch.Tensor:
    """The mean K-class loss of logits ``Z (m, K)`` and int64 labels ``y (m,)``:

    * ``logits``: ``F.cross_entropy(Z, y)`` (log-softmax, stable);
    * ``probs``: ``F.nll_loss(torch.clamp(torch.log(F.softmax(Z, 1)), min=-100), y)``: the tutorials'
      softmax-then-log, with each log clamped at -100 as ``F.binary_cross_entropy`` clamps its logs, so
      that a label probability that underflows to 0 gives a loss of 100, not inf. Autograd through the
      clamp gives such a sample a zero gradient (the clamp's derivative below -100 is 0)."""
    if formulation == "logits":
        return F.cross_entropy(Z, y)
    return F.nll_loss(torch.clamp(torch.log(F.softmax(Z, 1)), min=LOG_CLAMP), y)



def binary_loss(z, p, y, formulation: str):
    if formulation == "probs":
        return F.binary_cross_entropy(p, y)
    return F.binary_cross_entropy_with_logits(z, y)


def plain_step(X, y, w, b, lr, l2, formulation: str | None):
    """The plain step on rows ``X, y``: ``(w, b)`` updated, and the penalised loss at ``(w, b)`` if
    ``formulation`` is not None. ``l2=None`` for λ = 0: no op more than ``torch-manual``."""
    g, gb, loss = plain_grad(X, y, w, b, l2, formulation)
    return w - lr * g, b - lr * gb, loss


def plain_grad(X, y, w, b, l2, formulation: str | None):
    """``(g_w, g_b, loss)`` of :func:`plain_step` (its gradient, before the update)."""
    z = torch.addmv(b, X, w)
    p = torch.sigmoid(z)
    loss = None if formulation is None else binary_loss(z, p, y, formulation)
    if loss is not None and l2 is not None:
        loss = loss + (0.5 * l2) * torch.dot(w, w)
    r = p - y
    g = torch.mv(X.T, r) / X.shape[0]
    if l2 is not None:
        g = g + l2 * w
    return g, r.mean(), loss


def plain_step_softmax(X, y, w, b, lr, l2, formulation: str | None, k: int):
    """The plain K-class step on rows ``X, y`` (int64 labels): ``(W, b)`` updated, and the penalised
    loss at ``(W, b)`` if ``formulation`` is not None."""
    g, gb, loss = plain_grad_softmax(X, y, w, b, l2, formulation, k)
    return w - lr * g, b - lr * gb, loss


def plain_grad_softmax(X, y, w, b, l2, formulation: str | None, k: int):
    """``(g_W, g_b, loss)`` of :func:`plain_step_softmax` (its gradient, before the update)."""
    Z = torch.addmm(b, X, w)
    loss = None if formulation is None else softmax_loss(Z, y, formulation)
    if loss is not None and l2 is not None:
        loss = loss + (0.5 * l2) * (w * w).sum()
    R = torch.softmax(Z, 1).sub_(torch.zeros_like(Z).scatter_(1, y[:, None], 1.0))  # P - one_hot(y), compilable
    g = torch.mm(X.T, R) / X.shape[0]
    if l2 is not None:
        g = g + l2 * w
    return g, R.mean(0), loss

@torch.no_grad()
def exact_loss_and_grad(X, y, w, b, l2: float, formulation: str, k: int, Xt=None):
    """``(loss, g_w, g_b)`` on the host, float64, of the full data ``X, y`` at ``(w, b)`` (device
    tensors), penalty included: the hand-derived gradient, ``X^T (p - y) / n + l2 w`` and ``mean(p - y)``
    (softmax, ``k >= 3``: ``X^T (P - Y) / n + l2 W`` and the column means of ``P - Y``). ``Xt``: ``X^T``
    as its own tensor (a sparse ``X``'s transposed CSR), else ``X.T``."""
    n = X.shape[0]
    Xt = X.T if Xt is None else Xt
    if k >= 3:
        Z = torch.addmm(b, X, w)
        loss = softmax_loss(Z, y, formulation) + 0.5 * l2 * (w * w).sum()
        R = torch.softmax(Z, 1) - F.one_hot(y, k).to(Z.dtype)
        return to_host(loss), to_host(torch.mm(Xt, R) / n + l2 * w), to_host(R.mean(0))
    z = torch.addmv(b, X, w)
    p = torch.sigmoid(z)
    loss = binary_loss(z, p, y, formulation) + 0.5 * l2 * torch.dot(w, w)
    r = p - y
    return to_host(loss), to_host(torch.mv(Xt, r) / n + l2 * w), to_host(r.mean())


class TorchTrainerBase(Trainer):
    """Device resolution and ``prepare`` shared by the torch backends. ``seed_shapes`` keeps the
    article's layout (``w`` as ``(1, d)``, ``y`` as ``(n, 1)``) for ``F.linear``; otherwise 1-D.

    With mini-batches, ``prepare`` also moves the schedule's flat row indices to the device once
    (``self.batch_idx``, int64) and keeps its offsets as host ints (``self.batch_offsets``): the
    timed loop slices ``batch_idx[off[t]:off[t + 1]]``, a view, with no host->device copy."""

    seed_shapes = False

    def __init__(self, config):
        super().__init__(config)
        self.dev = torch_device(config.device, config.dtype)

    def _prepare(self, X, y, w0, b0):
        dt, dev = self.config.dtype, self.dev
        self.sparse = is_sparse(X)
        self.X_host = X if self.sparse else None  # the SciPy CSR matrix, for transposes and row blocks
        self.csr_batches = None
        if self.k >= 3:  # softmax: int64 labels (F.cross_entropy / F.nll_loss), W (d, K), b (K,)
            self.X = to_torch_csr(X, dt, dev) if self.sparse else to_device(X, dt, dev)
            self.y = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)).to(dev)
            self.w0, self.b0 = to_device(w0, dt, dev), to_device(b0, dt, dev)
            self._prepare_schedule()
            return
        self.X = to_torch_csr(X, dt, dev) if self.sparse else to_device(X, dt, dev)
        self.y = to_device(y.reshape(-1, 1) if self.seed_shapes else y, dt, dev)
        self.w0 = to_device(w0.reshape(1, -1) if self.seed_shapes else w0, dt, dev)
        self.b0 = to_device([b0], dt, dev)
        self._prepare_schedule()

    def _prepare_schedule(self):
        dev = self.dev
        sched = self.schedule
        self.batch_idx = None if sched is None else torch.from_numpy(sched.indices).to(dev)
        self.batch_offsets = None if sched is None else sched.offsets.tolist()
        if self.sparse and sched is not None:
            self.csr_batches = CsrBatches(self.X_host, self.X, sched)
        synchronize(dev)

    def _start(self):
        """``(w, b, losses)`` for a run: copies of ``(w0, b0)`` and the device buffer of the recorded losses."""
        w, b = self.w0.clone(), self.b0.clone()
        return w, b, torch.empty(self.config.n_records, dtype=w.dtype, device=self.dev)

    def _params(self, w, b):
        """A ``loss_and_grad`` point on the device, in the layout of ``w0``/``b0``."""
        dt, dev = self.config.dtype, self.dev
        if self.k >= 3:
            return to_device(w, dt, dev), to_device(b, dt, dev)
        return to_device(w.reshape(1, -1) if self.seed_shapes else w, dt, dev), to_device([b], dt, dev)

    def _batches(self, take):
        """``batch(t)`` for :func:`implementations._loop.gradient_descent`: step ``t``'s rows gathered on
        the device with ``take(A, rows)`` inside the timed loop; None for full batch."""
        if self.batch_idx is None:
            return None
        if self.sparse:  # (X_b, y_b): the rows gathered from the CSR arrays on the device
            sparse_batch = self._sparse_batches()
            return lambda t: sparse_batch(t)[:2]
        return gather(take, self.X, self.y, self.batch_idx, self.batch_offsets)

    def _sparse_batches(self):
        """``batch(t)`` for the hand-derived sparse steps: ``(X_b, y_b, (col_b, val_b, rid_b))``, the
        last the batch's non-zeros for ``X_b^T r`` (:func:`implementations._torch_sparse.scatter_t`)."""
        cb, y = self.csr_batches, self.y

        def batch(t):
            X_b, col_b, val_b, rid_b, rows = cb.batch(t)
            return X_b, y.index_select(0, rows), (col_b, val_b, rid_b)
        return batch

    def _result(self):
        w = to_host(self._w)  # the binary model keeps w as (1, d) for F.linear; the contract's w is (d,)
        return (w.reshape(-1) if self.k < 3 else w), to_host(self._b), to_host(self._losses)
