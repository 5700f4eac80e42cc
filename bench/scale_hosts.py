"""``bench scale`` across hosts: strong and weak scaling of torch-ddp and numpy-dask on shard folders.

Two kinds of hosts:

* **Simulated** (``--simulate-hosts N``, root only): ``N + 1`` network namespaces on this machine
  (:mod:`bench.netns`). Namespace 0 is the driver's host (Dask's scheduler and client); namespaces
  ``1 .. N`` are the worker hosts. A torch-ddp row of world size ``W`` runs ``torchrun`` on
  ``min(W, N)`` of them (``W / nodes`` ranks each, c10d rendezvous on the first); a numpy-dask row
  starts ``W`` ``dask worker`` processes spread round-robin over them. Every process of a row is
  killed before the next row; the namespaces are removed on every ending (``finally``, ``atexit``).
  Where they cannot be made, every row across hosts is ``skipped`` with the reason.
* **Real** (``--scheduler tcp://HOST:8786``): numpy-dask rows run from this process as the client
  of a scheduler whose workers were started on the other machines. This driver starts no process on
  another machine (no ssh): torch-ddp rows are ``skipped``, their reason the ``torchrun`` command to
  run on each node (:func:`torchrun_command`), whose ``bench.hosts`` program prints the same figures.

Data: every data set becomes a shard folder (a folder given as the data set is used as it is; any
other name is written once into ``--shards-dir``, by default a temporary folder removed at the end),
each worker reading only its own parts. **Strong** scaling keeps the data set and varies the world
size; **weak** keeps the rows per worker: ``synthetic-<n>x<d>`` means ``n`` rows per worker, so world
size ``W`` trains ``synthetic-<n W>x<d>``. The single-process backends named in ``--backends`` run
once per data set in this process (the baselines, as on one machine).

Per row (Row fields): ``startup_s``, ``time_per_iter_s``, ``collective_s`` (one all-reduce / one
reduction round on ``d + 1`` values), ``task_overhead_s`` (Dask: one tiny task through the
scheduler), ``tx_bytes_per_step`` / ``rx_bytes_per_step`` (per worker, its host's interface, mean over
workers), ``peak_mem_mb`` and ``worker_peak_mb`` (peak resident memory per worker), ``hosts``,
``scaling``, ``memory_limit_mb``; ``speedup_vs_ws1`` (strong: ``T_1 / T_W``; weak: ``W T_1 / T_W``, the
throughput gain) with ``efficiency_vs_ws1 = speedup / W``, and ``speedup_vs_single`` against the
fastest single-process baseline on the same data. ``rel_dparam`` is the agreement with the streaming
float64 oracle.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from implementations import TrainConfig, get_backend
from implementations.shards import read_meta

from . import data, netns, runner
from .argtypes import UsageError, positive_int
from .cases import SEED_LR
from .data.shards import write_shards
from .hosts import measure_on_shards
from .measure import Evaluator
from .records import ATTRIBUTE_COLUMNS, Case, Row
from .results import Outcome, RunResult
from .suites import SCALE_FORMULATION
from .timing import available_cores

ENGINES = ("torch-ddp", "numpy-dask")  # the data-parallel backends that run across hosts
SCALINGS = ("strong", "weak")
TORCH_PORT, DASK_PORT = 29500, 8786
ROOT = str(Path(__file__).resolve().parent.parent)  # the repository: on every simulated host's PYTHONPATH
BIN = os.path.dirname(sys.executable)
WEAK = re.compile(r"^synthetic-(\d+)x(\d+)(.*)$")


HELP = ("Strong scaling of the data-parallel backends over world sizes, on this machine (default) or across "
        "hosts: --simulate-hosts N runs torch-ddp (torchrun, c10d) and numpy-dask (dask scheduler/worker) in N "
        "network namespaces here (root only); --scheduler tcp://HOST:8786 uses a Dask cluster whose workers "
        "were started on the other machines. This driver cannot start processes on other machines (no ssh): "
        "for torch-ddp across real hosts it prints the torchrun command to run on each node. Across hosts "
        "each worker reads only its own parts of a shard folder; see docs/distributed.md.")
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def add_arguments(sc: argparse.ArgumentParser) -> None:
    """``bench scale``'s switches across hosts."""
    sc.add_argument("--simulate-hosts", type=positive_int, default=None, metavar="N",
                    help="across N simulated hosts on this machine: network namespaces (root only; without the "
                         "rights the rows are skipped with the reason), removed on every ending")
    sc.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786",
                    help="across real hosts: a Dask scheduler whose workers run on the other machines (numpy-dask "
                         "rows); torch-ddp rows are skipped with the torchrun command to run on each node")
    sc.add_argument("--scaling", nargs="+", choices=SCALINGS, default=["strong"],
                    help="across hosts: strong (the same data at every world size) and/or weak (synthetic-<n>x<d> "
                         "is n rows per worker) (default: strong)")
    sc.add_argument("--memory-limit", type=parse_bytes, default=None, metavar="BYTES",
                    help="across hosts: each worker's memory (e.g. 800M, 2G; powers of 1024): dask worker "
                         "--memory-limit, a torch rank's RLIMIT_DATA")
    sc.add_argument("--shards-dir", default=None, metavar="DIR",
                    help="across hosts: where the shard folders of data sets that are not one are written (default: "
                         "a temporary folder, removed at the end; with real hosts, a path every host sees)")


def check_arguments(args) -> dict | None:
    """``bench scale``'s arguments across hosts as :func:`run`'s keywords; None on one machine. A
    switch that applies across hosts only, or both kinds of hosts at once, is a ``UsageError``."""
    if args.simulate_hosts and args.scheduler:
        raise UsageError("give one of --simulate-hosts N (namespaces here) or --scheduler ADDRESS (real hosts)")
    if not (args.simulate_hosts or args.scheduler):
        if args.scaling != ["strong"] or args.memory_limit or args.shards_dir:
            raise UsageError("--scaling, --memory-limit and --shards-dir apply across hosts (--simulate-hosts or "
                             "--scheduler)")
        return None
    if args.scheduler and not re.fullmatch(r"[a-z]+://[^:/\s]+:\d+/?", args.scheduler):
        raise UsageError(f"--scheduler must be a Dask scheduler address such as tcp://HOST:8786, "
                         f"got {args.scheduler!r}")
    return {"simulate": args.simulate_hosts, "scheduler": args.scheduler, "memory_limit": args.memory_limit,
            "shards_dir": args.shards_dir}


def parse_bytes(text: str) -> int:
    """``800M``, ``2G``, ``1.5G``, ``123456`` (bytes; K, M, G, T are powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not m or float(m[1]) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive size such as 800M or 2G, got {text!r}")
    return int(float(m[1]) * UNITS[m[2].upper()])


class RowSkipped(Exception):
    """This row cannot run here; the message says why."""


@dataclass(frozen=True)
class HostCase:
    case: Case
    scaling: str  # strong / weak; "" for a single-process baseline
    base: str  # the data set as given (weak: the per-worker set), the key the speed-ups group by
    parts: int = 1  # parts of the shard folder written for it (strong: the largest world size; weak: W)


def weak_dataset(name: str, workers: int) -> str:
    """``synthetic-<n>x<d>...`` for one worker -> the set of ``workers`` times its rows."""
    m = WEAK.match(name)
    if not m:
        raise ValueError(f"--scaling weak needs synthetic-<n>x<d> data sets (n rows per worker), got {name!r}")
    return f"synthetic-{int(m[1]) * workers}x{m[2]}{m[3]}"


def plan(backends, workers, datasets, scalings, dtype: str, n_iters: int, lr: float = SEED_LR) -> list[HostCase]:
    """Per scaling and data set: the single-process baselines among ``backends`` on each data set
    the row trains on, then each engine at every world size, smallest first."""
    sizes = sorted(dict.fromkeys(workers))
    singles = [b for b in backends if not _data_parallel(b)]
    engines = [b for b in backends if _data_parallel(b)]
    out, baselined = [], set()

    def case(backend, ds, ws):
        return Case(backend, ds, TrainConfig(lr=lr, n_iters=n_iters, dtype=dtype, formulation=SCALE_FORMULATION,
                                             workers=ws, n_classes=_classes(ds)))

    for scaling in scalings:
        for base in datasets:
            per_ws = {ws: base if scaling == "strong" else weak_dataset(base, ws) for ws in sizes}
            for ds in dict.fromkeys(ds for ds in per_ws.values() if ds not in baselined):
                out += [HostCase(case(b, ds, 1), "", base) for b in singles]
                baselined.add(ds)
            out += [HostCase(case(b, per_ws[ws], ws), scaling, base, sizes[-1] if scaling == "strong" else ws)
                    for b in engines for ws in sizes]
    return out


def _data_parallel(name: str) -> bool:
    try:
        return bool(get_backend(name).data_parallel)
    except Exception:
        return False


def _classes(name: str) -> int:
    src = data.source(name)
    if src.format == "shards":
        return read_meta(src.base).n_classes
    m = re.search(r"-k(\d+)", name)
    return int(m[1]) if m else 2


def torchrun_command(shards: str, cfg: TrainConfig, nodes: int | str = 2, per_node: int | str = 1,
                     host0: str = "HOST0", here: str = "HOSTi", is_host: int | str = "IS_HOST",
                     port: int = TORCH_PORT, out: str = "row.json", memory_limit: int | None = None) -> list[str]:
    """The command every node runs for one torch-ddp row (``bench.hosts`` under torchrun)."""
    argv = ["torchrun", "--nnodes", str(nodes), "--nproc-per-node", str(per_node), "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"{host0}:{port}", "--rdzv-id", "logreg", "--local-addr", here, "--max-restarts", "0",
            "--rdzv-conf", f"is_host={is_host}", "-m", "bench.hosts", "torch-ddp", shards, "--steps", str(cfg.n_iters),
            "--lr", repr(cfg.lr), "--dtype", cfg.dtype, "--n-classes", str(cfg.n_classes), "--out", out]
    if memory_limit:
        argv += ["--memory-limit", str(memory_limit)]
    return argv


class Shards:
    """The shard folder of each data set: a given folder as it is, any other name written once."""

    def __init__(self, folder: str | None, seed: int):
        self.own = folder is None
        self.folder = folder or tempfile.mkdtemp(prefix="logreg-shards-")
        self.seed, self.made = seed, {}

    def get(self, name: str, parts: int) -> str:
        src = data.source(name)
        if src.format == "shards":
            return os.path.abspath(src.base)
        key = (name, parts)
        if key not in self.made:
            ds = data.load(name, self.seed)
            out = os.path.join(self.folder, re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + f"-p{parts}")
            shutil.rmtree(out, ignore_errors=True)
            write_shards(ds.X, ds.y, out, parts=parts, n_classes=ds.n_classes)
            self.made[key] = out
        return self.made[key]

    def close(self) -> None:
        if self.own:
            shutil.rmtree(self.folder, ignore_errors=True)


class Simulated:
    """``count`` worker hosts plus the driver's host as network namespaces; one row at a time."""

    def __init__(self, count: int, memory_limit: int | None, timeout: float, row_timeout: float):
        self.count, self.memory_limit, self.timeout, self.row_timeout = count, memory_limit, timeout, row_timeout
        self.rows = 0
        try:
            self.hosts, self.error = netns.build(count + 1), None
        except netns.NetnsUnavailable as exc:
            self.hosts, self.error = None, f"--simulate-hosts: {exc}"

    def _env(self, i: int) -> dict:
        return dict(os.environ, PYTHONPATH=ROOT, GLOO_SOCKET_IFNAME=self.hosts.ifnames[i], OMP_NUM_THREADS="1",
                    LOGREG_DIST_TIMEOUT=str(self.timeout), PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
                    # a memory limit is enforced by the nanny (terminate at 95 %); no spilling or pausing
                    DASK_DISTRIBUTED__WORKER__MEMORY__TARGET="False", DASK_DISTRIBUTED__WORKER__MEMORY__SPILL="False",
                    DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE="False")

    def _start(self, i: int, argv: list[str], log: str | None = None) -> subprocess.Popen:
        out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 -- closed with the row
        return subprocess.Popen(self.hosts.cmd(i, argv), env=self._env(i), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def run(self, engine: str, shards: str, cfg: TrainConfig, work: str) -> dict:
        if self.error:
            raise RowSkipped(self.error)
        self.rows += 1
        try:
            return (self._torch if engine == "torch-ddp" else self._dask)(shards, cfg, work)
        finally:
            self.clear()

    def _torch(self, shards, cfg, work):
        nodes = min(cfg.workers, self.count)
        if cfg.workers % nodes:
            raise RowSkipped(f"{cfg.workers} ranks do not spread evenly over {nodes} simulated hosts")
        port, out = TORCH_PORT + self.rows % 500, os.path.join(work, "row.json")
        procs = []
        for node in range(nodes):
            h = node + 1
            conf = f"{int(node == 0)},join_timeout={int(self.timeout * 4)},read_timeout={max(1, int(self.timeout))}"
            argv = torchrun_command(shards, cfg, nodes, cfg.workers // nodes, self.hosts.addrs[1], self.hosts.addrs[h],
                                    conf, port, out, self.memory_limit)
            argv[0] = os.path.join(BIN, "torchrun")
            procs.append(self._start(h, argv, os.path.join(work, f"node{node}.log")))
        self._wait(procs, work)
        return _read(out, work)

    def _dask(self, shards, cfg, work):
        sched, out = f"tcp://{self.hosts.addrs[0]}:{DASK_PORT + self.rows % 500}", os.path.join(work, "row.json")
        dask = os.path.join(BIN, "dask")
        self._start(0, [dask, "scheduler", "--host", self.hosts.addrs[0], "--port", sched.rsplit(":", 1)[1],
                        "--no-dashboard"], os.path.join(work, "scheduler.log"))
        limit = ["--memory-limit", str(self.memory_limit)] if self.memory_limit else ["--no-nanny"]
        for r in range(cfg.workers):
            h = 1 + r % self.count
            self._start(h, [dask, "worker", sched, "--host", self.hosts.addrs[h], "--nthreads", "1", "--no-dashboard",
                            "--death-timeout", str(self.timeout * 4), *limit], os.path.join(work, f"worker{r}.log"))
        ws = str(cfg.workers)
        driver = [sys.executable, "-m", "bench.hosts", "numpy-dask", shards, "--scheduler", sched, "--workers", ws,
                  "--wait-workers", ws, "--steps", str(cfg.n_iters), "--lr", repr(cfg.lr), "--dtype", cfg.dtype,
                  "--n-classes", str(cfg.n_classes), "--out", out]
        self._wait([self._start(0, driver, os.path.join(work, "driver.log"))], work)
        return _read(out, work)

    def _wait(self, procs, work):
        deadline = time.monotonic() + self.row_timeout
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.05)
        if any(p.poll() is None for p in procs) and not any(p.poll() not in (None, 0) for p in procs):
            raise RuntimeError(f"the row ran past {self.row_timeout:g} s{_tail(work)}")
        codes = [p.poll() for p in procs]
        if any(c not in (None, 0, 3) for c in codes):
            raise RuntimeError(f"exit codes {codes}{_tail(work)}")

    def clear(self) -> None:
        """Kill every process the row left in the namespaces, and wait until they are gone."""
        if self.hosts is None:
            return
        for i in range(len(self.hosts.names)):
            self.hosts.kill_all(i)
        deadline = time.monotonic() + 10
        while any(self.hosts.pids(i) for i in range(len(self.hosts.names))) and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        if self.hosts is not None:
            netns.teardown(self.hosts)


class Real:
    """A Dask scheduler whose workers run on other machines; torch-ddp rows are the user's to launch."""

    def __init__(self, scheduler: str, memory_limit: int | None):
        self.scheduler, self.memory_limit, self.error = scheduler, memory_limit, None
        self.printed = False

    def run(self, engine: str, shards: str, cfg: TrainConfig, work: str) -> dict:
        if engine == "torch-ddp":
            cmd = " ".join(torchrun_command(shards, cfg, memory_limit=self.memory_limit))
            if not self.printed:
                print(f"torch-ddp across real hosts: run on every node, with GLOO_SOCKET_IFNAME set to the interface "
                      f"between them, HOSTi its own address and IS_HOST 1 on HOST0, else 0:\n  {cmd}", flush=True)
                self.printed = True
            raise RowSkipped("this driver starts no process on another machine (no ssh): run on each node "
                             f"GLOO_SOCKET_IFNAME=IF {cmd} (HOSTi: the node's address; IS_HOST: 1 on HOST0, else 0)")
        return measure_on_shards(engine, shards, cfg, scheduler=self.scheduler)

    def close(self) -> None:
        pass


def _read(out: str, work: str) -> dict:
    try:
        with open(out) as f:
            return json.load(f)
    except (OSError, ValueError):
        raise RuntimeError(f"no row was written{_tail(work)}") from None


def _tail(work: str) -> str:
    """The last lines of the row's logs that say something went wrong (one line each)."""
    lines = []
    for log in sorted(Path(work).glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if any(k in line for k in ("bench.hosts:", "Error", "MemoryError", "Killed", "memory")):
                lines.append(f"{log.stem}: {line.strip()[:300]}")
    return (": " + " | ".join(lines[-3:])) if lines else ""


def host_row(run_id: str, hc: HostCase, r: dict, hosts: int | None, memory_limit: int | None, oversubscribed) -> Row:
    """One row across hosts from ``bench.hosts``' dict."""
    cls = get_backend(hc.case.backend)
    peaks = [b / 1e6 for b in r.get("peak_rss_bytes") or []]
    tx, rx = r.get("worker_tx_bytes_per_step") or [], r.get("worker_rx_bytes_per_step") or []
    limits = [b for b in r.get("memory_limit_bytes") or [] if b] or ([memory_limit] if memory_limit else [])
    t = r["time_per_step_s"]
    ok = r.get("ok", True)
    losses = r.get("losses") or []
    return Row.for_case(run_id, hc.case, **{a: getattr(cls, a, None) for a in ATTRIBUTE_COLUMNS},
                        n=r["n"], d=r["d"], threads=1, rounds=1, time_median_s=t * hc.case.config.n_iters,
                        time_per_iter_s=t, startup_s=r["startup_s"], collective_s=r.get("collective_s"),
                        task_overhead_s=r.get("task_overhead_s"), oversubscribed=oversubscribed,
                        final_loss=losses[-1] if losses else None, rel_dparam=r.get("rel_diff"),
                        verdict=None if "ok" not in r else ("pass" if ok else "fail"),
                        peak_mem_mb=max(peaks) if peaks else None,
                        worker_peak_mb=" ".join(f"{p:.0f}" for p in peaks) or None,
                        hosts=r.get("hosts", hosts), scaling=hc.scaling,
                        tx_bytes_per_step=sum(tx) / len(tx) if tx else None,
                        rx_bytes_per_step=sum(rx) / len(rx) if rx else None,
                        memory_limit_mb=max(limits) / 1e6 if limits else None,
                        status="ok" if ok else "failed",
                        reason="" if ok else f"disagrees with the streaming float64 oracle (rel {r.get('rel_diff')})")


class Speedups:
    """Times per step the rows across hosts are related to: workers = 1 of the same engine and
    scaling on the same base data set, and the fastest single-process baseline on the row's data."""

    def __init__(self):
        self.single: dict = {}
        self.ws1: dict = {}

    def baseline(self, row: Row) -> None:
        if row.status == "ok" and row.time_per_iter_s:
            key = (row.dataset, row.library)
            if key not in self.single or row.time_per_iter_s < self.single[key][1]:
                self.single[key] = (row.backend, row.time_per_iter_s)

    def fields(self, hc: HostCase, row: Row) -> dict:
        t, w = row.time_per_iter_s, hc.case.config.workers
        if row.status != "ok" or not t:
            return {}
        key = (hc.case.backend, hc.scaling, hc.base)
        if w == 1:
            self.ws1.setdefault(key, t)
        out = {}
        if key in self.ws1:
            speedup = self.ws1[key] / t * (w if hc.scaling == "weak" else 1)
            out.update(speedup_vs_ws1=speedup, efficiency_vs_ws1=speedup / w)
        single = self.single.get((row.dataset, row.library))
        if single is not None:
            out.update(baseline=single[0], speedup_vs_single=single[1] / t, efficiency_vs_single=single[1] / (t * w))
        return out


def run(items: list[HostCase], sinks, options, run_id: str, simulate: int | None = None, scheduler: str | None = None,
        memory_limit: int | None = None, shards_dir: str | None = None, timeout: float = 30.0,
        row_timeout: float = 600.0) -> RunResult:
    """Every item in order through :func:`bench.runner.run` (its endings and sinks), each row across
    the hosts; the namespaces, the processes in them and the shard folders written here are removed
    on every ending."""

    @contextlib.contextmanager
    def across(ev: Evaluator, result: RunResult):
        speed, hosts, shards = Speedups(), None, None
        try:
            shards = Shards(shards_dir, options.seed)
            hosts = Simulated(simulate, memory_limit, timeout, row_timeout) if simulate else Real(scheduler,
                                                                                               memory_limit)
            if hosts.error:
                result.notes.append(hosts.error)

            def execute(hc: HostCase) -> Outcome:
                if not hc.scaling:  # a single-process baseline, on this machine
                    outcome = ev.execute(hc.case)
                    outcome = Outcome(outcome.row.replace(scaling=None), outcome.curve)
                    speed.baseline(outcome.row)
                    return outcome
                row = _host_row(hc, hosts, shards, result.run_id, memory_limit, simulate)
                return Outcome(row.replace(**speed.fields(hc, row)))

            yield execute
        finally:
            if hosts is not None:
                hosts.close()
            if shards is not None:
                shards.close()

    return runner.run(items, sinks, options, run_id, executor=across)


def _host_row(hc: HostCase, hosts, shards: Shards, run_id: str, memory_limit, simulate) -> Row:
    """One engine at one world size across the hosts: ``ok``, or ``skipped`` / ``failed`` with the reason."""
    cfg = hc.case.config
    over = cfg.workers > available_cores() if simulate else None
    try:
        folder = shards.get(hc.case.dataset, hc.parts)
        with tempfile.TemporaryDirectory(prefix="logreg-row-") as work:
            r = hosts.run(hc.case.backend, folder, cfg, work)
        return host_row(run_id, hc, r, None, memory_limit, over)
    except RowSkipped as exc:
        return Row.for_case(run_id, hc.case, scaling=hc.scaling, status="skipped", reason=str(exc))
    except Exception as exc:
        return Row.for_case(run_id, hc.case, scaling=hc.scaling, oversubscribed=over, status="failed",
                            memory_limit_mb=memory_limit / 1e6 if memory_limit else None,
                            reason=f"{type(exc).__name__}: {exc}")
