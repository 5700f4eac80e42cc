"""``torch-compiled``: the hand-derived step of ``torch-fused`` (its plain step) compiled by
``torch.compile`` (Inductor) — on every row it produces, full batch and mini-batch, any ``n``.

The math (derivation in the ``numpy`` backend), on the step's ``m`` rows::

    z = X w + b   (addmv) ;  p = sigmoid(z) ;  r = p - y
    g_w = X^T r / m + λ w   (mv) ;  g_b = mean(r) ;  w -= lr g_w ;  b -= lr g_b
    loss (recorded steps only, the configured formulation only) = BCE(p or z, y) + (λ/2) w.w

Inductor fuses the elementwise work (sigmoid, residual, loss, update) around the two
matrix-vector products, which it hands to the same BLAS as eager torch. Where that loses to the
eager step (large ``n``: no fusion across the products, and the same two passes over ``X``), the row
shows it losing; the eager, hand-blocked step is ``torch-fused``.

**Full batch.** ``K = STEPS_PER_CALL`` steps are traced into one graph, amortising Python's and the
compiled wrapper's per-call overhead over ``K`` steps. One graph per (steps per call, recording):
with ``record_every = 1``, ``K``-step calls that record every loss and a 1-step call for the
``n_iters mod K`` leftover; otherwise each recorded step is a compiled 1-step call with its loss, and
the unrecorded steps up to the next record are ``K``-step and 1-step calls that compute no loss.

**Mini-batches.** One compiled call per step, the gather included: ``step(X, y, idx)`` runs
``X.index_select(0, idx)`` and the step above in one graph.

**Shapes are dynamic** (``dynamic=True``): one graph per (dtype, formulation or none, steps per
call, K) serves every ``n``, ``d`` and batch size, so a run over three data sets compiles about as
much as a run over one (a graph costs seconds of compile time on a small CPU; with static shapes
the default ``make bench`` needed a graph per data set, dtype, formulation and variant). dynamo still
specialises a size of 0 or 1 (a batch of one row): one more graph, compiled like the others before
the timed rounds.

**momentum, nesterov, adam**: one compiled call per step (full batch, or the mini-batch step with its
gather), the plain gradient of ``torch-fused`` then :func:`implementations._optim.update`, the state
(buffers, Adam's moments) passed in and returned, Adam's per-step scalars a row of a table made in
``prepare``; one graph per (formulation or none, full or mini-batch, K, optimizer).

**Softmax** (``n_classes = K >= 3``): the traced step is ``torch-fused``'s plain K-class step
(``Z = addmm(b, X, W)``, ``P = softmax(Z)``, ``R = P - one_hot(y)``, ``G = X^T R / m + λ W``; the loss by
:func:`implementations._torch_common.softmax_loss`), in the same K-step and mini-batch graphs; ``K``
is part of each graph's key.

**When it compiles.** ``run()`` first calls every compiled function this configuration uses once
with each shape it will see (a module-level record per shape, dtype, device and variant, so a
trainer whose shapes another trainer of the process already ran compiles nothing): in the harness
that is the warm-up run (``bench.pipeline`` runs a short trainer of the same case first), so the
timed rounds never trace
or compile. ``fullgraph=True``: a graph break is an error, never a silent eager fallback, and
``recompile_limit`` is raised for these calls only, with ``fail_on_recompile_limit_hit``, so that
many shapes in one process (a test session) cannot make dynamo fall back to eager either.
:attr:`compiled_graphs` counts the graphs Inductor built for the compiled functions this
configuration calls (``torch._dynamo``'s ``unique_graphs`` counter, read around each first call): it
is how a test knows the row went through Inductor.

The loop here is not :func:`implementations._loop.gradient_descent` on full batch (``K`` steps per
call); mini-batches use it with the compiled step. CPU: Inductor generates C++ and needs a C++
compiler (none found: ``BackendUnavailableError``, the row is ``skipped``). CUDA:
``mode="reduce-overhead"`` replays each call as a CUDA graph (its outputs are cloned before the
next replay overwrites them). MPS: not supported here (``skipped``). Figures: ``docs/performance.md``.

**Sparse ``X``: not supported** (``supports_sparse = False``; a sparse ``X`` is refused in ``prepare``
with :data:`SPARSE_REASON`, a ``skipped`` row). Dynamo cannot trace a torch sparse tensor: compiling the
step with a CSR ``X`` (``torch.addmv(b, X, w)`` or ``torch.sparse.mm(X, w[:, None])``, torch 2.13,
``fullgraph=True``, static or dynamic shapes) fails before Inductor sees anything with
``torch._dynamo.exc.Unsupported: Attempted to wrap sparse Tensor`` ("torch.compile does not support
sparse Tensors"); without ``fullgraph`` the sparse products would fall back to eager between graph
breaks, which is ``torch-manual`` with extra overhead, not a compiled row.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import time

import numpy as np
import torch

from . import _optim
from ._loop import gradient_descent
from ._torch_common import (
    TorchTrainerBase,
    exact_loss_and_grad,
    plain_grad,
    plain_grad_softmax,
    plain_step,
    plain_step_softmax,
    synchronize,
)
from .base import BackendUnavailableError

STEPS_PER_CALL = 5  # K: steps traced into one full-batch call (compile time grows with it)
# CUDA: "static" (default): CUDA graphs (mode="reduce-overhead") with X, y and the other per-trainer
# tensors marked static (torch._dynamo.mark_static_address), so that a replay reads them in place;
# "copy": CUDA graphs, every tensor argument copied into the graph's own buffer on each replay (an extra
# read and write of X per call, and an X-sized buffer per recorded shape kept for the process);
# "default": no CUDA graphs. Which pays is measured on the device (docs/gpu.md).
CUDA_MODES = ("static", "copy", "default")
CUDA_MODE = os.environ.get("LOGREG_COMPILED_CUDA_MODE", "static")
RECOMPILE_LIMIT = 512  # graphs per code object while these calls run (dynamo's default is 8)

SPARSE_REASON = ("torch.compile cannot trace torch sparse tensors (dynamo, torch "
                 f"{torch.__version__}: 'Unsupported: Attempted to wrap sparse Tensor'); sparse X runs in torch, "
                 "torch-manual, torch-fused and torch-nn")
_SEEN: set[tuple] = set()  # (device, dtype, variant, K, shape) already called once in this process
_GRAPHS: dict[tuple, int] = {}  # (device, dtype, variant, K) -> graphs Inductor compiled for it (this process)


def _one_step(X, y, w, b, lr, l2, formulation: str | None, classes: int):
    if classes >= 3:
        return plain_step_softmax(X, y, w, b, lr, l2, formulation, classes)
    return plain_step(X, y, w, b, lr, l2, formulation)


def _k_steps(X, y, w, b, lr, l2, formulation: str | None, k: int, classes: int = 2):
    out = []
    for _ in range(k):
        w, b, loss = _one_step(X, y, w, b, lr, l2, formulation, classes)
        out.append(loss)
    return w, b, (torch.stack(out) if formulation is not None else None)


def _batch_step(X, y, idx, w, b, lr, l2, formulation: str | None, classes: int = 2):
    return _one_step(X.index_select(0, idx), y.index_select(0, idx), w, b, lr, l2, formulation, classes)


def _mode(device_type: str) -> str | None:
    return "reduce-overhead" if device_type == "cuda" and CUDA_MODE in ("static", "copy") else None


@functools.lru_cache(maxsize=None)
def _compiled(device_type: str, formulation: str | None, k: int | None, classes: int = 2):
    """The compiled function: ``k`` full-batch steps per call, or (``k=None``) one mini-batch step;
    ``classes >= 3``: the softmax step."""
    fn = (functools.partial(_batch_step, formulation=formulation, classes=classes) if k is None
          else functools.partial(_k_steps, formulation=formulation, k=k, classes=classes))
    return torch.compile(fn, mode=_mode(device_type), dynamic=True, fullgraph=True)


def _opt_step(X, y, w, b, state, coeffs, lr, l2, formulation: str | None, classes: int, optimizer: str):
    """One ``momentum``/``nesterov``/``adam`` step: ``torch-fused``'s plain gradient, then
    :func:`implementations._optim.update` (``coeffs``: Adam's ``[lr / bc1, sqrt(bc2)]`` of this step, else None)."""
    if classes >= 3:
        g, gb, loss = plain_grad_softmax(X, y, w, b, l2, formulation, classes)
    else:
        g, gb, loss = plain_grad(X, y, w, b, l2, formulation)
    w, b, state = _optim.update(optimizer, lr, w, b, g, gb, state, None if coeffs is None else (coeffs[0], coeffs[1]),
                                torch.sqrt)
    return w, b, state, loss


def _opt_batch_step(X, y, idx, w, b, state, coeffs, lr, l2, formulation: str | None, classes: int, optimizer: str):
    return _opt_step(X.index_select(0, idx), y.index_select(0, idx), w, b, state, coeffs, lr, l2, formulation,
                     classes, optimizer)


@functools.lru_cache(maxsize=None)
def _compiled_opt(device_type: str, formulation: str | None, batched: bool, classes: int, optimizer: str):
    """The compiled ``momentum``/``nesterov``/``adam`` step: one step per call (full batch, or with the
    mini-batch gather), its state in and out."""
    fn = functools.partial(_opt_batch_step if batched else _opt_step, formulation=formulation, classes=classes,
                           optimizer=optimizer)
    return torch.compile(fn, mode=_mode(device_type), dynamic=True, fullgraph=True)


def _dynamo_limits():
    """``recompile_limit`` raised, and failing loudly when hit, for these calls only (the names of
    torch >= 2.6; ``cache_size_limit`` and ``fail_on_cache_limit_hit`` before); and Inductor compiling
    in this process (``compile_threads=1``) unless ``TORCHINDUCTOR_COMPILE_THREADS`` says otherwise:
    its default on a small machine starts a pool of compile subprocesses once per process, which cost
    more than the graphs here (docs/performance.md). Only ``compile_s`` changes, never the code."""
    cfg, patch = torch._dynamo.config, {}
    for names, value in ((("recompile_limit", "cache_size_limit"), RECOMPILE_LIMIT),
                         (("fail_on_recompile_limit_hit", "fail_on_cache_limit_hit"), True)):
        name = next((n for n in names if hasattr(cfg, n)), None)
        if name is not None:
            patch[name] = value
    limits = cfg.patch(**patch)
    if os.environ.get("TORCHINDUCTOR_COMPILE_THREADS"):  # the user's choice stands
        return limits
    stack = contextlib.ExitStack()
    stack.enter_context(limits)
    stack.enter_context(torch._inductor.config.patch(compile_threads=1))
    return stack


def unique_graphs() -> int:
    """Graphs dynamo has handed to its backend (Inductor) in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _has_cxx() -> bool:
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


def cuda_toolchain_problem() -> str:
    """Why Inductor cannot build CUDA kernels here ("" if it can): it generates Triton kernels,
    so Triton must import, and Triton's launcher is built with a C compiler (``CC``, else gcc or
    clang on the PATH; none: "Failed to find C compiler" at the first compile)."""
    try:
        import triton  # noqa: F401  (deferred on purpose: a heavy import, on CUDA rows only)
    except Exception as exc:
        return f"torch-compiled on cuda needs Triton, which does not import here ({type(exc).__name__}: {exc})"
    cc = os.environ.get("CC", "")
    if cc and shutil.which(cc.split()[0]):
        return ""
    if any(shutil.which(c) for c in ("gcc", "clang", "cc")):
        return ""
    return ("torch-compiled on cuda needs a C compiler for Triton's launcher (none of $CC, gcc, clang, cc "
            "found)")


class TorchCompiledTrainer(TorchTrainerBase):
    name = "torch-compiled"
    library = "torch"
    gradient = "hand-derived"
    engine = "inductor"
    compiled = True
    style = "torch.compile"
    sparse_reason = SPARSE_REASON
    supports_multiclass = True
    optimizers = _optim.HAND_WRITTEN  # momentum, nesterov, adam: one compiled call per step, state in and out

    def __init__(self, config):
        super().__init__(config)
        if self.dev.type == "cpu" and not _has_cxx():
            raise BackendUnavailableError("torch-compiled on cpu needs a C++ compiler "
                                          "(none of g++, c++, clang++ found)")
        if self.dev.type == "mps":
            raise BackendUnavailableError("torch-compiled: torch.compile is not supported on 'mps' here")
        if self.dev.type == "cuda":
            problem = cuda_toolchain_problem()
            if problem:
                raise BackendUnavailableError(problem)
        if CUDA_MODE not in CUDA_MODES:
            raise ValueError(f"LOGREG_COMPILED_CUDA_MODE must be one of {', '.join(CUDA_MODES)}, got {CUDA_MODE!r}")
        self.compile_s = 0.0  # seconds this trainer spent compiling (0 if the process had the graphs)

    def _prepare(self, X, y, w0, b0):
        super()._prepare(X, y, w0, b0)
        dt = self.X.dtype
        self._lr = torch.tensor(self.config.lr, dtype=dt, device=self.dev)
        self._l2 = torch.tensor(self.config.l2, dtype=dt, device=self.dev)
        self._cuda = self.dev.type == "cuda"
        if self.config.optimizer == "adam":  # Adam's per-step host scalars, one row per step, on the device once
            sizes, bc2s = _optim.adam_coefficient_table(self.config.lr, self.config.n_iters, self.config.dtype)
            self._adam = torch.from_numpy(np.stack([sizes, bc2s], axis=1)).to(self.dev)
        if self._cuda and CUDA_MODE == "static":
            # read in place by every replay; a new trainer's tensors (new addresses) make the graphs
            # re-record, which _prime does here, before any timed call
            for t in (self.X, self.y, self._lr, self._l2,
                      getattr(self, "batch_idx", None), getattr(self, "_adam", None)):
                if isinstance(t, torch.Tensor):
                    torch._dynamo.mark_static_address(t)
            with torch.no_grad(), _dynamo_limits():  # as in run(): dynamo guards on the grad mode
                self._ensure_compiled(calls=2)  # CUDA graph trees: a warm-up call, then the recording

    # -- the graphs this configuration can need, compiled before the first timed call -----------

    def _variants(self):
        """``(formulation or None, k or None, rows)``: every compiled call ``run()`` may make."""
        cfg, form, K = self.config, self.config.formulation, STEPS_PER_CALL
        records = [form] if cfg.record_every == 1 else [form, None]
        if cfg.optimizer != "gd":  # one compiled call per step, full batch or mini-batch
            opt = ("opt", cfg.optimizer)
            if self.schedule is None:
                return [(f, opt, self.n) for f in records]
            bs = self.schedule.batch_size
            return [(f, opt, m) for f in records for m in [bs] + ([self.n % bs] if self.n % bs else [])]
        if self.schedule is not None:
            bs = self.schedule.batch_size
            sizes = [bs] + ([self.n % bs] if self.n % bs else [])
            return [(f, None, m) for f in records for m in sizes]
        if cfg.record_every == 1:
            return [(form, k, self.n) for k in ([K] if cfg.n_iters >= K else []) + ([1] if cfg.n_iters % K else [])]
        span = min(cfg.record_every, cfg.n_iters) - 1  # the longest run of unrecorded steps
        return [(form, 1, self.n)] + [(None, k, self.n) for k in [1] + ([K] if span >= K else [])]

    def _family(self, variant):
        """The compiled function a variant calls: (device, dtype, formulation or None, k, K)."""
        form, k, _rows = variant
        return (self.dev.type, self.dev.index, str(self.X.dtype), form, k, self.k)

    def _key(self, variant):
        return (*self._family(variant), self.n, self.d, variant[2])

    @property
    def compiled_graphs(self) -> int:
        """Graphs Inductor compiled for the functions this configuration calls (0 before the first ``run``)."""
        return sum(_GRAPHS.get(f, 0) for f in {self._family(v) for v in self._variants()})

    def _ensure_compiled(self, calls: int = 0):
        """Call every variant once whose shape this process has not called yet (compiling it where
        needed); ``calls > 0``: every variant that many times, seen or not (this trainer's CUDA graphs)."""
        for variant in self._variants():
            key = self._key(variant)
            if key in _SEEN and not calls:
                continue
            form, k, m = variant
            before, t0 = unique_graphs(), time.perf_counter()
            for _ in range(max(calls, 1)):
                w, b = self.w0.clone(), self.b0.clone()
                if isinstance(k, tuple):  # ("opt", optimizer)
                    state = _optim.init_state(k[1], w, b, torch.zeros_like)
                    data = () if self.schedule is None else (self.batch_idx[:m],)
                    _compiled_opt(self.dev.type, form, bool(data), self.k, k[1])(
                        self.X, self.y, *data, w, b, state, self._adam[0] if k[1] == "adam" else None, self._lr,
                        self._l2)
                elif k is None:
                    _compiled(self.dev.type, form, None, self.k)(self.X, self.y, self.batch_idx[:m], w, b, self._lr,
                                                                 self._l2)
                else:
                    _compiled(self.dev.type, form, k, self.k)(self.X, self.y, w, b, self._lr, self._l2)
            synchronize(self.dev)
            self.compile_s += time.perf_counter() - t0
            fam = self._family(variant)
            _GRAPHS[fam] = _GRAPHS.get(fam, 0) + unique_graphs() - before
            _SEEN.add(key)

    # -- the run ------------------------------------------------------------------------------

    @torch.no_grad()
    def _run(self):
        cfg = self.config
        w, b, losses = self._start()
        with _dynamo_limits():
            self._ensure_compiled()
            if cfg.optimizer != "gd":
                batch = None if self.schedule is None else (
                    lambda t: (self.batch_idx[self.batch_offsets[t]:self.batch_offsets[t + 1]],))
                w, b = gradient_descent(cfg, self._opt_update(), w, b, losses, (), batch)
            elif self.schedule is None:
                w, b = self._run_full(w, b, losses)
            else:
                batch = lambda t: (self.batch_idx[self.batch_offsets[t]:self.batch_offsets[t + 1]],)  # noqa: E731
                w, b = gradient_descent(cfg, self._batch_update, w, b, losses, batch=batch)
        self._w, self._b, self._losses = w, b, losses
        synchronize(self.dev)

    def _opt_update(self):
        """The step of ``momentum``, ``nesterov`` or ``adam`` for :func:`implementations._loop.gradient_descent`:
        one compiled call (``(idx,)`` or full batch), the state in a closure made fresh for every run."""
        cfg, state, t = self.config, None, 0

        def step(*args):
            nonlocal state, t
            *data, w, b, record = args
            if state is None:
                state = _optim.init_state(cfg.optimizer, w, b, torch.zeros_like)
            coeffs = self._adam[t] if cfg.optimizer == "adam" else None
            t += 1
            fn = _compiled_opt(self.dev.type, cfg.formulation if record else None, bool(data), self.k, cfg.optimizer)
            w, b, state, loss = fn(self.X, self.y, *data, w, b, state, coeffs, self._lr, self._l2)
            if self._cuda:  # CUDA-graph outputs get overwritten by the next replay
                w, b, state = w.clone(), b.clone(), tuple(x.clone() for x in state)
            return w, b, loss

        return step

    def _batch_update(self, idx, w, b, record):
        fn = _compiled(self.dev.type, self.config.formulation if record else None, None, self.k)
        w, b, loss = fn(self.X, self.y, idx, w, b, self._lr, self._l2)
        return (w.clone(), b.clone(), loss) if self._cuda else (w, b, loss)  # CUDA-graph outputs get overwritten

    def _call(self, form, k, w, b):
        w, b, ls = _compiled(self.dev.type, form, k, self.k)(self.X, self.y, w, b, self._lr, self._l2)
        if self._cuda:
            w, b = w.clone(), b.clone()
        return w, b, ls

    def _run_full(self, w, b, losses):
        """record_every = 1: K-step calls that record every loss, the leftover in 1-step calls. Otherwise:
        each recorded step a 1-step call with its loss, then the unrecorded steps up to the next
        recorded one in K-step and 1-step calls without a loss."""
        cfg, K, form = self.config, STEPS_PER_CALL, self.config.formulation
        if cfg.record_every == 1:
            full = cfg.n_iters // K
            for c in range(full):
                w, b, losses[c * K:(c + 1) * K] = self._call(form, K, w, b)
            for i in range(full * K, cfg.n_iters):
                w, b, losses[i:i + 1] = self._call(form, 1, w, b)
            return w, b
        for r in range(cfg.n_records):
            w, b, losses[r:r + 1] = self._call(form, 1, w, b)
            span = min(cfg.record_every, cfg.n_iters - r * cfg.record_every) - 1  # unrecorded steps that follow
            full, rest = divmod(span, K)
            for _ in range(full):
                w, b, _unused = self._call(None, K, w, b)
            for _ in range(rest):
                w, b, _unused = self._call(None, 1, w, b)
        return w, b

    @torch.no_grad()
    def _loss_and_grad(self, w, b):  # eager, on the full data: torch-fused's math
        return exact_loss_and_grad(self.X, self.y, *self._params(w, b), self.config.l2, self.config.formulation, self.k)
