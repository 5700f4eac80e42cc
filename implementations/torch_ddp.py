"""``torch-ddp``: data-parallel gradient descent on ``torch.distributed`` (gloo on CPU, NCCL on CUDA).

The rows of ``X`` are split into ``workers`` shards of consecutive rows, one per rank; shard sizes
may differ (``numpy.array_split``), so they need not divide ``n``. Step ``t`` on batch ``S_t``
(every row for full batch; else the rows of :func:`implementations.batch_schedule`, each rank
taking the part of ``S_t`` that falls in its shard)::

    rank r:   s_r = [ X_{S_t∩r}^T (p - y),  sum_{S_t∩r} (p - y),  sum_{S_t∩r} l_i ]     (d + 2,)
              (:func:`implementations._reduce.partial_sums`, shared with numpy-dask)
    all:      s   = all_reduce(s_r, SUM)                          one collective per step
    every rank, identically:
              dL/dw = s[:d] / |S_t| + λ w      dL/db = s[d] / |S_t|      L = s[d+1] / |S_t| + (λ/2)||w||^2
              w -= lr dL/dw,   b -= lr dL/db

so the result is the single-process step up to the order of the sum. Softmax (``n_classes = K >= 3``):
each rank holds its shard's one-hot ``Y`` and ``s_r`` grows to ``(d + 1) K + 1`` values
(:func:`implementations._reduce.softmax_partial_sums`: ``vec(X^T (P - Y))``, the column sums of
``P - Y``, the loss sum), still one collective per step. **Explicit ``all_reduce``, not
``DistributedDataParallel``**: DDP all-reduces each rank's gradient of its *local mean* loss and then
divides by the world size, i.e. it averages per-rank means, which weights every row by
``1 / (world · n_r)`` — wrong as soon as shards (or a rank's part of a mini-batch) are unequal. Summing
``Xᵀ(p − y)`` and dividing by the global ``|S_t|`` is exact for any split, costs one packed
``(d + 2)``-value collective per step (DDP would need two buckets plus a separate loss reduction),
and keeps the hand-derived math of ``torch-manual`` (its docstring has the derivation).

Launch, two ways:

* **Local (default).** ``prepare()`` (untimed) starts ``workers`` fresh interpreters (``subprocess``,
  a socket pair each), which rendezvous through a ``TCPStore`` the parent serves on ``127.0.0.1`` at a port the
  OS picks (no race for a "free" port); gloo is bound to the loopback interface
  (``GLOO_SOCKET_IFNAME``). The parent sends each rank its shard and its slice of the batch schedule
  once, then drives the ranks over those sockets (pickled messages): ``run()`` tells every rank to
  run ``n_iters`` steps and waits for all of them (rank 0 returns ``w, b, losses``);
  ``loss_and_grad`` likewise.
* **torchrun** (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` set). The trainer joins the
  launcher's group in-process (``init_method="env://"``): each torchrun process is one rank, loads
  the same data, keeps its own shard, and every rank ends with the same parameters (rank 0's result
  is *the* result). ``config.workers`` must equal ``WORLD_SIZE``. Multi-node::

      torchrun --nnodes 2 --node-rank {0,1} --nproc-per-node 4 --master-addr HOST0 --master-port 29500 script.py

Threads: each rank runs ``torch.set_num_threads(1)`` — a world of ``workers`` ranks uses ``workers``
cores, which is what the harness gives it (``threads = workers`` in the scale study).

Faults: the process group is created with ``timeout = LOGREG_DIST_TIMEOUT`` seconds (default 30): a
collective whose peer died fails on the survivors within that bound instead of hanging, and the parent
watches every rank's process sentinel, so a dead rank is reported at once as
``RuntimeError("torch-ddp: rank 1 (pid ...) died (exit code -9) during run ...")``. A failed group is
torn down, never reused. Teardown is deterministic: ``close()`` / ``with`` (ranks told to exit,
joined, terminated after 5 s if need be; the store's port released); a trainer dropped without
``close()`` leaves its healthy group warm for the next trainer with the same ``workers`` and device
(see :mod:`implementations._distributed`); ``atexit`` closes everything. Ranks ignore SIGINT: Ctrl-C
reaches the parent, whose exit tears the ranks down; a rank whose parent vanished exits on the
closed pipe.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from multiprocessing.connection import Connection, wait as mp_wait

import torch
import torch.distributed as dist

from ._ddp_shard import Shard
from ._distributed import GroupTrainer, Pool, local_schedule, shard_bounds
from ._optim import HAND_WRITTEN
from ._torch_common import torch_device

LOOPBACK = "127.0.0.1"
CALL_TIMEOUT_S = 3600.0  # a command's limit (LOGREG_DDP_CALL_TIMEOUT): a stalled rank or NCCL hang ends
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_POOL = Pool("torch-ddp")


def torchrun_env() -> dict | None:
    """``{rank, world_size, master_addr, master_port}`` when launched by torchrun (all four set)."""
    if not all(v in os.environ for v in TORCHRUN_VARS):
        return None
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except ValueError:
        raise ValueError(f"RANK and WORLD_SIZE must be integers, got RANK={os.environ['RANK']!r}, "
                         f"WORLD_SIZE={os.environ['WORLD_SIZE']!r}") from None
    # refused here, before any rendezvous: a rank outside the world would wait out the whole timeout
    if world < 1:
        raise ValueError(f"WORLD_SIZE must be an integer >= 1 (the number of ranks), got WORLD_SIZE={world}")
    if not 0 <= rank < world:
        raise ValueError(f"RANK must be an integer from 0 to WORLD_SIZE - 1 = {world - 1}, got RANK={rank} "
                         f"(WORLD_SIZE={world})")
    local = os.environ.get("LOCAL_RANK")
    if local is not None and not (local.strip().isdigit() and int(local) < world):
        raise ValueError(f"LOCAL_RANK must be an integer from 0 to WORLD_SIZE - 1 = {world - 1}, got "
                         f"LOCAL_RANK={local!r}")
    return {"rank": rank, "world_size": world, "master_addr": os.environ["MASTER_ADDR"],
            "master_port": os.environ["MASTER_PORT"]}


def _loopback_ifname() -> str:
    names = {name for _, name in socket.if_nameindex()}
    return "lo" if "lo" in names else "lo0"


def _backend(dev: torch.device) -> str:
    return "nccl" if dev.type == "cuda" else "gloo"


def _rank_device(device: str, rank: int) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", rank % torch.cuda.device_count())
    return dev


# the program of a spawned rank: Ctrl-C (sent to the whole foreground process group) belongs to the
# parent, so SIGINT is ignored before anything else, torch's import included; no KeyboardInterrupt
# traceback from a rank that is still starting
_RANK_PROGRAM = ("import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                 "from implementations.torch_ddp import _rank_entry; _rank_entry()")


def _rank_entry() -> None:
    """``python -c`` entry point of one spawned rank (argv: rank world port fd timeout device ifname).

    A fresh interpreter, not ``multiprocessing``'s spawn, so that a user's script without an
    ``if __name__ == "__main__"`` guard is not re-imported in every rank."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the parent, which tears us down
    try:  # Linux: die with the parent even if it is SIGKILLed mid-run
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    rank, world, port, fd = (int(a) for a in sys.argv[1:5])
    timeout, device, ifname = float(sys.argv[5]), sys.argv[6], sys.argv[7]
    if os.getppid() == 1:
        return
    _rank_main(rank, world, port, Connection(fd), timeout, device, ifname)


def _rank_main(rank, world, port, conn, timeout, device, ifname):
    """Join the group, then serve the parent's commands until ``close`` or a closed pipe."""
    os.environ["GLOO_SOCKET_IFNAME"] = ifname  # gloo binds to the loopback interface only
    torch.set_num_threads(1)
    dev = _rank_device(device, rank)
    try:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        store = dist.TCPStore(LOOPBACK, port, world, is_master=False, timeout=timedelta(seconds=timeout))
        dist.init_process_group(_backend(dev), store=store, rank=rank, world_size=world,
                                timeout=timedelta(seconds=timeout))
    except Exception as exc:
        conn.send(("error", f"rank {rank}: could not join the process group at {LOOPBACK}:{port}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    shard = Shard(dev, rank)
    while True:
        try:
            cmd, args = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            break
        if cmd == "close":
            break
        try:
            out = getattr(shard, cmd)(*args)
            conn.send(("ok", out if rank == 0 else None))
        except Exception as exc:
            conn.send(("error", f"rank {rank}: {type(exc).__name__}: {exc}"))
    try:
        dist.destroy_process_group()
    except Exception:
        pass


class RankError(RuntimeError):
    """A rank died or failed; the message names it."""


class LocalGroup:
    """``workers`` spawned ranks on this machine, driven over pipes."""

    def __init__(self, workers: int, device: str, timeout: float):
        self.workers, self.device, self.timeout = workers, device, timeout
        self.closed = self.broken = False
        self.busy = True  # a command sent and not yet answered by every rank (the start, until ready)
        self.procs, self.conns = [], []
        t0 = time.perf_counter()
        # the rendezvous store, served by this process on loopback at a port the OS picks
        self.store = dist.TCPStore(LOOPBACK, 0, workers, is_master=True, wait_for_workers=False,
                                   timeout=timedelta(seconds=timeout))
        ifname = _loopback_ifname()
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        try:
            for rank in range(workers):
                parent, child = socket.socketpair()
                with child:
                    proc = subprocess.Popen(
                        [sys.executable, "-c", _RANK_PROGRAM,
                         str(rank), str(workers), str(self.store.port), str(child.fileno()), repr(timeout),
                         device, ifname],
                        pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL)
                self.procs.append(proc)
                self.conns.append(Connection(parent.detach()))
            # spawning imports torch afresh in every rank: allow for that on top of the rendezvous
            self.pids = self._collect("start", "ready", deadline=time.monotonic() + timeout + 120)
            self.busy = False
        except BaseException:
            self.close()
            raise
        self.startup_s = time.perf_counter() - t0

    def healthy(self) -> bool:
        return not (self.closed or self.broken) and all(p.poll() is None for p in self.procs)

    def call(self, cmd: str, per_rank_args: list[tuple], timeout: float | None = None):
        """Send ``cmd`` to every rank and wait for all, at most ``timeout`` seconds (:data:`CALL_TIMEOUT_S`);
        rank 0's output. No answer in time (:class:`RankError`) or an interrupted wait breaks the group."""
        timeout = float(os.environ.get("LOGREG_DDP_CALL_TIMEOUT", CALL_TIMEOUT_S)) if timeout is None else timeout
        if not self.healthy():
            raise RankError(f"torch-ddp: the process group of {self.workers} rank(s) is closed or failed; "
                            "prepare() a new trainer")
        self.busy = True
        try:
            for conn, args in zip(self.conns, per_rank_args, strict=True):
                conn.send((cmd, args))
        except (BrokenPipeError, OSError):
            self.broken = True
            raise RankError(self._deaths(cmd) or f"torch-ddp: a rank stopped listening during {cmd}") from None
        try:
            out = self._collect(cmd, "ok", deadline=time.monotonic() + timeout)[0]
        except BaseException:  # a Ctrl-C or the hard deadline in the wait: answers may still come, never reuse
            self.broken = True
            raise
        self.busy = False
        return out

    def _collect(self, cmd, expected, deadline=None):
        outs, errors = [None] * self.workers, []
        pending = set(range(self.workers))
        allowed = None if deadline is None else max(0.0, deadline - time.monotonic())
        while pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = mp_wait([self.conns[r] for r in pending], timeout=left)
            if not ready:
                self.broken = True
                raise RankError(f"torch-ddp: rank(s) {sorted(pending)} did not answer {cmd} within {allowed:.3g} s")
            for r in [r for r in pending if self.conns[r] in ready]:
                pending.discard(r)
                try:
                    status, out = self.conns[r].recv()
                except (EOFError, OSError):  # its end closed: the rank died
                    errors.append(None)
                    continue
                if status == expected:
                    outs[r] = out
                else:
                    errors.append(out)
            if errors:
                self.broken = True
                # a peer's death shows first as the survivors' collective errors: name the dead rank(s)
                time.sleep(0.3)
                died = self._deaths(cmd)
                messages = [f"torch-ddp: {e}" for e in errors if e]
                raise RankError("; ".join(([died] if died else []) + messages) or f"torch-ddp: {cmd} failed")
        return outs

    def _deaths(self, cmd) -> str:
        dead = [(r, p) for r, p in enumerate(self.procs) if p.poll() is not None]
        return "; ".join(f"torch-ddp: rank {r} (pid {p.pid}) died (exit code {p.returncode}) during {cmd}"
                         for r, p in dead)

    def reset(self) -> None:
        self.call("reset", [()] * self.workers)

    def close(self) -> None:
        """Ranks told to exit, joined (terminated, then killed, if they do not); store released. Ranks
        left inside a command (a Ctrl-C while they run) would read ``close`` only once it ends: they
        are terminated at once instead of after the 5 s an idle rank gets to exit."""
        if self.closed:
            return
        self.closed = True
        for conn in self.conns:
            try:
                conn.send(("close", ()))
            except Exception:
                pass
        deadline = time.monotonic() + (0.0 if self.busy else 5.0)
        for proc in self.procs:
            try:
                proc.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(2.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(2.0)
        for conn in self.conns:
            conn.close()
        self.store = None  # the parent-served store's listening port closes with it


class JoinedGroup:
    """This process is one rank of a torchrun launch: join (once per process) and run in-process."""

    _joined = False

    def __init__(self, env: dict, device: str, timeout: float):
        self.rank, self.workers = env["rank"], env["world_size"]
        self.closed = self.broken = False
        dev = _rank_device(device, int(os.environ.get("LOCAL_RANK", self.rank)))
        t0 = time.perf_counter()
        if not dist.is_initialized():
            try:
                if dev.type == "cuda":
                    torch.cuda.set_device(dev)
                dist.init_process_group(_backend(dev), init_method="env://", rank=self.rank,
                                        world_size=self.workers, timeout=timedelta(seconds=timeout))
            except Exception as exc:
                raise RankError(f"torch-ddp: rank {self.rank} of {self.workers} could not join the process group at "
                                f"MASTER_ADDR={env['master_addr']}:{env['master_port']} within {timeout:g} s: "
                                f"{type(exc).__name__}: {exc}") from None
            if not JoinedGroup._joined:
                JoinedGroup._joined = True
                atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
        self.startup_s = time.perf_counter() - t0
        torch.set_num_threads(1)
        self.shard = Shard(dev, self.rank)

    def healthy(self) -> bool:
        return not (self.closed or self.broken)

    def call(self, cmd: str, per_rank_args: list[tuple]):
        try:
            return getattr(self.shard, cmd)(*per_rank_args[self.rank])
        except Exception as exc:
            self.broken = True
            # a collective that failed names no rank when it timed out (a link down): name the peers
            lost = ("" if not isinstance(exc, (RuntimeError, dist.DistBackendError)) or self.workers < 2 else
                    f" lost contact with rank(s) {[r for r in range(self.workers) if r != self.rank]} during {cmd};")
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise RankError(f"torch-ddp: rank {self.rank} of {self.workers}:{lost} "
                            f"{type(exc).__name__}: {first}") from None

    def reset(self) -> None:
        self.shard.reset()

    def close(self) -> None:
        """Drops this trainer's data; the process group itself lives until interpreter exit."""
        self.closed = True
        self.shard.reset()


class TorchDDPTrainer(GroupTrainer):
    """Its group is a ``LocalGroup`` (rank processes started here) or a ``JoinedGroup`` (under torchrun)."""

    name = "torch-ddp"
    library = "torch"
    gradient = "hand-derived"
    engine = "gloo"
    style = "torch.distributed all_reduce"
    supports_multiclass = True
    optimizers = HAND_WRITTEN  # momentum, nesterov, adam: implementations._optim's update, the same on every rank

    def __init__(self, config):
        super().__init__(config)
        self.dev = torch_device(config.device, config.dtype)
        self.torchrun = torchrun_env()
        if self.torchrun and self.torchrun["world_size"] != config.workers:
            raise ValueError(f"workers must equal WORLD_SIZE={self.torchrun['world_size']} under torchrun, "
                             f"got {config.workers}")

    def _acquire(self):
        if self._group is not None and self._group.healthy():
            return
        if self.torchrun:
            self._group = JoinedGroup(self.torchrun, self.config.device, self.timeout)
            return
        self._borrow(_POOL, (self.config.workers, self.config.device),
                     lambda: LocalGroup(self.config.workers, self.config.device, self.timeout))

    def _prepare(self, X, y, w0, b0):
        bounds = shard_bounds(self.n, self.config.workers)
        self._acquire()
        args = [(X[lo:hi], y[lo:hi], w0, b0, self.n, self.config, local_schedule(self.schedule, lo, hi))
                for lo, hi in bounds]
        self._group.call("load", args)

    def _prepare_shards(self, meta, groups, bounds, w0, b0):
        """Each rank reads its own parts; under torchrun only this rank's arguments are built."""
        self._acquire()
        mine = self.torchrun["rank"] if self.torchrun else None
        args = [(meta, g, w0, b0, self.n, self.config, local_schedule(self.schedule, lo, hi))
                if mine is None or r == mine else ()
                for r, (g, (lo, hi)) in enumerate(zip(groups, bounds, strict=True))]
        self._group.call("load_shards", args)

    def peak_rss(self) -> list[int]:
        """Peak resident memory of every rank, bytes (the per-worker memory check)."""
        return self._group.call("peak_rss", [()] * self.config.workers)

    def _run(self):
        self._out = self._group.call("run", [()] * self.config.workers)

    def _result(self):
        return self._out

    def _loss_and_grad(self, w, b):
        return self._group.call("loss_and_grad", [(w, b)] * self.config.workers)

    def collective_time(self, reps: int = 50) -> float:
        """Median seconds of one ``all_reduce`` of ``d + 1`` values in this trainer's group."""
        return self._group.call("bench_allreduce", [(self.d + 1, reps)] * self.config.workers)

