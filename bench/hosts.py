"""Training across hosts on a shard folder: one measured row, and the program each host runs.

:func:`measure_on_shards` is what ``bench scale`` calls for a row across hosts: it prepares
``torch-ddp`` or ``numpy-dask`` on a shard folder (each worker reads its own parts), times start-up
and the steps, and reads the figures that say what the distribution costs. As a program it is what
runs on each host (``docs/distributed.md``)::

    torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint HOST0:29500 \\
        -m bench.hosts torch-ddp DIR --steps 100 --out row.json          (on every node)
    python -m bench.hosts numpy-dask DIR --scheduler tcp://HOST0:8786 --workers 2 --out row.json

Under torchrun every rank runs it; rank 0 writes ``--out``. ``--memory-limit BYTES`` caps a rank's
data segment (``RLIMIT_DATA``); each worker's peak memory is its ``VmHWM``. Bytes are read from the kernel's
counters of the interface the traffic goes through (``GLOO_SOCKET_IFNAME`` or ``--ifname``):
``/sys/class/net/IF/statistics/{tx,rx}_bytes``, before and after the timed steps, so they include
every protocol's headers and anything else on that interface; per worker, each rank reads its own
interface (all-gathered) and each Dask worker the interface of its address.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import replace

import numpy as np

try:
    import resource
except ImportError:  # not POSIX: no per-process memory limit
    resource = None

from implementations import TrainConfig, get_backend
from implementations.reference import compare, config_tolerance
from implementations.reference_stream import stream_reference_run
from implementations.schedule import init_params
from implementations.shards import peak_rss_bytes, read_meta


def _net_bytes(ifname: str | None) -> tuple[int, int]:
    if not ifname:
        return 0, 0
    base = f"/sys/class/net/{ifname}/statistics"
    try:
        with open(f"{base}/tx_bytes") as tx, open(f"{base}/rx_bytes") as rx:
            return int(tx.read()), int(rx.read())
    except OSError:
        return 0, 0


def _worker_peaks(engine: str, trainer) -> list[int]:
    """Each worker's :func:`implementations.shards.peak_rss_bytes`: all-gathered from the ranks under
    torchrun, read on each chunk's Dask worker; otherwise what the trainer reports."""
    if engine == "numpy-dask":
        peaks = trainer.group.client.run(peak_rss_bytes, workers=sorted(set(trainer.placement)))
        return [int(peaks[a]) for a in trainer.placement]
    if trainer.torchrun:
        import torch.distributed as dist  # torch-ddp rows only

        everyone = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, peak_rss_bytes())
        return everyone
    return trainer.peak_rss()


def worker_net_bytes(dask_worker=None) -> tuple[int, int]:
    """Run on a Dask worker (``client.run``): the byte counters of the interface that carries the
    worker's own address (``psutil``, which reads this network namespace's ``/proc/net/dev``); (0, 0)
    where none does (a worker on 127.0.0.1 counts nothing)."""
    import psutil  # a dependency of distributed, hence on every Dask worker

    host = dask_worker.address.split("://")[-1].rsplit(":", 1)[0] if dask_worker is not None else ""
    for ifname, addrs in psutil.net_if_addrs().items():
        if ifname != "lo" and any(a.address == host for a in addrs):
            io = psutil.net_io_counters(pernic=True).get(ifname)
            return (int(io.bytes_sent), int(io.bytes_recv)) if io else (0, 0)
    return 0, 0


def _placement(engine: str, trainer) -> dict:
    """``hosts`` (distinct machines the workers ran on) and, on Dask, each chunk's worker's own
    ``memory_limit`` (bytes, as its ``dask worker --memory-limit`` set it; 0 = none)."""
    if engine == "numpy-dask":
        info = trainer.group.client.scheduler_info(n_workers=-1)["workers"]
        return {"hosts": len({a.split("://")[-1].rsplit(":", 1)[0] for a in trainer.placement}),
                "memory_limit_bytes": [int(info.get(a, {}).get("memory_limit") or 0) for a in trainer.placement]}
    return {"hosts": int(os.environ.get("GROUP_WORLD_SIZE", "1")) if trainer.torchrun else 1}


def limit_memory(limit: int | None) -> None:
    """Bound this process's data segment (``RLIMIT_DATA``: heap and private writable mappings, hence
    every array it allocates) to ``limit`` bytes: past it an allocation fails with ``MemoryError``."""
    if limit and resource is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (int(limit), int(limit)))


class _PerWorkerBytes:
    """Each worker's sent and received bytes over the timed steps: under torchrun every rank reads
    its own interface (``GLOO_SOCKET_IFNAME``) and the figures are all-gathered; on Dask each
    chunk's worker reads the interface of its address. Empty lists where neither applies."""

    def __init__(self, engine: str, trainer, ifname: str | None):
        self.engine, self.trainer, self.ifname = engine, trainer, ifname
        self.before = self._read()

    def _read(self):
        if self.engine == "numpy-dask" and self.trainer.scheduler:
            counts = self.trainer.group.client.run(worker_net_bytes, workers=sorted(set(self.trainer.placement)))
            return [counts[a] for a in self.trainer.placement]
        return [_net_bytes(self.ifname)]

    def per_step(self, steps: int) -> tuple[list[float], list[float]]:
        after = self._read()
        mine = [((a[0] - b[0]) / steps, (a[1] - b[1]) / steps) for a, b in zip(after, self.before, strict=True)]
        if self.engine == "torch-ddp" and self.trainer.torchrun:
            import torch.distributed as dist  # torch-ddp rows only

            everyone = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, mine[0])
            mine = everyone
        elif self.engine == "torch-ddp":
            return [], []  # ranks started here talk over loopback: nothing crosses a host's interface
        return [m[0] for m in mine], [m[1] for m in mine]


def measure_on_shards(engine: str, shards: str, config: TrainConfig, scheduler: str | None = None,
                      ifname: str | None = None, check: bool = True, seed: int = 0) -> dict:
    """One row across hosts: ``engine`` (``torch-ddp`` under torchrun, or ``numpy-dask`` with
    ``scheduler``) trained by ``config`` on the shard folder ``shards``. Returns a dict: ``startup_s``
    (group/cluster join and every worker reading its parts), ``time_per_step_s``, ``collective_s``
    (one all-reduce / one reduction round on d + 1 values), ``tx_bytes_per_step`` and
    ``rx_bytes_per_step`` on ``ifname`` (this host), ``peak_rss_bytes`` per worker, the agreement with
    the streaming float64 oracle (``rel_diff``, ``ok``; rank 0 / the client only, ``check``), and
    ``w``, ``b``, ``losses``. Under torchrun every rank returns the row; rank 0's is the result."""
    meta = read_meta(shards)
    k = config.n_classes
    w0, b0 = init_params(meta.d, seed, 1.0 / math.sqrt(meta.d), k)
    kwargs = {"scheduler": scheduler} if engine == "numpy-dask" else {}
    ifname = ifname or os.environ.get("GLOO_SOCKET_IFNAME")
    t0 = time.perf_counter()
    with get_backend(engine)(config, **kwargs) as trainer:
        trainer.prepare_shards(meta, w0, b0)
        startup = time.perf_counter() - t0
        tx0, rx0 = _net_bytes(ifname)
        per_worker = _PerWorkerBytes(engine, trainer, ifname)
        t1 = time.perf_counter()
        trainer.run()
        elapsed = time.perf_counter() - t1
        tx1, rx1 = _net_bytes(ifname)
        worker_tx, worker_rx = per_worker.per_step(config.n_iters)
        res = trainer.result()
        row = {"engine": engine, "shards": meta.root, "n": meta.n, "d": meta.d, "n_classes": k,
               "parts": meta.parts, "workers": config.workers, "steps": config.n_iters,
               "batch_size": config.batch_size, "startup_s": startup, "time_per_step_s": elapsed / config.n_iters,
               "tx_bytes_per_step": (tx1 - tx0) / config.n_iters, "rx_bytes_per_step": (rx1 - rx0) / config.n_iters,
               "worker_tx_bytes_per_step": worker_tx, "worker_rx_bytes_per_step": worker_rx,
               "collective_s": trainer.collective_time(reps=10),
               "task_overhead_s": trainer.task_overhead(reps=5) if hasattr(trainer, "task_overhead") else None,
               "peak_rss_bytes": _worker_peaks(engine, trainer), **_placement(engine, trainer),
               "w": np.asarray(res.w).tolist(), "b": np.asarray(res.b).tolist(), "losses": res.losses.tolist()}
    if check and int(os.environ.get("RANK", "0")) == 0:
        ref = stream_reference_run(meta, w0, b0, config)
        agreement = compare(res, ref, config_tolerance(config, meta.n, meta.d))
        row["rel_diff"] = float(np.max(np.abs(np.asarray(res.w) - ref.w)) / np.max(np.abs(ref.w)))
        row["ok"] = bool(agreement.ok)
    return row


def _wait_for_workers(scheduler: str, count: int) -> None:
    from distributed import Client  # numpy-dask only

    with Client(scheduler, timeout=get_backend("numpy-dask").timeout_s(), set_as_default=False) as client:
        client.wait_for_workers(count, timeout=get_backend("numpy-dask").timeout_s())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hosts", description=__doc__.splitlines()[0])
    p.add_argument("engine", choices=("torch-ddp", "numpy-dask"))
    p.add_argument("shards", help="the shard folder (the same path on every host)")
    p.add_argument("--scheduler", help="numpy-dask: the scheduler's address, tcp://HOST:8786")
    p.add_argument("--workers", type=int, default=None, help="numpy-dask: chunks (default: torchrun's WORLD_SIZE)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--n-classes", type=int, default=None, help="default: the shards' meta.json")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--ifname", default=None, help="the interface whose byte counters are read")
    p.add_argument("--no-check", action="store_true", help="skip the streaming oracle")
    p.add_argument("--memory-limit", type=int, default=None, metavar="BYTES",
                   help="torch-ddp: this rank's RLIMIT_DATA (its allocations fail past it); numpy-dask workers take "
                        "theirs from `dask worker --memory-limit`")
    p.add_argument("--wait-workers", type=int, default=0, metavar="N",
                   help="numpy-dask: wait (up to LOGREG_DIST_TIMEOUT) until the scheduler has N workers")
    p.add_argument("--out", default=None, help="write the row as JSON here (rank 0 only)")
    a = p.parse_args(argv)
    meta = read_meta(a.shards)
    workers = a.workers or int(os.environ.get("WORLD_SIZE", "1"))
    cfg = TrainConfig(lr=a.lr, n_iters=a.steps, dtype=a.dtype, formulation="logits", batch_size=a.batch_size,
                      workers=workers, n_classes=a.n_classes or meta.n_classes)
    try:
        limit_memory(a.memory_limit)
        if a.scheduler and a.wait_workers:
            _wait_for_workers(a.scheduler, a.wait_workers)
        row = measure_on_shards(a.engine, a.shards, replace(cfg), a.scheduler, a.ifname, not a.no_check)
    except Exception as exc:  # one line naming the lost host or rank, not a traceback per process
        print(f"bench.hosts: {a.engine} failed: {exc}", file=sys.stderr, flush=True)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        text = json.dumps(row)
        if a.out:
            with open(a.out, "w") as f:
                f.write(text)
        else:
            print(text)
    return 0 if row.get("ok", True) else 3


if __name__ == "__main__":
    sys.exit(main())
