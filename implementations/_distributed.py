"""What the two data-parallel backends (``torch-ddp``, ``numpy-dask``) share: row shards, each
shard's slice of the batch schedule, the collective timeout, and a small pool of warm process
groups / clusters so that a test suite does not pay a start-up per trainer.

Shards. ``workers`` shards of consecutive rows, sizes as ``numpy.array_split`` gives them (they may
differ by one row, so they need not divide ``n``). Every step's gradient is a *sum* over shards
divided by the global batch size, so unequal shards change only the summation order::

    dL_t/dw = (sum_r X_{S_t∩r}^T (p - y)) / |S_t| + λ w        dL_t/db = (sum_r sum_{S_t∩r} (p - y)) / |S_t|

Pool. A trainer closed with ``close()`` (or used as a context manager) tears its group down at
once: processes joined, ports released. A trainer dropped *without* ``close()`` hands its healthy
group to a pool (at most one idle group per key), where the next trainer with the same key picks
it up; interpreter exit (``atexit``) closes every group, pooled or not.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref

import numpy as np

from .base import Trainer

DEFAULT_TIMEOUT_S = 30.0  # collective / rendezvous / scheduler timeout, env LOGREG_DIST_TIMEOUT


def timeout_s() -> float:
    """The bound on any one collective, rendezvous or scheduler call: ``LOGREG_DIST_TIMEOUT``
    seconds, default 30 (a dead peer is reported after at most this long, never a hang)."""
    raw = os.environ.get("LOGREG_DIST_TIMEOUT")
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"LOGREG_DIST_TIMEOUT must be a positive number of seconds, got {raw!r}")
    return value


def shard_bounds(n: int, workers: int) -> list[tuple[int, int]]:
    """``[(lo, hi), ...]`` of ``workers`` consecutive row ranges (``array_split`` sizes)."""
    if workers > n:
        raise ValueError(f"workers must be at most n = {n} (the rows of X: one shard per worker), got {workers}")
    edges = np.cumsum([0] + [len(a) for a in np.array_split(np.arange(n), workers)])
    return [(int(edges[i]), int(edges[i + 1])) for i in range(workers)]


def local_schedule(schedule, lo: int, hi: int):
    """The part of each step's rows that falls in the shard ``[lo, hi)``, as shard-local indices:
    ``(indices, offsets, sizes)`` CSR style (``indices[offsets[t]:offsets[t+1]]``) plus ``sizes[t]
    = |S_t|``, the *global* batch size that the shard's sums are divided by. None: full batch."""
    if schedule is None:
        return None
    steps = len(schedule)
    sizes = schedule.sizes.astype(np.int64)
    step_of = np.repeat(np.arange(steps), sizes)
    mask = (schedule.indices >= lo) & (schedule.indices < hi)
    counts = np.bincount(step_of[mask], minlength=steps)
    offsets = np.zeros(steps + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return schedule.indices[mask] - lo, offsets, sizes


class Pool:
    """Warm groups keyed by what makes them interchangeable; see the module docstring."""

    def __init__(self, name: str):
        self.name = name
        self._idle: dict[tuple, object] = {}
        self._live: "weakref.WeakSet" = weakref.WeakSet()
        self._lock = threading.Lock()
        atexit.register(self.close_all)

    def acquire(self, key, start):
        with self._lock:
            group = self._idle.pop(key, None)
        if group is not None and group.healthy():
            return group
        if group is not None:
            group.close()
        group = start()
        self._live.add(group)
        return group

    def release(self, key, group) -> None:
        """Keep ``group`` warm for the next trainer with ``key`` (or close it if one is kept)."""
        if not group.healthy():
            group.close()
            return
        try:
            group.reset()
        except Exception:
            group.close()
            return
        with self._lock:
            spare = self._idle.get(key)
            if spare is None:
                self._idle[key] = group
        if spare is not None:
            group.close()

    def close_all(self) -> None:
        with self._lock:
            self._idle.clear()
            groups = list(self._live)
        for group in groups:
            try:
                group.close()
            except Exception:
                pass


class GroupTrainer(Trainer):
    """The life cycle both data-parallel backends share: the group (process group or cluster) they
    run on, borrowed from a :class:`Pool` and handed back when the trainer is dropped, or torn down
    at once by :meth:`close` (idempotent; also on leaving a ``with`` block)."""

    data_parallel = True

    def __init__(self, config):
        super().__init__(config)
        self.timeout = timeout_s()
        self._group = self._finalizer = None

    @property
    def group(self):
        """The group after ``prepare`` (``startup_s`` on it), None after ``close``."""
        return self._group

    def _borrow(self, pool: Pool, key, start) -> None:
        self._group = pool.acquire(key, start)
        self._finalizer = weakref.finalize(self, pool.release, key, self._group)
        self._finalizer.atexit = False

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._group is not None:
            self._group.close()
            self._group = None
        self._prepared = False
