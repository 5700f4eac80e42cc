"""The trainer contract shared by every backend.

A backend is one class deriving from :class:`Trainer`, in one file, registered in
``implementations.BACKENDS``. Its life cycle (benchopt's ``set_data -> run -> get_result``):

``prepare(X, y, w0, b0)``  *untimed.* Validates the host arrays once, casts them to
    ``config.dtype`` and moves them to ``config.device``. Host->device transfer happens here
    and only here, so the harness can time it apart from training. A new ``prepare`` replaces the
    old data and discards the old result (``result()`` raises until the next ``run()``); one that is
    refused (``ValueError``) changes nothing.
``run()``                  *the only timed method.* Runs ``config.n_iters`` gradient steps
    (full batch, or the mini-batches of :func:`batch_schedule`) starting again from ``(w0, b0)``
    every call, so a benchmark can call it round after round. It returns only after all device
    work is done (CUDA/MPS synchronized). Losses stay on the device during the loop: no
    ``.item()``, no print, no host sync per step.
``result()``               *untimed.* Copies the final parameters and the loss history to the
    host as a :class:`TrainResult` (float64 NumPy).
``loss_and_grad(w, b)``    The loss and its gradient at ``(w, b)`` on the *full* prepared data (all
    ``n`` rows, whatever ``batch_size`` is), penalty included, computed the way ``run()`` computes
    them (hand-derived or autograd), returned as float64 NumPy. ``(w, b)`` is validated as ``prepare``
    validates ``(w0, b0)`` (real, finite, within ``config.dtype``, ``w`` of shape ``(d,)``, ``b`` one
    number): one ``ValueError`` naming the argument, on every backend.

Math (both formulations, ``n`` samples, ``d`` features, labels ``y`` in {0, 1})::

    z = X w + b                      (n,)
    p = sigmoid(z) = 1 / (1 + e^-z)  (n,)
    probs : L = -mean(y log p + (1 - y) log(1 - p)), each log clamped at -100 as torch does
    logits: L =  mean(log(1 + e^z) - y z)            the same function, computed stably
    dL/dw = X^T (p - y) / n          (d,)
    dL/db = mean(p - y)              ()

Mini-batches and the L2 penalty (``config.batch_size = B``, ``config.l2 = λ``). Step ``t`` uses the
rows ``S_t`` given by :func:`batch_schedule` (the same for every backend), ``|S_t| = m`` (``B``, or
fewer for the last batch of an epoch)::

    L_t(w, b) = (1/m) sum_{i in S_t} l_i(w, b) + (λ/2) ||w||^2        (the bias is not penalised)
    dL_t/dw   = X_S^T (p_S - y_S) / m + λ w
    dL_t/db   = mean(p_S - y_S)

The mini-batch mean is an unbiased estimate of the full loss's gradient; ``λ w`` is the exact
gradient of the penalty. ``batch_size=None`` is the full batch (``S_t`` = every row, ``m = n``).

``losses[i]`` is the (penalised, mini-batch) loss computed in the forward pass of step
``i * record_every``, i.e. at the parameters *before* that step's update; there are
``ceil(n_iters / record_every)`` of them.

Softmax regression (``config.n_classes = K >= 3``; ``K = 2``, the default, is the sigmoid model above,
unchanged). Labels ``y`` are integers ``0 .. K-1``, ``Y`` their one-hot ``(m, K)`` matrix; ``w0``/``w`` is
``(d, K)``, ``b0``/``b`` is ``(K,)``; :class:`TrainResult` holds ``w (d, K)`` and ``b (K,)``, and
``loss_and_grad`` returns ``(loss, (d, K), (K,))``::

    Z = X W + b                                   (m, K)
    P = softmax(Z), row-wise                      P_ik = e^{Z_ik} / sum_j e^{Z_ij}
    probs : L = -(1/m) sum_i max(log P[i, y_i], -100) + (λ/2) ||W||_F^2
            (softmax, then log of the probability, each log clamped at -100 as torch's BCE clamps:
            the tutorials' ``torch.log(F.softmax(z, 1))`` + ``F.nll_loss``, kept finite)
    logits: L = (1/m) sum_i (logsumexp(Z_i) - Z[i, y_i]) + (λ/2) ||W||_F^2     (``F.cross_entropy``)
    dL/dW = X^T (P - Y) / m + λ W                 (d, K)    since dl_i/dZ_ik = P_ik - Y_ik
    dL/db = mean over rows of (P - Y)             (K,)      the bias is not penalised

Where ``log P[i, y_i] < -100`` (``P[i, y_i]`` underflows to 0, or nearly: the label's logit is about
100 below the largest one) the ``probs`` loss of that sample is clamped at 100 and the clamp's
derivative is 0, so autograd gives the sample a zero gradient while the hand-derived ``P - Y`` does
not: the K-class analogue of the binary ``saturated`` samples (``bench.oracle.saturated_count``).
A backend declares ``supports_multiclass``; one that does not is refused at construction for
``n_classes >= 3`` with :class:`BackendUnavailableError` (a ``skipped`` row).

Optimizers (``config.optimizer``; a backend lists those it implements in ``optimizers``, any other is
refused at construction with :class:`BackendUnavailableError`, a ``skipped`` row). ``g_t`` is step
``t``'s gradient above (``dL_t/dw``, ``λ w`` included, for the weight; ``dL_t/db``, not penalised, for
the bias): the penalty is in the loss, as ``torch.optim``'s ``weight_decay=λ`` puts it (``g += λ θ``
before any moment; ``torch-nn`` gives the bias its own parameter group with ``weight_decay=0``). Each
parameter ``θ`` (``w``/``W`` and ``b``) has its own state, ``t = 1, 2, ..., n_iters``, ``lr = config.lr``
(``torch.optim``'s semantics and default hyper-parameters)::

    gd       : θ -= lr g_t                                 the seed's fixed step (the default), bit for bit
    momentum : buf_t = g_1 if t = 1 else 0.9 buf_{t-1} + g_t           SGD(momentum=0.9), dampening 0
               θ -= lr buf_t
    nesterov : buf_t as momentum;  θ -= lr (g_t + 0.9 buf_t)           SGD(momentum=0.9, nesterov=True)
    adam     : m_t = β1 m_{t-1} + (1 - β1) g_t,  v_t = β2 v_{t-1} + (1 - β2) g_t^2     m_0 = v_0 = 0
               m̂ = m_t / (1 - β1^t),  v̂ = v_t / (1 - β2^t)
               θ -= lr m̂ / (sqrt(v̂) + eps)                          β1 = 0.9, β2 = 0.999, eps = 1e-8

Adam is computed in torch's order: ``denom = sqrt(v_t) / sqrt(1 - β2^t) + eps``, ``θ -= (lr / (1 - β1^t))
m_t / denom``, the two step scalars in host double precision. The state (buffers, moments, ``t``) is
reset at the start of every ``run()``, which starts again from ``(w0, b0)``. ``losses[i]`` is still the
loss at the parameters before step ``i * record_every``'s update. ``lbfgs`` (history 10, strong-Wolfe line
search) is each library's own solver; ``n_iters`` counts its iterations.

Sparse ``X`` (``supports_sparse``). The math above is unchanged; ``X`` may be a SciPy sparse matrix or
array (``scipy.sparse.issparse``), which ``prepare`` hands to ``_prepare`` as a canonical
``scipy.sparse.csr_array`` of ``config.dtype`` (other formats converted, sorted indices, duplicates summed,
values checked finite: :func:`implementations.validation.check_inputs`). A mini-batch is the CSR rows
``X[S_t]``. A backend that declares ``supports_sparse = True`` computes ``X w`` and ``X^T r`` on that CSR
structure (never densifying it); for one that does not, ``prepare`` refuses a sparse ``X`` with
:class:`BackendUnavailableError` (a ``skipped`` row saying to densify it or pick another backend), before
anything changes. Shared host helpers (row gathers, the precomputed transpose): :mod:`implementations._sparse`.
"""

from __future__ import annotations

import math
import numbers
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from .schedule import batch_schedule
from .validation import check_inputs, check_params, is_sparse

DTYPES = ("float32", "float64")
FORMULATIONS = ("probs", "logits")
OPTIMIZERS = ("gd", "momentum", "nesterov", "adam", "lbfgs", "solver")  # "gd": the seed's fixed-step gradient descent
# "lbfgs": history 10, strong-Wolfe line search (numpy: scipy's L-BFGS-B, its own line search); n_iters counts
# iterations; full batch only. "solver": a library's own solver run to growing max_iter (scikit-learn's
# LogisticRegression, benchopt's way: losses[i] is a fit with max_iter = 2^i, n_iters the number of fits).
LOG_CLAMP = -100.0  # torch.nn.functional.binary_cross_entropy clamps log() at -100


class BackendUnavailableError(ValueError):
    """This backend cannot run here as configured (a missing optional package or compiler, or an
    unavailable device); the harness records such a row as ``skipped`` with the message."""


class DeviceUnavailableError(BackendUnavailableError):
    """The requested device cannot be used here (no CUDA, CuPy not installed, ...)."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run's settings; validated on construction (a bad value is a ``ValueError`` naming
    the field, what was expected and what came).

    ``lr`` and ``l2`` must be finite *in* ``dtype``, not only in Python: ``lr=1e39`` is refused for
    float32 (largest finite value 3.403e+38), as is an ``lr`` that rounds to 0 there (below float32's
    smallest subnormal). ``device`` ``'cpu:0'`` is normalised to ``'cpu'`` (torch's spelling of the
    one CPU device; every backend then sees ``'cpu'``); ``'cpu:N'`` with ``N > 0`` is refused as a
    device that does not exist (:class:`DeviceUnavailableError`)."""

    lr: float = 0.01
    n_iters: int = 5000
    dtype: str = "float32"
    device: str = "cpu"
    formulation: str = "probs"
    record_every: int = 1
    batch_size: int | None = None  # None: full batch (the seed); else mini-batch SGD on batch_schedule(...)
    l2: float = 0.0  # loss + (l2/2) ||w||^2, the bias not penalised
    shuffle_seed: int = 0  # the batch order: one host draw, batch_schedule(n, batch_size, n_iters, shuffle_seed)
    workers: int = 1  # data-parallel backends only; the others refuse workers > 1
    n_classes: int = 2  # 2: the seed's sigmoid model (w (d,), b a number); K >= 3: softmax (W (d, K), b (K,))
    optimizer: str = "gd"  # one of OPTIMIZERS; "gd" is the seed's fixed-step gradient descent, bit for bit

    def __post_init__(self):
        if isinstance(self.lr, bool) or not isinstance(self.lr, numbers.Real):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        object.__setattr__(self, "lr", float(self.lr))  # a plain float: numpy scalars would upcast
        for name in ("n_iters", "record_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.formulation not in FORMULATIONS:
            raise ValueError(f"formulation must be one of {FORMULATIONS}, got {self.formulation!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device must be a string such as 'cpu', 'cuda', 'cuda:1' or 'mps', got {self.device!r}")
        cpu_index = re.fullmatch(r"cpu:(\d+)", self.device)
        if cpu_index:
            if int(cpu_index.group(1)) != 0:
                raise DeviceUnavailableError(f"device {self.device!r}: there is one CPU device, 'cpu' (also written "
                                             "'cpu:0')")
            object.__setattr__(self, "device", "cpu")  # one spelling for every backend
        if self.batch_size is not None:
            if (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer))
                    or self.batch_size < 1):
                raise ValueError(f"batch_size must be None (full batch) or an integer >= 1, got {self.batch_size!r}")
            object.__setattr__(self, "batch_size", int(self.batch_size))
        if (isinstance(self.l2, bool) or not isinstance(self.l2, numbers.Real)
                or not (math.isfinite(self.l2) and self.l2 >= 0)):
            raise ValueError(f"l2 must be a finite number >= 0, got {self.l2!r}")
        object.__setattr__(self, "l2", float(self.l2))
        # finite in Python is not enough: the step runs in `dtype`, where lr = 1e39 is inf in float32
        info = np.finfo(self.dtype)
        for name in ("lr", "l2"):
            value = getattr(self, name)
            if value > float(info.max):
                raise ValueError(f"{name} must fit in {self.dtype} (largest finite value {float(info.max):.4g}), "
                                 f"got {value!r}")
        if np.dtype(self.dtype).type(self.lr) == 0:
            raise ValueError(f"lr must be positive in {self.dtype} (smallest positive value "
                             f"{float(info.smallest_subnormal):.4g}), got {self.lr!r}, which rounds to 0 there")
        for name, low in (("shuffle_seed", 0), ("workers", 1), ("n_classes", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
            object.__setattr__(self, name, int(value))

    @property
    def n_records(self) -> int:
        return -(-self.n_iters // self.record_every)

    @property
    def full_batch(self) -> bool:
        return self.batch_size is None

    @property
    def multiclass(self) -> bool:
        """True for the softmax model (``n_classes >= 3``); False for the seed's sigmoid model."""
        return self.n_classes >= 3


@dataclass(frozen=True)
class TrainResult:
    """Final parameters and loss history on the host, float64. ``w (d,)`` and ``b`` a float for the
    binary model; ``w (d, K)`` and ``b (K,)`` for ``n_classes = K >= 3``."""

    w: np.ndarray  # (d,), or (d, K)
    b: float  # or a (K,) array
    losses: np.ndarray  # (n_records,)
    record_every: int = 1
    first_nonfinite_step: int | None = field(default=None)

    @classmethod
    def from_arrays(cls, w, b, losses, record_every: int, n_classes: int = 2) -> "TrainResult":
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
        if n_classes >= 3:  # softmax: w (d, K), b (K,)
            w = np.asarray(w, dtype=np.float64).reshape(-1, n_classes)
            b = np.asarray(b, dtype=np.float64).reshape(n_classes)
        else:
            w = np.asarray(w, dtype=np.float64).reshape(-1)
            b = float(np.asarray(b, dtype=np.float64).reshape(-1)[0])
        bad = np.flatnonzero(~np.isfinite(losses))
        first = int(bad[0]) * record_every if bad.size else None
        if first is None and not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            first = (losses.size - 1) * record_every  # parameters blew up after the last record
        return cls(w=w, b=b, losses=losses, record_every=record_every, first_nonfinite_step=first)

    @property
    def diverged(self) -> bool:
        """True when the loss or the parameters became non-finite (NaN or inf)."""
        return self.first_nonfinite_step is not None


class Trainer(ABC):
    """Contract of a backend: see the module docstring. Subclasses implement the four
    underscore methods; ``prepare`` validates before calling ``_prepare``."""

    name: str = "abstract"
    # What the backend is, declared once on its class. The harness writes these into every row and
    # the report and verdict read them from there, never from a list of names.
    library: str = "?"  # whose arrays the step runs on: "numpy", "torch", "jax", "numba", ...
    gradient: str = "hand-derived"  # "hand-derived" (written out in the docstring) or "autograd"
    engine: str = "eager"  # what executes the step: "eager", "inductor", "xla", "numba", "gloo", "dask"
    compiled: bool = False  # True only if every row it produces runs compiled code
    style: str = ""  # how the loop is written, in a few words ("the seed's loop", "hand-blocked", ...)
    data_parallel: bool = False  # True: honours config.workers > 1
    # What it supports (a user backend declares what it lacks; the defaults say "everything"). A case
    # outside these is refused at construction with BackendUnavailableError: a `skipped` row, not a failure.
    supports_minibatch: bool = True  # honours config.batch_size (the shared batch_schedule)
    supports_l2: bool = True  # honours config.l2 > 0
    # n_classes >= 3 (softmax) needs its own code path: False unless a backend says it has one
    supports_multiclass: bool = False
    # a SciPy sparse X (CSR inside) needs its own code path too: False refuses one at prepare (a `skipped` row)
    supports_sparse: bool = False
    sparse_reason: str = ""  # why not, where supports_sparse is False and there is more to say
    optimizers: tuple[str, ...] = ("gd",)  # the config.optimizer values it implements
    devices: tuple[str, ...] | None = None  # device kinds ("cpu", "cuda", "mps"); None: checked by the backend itself
    dtypes: tuple[str, ...] = DTYPES

    @classmethod
    def describe(cls) -> str:
        """What ran, in words for a verdict: ``"eager, hand-derived, hand-blocked"``."""
        return ", ".join(part for part in (cls.engine, cls.gradient, cls.style) if part)

    @classmethod
    def attributes(cls) -> dict:
        """The declared attributes, as the row columns of the same names."""
        return {"library": cls.library, "gradient": cls.gradient, "engine": cls.engine,
                "compiled": bool(cls.compiled), "style": cls.style}

    def __init__(self, config: TrainConfig):
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
        if config.workers > 1 and not self.data_parallel:
            raise ValueError(f"workers must be 1 for the single-process backend {self.name!r}, got {config.workers} "
                             "(the data-parallel backends are torch-ddp and numpy-dask)")
        unsupported = self.unsupported(config)
        if unsupported:
            raise BackendUnavailableError(unsupported)
        self.config = config
        self._prepared = self._has_run = False

    @classmethod
    def _who(cls) -> str:
        return f"backend {cls.name!r}" if cls.name != "abstract" else cls.__name__

    @classmethod
    def unsupported(cls, config: TrainConfig) -> str:
        """Why ``config`` is outside what this class declares it supports, or "" when it is not."""
        who = cls._who()
        kind = config.device.partition(":")[0]
        if config.batch_size is not None and not cls.supports_minibatch:
            return (f"{who} declares supports_minibatch = False: it runs full batch only, "
                    f"got batch_size={config.batch_size}")
        if config.l2 and not cls.supports_l2:
            return f"{who} declares supports_l2 = False, got l2={config.l2:g}"
        if config.n_classes >= 3 and not cls.supports_multiclass:
            return (f"n_classes >= 3 is not implemented in {who} yet (it declares supports_multiclass = False), "
                    f"got n_classes={config.n_classes}")
        if config.optimizer == "lbfgs" and config.batch_size is not None:
            return (f"{who}: L-BFGS runs full batch only (a line search on mini-batches is not what users run), "
                    f"got batch_size={config.batch_size}")
        if config.optimizer not in tuple(cls.optimizers):
            return (f"optimizer {config.optimizer!r} is not implemented in {who} (it declares optimizers "
                    f"{tuple(cls.optimizers)})")
        if config.dtype not in tuple(cls.dtypes):
            return f"{who} declares dtypes {tuple(cls.dtypes)}, got {config.dtype}"
        if cls.devices is not None and kind not in tuple(cls.devices):
            return f"{who} declares devices {tuple(cls.devices)}, got {config.device!r}"
        return ""

    def prepare(self, X, y, w0, b0) -> None:
        """Validate, then replace the prepared data: an input refused here leaves the trainer as it
        was; once validation passes, the previous data *and result* are gone (``result()`` raises
        until the next ``run()``), whether or not the backend's ``_prepare`` then succeeds."""
        if is_sparse(X) and not self.supports_sparse:
            raise BackendUnavailableError(
                f"{self._who()} does not support sparse X (scipy.sparse)"
                + (f" ({self.sparse_reason})" if self.sparse_reason else "")
                + "; densify it (X.toarray()) or pick a backend that declares supports_sparse")
        X, y, w0, b0 = check_inputs(X, y, w0, b0, self.config.dtype, self.config.n_classes)
        n, d = X.shape
        bs = self.config.batch_size
        if bs is not None and bs > n:
            raise ValueError(f"batch_size must be at most n = {n} (the rows of X), got {bs}")
        # from here on the old data and its result are stale, even if _prepare fails half-way
        self._prepared = self._has_run = False
        self.n, self.d = n, d
        self.k = self.config.n_classes  # 2: the sigmoid model; K >= 3: softmax
        # the shared batch order: one host draw, identical for every backend (None: full batch)
        self.schedule = (None if bs is None else
                         batch_schedule(self.n, bs, self.config.n_iters, self.config.shuffle_seed))
        self._prepare(X, y, w0, b0)
        self._prepared = True

    def run(self) -> None:
        if not self._prepared:
            raise RuntimeError("call prepare(X, y, w0, b0) before run()")
        self._has_run = False  # a run that fails half-way leaves no result behind
        self._run()
        self._has_run = True

    def result(self) -> TrainResult:
        if not getattr(self, "_has_run", False):  # getattr: a subclass may skip __init__
            raise RuntimeError("call run() before result()")
        w, b, losses = self._result()
        return TrainResult.from_arrays(w, b, losses, self.config.record_every, self.config.n_classes)

    def loss_and_grad(self, w, b) -> tuple[float, np.ndarray, float]:
        if not self._prepared:
            raise RuntimeError("call prepare(X, y, w0, b0) before loss_and_grad()")
        k = self.config.n_classes
        w, b = check_params(w, b, self.d, self.config.dtype, k)
        loss, gw, gb = self._loss_and_grad(w, b)
        if k >= 3:  # softmax: (loss, (d, K), (K,))
            return (float(np.asarray(loss, dtype=np.float64).reshape(-1)[0]),
                    np.asarray(gw, dtype=np.float64).reshape(self.d, k), np.asarray(gb, dtype=np.float64).reshape(k))
        loss, gb = (float(np.asarray(v, dtype=np.float64).reshape(-1)[0]) for v in (loss, gb))
        return loss, np.asarray(gw, dtype=np.float64).reshape(-1), gb

    # optional hook: a no-op by default, overridden by backends with asynchronous device work
    def synchronize(self) -> None:  # noqa: B027
        """Wait for queued device work; a no-op on CPU backends."""

    # optional hook: a no-op by default, overridden by backends that hold processes or a cluster
    def close(self) -> None:  # noqa: B027
        """Release what the backend holds besides memory (a process group, a cluster); idempotent.
        A no-op for single-process backends. Trainers are also context managers that close on exit."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @abstractmethod
    def _prepare(self, X, y, w0, b0): ...

    @abstractmethod
    def _run(self): ...

    @abstractmethod
    def _result(self): ...

    @abstractmethod
    def _loss_and_grad(self, w, b): ...
