"""``numpy-dask``: data-parallel gradient descent with NumPy chunks on a Dask ``distributed`` cluster.

``X`` and ``y`` become row-chunked ``dask.array``s (``workers`` chunks of consecutive rows, sizes as
``numpy.array_split``: they need not divide ``n``) held on a ``distributed.Client``'s workers: each
chunk is scattered once to its worker (``client.scatter``; ``trainer.X`` is the ``dask.array`` over
those futures), which avoids shipping the data inside a task graph. Each step
is a reduction over the chunks, computed where each chunk lives, then summed and applied on the
client (dask-glm's gradient-descent pattern: the parameters live on the client, the data on the
workers)::

    chunk c:  s_c = [ X_{S_t∩c}^T (p - y),  sum_{S_t∩c} (p - y),  sum_{S_t∩c} l_i ]      NumPy, (d + 2,)
                    (:func:`implementations._reduce.partial_sums`, shared with torch-ddp)
    client:   s   = sum_c s_c  (fixed chunk order: deterministic)
              dL/dw = s[:d] / |S_t| + λ w,   dL/db = s[d] / |S_t|,   L = s[d+1] / |S_t| + (λ/2)||w||^2
              w -= lr dL/dw,   b -= lr dL/db           (NumPy on the client, ``config.dtype``)

The per-chunk partial sums run in one Dask *actor* per chunk (``client.submit(..., actor=True)``,
created on the worker that holds its chunk). Why not ``da.compute(X.T.dot(p - y), ...)``
as dask-glm writes it: every step then goes through the scheduler, whose client batches its messages
to the scheduler every 10 ms (``distributed/client.py``, ``BatchedSend(interval="10ms")``), a floor
per step. An actor call goes client -> worker directly. ``task_overhead()`` measures the scheduled
path on a tiny array for comparison; the figures are in ``docs/performance.md``.

Mini-batches: each chunk holds, from ``prepare()``, the part of every step's rows
(:func:`implementations.batch_schedule`) that falls in it, and gathers those rows itself: the per-step
traffic is the step number and ``(w, b)``, never row indices or rows.

Cluster: by default ``prepare()`` (untimed) starts ``LocalCluster(n_workers=workers,
threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)`` — loopback only,
one single-threaded worker process per chunk, started without re-running the main script (so no
``if __name__ == "__main__":`` guard is needed, and ``python - < script.py`` works). To join a real
cluster instead, give a scheduler address: ``NumpyDaskTrainer(config, scheduler="tcp://host:8786")``
or the environment variable
``LOGREG_DASK_SCHEDULER=tcp://host:8786`` (``workers`` is then the number of chunks, spread round-robin
over the cluster's workers). ``close()`` closes the client and a local cluster, never a remote one.

Faults: every call is bounded by ``LOGREG_DIST_TIMEOUT`` seconds (default 30): an unreachable
scheduler fails within it with one message; a worker that dies mid-run makes its actor's call fail
(or time out), reported as ``RuntimeError("numpy-dask: worker tcp://127.0.0.1:... (chunk 1) ...")``.
A failed cluster is closed, not reused. Pooling and ``atexit`` as for ``torch-ddp``
(:mod:`implementations._distributed`). The loop (record, update on the client) is
:func:`implementations._loop.gradient_descent`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import time

import numpy as np

from ._distributed import GroupTrainer, Pool, local_schedule, shard_bounds
from ._loop import gradient_descent
from ._optim import HAND_WRITTEN, stepper
from ._reduce import (
    numpy_loss_sum,
    numpy_sigmoid,
    numpy_softmax,
    numpy_softmax_loss_sum,
    partial_sums,
    softmax_partial_sums,
)
from ._sparse import is_csr
from .base import BackendUnavailableError, DeviceUnavailableError
from .shards import load_parts, peak_rss_bytes

SCHEDULER_ENV = "LOGREG_DASK_SCHEDULER"
_POOL = Pool("numpy-dask")


class ClusterError(RuntimeError):
    """The Dask cluster cannot be reached, or a worker failed; the message names it."""


class ChunkSums:
    """Dask actor: one chunk's rows and its partial sums (module docstring)."""

    def __init__(self, X, y, sched, formulation):
        # Deserialised chunks can land at an address that is not even itemsize-aligned (seen: 51 mod 64
        # for float32), and NumPy then skips BLAS: a 10-15x slower step. One aligned copy, untimed.
        y = np.require(y, requirements=["C", "A"])
        X = X if is_csr(X) else np.require(X, requirements=["C", "A"])  # a sparse chunk: SciPy CSR as sent
        self.softmax = y.ndim == 2  # K classes: y is the chunk's one-hot Y (rows, K)
        self.X, self.y = X, y
        self.loss_sum = numpy_softmax_loss_sum(formulation) if self.softmax else numpy_loss_sum(formulation)
        self.idx, self.offsets = (None, None) if sched is None else sched[:2]

    def sums(self, w, b, t, record):
        if t is None or self.idx is None:
            X, y = self.X, self.y
        else:
            rows = self.idx[self.offsets[t]:self.offsets[t + 1]]
            X, y = self.X[rows], self.y[rows]
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            if self.softmax:
                out = np.empty((X.shape[1] + 1) * y.shape[1] + 1, dtype=X.dtype)
                return softmax_partial_sums(X, y, w, b, record, out, numpy_softmax, self.loss_sum)
            out = np.empty(X.shape[1] + 2, dtype=X.dtype)
            return partial_sums(X, y, w, b, record, out, numpy_sigmoid, self.loss_sum)


class ShardSums(ChunkSums):
    """Dask actor created on its worker, which reads its own parts of a shard folder there: the
    client never holds these rows (no scatter)."""

    def __init__(self, meta, group, dtype, k, sched, formulation):
        X, y = load_parts(meta, group, dtype)
        super().__init__(X, np.eye(k, dtype=dtype)[y.astype(np.int64)] if k >= 3 else y.astype(dtype), sched,
                         formulation)

    def peak_rss(self) -> int:
        return peak_rss_bytes()


@contextlib.contextmanager
def _main_not_reimported():
    """While the local cluster starts its worker processes, hide the main script from
    ``multiprocessing``'s spawn (Dask's default start method), which would otherwise re-run it in
    every worker: a script read from stdin (``python - < script.py``: no file to re-run) or one
    without an ``if __name__ == "__main__":`` guard (each worker would start a cluster of its own)
    ends in Dask's "Nanny failed to start." under a dozen tracebacks. The workers need nothing from
    the main script (their code lives in this package, and Dask pickles the rest by value), so they
    start as ``python -c`` would start them: the same worker processes, the same measurement, no guard
    needed -- as torch-ddp's ranks, which are fresh interpreters."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None  # `python -m module`: spawn would re-import it by name
    try:
        yield
    finally:
        main.__dict__.pop("__file__", None)
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _quiet_worker_logs() -> None:
    """Run on each local worker just before teardown: its ERRORs about a scheduler that is going
    away ("Failed to communicate with scheduler during heartbeat") are not news."""
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


class DaskGroup:
    """A client, on a ``LocalCluster`` of ``workers`` processes or on a remote scheduler."""

    def __init__(self, workers: int, address: str | None, timeout: float):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise BackendUnavailableError("numpy-dask needs dask[distributed], which is not installed "
                                          "(pip install '.[dist]')") from None
        # atexit runs last-registered first: put our close ahead of distributed's own exit hooks, so that
        # at exit without close() the client lets go of its scattered chunks before the cluster's
        # workers go (else the scheduler logs "ERROR ... caused the cluster to lose scattered data")
        atexit.unregister(_POOL.close_all)
        atexit.register(_POOL.close_all)
        self.workers, self.address, self.timeout = workers, address, timeout
        self.closed = self.broken = False
        self.cluster = None
        t0 = time.perf_counter()
        if address:
            try:
                self.client = Client(address, timeout=timeout, set_as_default=False)
            except Exception as exc:
                raise ClusterError(f"numpy-dask: could not reach the Dask scheduler at {address} within "
                                   f"{timeout:g} s ({type(exc).__name__}: {exc})") from None
        else:
            try:
                with _main_not_reimported():
                    self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                host="127.0.0.1", dashboard_address="127.0.0.1:0",  # any free port
                                                silence_logs=40)
            except Exception as exc:
                raise ClusterError(f"numpy-dask: could not start a local cluster of {workers} worker process(es): "
                                   f"{type(exc).__name__}: {exc}") from None
            try:
                self.client = Client(self.cluster, timeout=timeout, set_as_default=False)
                self.client.wait_for_workers(workers, timeout=timeout)
            except BaseException:
                self.cluster.close()
                raise
        self.startup_s = time.perf_counter() - t0

    def worker_addresses(self) -> list[str]:
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def healthy(self) -> bool:
        if self.closed or self.broken or self.client.status != "running":
            return False
        return self.address is not None or len(self.worker_addresses()) == self.workers

    def reset(self) -> None:
        pass  # a trainer's chunks and actors are released with its futures

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # Tearing down our own local cluster loses its scattered chunks by design, but the in-process
        # scheduler logs "ERROR ... caused the cluster to lose scattered data" when the workers go before
        # it has processed the closing client's release of them (a race, e.g. at exit without close()):
        # wait (briefly, bounded) for that release, and quiet that logger for the teardown only.
        quiet = logging.getLogger("distributed.scheduler")
        level = quiet.level
        if self.cluster is not None:
            quiet.setLevel(logging.CRITICAL)
            if not self.broken and self.client.status == "running":
                try:  # the workers' side of the same race: a heartbeat to a scheduler already gone
                    self.client.run(_quiet_worker_logs)
                except Exception:
                    pass
        try:
            self.client.close(timeout=self.timeout)
        finally:
            try:
                if self.cluster is not None:
                    scheduler = getattr(self.cluster, "scheduler", None)
                    deadline = time.monotonic() + min(2.0, self.timeout)
                    while scheduler is not None and scheduler.tasks and time.monotonic() < deadline:
                        time.sleep(0.01)
                    self.cluster.close(timeout=self.timeout)
            finally:
                quiet.setLevel(level)


class NumpyDaskTrainer(GroupTrainer):
    """Its group is a ``DaskGroup`` (a client on a local cluster or a remote scheduler)."""

    name = "numpy-dask"
    library = "numpy"
    gradient = "hand-derived"
    engine = "dask"
    style = "Dask chunks"
    supports_multiclass = True  # K >= 3: chunks hold one-hot Y, the sums grow to (d + 1) K + 1 values
    optimizers = HAND_WRITTEN  # momentum, nesterov, adam: implementations._optim's update on the client
    # a sparse X: each chunk is a CSR row shard; partial_sums' X @ w and X.T @ r are then SciPy's
    supports_sparse = True

    def __init__(self, config, scheduler: str | None = None):
        super().__init__(config)
        if config.device != "cpu":
            raise DeviceUnavailableError(f"device must be 'cpu' for numpy-dask, got {config.device!r}")
        self.scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or None

    def _acquire(self):
        if self._group is not None and self._group.healthy():
            return
        self._borrow(_POOL, (self.config.workers, self.scheduler),
                     lambda: DaskGroup(self.config.workers, self.scheduler, self.timeout))

    def _prepare(self, X, y, w0, b0):
        import dask.array as da

        cfg = self.config
        if self.k >= 3:  # softmax: each chunk gets its one-hot Y (rows, K)
            y = np.eye(self.k)[y]
        bounds = shard_bounds(self.n, cfg.workers)
        self._acquire()
        client = self._group.client
        addresses = self._group.worker_addresses()
        self.placement = [addresses[i % len(addresses)] for i in range(cfg.workers)]
        # the data: each chunk scattered straight to its worker (not embedded in a task graph), then
        # seen as one row-chunked dask.array over those futures
        sparse = is_csr(X)
        shard = ((lambda lo, hi: X[lo:hi].astype(cfg.dtype)) if sparse else
                 (lambda lo, hi: np.ascontiguousarray(X[lo:hi], dtype=cfg.dtype)))
        x_chunks = [client.scatter(shard(lo, hi), workers=[addr], hash=False)
                    for (lo, hi), addr in zip(bounds, self.placement, strict=True)]
        y_chunks = [client.scatter(np.ascontiguousarray(y[lo:hi], dtype=cfg.dtype), workers=[addr], hash=False)
                    for (lo, hi), addr in zip(bounds, self.placement, strict=True)]
        meta = X[:0].astype(cfg.dtype) if sparse else None  # dask's view of a chunk's type
        self.X = da.concatenate([da.from_delayed(f, (hi - lo, self.d), dtype=cfg.dtype, meta=meta)
                                 for f, (lo, hi) in zip(x_chunks, bounds, strict=True)])
        futures = [client.submit(ChunkSums, xc, yc, local_schedule(self.schedule, lo, hi), cfg.formulation,
                                 actor=True, workers=[addr], allow_other_workers=False, pure=False)
                   for xc, yc, (lo, hi), addr in zip(x_chunks, y_chunks, bounds, self.placement, strict=True)]
        self._actor_futures = futures  # keeps the actors alive
        with client.as_current():  # actor handles bind to the current client (not a global default)
            self.actors = [f.result(timeout=self.timeout) for f in futures]
            for a in self.actors:
                a._io_loop  # noqa: B018 -- binds the handle to this client now
        dt = np.dtype(cfg.dtype)
        self.w0, self.b0 = w0.astype(dt), (b0.astype(dt) if self.k >= 3 else dt.type(b0))
        self.sizes = None if self.schedule is None else self.schedule.sizes

    def _sums(self, w, b, t, record, what):
        calls = [a.sums(w, b, t, record) for a in self.actors]
        total = None
        for i, call in enumerate(calls):
            try:
                part = call.result(timeout=self.timeout)
            except Exception as exc:
                self._group.broken = True
                kind = "did not answer within %g s" % self.timeout if isinstance(exc, TimeoutError) else "failed"
                raise ClusterError(f"numpy-dask: worker {self.placement[i]} (chunk {i}) {kind} during {what}: "
                                   f"{type(exc).__name__}: {exc}") from None
            total = part if total is None else total + part
        return total

    def _update(self, t, w, b, record):
        """One step of :func:`implementations._loop.gradient_descent`: :meth:`_gradient`, then the client's update."""
        loss, gw, gb = self._gradient(t, w, b, record)
        lr = np.dtype(self.config.dtype).type(self.config.lr)
        return w - lr * gw, b - lr * gb, loss

    def _gradient(self, t, w, b, record):
        """``(loss, g_w, g_b)`` of step ``t`` from the chunks' sums, for :func:`implementations._optim.stepper`
        (``momentum``, ``nesterov``, ``adam``: the client holds the state and applies the update)."""
        cfg, d, l2 = self.config, self.d, self.config.l2
        dt = np.dtype(cfg.dtype)
        s = self._sums(w, b, t, record, f"step {t} of run")
        m = dt.type(self.n if self.sizes is None else self.sizes[t])
        if self.k >= 3:
            dk = d * self.k
            loss = s[-1] / m + (dt.type(0.5 * l2) * np.sum(w * w) if l2 else 0) if record else None
            gw = s[:dk].reshape(d, self.k) / m
            return loss, (gw + dt.type(l2) * w if l2 else gw), s[dk:-1] / m
        loss = s[d + 1] / m + (dt.type(0.5 * l2) * (w @ w) if l2 else 0) if record else None
        gw = s[:d] / m
        return loss, (gw + dt.type(l2) * w if l2 else gw), s[d] / m

    def _run(self):
        cfg = self.config
        losses = np.zeros(cfg.n_records, dtype=cfg.dtype)
        step = (self._update if cfg.optimizer == "gd" else  # other optimizers: fresh state every run
                stepper(cfg, self._gradient, np.zeros_like, np.sqrt))
        w, b = gradient_descent(cfg, step, self.w0.copy(), self.b0, losses, batch=lambda t: (t,))
        self._out = w, b, losses

    def _result(self):
        return self._out

    def _loss_and_grad(self, w, b):
        dt, l2, d = np.dtype(self.config.dtype), self.config.l2, self.d
        if self.k >= 3:
            w, b, dk, n = w.astype(dt), b.astype(dt), d * self.k, dt.type(self.n)
            s = self._sums(w, b, None, True, "loss_and_grad")
            return (s[-1] / n + dt.type(0.5 * l2) * np.sum(w * w), s[:dk].reshape(d, self.k) / n + dt.type(l2) * w,
                    s[dk:-1] / n)
        w, b = w.astype(dt), dt.type(b)
        s = self._sums(w, b, None, True, "loss_and_grad")
        n = dt.type(self.n)
        return s[d + 1] / n + dt.type(0.5 * l2) * (w @ w), s[:d] / n + dt.type(l2) * w, s[d] / n

    def collective_time(self, reps: int = 50) -> float:
        """Median seconds of one reduction round (every chunk's actor called, results summed on the
        client) on a tiny ``(d+1)``-value payload: the engine's per-step overhead without the math."""
        w = np.zeros(self.d, dtype=self.config.dtype)
        client = self._group.client
        tiny = [client.submit(_Echo, actor=True, workers=[a], pure=False) for a in self.placement]
        with client.as_current():
            actors = [f.result(timeout=self.timeout) for f in tiny]
            for a in actors:
                a._io_loop  # noqa: B018
        times = []
        for _ in range(reps + 2):
            t0 = time.perf_counter()
            sum(c.result(timeout=self.timeout) for c in [a.echo(w) for a in actors])
            times.append(time.perf_counter() - t0)
        return float(np.median(times[2:]))

    def task_overhead(self, reps: int = 20) -> float:
        """Median seconds of ``dask.array`` ``sum().compute()`` of a tiny ``workers``-chunk array
        through the scheduler: the scheduled-task path this backend avoids."""
        import dask.array as da

        x = self._group.client.persist(da.ones(self.config.workers * 4, chunks=4))
        times = []
        for _ in range(reps + 2):
            t0 = time.perf_counter()
            self._group.client.compute(x.sum()).result(timeout=self.timeout)
            times.append(time.perf_counter() - t0)
        return float(np.median(times[2:]))

    def _prepare_shards(self, meta, groups, bounds, w0, b0):
        """One :class:`ShardSums` actor per group of parts, created on its worker, which reads the parts."""
        cfg = self.config
        self._acquire()
        client = self._group.client
        addresses = self._group.worker_addresses()
        self.placement = [addresses[i % len(addresses)] for i in range(cfg.workers)]
        self.X = None  # no dask.array over the data: the client never sees the rows
        futures = [client.submit(ShardSums, meta, g, cfg.dtype, self.k, local_schedule(self.schedule, lo, hi),
                                 cfg.formulation, actor=True, workers=[addr], allow_other_workers=False, pure=False)
                   for g, (lo, hi), addr in zip(groups, bounds, self.placement, strict=True)]
        self._actor_futures = futures
        with client.as_current():
            try:
                self.actors = [f.result(timeout=self.timeout) for f in futures]
            except Exception as exc:
                raise ClusterError(f"numpy-dask: a worker could not load its parts of {meta.root}: "
                                   f"{type(exc).__name__}: {exc}") from None
            for a in self.actors:
                a._io_loop  # noqa: B018 -- binds the handle to this client now
        dt = np.dtype(cfg.dtype)
        self.w0, self.b0 = w0.astype(dt), (b0.astype(dt) if self.k >= 3 else dt.type(b0))
        self.sizes = None if self.schedule is None else self.schedule.sizes

    def peak_rss(self) -> list[int]:
        """Peak resident memory of each chunk's worker process, bytes (the per-worker memory check)."""
        return [int(a.peak_rss().result(timeout=self.timeout)) for a in self.actors]

    def close(self) -> None:
        """Release the data and close the client (and a local cluster) now (idempotent)."""
        self.actors, self._actor_futures = [], []
        super().close()


class _Echo:
    def echo(self, w):
        return np.zeros(w.size + 2, dtype=w.dtype)
