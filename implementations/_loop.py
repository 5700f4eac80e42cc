"""The eager gradient-descent loop, written once; a backend supplies only its step.

For ``t = 0 .. n_iters - 1``::

    data_t        = batch(t)              the rows S_t = schedule[t], gathered as the backend gathers them
                                          (inside the timed loop: a user's loop pays it), or ``full``
    w, b, loss_t  = step(*data_t, w, b, record_t)      record_t = (t mod record_every == 0)
    losses[t // record_every] = loss_t    only when record_t: a store into a buffer on the device,
                                          no host sync, no .item()

``step`` computes the loss at ``(w, b)`` (before its update) only when asked to, applies the update
and returns the new parameters; the loop never looks inside. ``losses[i]`` is therefore the loss of
step ``i * record_every``, as the contract says.

Backends whose loop is genuinely something else say so in their docstrings: ``jax`` (one
``lax.scan`` inside ``jit``), ``numba`` (the whole run inside one compiled kernel), ``torch-nn``
(the tutorial's ``for xb, yb in loader`` with ``optimizer.step()``), ``torch-compiled`` on full
batch (``K`` steps per compiled call).
"""

from __future__ import annotations


def gradient_descent(config, step, w, b, losses, full=None, batch=None):
    """Run ``config.n_iters`` steps from ``(w, b)``; return the final ``(w, b)``.

    ``full``: the arguments of every step (a tuple, e.g. ``(X, y)``) when ``batch`` is None;
    ``batch(t)``: step ``t``'s arguments (e.g. its gathered rows) for mini-batches."""
    every = config.record_every
    data = full
    for t in range(config.n_iters):
        record = t % every == 0
        if batch is not None:
            data = batch(t)
        w, b, loss = step(*data, w, b, record)
        if record:
            losses[t // every] = loss
    return w, b


def gather(take, X, y, indices, offsets):
    """``batch(t)`` for :func:`gradient_descent`: ``take(A, rows)`` of ``X`` and ``y`` at
    ``rows = indices[offsets[t]:offsets[t + 1]]`` (``indices`` on the device, ``offsets`` host ints)."""
    def batch(t):
        rows = indices[offsets[t]:offsets[t + 1]]
        return take(X, rows), take(y, rows)
    return batch
