"""Honest timing: equal thread counts, warm-up, device sync inside the timed region, statistics.

``run()`` of every backend returns only after its device work is done (the contract), so the
clock stopped right after it measures the work itself, not the time to queue it.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

import numpy as np

from .suites import ROUNDS_MAX, ROUNDS_MIN

NOISY_IQR_FRACTION = 0.10


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Threads:
    """The thread count asked for, and what each library reports using inside the run."""

    asked: int
    torch: int
    blas: int | None  # the largest pool threadpoolctl sees (None: no BLAS/OpenMP pool found)
    numba: int | None  # None: numba not installed, or unusable (then ``numba_error`` says why)
    numba_error: str | None = None

    @property
    def oversubscribed(self) -> bool:
        used = [t for t in (self.torch, self.blas, self.numba) if t]
        return max(used, default=self.asked) > available_cores()

    def as_dict(self) -> dict:
        return {"threads": self.asked, "threads_torch": self.torch, "threads_blas": self.blas,
                "threads_numba": self.numba, "oversubscribed": self.oversubscribed}


def _import_numba():
    """``(numba or None, error or None)``: an environment that breaks numba (``NUMBA_NUM_THREADS=0``)
    makes numba unusable, not the whole run."""
    try:
        import numba

        numba.get_num_threads()
        return numba, None
    except ImportError:
        return None, None
    except Exception as exc:
        return None, f"numba cannot start here ({type(exc).__name__}: {exc})"


@contextlib.contextmanager
def thread_parity(threads: int | None):
    """Give torch (``set_num_threads``), the BLAS/OpenMP pools under NumPy (threadpoolctl) and
    numba (when installed) the same thread count; restore on exit. Yields :class:`Threads`, read
    back from each library once the limits are in place."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    threads = threads or available_cores()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    numba, numba_error = _import_numba()  # imported here so that its pool is limited from the start
    numba_before = None
    try:
        if numba is not None:
            numba_before = numba.get_num_threads()
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        with threadpool_limits(limits=threads):
            pools = [info.get("num_threads") for info in threadpool_info() if info.get("num_threads")]
            yield Threads(asked=threads, torch=torch.get_num_threads(), blas=max(pools) if pools else None,
                          numba=numba.get_num_threads() if numba is not None else None, numba_error=numba_error)
    finally:
        torch.set_num_threads(before)
        if numba_before is not None:
            numba.set_num_threads(numba_before)


@dataclass(frozen=True)
class Measurement:
    """Wall times of ``rounds`` calls of ``run()`` (seconds), each of ``n_iters`` steps."""

    times: tuple[float, ...]
    n_iters: int
    warmup_rounds: int = 1
    # CUDA rows only: CUDA-event time of the same rounds (seconds) and the device timed on; None elsewhere
    event_times: tuple[float, ...] | None = None
    device_name: str | None = None

    def _q(self, q):
        return float(np.percentile(self.times, q))

    @property
    def median(self) -> float:
        return self._q(50)

    @property
    def iqr(self) -> float:
        return self._q(75) - self._q(25)

    @property
    def noisy(self) -> bool:
        """torch.utils.benchmark's rule of thumb: IQR above 10% of the median."""
        return self.iqr > NOISY_IQR_FRACTION * self.median

    def as_dict(self) -> dict:
        t = np.asarray(self.times)
        return {
            "rounds": len(t), "warmup_rounds": self.warmup_rounds,
            "time_median_s": self.median, "time_iqr_s": self.iqr, "time_min_s": float(t.min()),
            "time_max_s": float(t.max()), "time_mean_s": float(t.mean()),
            "time_stddev_s": float(t.std(ddof=1)) if len(t) > 1 else 0.0,
            "time_per_iter_s": self.median / self.n_iters, "iqr_per_iter_s": self.iqr / self.n_iters,
            "noisy": self.noisy, "times_s": " ".join(f"{x:.6g}" for x in self.times),
            **self._event_dict(),
        }

    def _event_dict(self) -> dict:
        """Only for rows timed with CUDA events (the keys are ``Row`` fields)."""
        if not self.event_times:
            return {}
        med = float(np.percentile(self.event_times, 50))
        return {"event_time_median_s": med, "event_time_per_iter_s": med / self.n_iters,
                "device_name": self.device_name}


def measure(trainer, rounds: int = ROUNDS_MIN, warmup: int = 1, budget_s: float | None = None, warm=None,
            max_rounds: int = ROUNDS_MAX, after_warmup=None) -> Measurement:
    """Time ``trainer.run()`` as pytest-benchmark and ``timeit.autorange`` budget it: ``warmup``
    untimed calls first, then at least ``rounds`` timed ones, and more while the timed rounds so far
    took less than ``budget_s`` seconds, up to ``max_rounds`` (``budget_s`` None: ``rounds`` exactly).

    ``warm``, if given, is an already prepared trainer of the same backend, shapes, dtype and
    device but fewer steps: its ``run()`` serves as the warm-up (same code paths, same lazily
    initialised or compiled kernels) without paying for a full-length untimed run. Without it the
    warm-up is a full-length run of ``trainer`` itself: ``after_warmup()``, called once the warm-up
    calls are done, lets the caller take that run's result to judge rather than paying for another."""
    for _ in range(warmup):
        (warm or trainer).run()
    if after_warmup is not None:
        after_warmup()
    # a data-parallel trainer's device work runs in its ranks' processes: no event here would see it
    events = None if getattr(trainer, "data_parallel", False) else \
        _CudaEvents.for_device(getattr(trainer.config, "device", "cpu"))
    times: list[float] = []
    while len(times) < max(rounds, 1) or (budget_s is not None and sum(times) < budget_s and len(times) < max_rounds):
        if events:
            events.start()
        t0 = time.perf_counter()
        trainer.run()  # returns with the device synchronized (the contract): wall time is the work's
        times.append(time.perf_counter() - t0)
        if events:
            events.stop()
    if events:
        return Measurement(tuple(times), trainer.config.n_iters, warmup, events.seconds(), events.name)
    return Measurement(tuple(times), trainer.config.n_iters, warmup)


class _CudaEvents:
    """CUDA-event time of each timed round, beside its wall time: a cross-check of the wall clock.

    A pair of events brackets each round on the device's current (default) stream: the start is
    recorded just before ``run()`` is called, the stop just after it returns. The previous ``run()``
    synchronized, so the device is idle when the start is recorded: the interval runs from that
    moment to the end of the round's last kernel, host time (Python, launch gaps) included. It is
    therefore close to the wall time by construction; the difference is the clock reading and the
    synchronisation's return, *not* the launch overhead (that would need events inside ``run()``,
    around the device work alone). Events are read once, after the last round, so that reading them
    adds no synchronization inside the timed rounds."""

    def __init__(self, torch, device):
        self.torch, self.device = torch, device
        self.name = torch.cuda.get_device_name(device)
        self.pairs = []

    @classmethod
    def for_device(cls, device: str):
        if not str(device).startswith("cuda"):
            return None
        try:
            import torch

            if not torch.cuda.is_available():
                return None
            return cls(torch, torch.device(device))
        except Exception:  # no usable CUDA torch: wall time only
            return None

    def start(self):
        with self.torch.cuda.device(self.device):
            ev = self.torch.cuda.Event(enable_timing=True)
            ev.record()
        self.pairs.append([ev, None])

    def stop(self):
        with self.torch.cuda.device(self.device):
            ev = self.torch.cuda.Event(enable_timing=True)
            ev.record()
        self.pairs[-1][1] = ev

    def seconds(self) -> tuple[float, ...]:
        self.torch.cuda.synchronize(self.device)
        return tuple(a.elapsed_time(b) / 1e3 for a, b in self.pairs)  # elapsed_time is in ms


@dataclass(frozen=True)
class CpuSample:
    """Wall clock, this process's CPU time, and the machine's busy and stolen CPU time (/proc/stat)."""

    wall: float
    own: float
    busy: float | None  # seconds of CPU busy on the whole machine (all processes), None off Linux
    steal: float | None  # seconds the hypervisor ran something else on this VM's CPUs

    @classmethod
    def now(cls) -> "CpuSample":
        busy = steal = None
        try:
            with open("/proc/stat") as fh:
                v = [int(x) for x in fh.readline().split()[1:9]]
            hz = os.sysconf("SC_CLK_TCK")
            busy, steal = (sum(v) - v[3] - v[4] - v[7]) / hz, v[7] / hz
        except (OSError, ValueError, IndexError):
            pass
        return cls(time.perf_counter(), time.process_time(), busy, steal)

    def others_since(self, start: "CpuSample") -> tuple[float | None, float | None]:
        """Cores kept busy by *other* processes (the machine's busy time less this process's), and
        cores stolen by the hypervisor, on average between ``start`` and this sample."""
        wall = self.wall - start.wall
        if self.busy is None or start.busy is None or wall <= 0:
            return None, None
        others = max(0.0, (self.busy - start.busy) - (self.own - start.own)) / wall
        return others, (self.steal - start.steal) / wall


def timed(fn, *args):
    """``(fn(*args), seconds)``."""
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0
