"""The trainer contract shared by every backend.

A backend is one class deriving from :class:`Trainer`, in one file, registered in
``implementations.BACKENDS``. Its life cycle (benchopt's ``set_data -> run -> get_result``):

``prepare(X, y, w0, b0)``  *untimed.* Validates the host arrays once, casts them to
    ``config.dtype`` and moves them to ``config.device``. Host->device transfer happens here
    and only here, so the harness can time it apart from training.
``run()``                  *the only timed method.* Runs ``config.n_iters`` gradient steps
    (full batch, or the mini-batches of :func:`batch_schedule`) starting again from ``(w0, b0)`` every call, so a benchmark can call it round after
    round. It returns only after all device work is done (CUDA/MPS synchronized). Losses stay on
    the device during the loop: no ``.item()``, no print, no host sync per step.
``result()``               *untimed.* Copies the final parameters and the loss history to the
    host as a :class:`TrainResult` (float64 NumPy).
``loss_and_grad(w, b)``    The loss and its gradient at ``(w, b)`` on the *full* prepared data (all
    ``n`` rows, whatever ``batch_size`` is), penalty included, computed the way ``run()`` computes
    them (hand-derived or autograd), returned as float64 NumPy.

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
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

DTYPES = ("float32", "float64")
FORMULATIONS = ("probs", "logits")
LOG_CLAMP = -100.0  # torch.nn.functional.binary_cross_entropy clamps log() at -100


class BackendUnavailableError(ValueError):
    """This backend cannot run here as configured (a missing optional package or compiler, or an
    unavailable device); the harness records such a row as ``skipped`` with the message."""


class DeviceUnavailableError(BackendUnavailableError):
    """The requested device cannot be used here (no CUDA, CuPy not installed, ...)."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run's settings; validated on construction."""

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
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device must be a string such as 'cpu', 'cuda', 'cuda:1' or 'mps', got {self.device!r}")
        if self.batch_size is not None:
            if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
                raise ValueError(f"batch_size must be None (full batch) or an integer >= 1, got {self.batch_size!r}")
            object.__setattr__(self, "batch_size", int(self.batch_size))
        if isinstance(self.l2, bool) or not isinstance(self.l2, numbers.Real) or not (math.isfinite(self.l2) and self.l2 >= 0):
            raise ValueError(f"l2 must be a finite number >= 0, got {self.l2!r}")
        object.__setattr__(self, "l2", float(self.l2))
        for name, low in (("shuffle_seed", 0), ("workers", 1)):
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


@dataclass(frozen=True)
class BatchSchedule:
    """The rows of every step, as one flat array with offsets (CSR style):
    step ``t`` uses ``indices[offsets[t]:offsets[t + 1]]`` (``schedule[t]`` does that slice).

    One permutation per epoch is drawn from ``numpy.random.default_rng(shuffle_seed)``; an epoch is
    ``ceil(n / batch_size)`` steps and its last batch keeps the ``n mod batch_size`` leftover rows, as
    ``DataLoader(shuffle=True, drop_last=False)`` does."""

    indices: np.ndarray  # (sum of batch sizes,) int64
    offsets: np.ndarray  # (n_iters + 1,) int64
    batch_size: int
    n: int

    def __len__(self) -> int:
        return self.offsets.size - 1

    def __getitem__(self, t: int) -> np.ndarray:
        return self.indices[self.offsets[t]:self.offsets[t + 1]]

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.n // self.batch_size)

    def padded(self) -> tuple[np.ndarray, np.ndarray]:
        """``(idx, mask)`` of shape ``(n_iters, batch_size)``: short batches padded with row 0 and a
        0 weight, for libraries that need one static batch shape (JAX under ``jit``)."""
        steps = len(self)
        idx = np.zeros((steps, self.batch_size), np.int64)
        mask = np.zeros((steps, self.batch_size), bool)
        cols = np.arange(self.batch_size)
        sizes = self.sizes
        valid = cols[None, :] < sizes[:, None]
        idx[valid] = self.indices
        mask[valid] = True
        return idx, mask


def batch_schedule(n: int, batch_size: int, n_iters: int, shuffle_seed: int = 0) -> BatchSchedule:
    """The row indices of each of ``n_iters`` mini-batch steps over ``n`` rows (see :class:`BatchSchedule`).

    Every backend trains on this one host-side draw: no backend uses its own library's RNG for the order.
    ``batch_size`` must be between 1 and ``n``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be an integer between 1 and n = {n} (the rows of X), got {batch_size!r}")
    spe = -(-n // batch_size)
    epochs = -(-n_iters // spe)
    rng = np.random.default_rng(shuffle_seed)
    order = np.concatenate([rng.permutation(n) for _ in range(epochs)]).astype(np.int64)
    sizes = np.tile(np.diff(np.minimum(np.arange(spe + 1) * batch_size, n)), epochs)[:n_iters]
    offsets = np.zeros(n_iters + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return BatchSchedule(order[: offsets[-1]], offsets, int(batch_size), int(n))


@dataclass(frozen=True)
class TrainResult:
    """Final parameters and loss history on the host, float64."""

    w: np.ndarray  # (d,)
    b: float
    losses: np.ndarray  # (n_records,)
    record_every: int = 1
    first_nonfinite_step: int | None = field(default=None)

    @classmethod
    def from_arrays(cls, w, b, losses, record_every: int) -> "TrainResult":
        w = np.asarray(w, dtype=np.float64).reshape(-1)
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
        b = float(np.asarray(b, dtype=np.float64).reshape(-1)[0])
        bad = np.flatnonzero(~np.isfinite(losses))
        first = int(bad[0]) * record_every if bad.size else None
        if first is None and not (np.all(np.isfinite(w)) and math.isfinite(b)):
            first = (losses.size - 1) * record_every  # parameters blew up after the last record
        return cls(w=w, b=b, losses=losses, record_every=record_every, first_nonfinite_step=first)

    @property
    def diverged(self) -> bool:
        """True when the loss or the parameters became non-finite (NaN or inf)."""
        return self.first_nonfinite_step is not None


def check_inputs(X, y, w0, b0, dtype: str | None = None):
    """Validate host inputs once, at the boundary; return float64 copies ``(X, y, w0, b0)``.
    With ``dtype``, values beyond that dtype's largest finite number are refused too."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array of shape (n, d), got an array with {X.ndim} dimension(s), shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
    n, d = X.shape
    if n < 1 or d < 1:
        raise ValueError(f"X must have at least one row and one column, got shape {X.shape}")
    X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        bad = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(f"X must contain only finite values, got {X[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},) to match X's {n} rows, got shape {y.shape}")
    try:
        values = set(np.unique(y).tolist())
    except TypeError:
        values = {repr(v) for v in y}
    if not values <= {0, 1}:
        shown = sorted(values - {0, 1}, key=repr)[:5]
        raise ValueError(f"y must contain only 0 and 1, got values {set(shown)}")
    y = y.astype(np.float64)
    w0 = np.asarray(w0, dtype=np.float64).reshape(-1) if np.ndim(w0) <= 2 else np.asarray(w0)
    if w0.shape != (d,):
        raise ValueError(f"w0 must have shape ({d},) to match X's {d} columns, got shape {np.shape(w0)}")
    b0 = np.asarray(b0, dtype=np.float64)
    if b0.size != 1:
        raise ValueError(f"b0 must be a scalar, got an array of shape {b0.shape}")
    b0 = float(b0.reshape(-1)[0])
    if not (np.all(np.isfinite(w0)) and math.isfinite(b0)):
        raise ValueError(f"w0 and b0 must be finite, got w0={w0}, b0={b0}")
    if dtype is not None:
        big = float(np.finfo(dtype).max)
        for name, a in (("X", X), ("w0", w0), ("b0", np.asarray(b0))):
            top = float(np.max(np.abs(a)))
            if top > big:
                raise ValueError(f"{name} must fit in {dtype} (largest finite value {big:.4g}), got a value of "
                                 f"magnitude {top:.4g}")
    return X, y, w0, b0


def check_params(w, b, d):
    """Validate a parameter point for ``loss_and_grad``."""
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    if w.shape != (d,):
        raise ValueError(f"w must have shape ({d},), got shape {w.shape}")
    return w, float(np.asarray(b, dtype=np.float64).reshape(-1)[0])


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
        self.config = config
        self._prepared = False

    def prepare(self, X, y, w0, b0) -> None:
        X, y, w0, b0 = check_inputs(X, y, w0, b0, self.config.dtype)
        self.n, self.d = X.shape
        bs = self.config.batch_size
        if bs is not None and bs > self.n:
            raise ValueError(f"batch_size must be at most n = {self.n} (the rows of X), got {bs}")
        # the shared batch order: one host draw, identical for every backend (None: full batch)
        self.schedule = (None if bs is None else
                         batch_schedule(self.n, bs, self.config.n_iters, self.config.shuffle_seed))
        self._prepare(X, y, w0, b0)
        self._prepared = True

    def run(self) -> None:
        if not self._prepared:
            raise RuntimeError("call prepare(X, y, w0, b0) before run()")
        self._run()
        self._has_run = True

    def result(self) -> TrainResult:
        if not getattr(self, "_has_run", False):
            raise RuntimeError("call run() before result()")
        w, b, losses = self._result()
        return TrainResult.from_arrays(w, b, losses, self.config.record_every)

    def loss_and_grad(self, w, b) -> tuple[float, np.ndarray, float]:
        if not self._prepared:
            raise RuntimeError("call prepare(X, y, w0, b0) before loss_and_grad()")
        w, b = check_params(w, b, self.d)
        loss, gw, gb = self._loss_and_grad(w, b)
        loss, gb = (float(np.asarray(v, dtype=np.float64).reshape(-1)[0]) for v in (loss, gb))
        return loss, np.asarray(gw, dtype=np.float64).reshape(-1), gb

    def synchronize(self) -> None:
        """Wait for queued device work; a no-op on CPU backends."""

    def close(self) -> None:
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
