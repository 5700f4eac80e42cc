"""Where a training loop leaves the float64 oracle's path: :func:`first_divergence` and
:func:`in_lockstep`, which :mod:`implementations.testing` (the conformance checks) and ``bench
trajectory`` use.

A loop is located by *whole runs*: its run of ``k`` steps from ``(w0, b0)`` against the oracle's run
of ``k`` steps, bisected on ``k``. A whole run keeps everything a loop carries from step to step (the
step counter, a learning-rate schedule, a momentum buffer, Adam's moments, the batch of each step), so
a loop that goes wrong at step 50 is found at step 50, not lost as accumulated rounding. A loop whose
whole runs all agree can still go wrong across ``run()`` calls; the lockstep (one ``run()`` of one
step at a time from the parameters its previous step produced) finds that one.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from . import reference
from .base import TrainConfig, TrainResult
from .reference import Divergence


def train(cls, config: TrainConfig, X, y, w0, b0) -> TrainResult:
    """One whole run of ``cls`` under ``config`` from ``(w0, b0)``: its result."""
    with cls(config) as trainer:
        trainer.prepare(X, y, w0, b0)
        trainer.run()
        return trainer.result()


def in_lockstep(trainers, X, y, w0, b0, n_iters: int):
    """Step ``trainers`` (each configured with ``n_iters=1``) side by side from ``(w0, b0)``, each on its
    *own* path: step ``k`` of a trainer is one ``prepare`` + ``run()`` from the parameters its step
    ``k - 1`` produced (float32 values survive the float64 round trip exactly), so the path is the one
    its ``run()`` would take. Yields ``(k, results)`` for ``k = 1 .. n_iters``, one ``TrainResult`` a
    trainer, in order; stop iterating to stop stepping."""
    theta = [(w0, b0)] * len(trainers)
    for k in range(1, n_iters + 1):
        results = []
        for i, trainer in enumerate(trainers):
            trainer.prepare(X, y, *theta[i])
            trainer.run()
            res = trainer.result()
            theta[i] = (res.w, res.b)
            results.append(res)
        yield k, results


def _flat(w, b) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(w, np.float64)), np.ravel(np.asarray(b, np.float64))])


def _coordinate(j: int, w_shape: tuple) -> str:
    """The name of entry ``j`` of ``(vec w, b)``: ``w[2]`` / ``b`` (binary), ``W[1, 2]`` / ``b[2]`` (softmax)."""
    if len(w_shape) == 2:
        d, k = w_shape
        return f"W[{j // k}, {j % k}]" if j < d * k else f"b[{j - d * k}]"
    return f"w[{j}]" if j < w_shape[0] else "b"


def _off(got: np.ndarray, want: np.ndarray, w_shape: tuple, tol: float, k: int) -> Divergence | None:
    """A :class:`Divergence` at step ``k`` when ``got`` differs from the oracle's ``want`` by more than
    ``tol`` relative to ``want``'s largest entry; None when within."""
    if got.shape != want.shape:
        return Divergence(k, math.inf, math.inf, tol, what=f"parameters of shape {got.shape}, not {want.shape},",
                          worst="its shape")
    err = np.abs(got - want)
    err = np.where(np.isnan(err), np.inf, err)
    diff = float(err.max())
    rel = diff / max(float(np.abs(want).max()), np.finfo(float).tiny)
    if rel <= tol:
        return None
    return Divergence(k, rel, diff, tol, worst=_coordinate(int(np.argmax(err)), w_shape))


def first_divergence(cls, config: TrainConfig, X, y, w0, b0) -> Divergence | None:
    """The first step ``k`` after which ``cls``'s run leaves the oracle's by more than the tolerance for
    that many steps (``implementations.reference.tolerance``), or — when the parameters agree at every
    step — the first recorded loss that does not. None when neither does.

    Whole runs of ``k`` steps from ``(w0, b0)`` against :func:`reference.reference_run` of ``k``
    steps, bisected on ``k`` (about ``log2(n_iters)`` runs; a loop off from step ``s`` is off for every
    ``k >= s``). When every whole run agrees, a full-batch gradient-descent loop is also stepped in
    :func:`in_lockstep` against :func:`reference.reference_path`: that finds a loop that goes wrong on
    a later ``run()`` call rather than a later step."""
    n, d = X.shape
    m = config.batch_size or n

    def whole(k: int):
        cfg = replace(config, n_iters=k, record_every=1)
        res, ref = train(cls, cfg, X, y, w0, b0), reference.reference_run(X, y, w0, b0, cfg)
        tol = reference.tolerance(config.dtype, k, m, d, config.n_classes)
        return _off(_flat(res.w, res.b), _flat(ref.w, ref.b), np.shape(ref.w), tol, k), res, ref

    found, res, ref = whole(config.n_iters)
    if found is not None:
        lo, hi = 0, config.n_iters  # every run of <= lo steps agrees; the run of hi steps does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            div = whole(mid)[0]
            lo, hi, found = (mid, hi, found) if div is None else (lo, mid, div)
        return found
    if config.batch_size is None and config.n_classes < 3 and config.optimizer == "gd":
        thetas, _ = reference.reference_path(X, y, w0, b0, config)
        with cls(replace(config, n_iters=1, record_every=1)) as trainer:
            for k, (step,) in in_lockstep([trainer], X, y, w0, b0, config.n_iters):
                div = _off(_flat(step.w, step.b), thetas[k - 1], np.shape(step.w),
                           reference.tolerance(config.dtype, k, m, d), k)
                if div is not None:
                    return div
    got, want = np.asarray(res.losses, np.float64), np.asarray(ref.losses, np.float64)
    lscale = max(float(np.abs(want).max()), np.finfo(float).tiny) if want.size else 1.0
    # a loop may record a different number of losses than the oracle: compare those both have
    for t, (a, r) in enumerate(zip(got, want, strict=False)):
        tol = reference.tolerance(config.dtype, t + 1, m, d, config.n_classes)
        if not abs(a - r) / lscale <= tol:
            return Divergence(t, float(abs(a - r) / lscale), float(abs(a - r)), tol,
                              what=f"parameters agree at every step, but the loss recorded at step {t} (losses[{t}])")
    return None
