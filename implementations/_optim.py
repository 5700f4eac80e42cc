"""The update rules of ``momentum``, ``nesterov`` and ``adam``, written once for every array library.

``torch.optim``'s semantics and defaults (see :mod:`implementations.base`); ``g`` is the step's
gradient, ``λ w`` included for the weight, none for the bias. Per parameter ``θ`` (``w`` and ``b``
alike, each with its own state), step ``t = 1, 2, ...``::

    momentum : buf = 0.9 buf + g                 θ -= lr buf
    nesterov : buf = 0.9 buf + g                 θ -= lr (g + 0.9 buf)
    adam     : m = m + (1 - β1) (g - m)          (torch's ``lerp_``; = β1 m + (1 - β1) g)
               v = β2 v + (1 - β2) g g
               θ -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)     bc_i = 1 - β_i^t

The buffers start at zero, so the first momentum step's ``0.9 * 0 + g`` is ``g`` exactly, torch's
``buf = g.clone()``. Adam's two host numbers per step (``lr / bc1`` and ``sqrt(bc2)``) are computed
in Python floats, as torch computes them, by :func:`adam_coefficients`; the element-wise work runs
in the arrays' dtype in the order torch's single-tensor ``Adam`` runs it. The functions are pure
(they return new arrays and a new state tuple), so NumPy, CuPy, torch (eager) and ``jax.numpy``
(inside ``lax.scan``) share them. ``run()`` makes a fresh state every call: training always starts
again from ``(w0, b0)`` with zero buffers and ``t = 1``.
"""

from __future__ import annotations

import math

import numpy as np

MOMENTUM = 0.9
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
HAND_WRITTEN = ("gd", "momentum", "nesterov", "adam")  # what a backend gets from this module


def adam_coefficients(lr: float, t: int) -> tuple[float, float]:
    """``(lr / (1 - β1^t), sqrt(1 - β2^t))`` for step ``t >= 1``, in Python floats (torch's)."""
    return lr / (1 - BETA1 ** t), math.sqrt(1 - BETA2 ** t)


def adam_coefficient_table(lr: float, n_iters: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """:func:`adam_coefficients` for ``t = 1 .. n_iters`` as two host arrays of ``dtype``: the per-step
    scalars for loops that run on the device as a whole (``lax.scan``, a numba kernel)."""
    rows = [adam_coefficients(lr, t) for t in range(1, n_iters + 1)]
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
    return table[:, 0].astype(dtype), table[:, 1].astype(dtype)


def slots(optimizer: str) -> int:
    """How many state arrays per parameter: 1 (the momentum buffer) or 2 (Adam's ``m``, ``v``)."""
    return 2 if optimizer == "adam" else 1


def init_state(optimizer: str, w, b, zeros_like) -> tuple:
    """Zero state for ``(w, b)``: ``(buf_w, buf_b)`` or ``(m_w, v_w, m_b, v_b)``."""
    return tuple(zeros_like(p) for p in (w, b) for _ in range(slots(optimizer)))


def param_update(optimizer: str, lr: float, p, g, state: tuple, coeffs, sqrt):
    """One step of ``optimizer`` on one parameter: ``(p_new, state_new)``. ``coeffs`` is Adam's
    ``(lr / bc1, sqrt(bc2))`` (ignored otherwise); ``sqrt`` is the library's element-wise square root."""
    if optimizer == "adam":
        m, v = state
        m = m + (1 - BETA1) * (g - m)
        v = BETA2 * v + (1 - BETA2) * (g * g)
        step_size, bc2_sqrt = coeffs
        denom = sqrt(v) / bc2_sqrt + EPS
        return p - step_size * (m / denom), (m, v)
    (buf,) = state
    buf = MOMENTUM * buf + g
    direction = g + MOMENTUM * buf if optimizer == "nesterov" else buf
    return p - lr * direction, (buf,)


def update(optimizer: str, lr: float, w, b, gw, gb, state: tuple, coeffs, sqrt):
    """One step on both parameters: ``(w_new, b_new, state_new)`` (state as :func:`init_state`)."""
    k = slots(optimizer)
    w, sw = param_update(optimizer, lr, w, gw, state[:k], coeffs, sqrt)
    b, sb = param_update(optimizer, lr, b, gb, state[k:], coeffs, sqrt)
    return w, b, sw + sb


def stepper(config, grad_step, zeros_like, sqrt):
    """A ``step(*data, w, b, record)`` for :func:`implementations._loop.gradient_descent` that applies
    ``config.optimizer`` to ``grad_step(*data, w, b, record) -> (loss, gw, gb)``. Its state (buffers
    and the step count) lives in the closure: make a new one every ``run()``."""
    optimizer, lr = config.optimizer, config.lr
    state, t = None, 0

    def step(*args):
        nonlocal state, t
        *data, w, b, record = args
        loss, gw, gb = grad_step(*data, w, b, record)
        if state is None:
            state = init_state(optimizer, w, b, zeros_like)
        t += 1
        coeffs = adam_coefficients(lr, t) if optimizer == "adam" else None
        w, b, state = update(optimizer, lr, w, b, gw, gb, state, coeffs, sqrt)
        return w, b, loss

    return step
