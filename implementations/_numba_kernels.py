"""The ``numba`` backend's compiled kernels (math and design: :mod:`implementations.numba_backend`).

At module level, not built inside a function: a kernel that calls another through a closure gets a
different ``cache=True`` key in every process (the closure is part of it), so each process compiled
every kernel again and added files to ``__pycache__`` (287 of them, 24 MB, seen after a test session);
as globals they are compiled once per machine and read back from the cache by every later process.
numba's cache is invalidated when *this* file changes; ``LOG_CLAMP`` from ``base`` is frozen into the
cached code (it has been -100, torch's clamp, since the seed).

Imported lazily (by ``numba_backend._kernels``): importing numba costs seconds.
"""

from __future__ import annotations

import numba
import numpy as np

from .base import LOG_CLAMP

FM = {"reassoc", "contract"}  # the only floating-point licence taken: reassociation, contraction


# One entry of one parameter under plain gradient descent (``kind`` 0: ``p - lr g``, no state),
# ``momentum`` (1), ``nesterov`` (2) or ``adam`` (3): :mod:`implementations._optim`'s update, element
# by element, state ``s[0, j]`` (the buffer, or Adam's ``m``) and ``s[1, j]`` (Adam's ``v``) updated in
# place; returns the new value of the entry.
@numba.njit(fastmath=FM, inline="always")
def opt_param(kind, lr, p, g, s, j, size, bc2):
    if kind == 0:
        return p - lr * g
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


# -- binary (sigmoid) kernels ----------------------------------------------------------------

@numba.njit(fastmath=FM, inline="always")
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

@numba.njit(fastmath=FM, cache=True)
def loss_grad(X, y, w, b, logits, gw):
    idx = np.empty(0, np.int64)
    gw[:] = 0
    return accumulate(X, y, w, b, idx, True, 0, X.shape[0], logits, True, gw)

# -- the whole runs: gd (kind 0), momentum, nesterov, adam through opt_param -------------------

@numba.njit(fastmath=FM, inline="always")
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

@numba.njit(fastmath=FM, cache=True)
def run_serial(X, y, w, b, lr, l2, n_iters, record_every, logits, idx, offsets, full, losses,
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

@numba.njit(fastmath=FM, cache=True, parallel=True)
def run_parallel(X, y, w, b, lr, l2, n_iters, record_every, logits, idx, offsets, full, losses,
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


# -- softmax (K >= 3) kernels -------------------------------------------------------------------

@numba.njit(fastmath=FM, inline="always")
def softmax_accumulate(X, y, W, b, idx, full, lo, hi, logits, record, acc, gb, z):
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

@numba.njit(fastmath=FM, cache=True)
def softmax_loss_grad(X, y, W, b, logits, gw, gb):
    idx = np.empty(0, np.int64)
    gw[:] = 0
    gb[:] = 0
    z = np.empty(W.shape[1], X.dtype)
    return softmax_accumulate(X, y, W, b, idx, True, 0, X.shape[0], logits, True, gw, gb, z)

# -- the whole runs: gd (kind 0), momentum, nesterov, adam through opt_param -------------------

@numba.njit(fastmath=FM, inline="always")
def softmax_opt_update(W, b, acc, gb, ls, m, lr, l2, record, kind, size, bc2, sW, sb):
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

@numba.njit(fastmath=FM, cache=True)
def softmax_run_serial(X, y, W, b, lr, l2, n_iters, record_every, logits, idx, offsets, full, losses,
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
        ls = softmax_accumulate(X, y, W, b, idx, full, lo, hi, logits, record, acc, gb, z)
        loss = softmax_opt_update(W, b, acc, gb, ls, hi - lo, lr, l2, record, kind, sizes[t], bc2s[t], sW, sb)
        if record:
            losses[t // record_every] = loss

@numba.njit(fastmath=FM, cache=True, parallel=True)
def softmax_run_parallel(X, y, W, b, lr, l2, n_iters, record_every, logits, idx, offsets, full, losses,
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
                loss_parts[k] = softmax_accumulate(X, y, W, b, idx, full, s, min(hi, s + rows), logits, record,
                                           gw_parts[k], gb_parts[k], z)
        total[:] = 0
        gb[:] = 0
        ls = X.dtype.type(0)
        for k in range(nblocks):  # fixed order: same bits whatever the threads did
            total += gw_parts[k]
            gb += gb_parts[k]
            ls += loss_parts[k]
        loss = softmax_opt_update(W, b, total, gb, ls, hi - lo, lr, l2, record, kind, sizes[t], bc2s[t], sW, sb)
        if record:
            losses[t // record_every] = loss


# -- a sparse X: CSR kernels ------------------------------------------------------------------------
# X as CSR (indptr, indices, data) and its transpose as CSR (tptr, tind, tdat), made once in prepare.
# Full batch: prange over the rows for z = X w + b and r = p - y (one row each, no shared writes), then
# prange over the features for g = X^T r on the transpose (one feature each): every entry is one dot
# product in CSR order, so the bits do not depend on the thread count. A mini-batch runs on one thread,
# row by row (z_i, r_i, then g[indices] += r_i x_i while the row is in L1).

@numba.njit(fastmath=FM, inline="always")
def row_terms(z, yi, logits, record, one):
    """``(r_i, l_i)`` of one row at ``z``: ``p - y`` and its loss (0 unless ``record``), as ``accumulate``;
    ``one`` is 1 in the run's dtype (float32 math stays float32)."""
    zero = one - one
    clamp = one * LOG_CLAMP
    e = np.exp(-z)
    p = one / (one + e)
    ls = zero
    if record:
        soft = np.log1p(e if z >= zero else one / e)  # log(1 + e^-|z|)
        if logits:
            ls = max(z, zero) + soft - yi * z
        else:
            lp = -soft if z >= zero else z - soft
            lq = -soft - z if z >= zero else -soft
            if p == one:
                lq = clamp
            if p == zero:
                lp = clamp
            ls = -(yi * max(lp, clamp) + (one - yi) * max(lq, clamp))
    return p - yi, ls


@numba.njit(fastmath=FM, cache=True)
def csr_loss_grad(indptr, indices, data, y, w, b, logits, gw):
    """Sums over all rows (one thread): fills ``gw`` with ``X^T (p - y)``; returns ``(sum r, sum l)``."""
    gw[:] = 0
    gb = w.dtype.type(0)
    ls = w.dtype.type(0)
    for i in range(indptr.size - 1):
        z = b
        for q in range(indptr[i], indptr[i + 1]):
            z += data[q] * w[indices[q]]
        r, row_loss = row_terms(z, y[i], logits, True, w.dtype.type(1))
        gb += r
        ls += row_loss
        for q in range(indptr[i], indptr[i + 1]):
            gw[indices[q]] += r * data[q]
    return gb, ls


@numba.njit(fastmath=FM, cache=True, parallel=True)
def csr_run(indptr, indices, data, tptr, tind, tdat, y, w, b, lr, l2, n_iters, record_every, logits,
            idx, offsets, full, losses, rs, ls_rows, kind, sizes, bc2s, sw, sb):
    n = indptr.size - 1
    d = w.shape[0]
    g = np.empty(d, w.dtype)
    for t in range(n_iters):
        record = t % record_every == 0
        gb = w.dtype.type(0)
        ls = w.dtype.type(0)
        if full:
            for i in numba.prange(n):
                z = b
                for q in range(indptr[i], indptr[i + 1]):
                    z += data[q] * w[indices[q]]
                rs[i], ls_rows[i] = row_terms(z, y[i], logits, record, w.dtype.type(1))
            for i in range(n):  # in row order: same bits whatever the threads
                gb += rs[i]
                ls += ls_rows[i]
            for j in numba.prange(d):
                s = w.dtype.type(0)
                for q in range(tptr[j], tptr[j + 1]):
                    s += tdat[q] * rs[tind[q]]
                g[j] = s
            m = n
        else:
            g[:] = 0
            for q0 in range(offsets[t], offsets[t + 1]):
                i = idx[q0]
                z = b
                for q in range(indptr[i], indptr[i + 1]):
                    z += data[q] * w[indices[q]]
                r, row_loss = row_terms(z, y[i], logits, record, w.dtype.type(1))
                gb += r
                ls += row_loss
                for q in range(indptr[i], indptr[i + 1]):
                    g[indices[q]] += r * data[q]
            m = offsets[t + 1] - offsets[t]
        b, loss = opt_update(w, b, g, gb, ls, m, lr, l2, record, kind, sizes[t], bc2s[t], sw, sb)
        if record:
            losses[t // record_every] = loss
    return b


@numba.njit(fastmath=FM, inline="always")
def softmax_row(z, yi, logits, record):
    """In place: ``z`` (the row's logits) becomes ``P - e_y``; returns the row's loss (0 unless ``record``)."""
    K = z.size
    zmax = z[0]
    for k in range(1, K):
        zmax = max(zmax, z[k])
    zy = z[yi] - zmax
    s = z.dtype.type(0)
    for k in range(K):
        z[k] = np.exp(z[k] - zmax)
        s += z[k]
    loss = z.dtype.type(0)
    if record:
        if logits:
            loss = np.log(s) - zy
        else:
            loss = -max(np.log(z[yi] / s), z.dtype.type(LOG_CLAMP))
    for k in range(K):
        z[k] = z[k] / s
    z[yi] -= z.dtype.type(1)
    return loss


@numba.njit(fastmath=FM, inline="always")
def softmax_csr_row(indptr, indices, data, W, b, i, z):
    for k in range(z.size):
        z[k] = b[k]
    for q in range(indptr[i], indptr[i + 1]):
        x = data[q]
        j = indices[q]
        for k in range(z.size):
            z[k] += x * W[j, k]


@numba.njit(fastmath=FM, cache=True)
def softmax_csr_loss_grad(indptr, indices, data, y, W, b, logits, gw, gb):
    gw[:] = 0
    gb[:] = 0
    z = np.empty(W.shape[1], W.dtype)
    ls = W.dtype.type(0)
    for i in range(indptr.size - 1):
        softmax_csr_row(indptr, indices, data, W, b, i, z)
        ls += softmax_row(z, y[i], logits, True)
        for k in range(z.size):
            gb[k] += z[k]
        for q in range(indptr[i], indptr[i + 1]):
            for k in range(z.size):
                gw[indices[q], k] += data[q] * z[k]
    return ls


@numba.njit(fastmath=FM, cache=True, parallel=True)
def softmax_csr_run(indptr, indices, data, tptr, tind, tdat, y, W, b, lr, l2, n_iters, record_every, logits,
                    idx, offsets, full, losses, R, ls_rows, kind, sizes, bc2s, sW, sb):
    n = indptr.size - 1
    d, K = W.shape
    G = np.empty((d, K), W.dtype)
    gb = np.empty(K, W.dtype)
    z = np.empty(K, W.dtype)
    for t in range(n_iters):
        record = t % record_every == 0
        gb[:] = 0
        ls = W.dtype.type(0)
        if full:
            for i in numba.prange(n):
                softmax_csr_row(indptr, indices, data, W, b, i, R[i])
                ls_rows[i] = softmax_row(R[i], y[i], logits, record)
            for i in range(n):  # in row order: same bits whatever the threads
                for k in range(K):
                    gb[k] += R[i, k]
                ls += ls_rows[i]
            for j in numba.prange(d):
                for k in range(K):
                    G[j, k] = 0
                for q in range(tptr[j], tptr[j + 1]):
                    x = tdat[q]
                    row = tind[q]
                    for k in range(K):
                        G[j, k] += x * R[row, k]
            m = n
        else:
            G[:] = 0
            for q0 in range(offsets[t], offsets[t + 1]):
                i = idx[q0]
                softmax_csr_row(indptr, indices, data, W, b, i, z)
                ls += softmax_row(z, y[i], logits, record)
                for k in range(K):
                    gb[k] += z[k]
                for q in range(indptr[i], indptr[i + 1]):
                    for k in range(K):
                        G[indices[q], k] += data[q] * z[k]
            m = offsets[t + 1] - offsets[t]
        loss = softmax_opt_update(W, b, G, gb, ls, m, lr, l2, record, kind, sizes[t], bc2s[t], sW, sb)
        if record:
            losses[t // record_every] = loss
