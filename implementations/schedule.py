"""What every backend of a comparison shares before its first step: the order of the mini-batches
and the initial parameters, each one host-side draw.

``batch_schedule(n, B, T, seed)`` is the rows of each of ``T`` steps (one permutation per epoch, the
last batch of an epoch short, as ``DataLoader(shuffle=True, drop_last=False)``); ``init_params(d, seed,
scale, K)`` is ``(w0, b0)``. No backend uses its own library's RNG for either, so two backends given
the same seeds start from the same point and see the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def init_params(d: int, seed: int = 0, scale: float = 1.0, n_classes: int = 2):
    """One host draw ``w0 ~ scale * N(0, I_d)``, ``b0 ~ N(0, 1)``, shared by every backend.
    ``n_classes = K >= 3`` (softmax): ``W0 (d, K) ~ scale * N(0, 1)`` and ``b0 (K,) ~ N(0, 1)``."""
    rng = np.random.default_rng(seed)
    if n_classes >= 3:
        w0 = scale * rng.standard_normal((d, n_classes))
        return w0, rng.standard_normal(n_classes)
    w0 = scale * rng.standard_normal(d)
    b0 = float(rng.standard_normal())
    return w0, b0
