"""``numba``: whole-run compiled kernels — the physical-limit reference.

Not a NumPy or torch contender: it shows how close to the hardware (one read of ``X`` per step on
large data, the cores' arithmetic on small data) this machine lets a step get. Same math as
``numpy`` (see its docstring), with mini-batches and the L2 penalty of the contract
(:mod:`implementations.base`). Per step, over the step's rows ``S`` (``m = |S|``), row by row while
the row is in L1::

    z_i = x_i . w + b            (d-term dot product, vectorised: reassociation allowed)
    r_i = sigmoid(z_i) - y_i
    g  += r_i x_i                (axpy into a private accumulator)
    w  -= lr (g / m + l2 w),  b -= lr sum(r) / m

**All ``n_iters`` steps run inside one compiled call** (as JAX's ``fori_loop`` does): no Python,
no dispatch between steps. Two kernels:

* ``serial``   when a step touches fewer than ``PARALLEL_MIN_ELEMENTS`` elements of ``X``: one
  thread, no parallel region to open and close each step.
* ``parallel`` above it: the same loop over steps, and inside each step a ``prange`` over the
  threads, each taking one static contiguous range of fixed blocks of ``ROWS_PER_BLOCK`` rows with
  one thread-private accumulator (allocated once per thread per step, zeroed per block), each block
  writing its own partial gradient; the partials are then summed in block order, so the bits do
  not depend on the thread count or timing. Both kernels use the same 4-row-unrolled ``accumulate``
  (the four dot products share each load of ``w``; ``acc`` is loaded and stored once per four rows).

The loss of a recorded step costs one ``log1p`` per row, not two or three: with ``e = exp(-z)``
(already computed for ``p``) and ``s = log(1 + e^-|z|)`` (``e``, or ``1/e`` for ``z < 0``),
``log p = -s`` and ``log(1 - p) = -s - z`` for ``z >= 0`` (``z - s`` and ``-s`` for ``z < 0``), and
``softplus(z) = max(z, 0) + s`` — exact identities, more accurate than ``log`` of a rounded ``p``.
Where ``p`` itself rounds to exactly 0 or 1, the ``probs`` loss keeps torch's clamped ``log(0) = -100``.
Transcendentals dominate a step on Iris (d = 4), so this matters there.

The only floating-point licence taken is reassociation/contraction (``fastmath={"reassoc",
"contract"}``), so NaN and inf still propagate and a diverging run is still reported.

Threads: the harness gives numba the same count as torch and the BLAS (``bench.timing.thread_parity``).
Every step of the parallel kernel ends in a barrier of all threads, so when another process holds a
core for a time slice the whole step waits for it: on a shared machine the parallel kernel is noisy.
It is therefore kept for data that one core cannot stream fast enough (``m d >= PARALLEL_MIN_ELEMENTS``,
16 MB of float32: beyond a core's L2), and everything smaller runs the serial whole-run kernel,
which has no barrier and no thread hand-off at all.

Softmax regression (``n_classes = K >= 3``; math in the ``numpy`` backend): two more whole-run
kernels of the same shape (serial, and the parallel one with per-block partials summed in block order),
row by row::

    z_k = b_k + x_i . W[:, k]      (K dot products of d terms)
    s   = sum_k e^{z_k - max z},  P_k = e^{z_k - max z} / s
    l_i = log s - (z_y - max z)  (logits)   or   -max(log P_y, -100)  (probs)
    G  += x_i (P - e_y)^T        (d x K rank-1 update),  g_b += P - e_y

with ``y`` as int64 labels, ``W (d, K)``, ``b (K,)`` and the update ``W -= lr (G/m + l2 W)``,
``b -= lr g_b / m``.

``momentum``, ``nesterov`` and ``adam``: four more whole-run kernels (serial and parallel, binary and
softmax), the same loops and sums with the update of :mod:`implementations._optim` written entry by
entry (``opt_param``); their state arrays are made zero by every ``run()``, and Adam's two per-step
scalars come in as host-computed tables. ``gd`` runs the kernels above, untouched.

The loop over steps lives inside the compiled kernels, not in :mod:`implementations._loop` (the
Python loop would cost more than a step on small data); the result tail is
:func:`implementations._reduce.mean_penalised`. Measurements: ``docs/performance.md``.
"""

from __future__ import annotations

import numpy as np

from ._reduce import mean_penalised
from .base import LOG_CLAMP, BackendUnavailableError, DeviceUnavailableError, Trainer

ROWS_PER_BLOCK = 2048
PARALLEL_MIN_ELEMENTS = 2**22  # m d below this: the serial kernel (see the module docstring)

_KERNELS = None
_SOFTMAX_KERNELS = None


def _build_opt_param(numba, fm):
    """One entry of one parameter under ``momentum`` (``kind`` 1), ``nesterov`` (2) or ``adam`` (3):
    :mod:`implementations._optim`'s update, element by element, state ``s[0, j]`` (the buffer, or Adam's
    ``m``) and ``s[1, j]`` (Adam's ``v``) updated in place; returns the new value of the entry."""

    @numba.njit(fastmath=fm, inline="always")
    def opt_param(kind, lr, p, g, s, j, size, bc2):
        dt = s.dtype.type
        if kind == 3:
            m = s[0, j] + dt(0.1) * (g - s[0, j])  # torch's lerp_(g, 1 - β1)
            v = dt(0.999) * s[1, j] + dt(0.001) * (g * g)
            s[0, j] = m
            s[1, j] = v
            return p - size * (m / (np.sqrt(v) / bc2 + dt(1e-8)))
        buf = dt(0.9) * s[0, j] + g
        s[0, j] = buf
        if kind == 2:
            return p - lr * (g + dt(0.9) * buf)
        return p - lr * buf

    return opt_param


def _build_softmax_kernels():
    import numba

    fm = {"reassoc", "contract"}

    @numba.njit(fastmath=fm, inline="always")
    def accumulate(X, y, W, b, idx, full, lo, hi, logits, record, acc, gb, z):
        """Rows ``lo:hi`` of the step: add ``x_i (P_i - e_{y_i})^T`` to ``acc (d, K)`` and ``P_i - e_{y_i}``
        to ``gb (K,)``; return the sum of the rows' losses (0 unless ``record``). ``z``: a ``(K,)`` buffer."""
        d, K = W.shape
        zero = X.dtype.type(0)
        clamp = X.dtype.type(LOG_CLAMP)
        ls = zero
        for q in range(lo, hi):
            i = q if full else idx[q]
            for k in range(K):
                z[k] = b[k]
            for j in range(d):
                xij = X[i, j]
                for k in range(K):
                    z[k] += xij * W[j, k]
            zmax = z[0]
            for k in range(1, K):
                zmax = max(zmax, z[k])
            yi = y[i]
            zy = z[yi] - zmax
            s = zero
            for k in range(K):
                z[k] = np.exp(z[k] - zmax)  # now e^{z - max}
                s += z[k]
            if record:
                if logits:
                    ls += np.log(s) - zy  # logsumexp(z) - z_y
                else:
                    ls -= max(np.log(z[yi] / s), clamp)
            for k in range(K):
                z[k] = z[k] / s  # P
            z[yi] -= X.dtype.type(1)  # P - e_y
            for k in range(K):
                gb[k] += z[k]
            for j in range(d):
                xij = X[i, j]
                for k in range(K):
                    acc[j, k] += xij * z[k]
        return ls

    @numba.njit(fastmath=fm, inline="always")
    def update(W, b, acc, gb, ls, m, lr, l2, record):
        dt = W.dtype.type
        inv_m = dt(1) / dt(m)
        loss = dt(0)
        if record:
            sq = dt(0)
            for j in range(W.shape[0]):
                for k in range(W.shape[1]):
                    sq += W[j, k] * W[j, k]
            loss = ls * inv_m + dt(0.5) * l2 * sq
        for j in range(W.shape[0]):
            for k in range(W.shape[1]):
                W[j, k] -= lr * (acc[j, k] * inv_m + l2 * W[j, k])
        for k in range(W.shape[1]):
            b[k] -= lr * (gb[k] * inv_m)
        return loss

    @numba.njit(fastmath=fm, cache=True)
    def run_serial(X, y, W, b, lr, l2, n_iters, record_every, logits, idx, offsets, full, losses):
        n = X.shape[0]
        d, K = W.shape
        acc = np.empty((d, K), X.dtype)
        gb = np.empty(K, X.dtype)
        z = np.empty(K, X.dtype)
        for t in range(n_iters):
            lo, hi = (0, n) if full else (offsets[t], offsets[t + 1])
            record = t % record_every == 0
            acc[:] = 0
            gb[:] = 0
            ls = accumulate(X, y, W, b, idx, full, lo, hi, logits, record, acc, gb, z)
            loss = update(W, b, acc, gb, ls, hi - lo, lr, l2, record)
            if record:
                losses[t // record_every] = loss

    @numba.njit(fastmath=fm, cache=True, parallel=True)
    def run_parallel(X, y, W, b, lr, l2, n_iters, record_every, logits, idx, offsets, full, losses,
                     rows, gw_parts, gb_parts, loss_parts, threads):
        n = X.shape[0]
        d, K = W.shape
        total = np.empty((d, K), X.dtype)
        gb = np.empty(K, X.dtype)
        for t in range(n_iters):
            lo, hi = (0, n) if full else (offsets[t], offsets[t + 1])
            record = t % record_every == 0
            nblocks = (hi - lo + rows - 1) // rows
            nthr = max(1, min(threads, nblocks))
            for c in numba.prange(nthr):
                z = np.empty(K, X.dtype)
                for k in range(nblocks * c // nthr, nblocks * (c + 1) // nthr):
                    gw_parts[k] = 0
                    gb_parts[k] = 0
                    s = lo + k * rows
                    loss_parts[k] = accumulate(X, y, W, b, idx, full, s, min(hi, s + rows), logits, record,
                                               gw_parts[k], gb_parts[k], z)
            total[:] = 0
            gb[:] = 0
            ls = X.dtype.type(0)
            for k in range(nblocks):  # fixed order: same bits whatever the threads did
                total += gw_parts[k]
                gb += gb_parts[k]
                ls += loss_parts[k]
            loss = update(W, b, total, gb, ls, hi - lo, lr, l2, record)
            if record:
                losses[t // record_every] = loss

    @numba.njit(fastmath=fm, cache=True)
    def loss_grad(X, y, W, b, logits, gw, gb):
        idx = np.empty(0, np.int64)
        gw[:] = 0
        gb[:] = 0
        z = np.empty(W.shape[1], X.dtype)
        return accumulate(X, y, W, b, idx, True, 0, X.shape[0], logits, True, gw, gb, z)

    # -- momentum, nesterov, adam: the same loops, the update of implementations._optim -------------
    opt_param = _build_opt_param(numba, fm)

    @numba.njit(fastmath=fm, inline="always")
    def opt_update(W, b, acc, gb, ls, m, lr, l2, record, kind, size, bc2, sW, sb):
        dt = W.dtype.type
        inv_m = dt(1) / dt(m)
        loss = dt(0)
        if record:
            sq = dt(0)
            for j in range(W.shape[0]):
                for k in range(W.shape[1]):
                    sq += W[j, k] * W[j, k]
            loss = ls * inv_m + dt(0.5) * l2 * sq
        K = W.shape[1]
        for j in range(W.shape[0]):
            for k in range(K):
                W[j, k] = opt_param(kind, lr, W[j, k], acc[j, k] * inv_m + l2 * W[j, k], sW, j * K + k, size, bc2)
        for k in range(K):
            b[k] = opt_param(kind, lr, b[k], gb[k] * inv_m, sb, k, size, bc2)
        return loss

    @numba.njit(fastmath=fm, cache=True)
    def run_serial_opt(X, y, W, b, lr, l2, n_iters, record_every, logits, idx, offsets, full, losses,
                       kind, sizes, bc2s, sW, sb):
        n = X.shape[0]
        d, K = W.shape
        acc = np.empty((d, K), X.dtype)
        gb = np.empty(K, X.dtype)
        z = np.empty(K, X.dtype)
        for t in range(n_iters):
            lo, hi = (0, n) if full else (offsets[t], offsets[t + 1])
            record = t % record_every == 0
            acc[:] = 0
            gb[:] = 0
            ls = accumulate(X, y, W, b, idx, full, lo, hi, logits, record, acc, gb, z)
            loss = opt_update(W, b, acc, gb, ls, hi - lo, lr, l2, record, kind, sizes[t], bc2s[t], sW, sb)
            if record:
                losses[t // record_every] = loss

    @numba.njit(fastmath=fm, cache=True, parallel=True)
    def run_parallel_opt(X, y, W, b, lr, l2, n_iters, record_every, logits, idx, offsets, full, losses,
                         rows, gw_parts, gb_parts, loss_parts, threads, kind, sizes, bc2s, sW, sb):
        n = X.shape[0]
        d, K = W.shape
        total = np.empty((d, K), X.dtype)
        gb = np.empty(K, X.dtype)
        for t in range(n_iters):
            lo, hi = (0, n) if full else (offsets[t], offsets[t + 1])
            record = t % record_every == 0
            nblocks = (hi - lo + rows - 1) // rows
            nthr = max(1, min(threads, nblocks))
            for c in numba.prange(nthr):
                z = np.empty(K, X.dtype)
                for k in range(nblocks * c // nthr, nblocks * (c + 1) // nthr):
                    gw_parts[k] = 0
                    gb_parts[k] = 0
                    s = lo + k * rows
                    loss_parts[k] = accumulate(X, y, W, b, idx, full, s, min(hi, s + rows), logits, record,
                                               gw_parts[k], gb_parts[k], z)
            total[:] = 0
            gb[:] = 0
            ls = X.dtype.type(0)
            for k in range(nblocks):  # fixed order: same bits whatever the threads did
                total += gw_parts[k]
                gb += gb_parts[k]
                ls += loss_parts[k]
            loss = opt_update(W, b, total, gb, ls, hi - lo, lr, l2, record, kind, sizes[t], bc2s[t], sW, sb)
            if record:
                losses[t // record_every] = loss

    return run_serial, run_parallel, loss_grad, run_serial_opt, run_parallel_opt


def _softmax_kernels():
    global _SOFTMAX_KERNELS
    if _SOFTMAX_KERNELS is None:
        _SOFTMAX_KERNELS = _build_softmax_kernels()
    return _SOFTMAX_KERNELS


def _build_kernels():
    import numba

    fm = {"reassoc", "contract"}

    @numba.njit(fastmath=fm, inline="always")
    def accumulate(X, y, w, b, idx, full, lo, hi, logits, record, acc):
        """Rows ``lo:hi`` of the step (positions in ``idx`` unless ``full``): add ``r_i x_i`` to
        ``acc``; return ``(sum r_i, sum l_i or 0)``. Four rows at a time: the four dot products
        share each load of ``w``, and ``acc`` is loaded and stored once per four rows, not per row."""
        d = X.shape[1]
        one = X.dtype.type(1)  # keep float32 math in float32 (a 1.0 literal would promote to float64)
        zero = X.dtype.type(0)
        clamp = X.dtype.type(LOG_CLAMP)
        gb = zero
        ls = zero
        zs = np.empty(4, X.dtype)
        rs = np.empty(4, X.dtype)
        q = lo
        while q < hi:
            c = min(4, hi - q)
            i0 = q if full else idx[q]
            i1 = (q + 1 if full else idx[q + 1]) if c > 1 else i0
            i2 = (q + 2 if full else idx[q + 2]) if c > 2 else i0
            i3 = (q + 3 if full else idx[q + 3]) if c > 3 else i0
            z0 = b
            z1 = b
            z2 = b
            z3 = b
            for j in range(d):
                wj = w[j]
                z0 += X[i0, j] * wj
                z1 += X[i1, j] * wj
                z2 += X[i2, j] * wj
                z3 += X[i3, j] * wj
            zs[0] = z0
            zs[1] = z1
            zs[2] = z2
            zs[3] = z3
            for k in range(4):
                if k < c:
                    ik = i0 if k == 0 else (i1 if k == 1 else (i2 if k == 2 else i3))
                    z = zs[k]
                    e = np.exp(-z)
                    p = one / (one + e)
                    r = p - y[ik]
                    rs[k] = r
                    gb += r
                    if record:  # one log1p per row, reusing e (see the module docstring)
                        soft = np.log1p(e if z >= zero else one / e)  # log(1 + e^-|z|)
                        if logits:
                            ls += max(z, zero) + soft - y[ik] * z
                        else:
                            lp = -soft if z >= zero else z - soft  # log p
                            lq = -soft - z if z >= zero else -soft  # log(1 - p)
                            if p == one:  # p rounded to 1: torch's log(0), clamped
                                lq = clamp
                            if p == zero:
                                lp = clamp
                            ls -= y[ik] * max(lp, clamp) + (one - y[ik]) * max(lq, clamp)
                else:
                    rs[k] = zero  # padding rows repeat row i0 with a zero weight
            r0 = rs[0]
            r1 = rs[1]
            r2 = rs[2]
            r3 = rs[3]
            for j in range(d):
                acc[j] += (r0 * X[i0, j] + r1 * X[i1, j]) + (r2 * X[i2, j] + r3 * X[i3, j])
            q += c
        return gb, ls

    @numba.njit(fastmath=fm, inline="always")
    def update(w, b, acc, gb, ls, m, lr, l2, record):
        """Penalised loss at ``(w, b)`` (if ``record``) and the step ``w -= lr (acc/m + l2 w)``."""
        dt = w.dtype.type
        inv_m = dt(1) / dt(m)
        half_l2 = dt(0.5) * l2
        loss = dt(0)
        if record:
            sq = dt(0)
            for j in range(w.shape[0]):
                sq += w[j] * w[j]
            loss = ls * inv_m + half_l2 * sq
        for j in range(w.shape[0]):
            w[j] -= lr * (acc[j] * inv_m + l2 * w[j])
        return b - lr * (gb * inv_m), loss

    @numba.njit(fastmath=fm, cache=True)
    def run_serial(X, y, w, b, lr, l2, n_iters, record_every, logits, idx, offsets, full, losses):
        n, d = X.shape
        acc = np.empty(d, X.dtype)
        for t in range(n_iters):
            lo, hi = (0, n) if full else (offsets[t], offsets[t + 1])
            record = t % record_every == 0
            acc[:] = 0
            gb, ls = accumulate(X, y, w, b, idx, full, lo, hi, logits, record, acc)
            b, loss = update(w, b, acc, gb, ls, hi - lo, lr, l2, record)
            if record:
                losses[t // record_every] = loss
        return b

    @numba.njit(fastmath=fm, cache=True, parallel=True)
    def run_parallel(X, y, w, b, lr, l2, n_iters, record_every, logits, idx, offsets, full, losses,
                     rows, gw_parts, gb_parts, loss_parts, threads):
        n, d = X.shape
        total = np.empty(d, X.dtype)
        for t in range(n_iters):
            lo, hi = (0, n) if full else (offsets[t], offsets[t + 1])
            record = t % record_every == 0
            nblocks = (hi - lo + rows - 1) // rows
            nthr = max(1, min(threads, nblocks))  # numba's thread count, passed in (cache=True refuses its global)
            for c in numba.prange(nthr):  # one static range of whole blocks per thread
                acc = np.empty(d, X.dtype)  # thread-private: provably unaliased, so the axpy vectorises
                for k in range(nblocks * c // nthr, nblocks * (c + 1) // nthr):
                    acc[:] = 0
                    s = lo + k * rows
                    gb_parts[k], loss_parts[k] = accumulate(X, y, w, b, idx, full, s, min(hi, s + rows),
                                                            logits, record, acc)
                    gw_parts[k] = acc
            total[:] = 0
            gb = X.dtype.type(0)
            ls = X.dtype.type(0)
            for k in range(nblocks):  # fixed order: same bits whatever the threads did
                for j in range(d):
                    total[j] += gw_parts[k, j]
                gb += gb_parts[k]
                ls += loss_parts[k]
            b, loss = update(w, b, total, gb, ls, hi - lo, lr, l2, record)
            if record:
                losses[t // record_every] = loss
        return b

    @numba.njit(fastmath=fm, cache=True)
    def loss_grad(X, y, w, b, logits, gw):
        idx = np.empty(0, np.int64)
        gw[:] = 0
        return accumulate(X, y, w, b, idx, True, 0, X.shape[0], logits, True, gw)

    # -- momentum, nesterov, adam: the same loops, the update of implementations._optim -------------
    opt_param = _build_opt_param(numba, fm)

    @numba.njit(fastmath=fm, inline="always")
    def opt_update(w, b, acc, gb, ls, m, lr, l2, record, kind, size, bc2, sw, sb):
        dt = w.dtype.type
        inv_m = dt(1) / dt(m)
        loss = dt(0)
        if record:
            sq = dt(0)
            for j in range(w.shape[0]):
                sq += w[j] * w[j]
            loss = ls * inv_m + dt(0.5) * l2 * sq
        for j in range(w.shape[0]):
            w[j] = opt_param(kind, lr, w[j], acc[j] * inv_m + l2 * w[j], sw, j, size, bc2)
        return opt_param(kind, lr, b, gb * inv_m, sb, 0, size, bc2), loss

    @numba.njit(fastmath=fm, cache=True)
    def run_serial_opt(X, y, w, b, lr, l2, n_iters, record_every, logits, idx, offsets, full, losses,
                       kind, sizes, bc2s, sw, sb):
        n, d = X.shape
        acc = np.empty(d, X.dtype)
        for t in range(n_iters):
            lo, hi = (0, n) if full else (offsets[t], offsets[t + 1])
            record = t % record_every == 0
            acc[:] = 0
            gb, ls = accumulate(X, y, w, b, idx, full, lo, hi, logits, record, acc)
            b, loss = opt_update(w, b, acc, gb, ls, hi - lo, lr, l2, record, kind, sizes[t], bc2s[t], sw, sb)
            if record:
                losses[t // record_every] = loss
        return b

    @numba.njit(fastmath=fm, cache=True, parallel=True)
    def run_parallel_opt(X, y, w, b, lr, l2, n_iters, record_every, logits, idx, offsets, full, losses,
                         rows, gw_parts, gb_parts, loss_parts, threads, kind, sizes, bc2s, sw, sb):
        n, d = X.shape
        total = np.empty(d, X.dtype)
        for t in range(n_iters):
            lo, hi = (0, n) if full else (offsets[t], offsets[t + 1])
            record = t % record_every == 0
            nblocks = (hi - lo + rows - 1) // rows
            nthr = max(1, min(threads, nblocks))
            for c in numba.prange(nthr):
                acc = np.empty(d, X.dtype)
                for k in range(nblocks * c // nthr, nblocks * (c + 1) // nthr):
                    acc[:] = 0
                    s = lo + k * rows
                    gb_parts[k], loss_parts[k] = accumulate(X, y, w, b, idx, full, s, min(hi, s + rows),
                                                            logits, record, acc)
                    gw_parts[k] = acc
            total[:] = 0
            gb = X.dtype.type(0)
            ls = X.dtype.type(0)
            for k in range(nblocks):  # fixed order: same bits whatever the threads did
                for j in range(d):
                    total[j] += gw_parts[k, j]
                gb += gb_parts[k]
                ls += loss_parts[k]
            b, loss = opt_update(w, b, total, gb, ls, hi - lo, lr, l2, record, kind, sizes[t], bc2s[t], sw, sb)
            if record:
                losses[t // record_every] = loss
        return b

    return run_serial, run_parallel, loss_grad, run_serial_opt, run_parallel_opt


def _kernels():
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = _build_kernels()
    return _KERNELS


class NumbaTrainer(Trainer):
    name = "numba"
    library = "numba"
    gradient = "hand-derived"
    engine = "numba"
    compiled = True
    style = "whole run in one compiled call"
    supports_multiclass = True
    optimizers = ("gd", "momentum", "nesterov", "adam")  # the non-gd ones in their own whole-run kernels

    def _opt_args(self, W, b):
        """The extra kernel arguments of ``momentum`` (1), ``nesterov`` (2), ``adam`` (3): ``kind``, Adam's
        per-step host scalars (:func:`implementations._optim.adam_coefficient_table`) and zero state
        ``(2, size of W)``, ``(2, size of b)`` made here, so every run starts from zero buffers."""
        from ._optim import adam_coefficient_table

        cfg, dt = self.config, self.X.dtype
        kind = {"momentum": 1, "nesterov": 2, "adam": 3}[cfg.optimizer]
        sizes, bc2s = adam_coefficient_table(cfg.lr, cfg.n_iters, dt)
        return (kind, sizes, bc2s, np.zeros((2, W.size), dt), np.zeros((2, np.size(b)), dt))

    def __init__(self, config):
        super().__init__(config)
        if config.device != "cpu":
            raise DeviceUnavailableError(f"device {config.device!r}: the numba backend runs on 'cpu' only")
        try:
            import numba  # noqa: F401
        except ImportError:
            raise BackendUnavailableError("the numba backend needs numba, which is not installed (pip install '.[numba]')") from None

    def _prepare(self, X, y, w0, b0):
        dt = np.dtype(self.config.dtype)
        self.X = np.ascontiguousarray(X, dtype=dt)
        self.y = np.ascontiguousarray(y, dtype=np.int64 if self.k >= 3 else dt)  # K classes: int labels
        self.w0, self.b0 = w0.astype(dt), (np.ascontiguousarray(b0, dtype=dt) if self.k >= 3 else dt.type(b0))
        if self.schedule is None:
            self._idx, self._offsets, m = np.empty(0, np.int64), np.zeros(1, np.int64), self.n
        else:
            self._idx, self._offsets, m = self.schedule.indices, self.schedule.offsets, self.schedule.batch_size
        self.parallel = m * self.d >= PARALLEL_MIN_ELEMENTS
        nblocks = -(-m // ROWS_PER_BLOCK)
        self._gw_parts = np.empty((nblocks, self.d) + ((self.k,) if self.k >= 3 else ()), dt)
        self._gb_parts = np.empty((nblocks, self.k) if self.k >= 3 else nblocks, dt)
        self._loss_parts = np.empty(nblocks, dt)

    def _run_softmax(self):
        cfg, dt = self.config, self.X.dtype
        run_serial, run_parallel, _, run_serial_opt, run_parallel_opt = _softmax_kernels()
        W, b = self.w0.copy(), self.b0.copy()  # C-contiguous copies: the kernel updates them in place
        losses = np.empty(cfg.n_records, dt)
        args = (self.X, self.y, W, b, dt.type(cfg.lr), dt.type(cfg.l2), cfg.n_iters, cfg.record_every,
                cfg.formulation == "logits", self._idx, self._offsets, self.schedule is None, losses)
        opt = () if cfg.optimizer == "gd" else self._opt_args(W, b)
        if self.parallel:
            import numba

            (run_parallel_opt if opt else run_parallel)(*args, ROWS_PER_BLOCK, self._gw_parts, self._gb_parts,
                                                        self._loss_parts, numba.get_num_threads(), *opt)
        else:
            (run_serial_opt if opt else run_serial)(*args, *opt)
        self._out = W, b, losses

    def _run(self):
        if self.k >= 3:
            return self._run_softmax()
        cfg, dt = self.config, self.X.dtype
        run_serial, run_parallel, _, run_serial_opt, run_parallel_opt = _kernels()
        w = self.w0.copy()
        losses = np.empty(cfg.n_records, dt)
        args = (self.X, self.y, w, self.b0, dt.type(cfg.lr), dt.type(cfg.l2), cfg.n_iters, cfg.record_every,
                cfg.formulation == "logits", self._idx, self._offsets, self.schedule is None, losses)
        opt = () if cfg.optimizer == "gd" else self._opt_args(w, self.b0)
        if self.parallel:
            import numba

            b = (run_parallel_opt if opt else run_parallel)(*args, ROWS_PER_BLOCK, self._gw_parts, self._gb_parts,
                                                            self._loss_parts, numba.get_num_threads(), *opt)
        else:
            b = (run_serial_opt if opt else run_serial)(*args, *opt)
        self._out = w, b, losses

    def _result(self):
        return self._out

    def _loss_and_grad(self, w, b):
        dt = self.X.dtype
        w = w.astype(dt)
        if self.k >= 3:
            gw, gb = np.empty((self.d, self.k), dt), np.empty(self.k, dt)
            loss = _softmax_kernels()[2](self.X, self.y, np.ascontiguousarray(w), b.astype(dt),
                                         self.config.formulation == "logits", gw, gb)
            return mean_penalised(loss, gw, gb, self.n, w, self.config.l2)
        gw = np.empty(self.d, dt)
        gb, loss = _kernels()[2](self.X, self.y, w, dt.type(b), self.config.formulation == "logits", gw)
        return mean_penalised(loss, gw, gb, self.n, w, self.config.l2)
