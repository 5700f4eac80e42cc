"""``numpy``: hand-derived gradients, written against an array namespace ``xp``.

The same code runs on NumPy (``device="cpu"``), CuPy (``device="cuda[:N]"``) and any array-API
namespace passed as ``xp`` (the tests use ``array_api_strict`` to prove it stays generic).

Derivation. Labels ``y_i`` in {0, 1}, ``z = X w + b``, ``p = sigmoid(z)``, and the negative mean
log-likelihood::

    L(w, b) = -(1/n) sum_i [ y_i log p_i + (1 - y_i) log(1 - p_i) ]

Since ``dp/dz = p (1 - p)``, ``d/dz log p = 1 - p`` and ``d/dz log(1 - p) = -p``, so per sample::

    dL_i/dz_i = -(y_i (1 - p_i) - (1 - y_i) p_i) = p_i - y_i

and by the chain rule through ``z = X w + b`` (``dz_i/dw = x_i``, ``dz_i/db = 1``)::

    dL/dw = X^T (p - y) / n     X: (n, d), p - y: (n,)  ->  (d,)
    dL/db = mean(p - y)                                 ->  ()

Two ways to evaluate the same ``L``:

* ``probs`` (the seed's): ``p = 1 / (1 + e^-z)`` then ``log p`` and ``log1p(-p)``, each clamped at
  -100 exactly as ``torch.nn.functional.binary_cross_entropy`` does. Once ``p`` rounds to 0 or 1 the
  loss of that sample saturates at 100, but the gradient used here stays ``p - y``.
* ``logits`` (the stable one): ``L = mean(log(1 + e^z) - y z)`` with ``logaddexp(0, z)``.

The update is plain full-batch gradient descent: ``w -= lr * dL/dw``, ``b -= lr * dL/db``
(``optimizer="gd"``); ``momentum``, ``nesterov`` and ``adam`` apply :mod:`implementations._optim`'s
update to the same gradient, on ``xp`` arrays.

Mini-batches (``batch_size = B``) and the L2 penalty (``l2 = λ``). Step ``t`` uses the rows
``S_t = schedule[t]`` (:func:`implementations.batch_schedule`, the same for every backend),
``m = |S_t|`` (``B``, or the ``n mod B`` leftover for an epoch's last batch). The sum above runs
over ``S_t`` and is divided by ``m``, and the penalty ``(λ/2) ||w||^2`` is added (not on ``b``)::

    L_t(w, b) = (1/m) sum_{i in S_t} l_i + (λ/2) w.w
    dL_t/dw   = X_S^T (p_S - y_S) / m + λ w        d/dw (λ/2) w.w = λ w
    dL_t/db   = mean(p_S - y_S)                    the bias is not penalised

The rows are gathered with ``xp.take(X, idx, axis=0)`` inside the timed loop (a copy of ``m`` rows
per step: that is what a NumPy user pays); the flat index array is moved to the device once, in
``prepare``, and sliced by the schedule's offsets. ``batch_size=None`` is the loop above unchanged
(no gather, no penalty term when ``λ = 0``). ``losses[i]`` is ``L_t`` at ``t = i * record_every``.
``loss_and_grad(w, b)`` returns the penalised loss and gradient on the *full* prepared data.
The loop (gather, record, update) is :func:`implementations._loop.gradient_descent`; this file
supplies the step.

Softmax regression (``n_classes = K >= 3``). ``prepare`` stores the labels as the one-hot ``Y (n, K)``
(in the run's dtype, gathered with ``X``'s rows), ``W`` is ``(d, K)`` and ``b`` ``(K,)``. Per sample,
``l_i = -log P[i, y_i] = logsumexp(Z_i) - Z[i, y_i]`` with ``P_ik = e^{Z_ik} / sum_j e^{Z_ij}``, and since
``d log P[i, y_i] / dZ_ik = Y_ik - P_ik``::

    dl_i/dZ_ik = P_ik - Y_ik
    dL/dW = X^T (P - Y) / m + λ W      X: (m, d), P - Y: (m, K)  ->  (d, K)
    dL/db = mean over rows (P - Y)                                ->  (K,)

computed stably as ``Z' = Z - max_k Z``, ``E = e^{Z'}``, ``S = sum_k E``, ``P = E / S``. ``probs``:
``-mean(sum_k Y max(log P, -100))`` (softmax, then log, clamped as the binary logs are); ``logits``:
``mean(log S - sum_k Y Z')`` (= ``logsumexp(Z) - Z_y``). The penalty is ``(λ/2) sum(W * W)``. The gradient
is ``P - Y`` either way, also where ``P[i, y_i]`` underflows and the ``probs`` log is clamped.

Sparse ``X`` (``supports_sparse``; NumPy on the CPU): ``prepare`` keeps the CSR array it is given and
makes its transpose once, as CSR (:class:`implementations._sparse.WithTranspose`), so the step above runs
unchanged: ``X @ w`` is SciPy's CSR matvec and ``X.T @ r`` the precomputed transpose's. A mini-batch is
``X[S_t]`` (SciPy's row gather, inside the timed loop) and its ``X_S.T @ r`` SciPy's CSC matvec of those
rows. CuPy's sparse matrices are not wired in: a sparse ``X`` on ``cuda`` is refused with
:class:`DeviceUnavailableError`, as is a namespace other than NumPy (``array_api_strict``).
"""

from __future__ import annotations

import contextlib

import numpy as np

from ._lbfgs import scipy_lbfgs
from ._loop import gather, gradient_descent
from ._optim import HAND_WRITTEN, stepper
from ._sparse import WithTranspose, is_csr, take_rows
from .base import LOG_CLAMP, BackendUnavailableError, DeviceUnavailableError, Trainer


def _cuda_namespace(device: str):
    index = int(device.partition(":")[2] or 0)
    try:
        import cupy
    except ImportError:
        raise DeviceUnavailableError(
            f"device {device!r} for the numpy backend needs CuPy, which is not installed (pip install '.[gpu]')"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise DeviceUnavailableError(f"device {device!r}: CuPy is installed but found no CUDA device ({exc})") from None
    if index >= count:
        raise DeviceUnavailableError(f"device {device!r}: only {count} CUDA device(s) present")
    problem = _cupy_probe(cupy, index)
    if problem:
        raise DeviceUnavailableError(f"device {device!r}: CuPy cannot run on it ({problem})")
    return cupy, index


_PROBED: dict[int, str] = {}  # device index -> "" (CuPy works there) or why not; probed once per process


def _cupy_probe(cupy, index: int) -> str:
    """A tiny kernel run and read back on the device: a CuPy built for another CUDA (or a broken
    driver, NVRTC, cuBLAS) imports and counts devices fine and fails only at its first kernel. "" if it works."""
    if index not in _PROBED:
        try:
            with cupy.cuda.Device(index):
                a = cupy.arange(8, dtype=cupy.float64)
                value = float((a @ a).get())  # an elementwise kernel, cuBLAS and the copy back
            _PROBED[index] = "" if value == 140.0 else f"a probe computed {value}, not 140"
        except Exception as exc:
            _PROBED[index] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return _PROBED[index]


def to_host(a) -> np.ndarray:
    """Any namespace's array -> NumPy (CuPy's ``.get()``, else DLPack / ``__array__``)."""
    if hasattr(a, "get") and not isinstance(a, np.ndarray):
        return a.get()
    try:
        return np.asarray(a)
    except (TypeError, ValueError, RuntimeError):
        return np.from_dlpack(a)


def forward_loss(xp, X, y, w, b, formulation):
    """Return ``(loss, p)`` at ``(w, b)``; ``loss`` is a 0-d array of ``X``'s dtype."""
    z = X @ w + b
    p = 1 / (1 + xp.exp(-z))
    if formulation == "probs":
        log_p = xp.maximum(xp.log(p), LOG_CLAMP)
        log_1mp = xp.maximum(xp.log1p(-p), LOG_CLAMP)
        loss = -xp.mean(y * log_p + (1 - y) * log_1mp)
    else:
        loss = xp.mean(xp.logaddexp(xp.zeros_like(z), z) - y * z)
    return loss, p


def sigmoid_step(xp, X, y, w, b, record, formulation, l2):
    """``(L or None, X^T (p - y) / m + λ w, mean(p - y))`` on the rows ``X, y``: the step, written once
    (``X`` anything with ``@``, ``.T`` and ``.shape``: an ``xp`` array, or a sparse matrix)."""
    m = X.shape[0]
    if record:
        loss, p = forward_loss(xp, X, y, w, b, formulation)
    else:
        loss, p = None, 1 / (1 + xp.exp(-(X @ w + b)))
    r = p - y
    gw = (X.T @ r) / m
    gb = xp.sum(r) / m
    if l2:
        gw = gw + l2 * w
        if record:
            loss = loss + 0.5 * l2 * (w @ w)
    return loss, gw, gb


def softmax_step(xp, X, Y, w, b, record, formulation, l2):
    """K classes: ``(L or None, X^T (P - Y) / m + λ W, mean_rows(P - Y))`` on the rows ``X, Y`` (one-hot)."""
    m = X.shape[0]
    Z = X @ w + b
    Zs = Z - xp.max(Z, axis=1, keepdims=True)
    E = xp.exp(Zs)
    S = xp.sum(E, axis=1, keepdims=True)
    P = E / S
    loss = None
    if record:
        if formulation == "probs":
            loss = -xp.mean(xp.sum(Y * xp.maximum(xp.log(P), LOG_CLAMP), axis=1))
        else:
            loss = xp.mean(xp.log(S[:, 0]) - xp.sum(Y * Zs, axis=1))
        if l2:
            loss = loss + 0.5 * l2 * xp.sum(w * w)
    R = P - Y
    gw = (X.T @ R) / m
    gb = xp.sum(R, axis=0) / m
    if l2:
        gw = gw + l2 * w
    return loss, gw, gb


class NumpyTrainer(Trainer):
    name = "numpy"
    library = "numpy"
    gradient = "hand-derived"
    engine = "eager"
    style = "the seed's loop"
    supports_multiclass = True
    supports_sparse = True  # scipy.sparse on the CPU (module docstring)
    optimizers = HAND_WRITTEN  # momentum, nesterov, adam: implementations._optim's update on xp arrays
    optimizers += ("lbfgs",)  # scipy.optimize's L-BFGS-B on the hand-derived gradient (implementations._lbfgs)

    def __init__(self, config, xp=None):
        super().__init__(config)
        self._device_index = None
        if xp is not None:
            self.xp = xp
        elif config.device == "cpu":
            self.xp = np
        elif config.device == "cuda" or config.device.startswith("cuda:"):
            self.xp, self._device_index = _cuda_namespace(config.device)
        else:
            raise DeviceUnavailableError(
                f"device must be 'cpu' or 'cuda[:N]' for the numpy backend, got {config.device!r}"
            )

    def _on_device(self):
        if self._device_index is None:
            return contextlib.nullcontext()
        return self.xp.cuda.Device(self._device_index)

    def _errstate(self):
        # exp(-z) overflows to inf for very negative z (p -> 0) and log(0) -> -inf before the
        # clamp: both are the intended IEEE behaviour, not warnings worth printing per step.
        return np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore")

    def _prepare(self, X, y, w0, b0):
        xp, dt = self.xp, getattr(self.xp, self.config.dtype)
        if self.k >= 3:  # softmax: the labels as the one-hot Y (n, K)
            y = np.eye(self.k, dtype=self.config.dtype)[y]
        self.sparse = is_csr(X)
        if self.sparse:
            return self._prepare_sparse(X, y, w0, b0)
        with self._on_device():
            self.X = xp.asarray(X.astype(self.config.dtype))
            self.y = xp.asarray(y.astype(self.config.dtype))
            self.w0 = xp.asarray(w0.astype(self.config.dtype))
            self.b0 = xp.asarray(np.asarray(b0, dtype=self.config.dtype))
            self.dt = dt
            # the shared schedule on the device once; offsets stay host ints (slicing does not sync)
            self._idx = None if self.schedule is None else xp.asarray(self.schedule.indices)
            self._offsets = None if self.schedule is None else self.schedule.offsets.tolist()

    def _prepare_sparse(self, X, y, w0, b0):
        """SciPy CSR on the host: ``X`` with its transpose made once (module docstring)."""
        if self._device_index is not None:
            raise DeviceUnavailableError(f"device {self.config.device!r}: the numpy backend runs a sparse X on 'cpu' "
                                         "only (CuPy's sparse matrices are not wired in)")
        if self.xp is not np:
            raise BackendUnavailableError(f"the numpy backend runs a sparse X with NumPy and SciPy only, not on the "
                                          f"namespace {getattr(self.xp, '__name__', self.xp)!r}")
        dt = self.config.dtype
        self.X = WithTranspose(X.astype(dt, copy=False))
        self.y = np.ascontiguousarray(y, dtype=dt)
        self.w0, self.b0 = w0.astype(dt), np.asarray(b0, dtype=dt)
        self.dt = np.dtype(dt).type
        self._idx = None if self.schedule is None else self.schedule.indices
        self._offsets = None if self.schedule is None else self.schedule.offsets.tolist()

    def _sparse_batch(self):
        """``batch(t)``: the CSR rows ``X[S_t]`` and their labels, gathered in the timed loop."""
        X, y, idx, offsets = self.X.X, self.y, self._idx, self._offsets

        def batch(t):
            rows = idx[offsets[t]:offsets[t + 1]]
            return take_rows(X, rows), y[rows]
        return batch

    def _step(self, X, y, w, b, record):
        """Loss (if ``record``) and gradient of ``L`` on the rows ``X, y`` (the batch, or all)."""
        cfg = self.config
        if self.k >= 3:
            return softmax_step(self.xp, X, y, w, b, record, cfg.formulation, cfg.l2)
        return sigmoid_step(self.xp, X, y, w, b, record, cfg.formulation, cfg.l2)

    def _update(self, X, y, w, b, record):
        """One step of :func:`implementations._loop.gradient_descent`: ``w -= lr dL/dw``, ``b -= lr dL/db``."""
        loss, gw, gb = self._step(X, y, w, b, record)
        return w - self.config.lr * gw, b - self.config.lr * gb, loss

    def _run(self):
        xp, cfg = self.xp, self.config
        if cfg.optimizer == "lbfgs":
            return self._run_lbfgs()
        with self._on_device(), self._errstate():
            losses = xp.zeros((cfg.n_records,), dtype=self.dt)
            # this step's rows S_t, gathered inside the loop: part of the timed cost
            if self._idx is None:
                batch = None
            elif self.sparse:
                batch = self._sparse_batch()
            else:
                batch = gather(lambda A, rows: xp.take(A, rows, axis=0), self.X, self.y, self._idx, self._offsets)
            step = (self._update if cfg.optimizer == "gd" else  # other optimizers: fresh state every run
                    stepper(cfg, self._step, xp.zeros_like, xp.sqrt))
            w, b = gradient_descent(cfg, step, self.w0, self.b0, losses, (self.X, self.y), batch)
            self._w, self._b, self._losses = w, b, losses
            self.synchronize()

    def _run_lbfgs(self):
        """``scipy.optimize.minimize(method="L-BFGS-B")`` with this backend's hand-derived loss and
        gradient (:func:`implementations._lbfgs.scipy_lbfgs`; scipy's own line search). Parameters are one
        flat float64 vector ``[w.ravel(), b]`` for scipy, cast to the run's dtype for each evaluation."""
        xp, cfg = self.xp, self.config
        shape_w, shape_b, size_w = self.w0.shape, self.b0.shape, int(np.prod(self.w0.shape))

        def unflat(x):
            return (xp.asarray(x[:size_w].reshape(shape_w).astype(cfg.dtype)),
                    xp.asarray(x[size_w:].reshape(shape_b).astype(cfg.dtype)))

        def loss_grad(x):
            loss, gw, gb = self._step(self.X, self.y, *unflat(x), record=True)
            grad = np.concatenate([to_host(gw).reshape(-1), to_host(gb).reshape(-1)]).astype(np.float64)
            return float(to_host(loss)), grad

        x0 = np.concatenate([to_host(self.w0).reshape(-1), to_host(self.b0).reshape(-1)]).astype(np.float64)
        with self._on_device(), self._errstate():
            x, trace = scipy_lbfgs(loss_grad, x0, cfg)
            self._w, self._b = unflat(x)
            losses, self.point_times_s = trace.finish()
            self._losses, self.evaluations, self.run_s = losses, trace.evaluations, trace.run_s
            self.synchronize()

    def synchronize(self):
        if self._device_index is not None:
            self.xp.cuda.get_current_stream().synchronize()

    def _result(self):
        return to_host(self._w), to_host(self._b), to_host(self._losses)

    def _loss_and_grad(self, w, b):
        xp = self.xp
        with self._on_device(), self._errstate():
            w = xp.asarray(w.astype(self.config.dtype))
            b = xp.asarray(np.asarray(b, dtype=self.config.dtype))
            loss, gw, gb = self._step(self.X, self.y, w, b, record=True)  # full data, penalised
            return to_host(loss), to_host(gw), to_host(gb)
