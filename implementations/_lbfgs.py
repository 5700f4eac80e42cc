"""L-BFGS (``config.optimizer = "lbfgs"``): each library's own, written once per library here; the
backends call it from their ``run()``.

* NumPy (``numpy``): ``scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", options=dict(
  maxiter=n_iters, maxcor=10, gtol=0, ftol=0))`` on the backend's hand-derived loss and gradient (no
  bounds). **Its line search is scipy's own** (L-BFGS-B's ``dcsrch``, Moré–Thuente: it enforces the strong
  Wolfe conditions with its own constants and bracketing), not torch's ``_strong_wolfe``; the history is 10
  pairs as everywhere.
* PyTorch (``torch``, ``torch-nn``): ``torch.optim.LBFGS(params, lr=1, history_size=10, max_iter=n_iters,
  line_search_fn="strong_wolfe", tolerance_grad=0, tolerance_change=0, max_eval=25 * n_iters)`` and one
  ``.step(closure)``; ``max_eval`` is raised from its default ``1.25 max_iter`` so that ``n_iters`` counts
  iterations, not evaluations (each strong-Wolfe search may use up to 25).
* JAX (``jax``): ``optax.lbfgs(memory_size=10)`` (its zoom line search, strong Wolfe) inside one
  ``lax.scan`` in one ``jit``, with ``optax.value_and_grad_from_state`` so that the line search's last
  evaluation is reused; skipped with the reason where optax is not installed.

Every one: ``n_iters`` counts optimizer iterations; ``run()`` restarts from ``(w0, b0)`` with a fresh
optimizer (no state carried from the previous round); full batch only (mini-batch L-BFGS is refused in
``Trainer.unsupported``: a ``skipped`` row). ``losses[i]`` is the loss at iterate ``x_{i·record_every}``
(``x_0`` the start: "before that iteration's update", as the contract says for a step). The zero
tolerances mean the run stops early only when no progress is possible (scipy: the line search fails at
the optimum; torch: a zero step, a non-descent direction, or an unchanged loss); the remaining records
then repeat the last iterate's loss and time (the run has converged as far as the dtype allows).

What each backend records besides the losses (the row's ``evaluations`` and losses.csv ``time_s``):
``evaluations`` — loss-and-gradient evaluations used (initial point included); ``point_times_s`` — for
each recorded loss, the seconds from the start of ``run()`` until that iterate was known (iterations
are not equally expensive: a line search may evaluate once or many times); ``run_s`` — the whole run
as the trainer clocked it. torch: which evaluation is the iterate is not exposed by ``.step``; the
closure records every evaluation with the optimizer's iteration counter, and the iterate of iteration
``k`` is taken as the lowest loss its line search evaluated, which is the point strong Wolfe accepts
(it returns the low end of its bracket, the lowest point found). scipy: exact (its callback hands over
each iterate's loss). JAX: the whole loop is one compiled call, so no per-iteration time exists; its
points are timed as ``step × time per iteration`` like every other row.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .base import BackendUnavailableError

HISTORY = 10  # pairs of (s, y) kept, every library
MAX_LS = 25  # torch's strong-Wolfe default evaluations per line search


class Trace:
    """Per-iteration losses and times of one L-BFGS run (see the module docstring)."""

    def __init__(self, config):
        self.every, self.n_iters = config.record_every, config.n_iters
        self.t0 = time.perf_counter()
        self.loss: dict[int, float] = {}
        self.time: dict[int, float] = {}
        self.evaluations = 0
        self.iterations = 0  # iterations run (fewer than n_iters when it stopped: no progress possible)
        self.run_s = math.nan

    def evaluation(self, iteration: int, loss: float) -> None:
        """One evaluation made during iteration ``iteration`` (0: the starting point): the iterate is
        the lowest loss the iteration's line search found (what strong Wolfe accepts)."""
        self.evaluations += 1
        prev = self.loss.get(iteration)
        if prev is None or loss < prev or math.isnan(loss):
            self.loss[iteration] = loss
        self.time[iteration] = time.perf_counter() - self.t0

    def iterate(self, iteration: int, loss: float) -> None:
        """Iterate ``x_iteration`` is known, with its loss (scipy's callback)."""
        self.loss[iteration] = float(loss)
        self.time[iteration] = time.perf_counter() - self.t0

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """``(losses, point_times_s)`` of the recorded iterates ``0, every, 2 every, ... < n_iters``."""
        self.run_s = time.perf_counter() - self.t0
        last = self.iterations = max(self.loss) if self.loss else 0
        ks = [min(k, last) for k in range(0, self.n_iters, self.every)]
        losses = np.array([self.loss.get(k, math.nan) for k in ks], dtype=np.float64)
        times = np.array([self.time.get(k, math.nan) for k in ks], dtype=np.float64)
        return losses, times


def torch_options(config) -> dict:
    return dict(lr=1, history_size=HISTORY, max_iter=config.n_iters, max_eval=MAX_LS * config.n_iters,
                line_search_fn="strong_wolfe", tolerance_grad=0, tolerance_change=0)


def torch_lbfgs(params, loss_fn, config):
    """One ``torch.optim.LBFGS(...).step(closure)`` over ``params`` (leaf tensors, ``requires_grad``)
    from where they are; ``loss_fn()`` returns the loss to differentiate. Returns the :class:`Trace`."""
    import torch

    opt = torch.optim.LBFGS(params, **torch_options(config))
    state = opt.state[opt._params[0]]  # where LBFGS keeps n_iter (the same dict it fills)
    trace = Trace(config)

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        trace.evaluation(int(state.get("n_iter", 0)), float(loss.detach()))  # LBFGS calls float(loss) itself anyway
        return loss

    opt.step(closure)
    return trace


def scipy_lbfgs(loss_grad, x0: np.ndarray, config):
    """``scipy.optimize.minimize(method="L-BFGS-B")`` of ``loss_grad(x) -> (loss, grad)`` (float64
    flat vectors) from ``x0``. Returns ``(x, trace)``."""
    from scipy.optimize import minimize

    trace = Trace(config)
    count = {"it": 0}

    def fun(x):
        loss, grad = loss_grad(x)
        if trace.evaluations == 0:
            trace.iterate(0, loss)
        trace.evaluations += 1
        return loss, grad

    def callback(intermediate_result):  # scipy >= 1.11 hands over each iterate with its loss
        count["it"] += 1
        trace.iterate(count["it"], float(intermediate_result.fun))

    res = minimize(fun, x0, jac=True, method="L-BFGS-B", callback=callback,
                   options=dict(maxiter=config.n_iters, maxcor=HISTORY, gtol=0, ftol=0,
                                maxfun=max(15000, MAX_LS * config.n_iters)))
    return res.x, trace


def import_optax():
    try:
        import optax
    except ImportError:
        raise BackendUnavailableError("optimizer 'lbfgs' in backend 'jax' uses optax.lbfgs, and optax is not installed "
                                      "(pip install optax, or '.[jax]')") from None
    return optax


def make_optax_lbfgs(jax, optax, loss, config):
    """``train(X, y, w0, b0) -> (w, b, losses, evaluations)``: ``n_iters`` iterations of
    ``optax.lbfgs(memory_size=10)`` (zoom line search, strong Wolfe) in one ``lax.scan``."""
    jnp = jax.numpy
    every = config.record_every
    solver = optax.lbfgs(memory_size=HISTORY)

    def train(X, y, w0, b0):
        fun = lambda params: loss(params, X, y)  # noqa: E731
        value_and_grad = optax.value_and_grad_from_state(fun)
        params = (w0, b0)
        state = solver.init(params)

        def step(carry, _):
            params, state = carry
            value, grad = value_and_grad(params, state=state)
            updates, state = solver.update(grad, state, params, value=value, grad=grad, value_fn=fun)
            evals = optax.tree_utils.tree_get(state, "num_linesearch_steps")
            return (optax.apply_updates(params, updates), state), (value, evals)

        (params, _), (values, evals) = jax.lax.scan(step, (params, state), None, length=config.n_iters)
        return params[0], params[1], values[::every], 1 + jnp.sum(evals)

    return train
