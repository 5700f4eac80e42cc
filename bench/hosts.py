"""Training across hosts on a shard folder: one measured row, and the program each host runs.

:func:`measure_on_shards` is what ``bench scale`` calls for a row across hosts: it prepares
``torch-ddp`` or ``numpy-dask`` on a shard folder (each worker reads its own parts), times start-up
and the steps, and reads the figures that say what the distribution costs. As a program it is what
runs on each host (``docs/distributed.md``)::

    torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint HOST0:29500 \\
        -m bench.hosts torch-ddp DIR --steps 100 --out row.json          (on every node)
    python -m bench.hosts numpy-dask DIR --scheduler tcp://HOST0:8786 --workers 2 --out row.json

Under torchrun every rank runs it; rank 0 writes ``--out``. Bytes are read from the kernel's
counters of the interface the traffic goes through (``GLOO_SOCKET_IFNAME`` or ``--ifname``):
``/sys/class/net/IF/statistics/{tx,rx}_bytes``, before and after the timed steps, so they include
every protocol's headers and anything else on that interface.
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

from implementations import TrainConfig, get_backend
from implementations._shards import read_meta
from implementations.reference import compare, config_tolerance
from implementations.reference_stream import stream_reference_run
from implementations.schedule import init_params


def _net_bytes(ifname: str | None) -> tuple[int, int]:
    if not ifname:
        return 0, 0
    base = f"/sys/class/net/{ifname}/statistics"
    try:
        with open(f"{base}/tx_bytes") as tx, open(f"{base}/rx_bytes") as rx:
            return int(tx.read()), int(rx.read())
    except OSError:
        return 0, 0


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
        t1 = time.perf_counter()
        trainer.run()
        elapsed = time.perf_counter() - t1
        tx1, rx1 = _net_bytes(ifname)
        res = trainer.result()
        row = {"engine": engine, "shards": meta.root, "n": meta.n, "d": meta.d, "n_classes": k,
               "parts": meta.parts, "workers": config.workers, "steps": config.n_iters,
               "batch_size": config.batch_size, "startup_s": startup, "time_per_step_s": elapsed / config.n_iters,
               "tx_bytes_per_step": (tx1 - tx0) / config.n_iters, "rx_bytes_per_step": (rx1 - rx0) / config.n_iters,
               "collective_s": trainer.collective_time(reps=10), "peak_rss_bytes": trainer.peak_rss(),
               "w": np.asarray(res.w).tolist(), "b": np.asarray(res.b).tolist(), "losses": res.losses.tolist()}
    if check and int(os.environ.get("RANK", "0")) == 0:
        ref = stream_reference_run(meta, w0, b0, config)
        agreement = compare(res, ref, config_tolerance(config, meta.n, meta.d))
        row["rel_diff"] = float(np.max(np.abs(np.asarray(res.w) - ref.w)) / np.max(np.abs(ref.w)))
        row["ok"] = bool(agreement.ok)
    return row


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
    p.add_argument("--out", default=None, help="write the row as JSON here (rank 0 only)")
    a = p.parse_args(argv)
    meta = read_meta(a.shards)
    workers = a.workers or int(os.environ.get("WORLD_SIZE", "1"))
    cfg = TrainConfig(lr=a.lr, n_iters=a.steps, dtype=a.dtype, formulation="logits", batch_size=a.batch_size,
                      workers=workers, n_classes=a.n_classes or meta.n_classes)
    try:
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
