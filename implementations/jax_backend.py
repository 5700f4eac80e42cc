"""``jax``: ``jax.value_and_grad`` of the loss, the whole run in one ``jax.jit``-compiled call.

The loss (``z = X w + b``, ``l2 = λ``; the same function as every backend, see ``base.py``)::

    probs : l_i = -(y_i max(log p_i, -100) + (1 - y_i) max(log(1 - p_i), -100)),  p = jax.nn.sigmoid(z)
    logits: l_i = logaddexp(0, z_i) - y_i z_i
    L(w, b) = sum_i c_i l_i / m + (λ/2) w.w            (the bias is not penalised)

and its gradient is ``jax.value_and_grad``'s (reverse mode through exactly those ops), not hand-derived:
for ``logits`` it is ``X^T (p - y) / m + λ w`` to rounding. For ``probs`` it is ``p - y`` wherever
``p`` is not rounded to 0 or 1; the clamped logs are written with a "double ``where``" (``log`` of 1
where ``p`` is 0, resp. 1) so that a saturated sample gets a zero gradient, as in torch's autograd,
instead of ``0 * inf = NaN``.

Softmax regression (``n_classes = K >= 3``; ``W (d, K)``, ``b (K,)``; ``prepare`` stores the labels as the
one-hot ``Y (n, K)``)::

    probs : l_i = -sum_k Y_ik max(log P_ik, -100),  P = jax.nn.softmax(Z)      (the same double where)
    logits: l_i = logsumexp(Z_i) - sum_k Y_ik Z_ik                               (cross-entropy, stable)
    L(W, b) = sum_i c_i l_i / m + (λ/2) sum(W * W)

and ``value_and_grad`` gives ``X^T (P - Y) / m + λ W``, ``mean_rows(P - Y)``, except for ``probs``
on samples whose label's log is clamped (zero gradient, as in torch).

The run. One ``lax.scan`` over the steps, ``(w, b)`` in the carry and each step's loss as the scan's
output (``losses[::record_every]`` is sliced inside the same program)::

    (w, b), step_losses = lax.scan(step, (w0, b0), batches)      # one XLA program, one call

``momentum``, ``nesterov`` and ``adam`` carry their state too, ``(w, b, state, t)``, and apply
:func:`implementations._optim.update` in ``jax.numpy`` (Adam's two per-step scalars, computed on the host
in double as torch does, are a constant table indexed by ``t``); ``gd`` carries ``(w, b)`` alone.

* Full batch (``batch_size=None``): ``c_i = 1``, ``m = n``, no indices.
* Mini-batches (``batch_size = B``): ``jit`` needs one static shape, so the shared schedule is passed
  in as ``schedule.padded()``: ``(n_iters, B)`` row indices and a mask (a short last batch of an epoch
  is padded with row 0 and mask 0). Step ``t`` gathers ``X[idx[t]]`` on the device and uses
  ``c_i = mask``, ``m = sum(mask)`` — the *true* batch size, so the mean is the contract's.

The loop is this ``lax.scan`` inside the compiled program, not :mod:`implementations._loop`'s
Python loop: that is the point of the backend.

Compilation happens in ``prepare`` (``jax.jit(...).lower(...).compile()``, ahead of time), never in
``run()``; ``run()`` calls the compiled executable and ends with ``block_until_ready()``.

float64: JAX computes in float32 unless x64 mode is on. ``prepare``, ``run`` and ``loss_and_grad`` each
enter ``jax.enable_x64(dtype == "float64")`` (a thread-local context; ``jax.experimental.enable_x64``
on older JAX), so the process's global setting, and other JAX code, are left alone.

Precision: every program is traced under ``jax.default_matmul_precision("highest")``
(:data:`MATMUL_PRECISION`), so that float32 products on a GPU are not run in TF32.

Devices: ``cpu``, and ``cuda[:N]`` as JAX's ``gpu`` devices (a CUDA build of jaxlib). Importing this
backend sets ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` unless already set, so that JAX does not grab 75%
of the GPU's memory ahead of the torch and CuPy backends in the same process.

Threads: XLA's CPU runtime sizes its own thread pool (all cores) when its client starts; neither
``torch.set_num_threads`` nor ``threadpoolctl`` reach it, and it cannot be changed afterwards. This
backend does not touch it: to pin JAX to one thread, start Python with
``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"``
(:func:`cpu_threads` reports what is in effect). At batch 64 or on Iris the ops are too small for XLA
to split them, so the figure matters only for large full-batch problems.

Sparse ``X``: not supported (``supports_sparse = False``; ``prepare`` refuses a SciPy sparse ``X`` with
:class:`BackendUnavailableError`, a ``skipped`` row). ``jax.experimental.sparse.BCOO`` would carry a full
batch (``X @ w`` inside ``jit``, differentiable in ``w``), but a mini-batch must gather rows by a traced
index array inside the ``lax.scan``, which BCOO does not offer directly (per-step batches built on the
host, or a padded per-row layout, are other code); not wired in until that is measured.

``loss_and_grad(w, b)`` returns the penalised loss and its ``value_and_grad`` gradient on the *full*
prepared data. Where JAX is not installed, constructing the trainer raises
:class:`BackendUnavailableError` (the harness records a ``skipped`` row).
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np

from . import _optim
from ._lbfgs import import_optax, make_optax_lbfgs
from .base import LOG_CLAMP, BackendUnavailableError, DeviceUnavailableError, Trainer

# every program is traced and compiled under this matrix-product precision: on a GPU JAX's default may
# run float32 products in TF32 (about 1e-3 relative), far outside the float32 tolerance; on the CPU
# "highest" is what XLA does anyway. Recorded in `python -m bench gpu`'s env.json.
MATMUL_PRECISION = "highest"


def _import_jax():
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # read when JAX's GPU client starts
    try:
        import jax
    except ImportError:
        raise BackendUnavailableError("backend 'jax' needs jax, not installed (pip install '.[jax]')") from None
    return jax


def x64(jax, on: bool):
    """A context in which JAX's x64 mode is ``on``, restored on exit (thread-local)."""
    ctx = getattr(jax, "enable_x64", None)
    if callable(ctx):
        return ctx(on)
    from jax.experimental import disable_x64, enable_x64  # JAX before 0.5
    return enable_x64() if on else disable_x64()


def cpu_threads() -> str:
    """What limits XLA's CPU threads in this process (see the module docstring)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "--xla_cpu_multi_thread_eigen=false" in flags:
        return "1 (XLA_FLAGS)"
    return f"{os.cpu_count()} (XLA default, not limited by --threads)"


def jax_device(jax, device: str):
    """``cpu`` or ``cuda[:N]`` -> a JAX device, or DeviceUnavailableError with the reason."""
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (kind == "cpu" and index) or (index and not index.isdigit()):
        raise DeviceUnavailableError(f"device must be 'cpu' or 'cuda[:N]' for jax, got {device!r}")
    if kind == "cpu":
        return jax.devices("cpu")[0]
    try:
        gpus = jax.devices("gpu")
    except RuntimeError as exc:
        raise DeviceUnavailableError(
            f"device {device!r}: this JAX ({jax.__version__}) sees no GPU (a CUDA jaxlib is needed: "
            f"pip install 'jax[cuda12]'): {str(exc).splitlines()[0]}") from None
    if int(index or 0) >= len(gpus):
        raise DeviceUnavailableError(f"device {device!r}: only {len(gpus)} GPU device(s) present")
    return gpus[int(index or 0)]


def make_loss(jax, formulation: str, l2: float, n_classes: int = 2):
    """``loss((w, b), X, y, c, m) = sum(c_i l_i) / m + (l2/2) w.w``; ``c = None`` is the plain mean."""
    jnp = jax.numpy

    def clamped_log(q):  # max(log q, -100), with a zero (not NaN) gradient where q == 0
        pos = q > 0
        return jnp.where(pos, jnp.maximum(jnp.log(jnp.where(pos, q, 1)), LOG_CLAMP), LOG_CLAMP)

    def loss(params, X, y, c=None, m=None):
        w, b = params
        z = X @ w + b
        if n_classes >= 3:  # softmax; y is the one-hot Y (m, K)
            if formulation == "logits":
                per_row = jax.nn.logsumexp(z, axis=1) - jnp.sum(y * z, axis=1)
            else:
                per_row = -jnp.sum(y * clamped_log(jax.nn.softmax(z, axis=1)), axis=1)
            mean = jnp.mean(per_row) if c is None else jnp.sum(jnp.where(c, per_row, 0)) / m
            return mean + 0.5 * l2 * jnp.sum(w * w) if l2 else mean
        if formulation == "logits":
            per_row = jnp.logaddexp(0, z) - y * z
        else:
            p = jax.nn.sigmoid(z)
            per_row = -(y * clamped_log(p) + (1 - y) * clamped_log(1 - p))
        mean = jnp.mean(per_row) if c is None else jnp.sum(jnp.where(c, per_row, 0)) / m
        return mean + 0.5 * l2 * (w @ w) if l2 else mean

    return loss


def make_train(jax, config, full_batch: bool):
    """The whole run as one function of device arrays, to be jit-compiled."""
    lax, lr, every = jax.lax, config.lr, config.record_every
    value_and_grad = jax.value_and_grad(make_loss(jax, config.formulation, config.l2, config.n_classes))

    if config.optimizer == "gd":
        def init(w0, b0):
            return w0, b0

        def update(carry, loss, gw, gb):
            w, b = carry
            return (w - lr * gw, b - lr * gb), loss
    else:  # momentum, nesterov, adam: implementations._optim's update in jax.numpy, its state in the carry
        jnp, opt = jax.numpy, config.optimizer
        table = (_optim.adam_coefficient_table(lr, config.n_iters, config.dtype) if opt == "adam" else None)

        def init(w0, b0):
            return w0, b0, _optim.init_state(opt, w0, b0, jnp.zeros_like), jnp.zeros((), jnp.int32)

        def update(carry, loss, gw, gb):
            w, b, state, t = carry  # t: the step index; Adam's two host-computed scalars of step t + 1
            coeffs = None if table is None else (jnp.asarray(table[0])[t], jnp.asarray(table[1])[t])
            w, b, state = _optim.update(opt, lr, w, b, gw, gb, state, coeffs, jnp.sqrt)
            return (w, b, state, t + 1), loss

    def train_full(X, y, w0, b0):
        def step(carry, _):
            loss, (gw, gb) = value_and_grad(carry[:2], X, y)
            return update(carry, loss, gw, gb)

        carry, losses = lax.scan(step, init(w0, b0), None, length=config.n_iters)
        return carry[0], carry[1], losses[::every]

    def train_batches(X, y, w0, b0, idx, mask):
        def step(carry, batch):
            rows, c = batch
            loss, (gw, gb) = value_and_grad(carry[:2], X[rows], y[rows], c, c.sum(dtype=X.dtype))
            return update(carry, loss, gw, gb)

        carry, losses = lax.scan(step, init(w0, b0), (idx, mask))
        return carry[0], carry[1], losses[::every]

    return train_full if full_batch else train_batches


class JaxTrainer(Trainer):
    name = "jax"
    library = "jax"
    matmul_precision = MATMUL_PRECISION  # recorded in a GPU run's env.json
    gradient = "autograd"
    engine = "xla"
    compiled = True
    style = "whole loop in one jit"
    supports_multiclass = True
    optimizers = ("gd", "momentum", "nesterov", "adam")  # implementations._optim's update in the scan's carry
    optimizers += ("lbfgs",)  # optax.lbfgs (zoom line search, strong Wolfe) in one lax.scan: implementations._lbfgs

    def __init__(self, config):
        super().__init__(config)
        self.jax = _import_jax()
        self.device = jax_device(self.jax, config.device)
        self._loss_and_grad_fn = None
        self.compile_s = 0.0  # seconds prepare() spent compiling the run's XLA program (ahead of time)

    @property
    def compiled_graphs(self) -> int:
        """XLA programs compiled for this trainer's run: one per ``prepare`` (0 before it)."""
        return int(getattr(self, "_train", None) is not None)

    def _x64(self):
        """x64 mode as the dtype needs, and the benchmark's matmul precision (both traced into programs)."""
        stack = contextlib.ExitStack()
        stack.enter_context(x64(self.jax, self.config.dtype == "float64"))
        precision = getattr(self.jax, "default_matmul_precision", None)
        if precision is not None:
            stack.enter_context(precision(MATMUL_PRECISION))
        return stack

    def _put(self, a):
        return self.jax.device_put(a, self.device)

    def _prepare(self, X, y, w0, b0):
        jax, dt = self.jax, self.config.dtype
        if self.k >= 3:  # softmax: the labels as the one-hot Y (n, K)
            y = np.eye(self.k, dtype=dt)[y]
        with self._x64():
            self.X, self.y = self._put(X.astype(dt)), self._put(y.astype(dt))
            args = [self.X, self.y, self._put(w0.astype(dt)), self._put(np.asarray(b0, dt))]
            if self.schedule is not None:
                idx, mask = self.schedule.padded()
                args += [self._put(idx.astype(np.int32)), self._put(mask)]  # n < 2^31 rows
            self._args = tuple(args)
            jax.block_until_ready(self._args)  # device_put returns before the copy ends: the copy is the transfer
            # ahead-of-time compilation: the timed run() never traces or compiles
            if self.config.optimizer == "lbfgs":  # full batch only (Trainer.unsupported refuses mini-batches)
                train = make_optax_lbfgs(jax, import_optax(), make_loss(jax, self.config.formulation, self.config.l2,
                                                                        self.k), self.config)
            else:
                train = make_train(jax, self.config, self.schedule is None)
            t0 = time.perf_counter()
            self._train = jax.jit(train).lower(*self._args).compile()
            self.compile_s = time.perf_counter() - t0  # the harness keeps it out of the transfer time

    def _run(self):
        with self._x64():
            self._out = self.jax.block_until_ready(self._train(*self._args))

    def _result(self):
        if self.config.optimizer == "lbfgs":  # (w, b, losses, evaluations)
            self.evaluations = int(self._out[3])
            return tuple(np.asarray(a) for a in self._out[:3])
        return tuple(np.asarray(a) for a in self._out)

    def _loss_and_grad(self, w, b):
        jax, dt = self.jax, self.config.dtype
        with self._x64():
            if self._loss_and_grad_fn is None:
                self._loss_and_grad_fn = jax.jit(jax.value_and_grad(make_loss(jax, self.config.formulation,
                                                                              self.config.l2, self.k)))
            params = (self._put(w.astype(dt)), self._put(np.asarray(b, dt)))
            loss, (gw, gb) = self._loss_and_grad_fn(params, self.X, self.y)  # full data, penalised
            return np.asarray(loss), np.asarray(gw), np.asarray(gb)
