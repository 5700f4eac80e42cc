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

Shard folders. :meth:`GroupTrainer.prepare_shards` takes a folder of shards
(:mod:`implementations.shards`) instead of arrays: the driver reads ``meta.json`` only, each worker
is given consecutive parts (:func:`~implementations.shards.assign_parts`, so it holds one consecutive
range of global rows) and reads them itself; the schedule and the math are those of ``prepare``.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref

import numpy as np

from .base import Trainer
from .schedule import batch_schedule
from .shards import ShardError, ShardMeta, assign_parts, read_meta, worker_bounds
from .validation import check_params

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
        self._live: weakref.WeakSet = weakref.WeakSet()
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

    timeout_s = staticmethod(timeout_s)  # the bound on any one collective or scheduler call

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

    def prepare_shards(self, root, w0, b0) -> None:
        """Prepare on the shard folder ``root`` (a path or a read :class:`ShardMeta`): this process reads
        its ``meta.json`` only; worker ``r`` reads parts ``assign_parts(...)[r]`` itself (``workers`` must
        be at most the number of parts). Afterwards ``run``/``result``/``loss_and_grad`` as after ``prepare``."""
        meta = read_meta(root) if not isinstance(root, ShardMeta) else root
        cfg, k = self.config, self.config.n_classes
        if (k >= 3) != (meta.n_classes >= 3) or (k >= 3 and k < meta.n_classes):
            raise ShardError(f"{meta.root}: holds {meta.n_classes} classes, the config says n_classes = {k}")
        w0, b0 = check_params(w0, b0, meta.d, cfg.dtype, k)
        if cfg.batch_size is not None and cfg.batch_size > meta.n:
            raise ValueError(f"batch_size must be at most n = {meta.n} (the rows of the shards), got {cfg.batch_size}")
        groups = assign_parts(meta.counts, cfg.workers)
        self._prepared = self._has_run = False
        self.n, self.d, self.k = meta.n, meta.d, k
        self.schedule = None if cfg.batch_size is None else batch_schedule(meta.n, cfg.batch_size, cfg.n_iters,
                                                                           cfg.shuffle_seed)
        self._prepare_shards(meta, groups, worker_bounds(meta, groups), w0, b0)
        self._prepared = True

    def _prepare_shards(self, meta, groups, bounds, w0, b0):
        raise NotImplementedError(f"{self.name} cannot read a shard folder")

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._group is not None:
            self._group.close()
            self._group = None
        self._prepared = False
