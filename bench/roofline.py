"""What the hardware allows, measured in the same process as the run: a memory floor and a compute roof.

**The memory floor (large data).** A full-batch step must read all of ``X`` at least once
(``n d`` elements), so at a read bandwidth ``B`` no implementation can beat
``t_floor = bytes_per_step / B``; ``roofline_fraction = t_floor / t_measured`` (1.0 = at the floor).
``B`` must be what *all* the cores can pull from memory, or every fraction flatters: on the 2-core
machine this was measured on, one thread reading a 1 GiB array got 16.7 GB/s and two got 33 GB/s. So the
host read bandwidth is the best of three parallel reads of one array, each method recorded:

* ``host_read_torch_sum``      ``torch.sum`` on all the harness's threads (ATen's OpenMP pool);
* ``host_read_numpy_threads``  the array cut in one contiguous chunk per thread, each chunk summed
  by ``ndarray.sum`` on its own Python thread (NumPy releases the GIL), partial sums added after;
* ``host_read_gemv``           ``A @ v`` through the BLAS under NumPy on all threads.

The array is at least 256 MiB and at least four times the last-level cache (so it streams from DRAM
and not from cache; on this project's 2-core AMD EPYC VM, 32 MiB L3, idle, two runs each: ``host_read``
30.3 and 31.9 GB/s on 256 MiB in 0.4-1.6 s, 27.4 and 30.9 GB/s on 1 GiB in 1.3-4.1 s), capped to a
quarter of the memory available. ``host_read`` = the best = the floor.
``host_copy`` (read + write, a 256 MiB slice) is kept for reference. On a GPU: a device-to-device copy.

**The compute roof (data that fits in cache).** When ``X`` fits in cache the bandwidth floor is
meaningless (Iris is 1.6 KB): such a row is bound by per-call overhead or arithmetic, not memory.
The figure chosen is the cores' measured fused-multiply-add rate, ``host_gflops_<dtype>``: the best
flops/s of an in-cache square matrix product (``N = 256``: three matrices of 256 KiB in float32 fit
in any L2) through NumPy's BLAS and through torch, on all the harness's threads. Why this and not a
whole-run compiled kernel's time per step: it is a property of
the hardware, not of one contender (a numba or Inductor kernel measured at start would be a
competitor judging itself, would be missing where numba or a compiler is, and would need one
measurement per ``(n, d)``); it is per dtype; and it is one number per run, like ``B``. A step's
arithmetic is two matrix-vector products over the ``m`` rows of its batch, ``4 m d`` flops
(:func:`flops_per_step`; the ``m`` exponentials and the ``O(d)`` update are not counted), so
``compute_fraction = flops_per_step / time_per_step / host_gflops`` (:func:`compute_fraction`) says
how far a tiny row is from what the cores can do. A matrix-vector product does 2 flops per element
read and so is memory-bound above the cache; report ``compute_fraction`` where ``X`` fits in cache
(:func:`fits_in_cache`) and ``roofline_fraction`` elsewhere.

Public API (what rows use)::

    figures = measure_roofline(devices=("cpu",), threads=None)   # one dict, ~1-3 s
    figures["host_read"]        # GB/s, the floor: max of the three host_read_* methods
    figures["host_read_torch_sum"], figures["host_read_numpy_threads"], figures["host_read_gemv"]
    figures["host_copy"]        # GB/s, read + write
    figures["host_gflops_float32"], figures["host_gflops_float64"]   # GFLOP/s, in-cache FMA rate
    figures["device_copy"]      # GB/s on the first non-cpu device, None without one
    figures["device_read"]      # GB/s, a CUDA device's floor (HBM read, torch.sum); device_gflops_<dtype> its roof
    figures["array_mib"], figures["llc_mib"], figures["threads"]     # how it was measured
    compute_fraction(time_per_step_s, m, d, dtype, figures, n_classes=2)   # float or None
    fits_in_cache(bytes_per_step, figures)                           # bool: which fraction to report
    step_floor(bytes_per_step, m, d, dtype, figures, n_classes, device)    # StepFloor: seconds, bound

**K classes (softmax).** A K-class step still reads ``X`` once, but its products are
matrix-matrix (``X W`` and ``X^T (P - Y)`` with ``W`` of shape ``(d, K)``): ``4 m d K`` flops for
about the same bytes, ``K`` times the binary step's arithmetic intensity. Its floor is therefore the
larger of the two: ``t_floor = max(bytes_per_step / B, flops_per_step / gflops)`` (:func:`step_floor`),
and the row's ``bound`` says which one it is (``memory`` or ``compute``). Out of cache a K-class row
reports ``roofline_fraction = t_floor / t_measured`` (against that larger floor) and
``compute_fraction = flops / t_measured / gflops`` (against the compute roof; equal to
``roofline_fraction`` when the row is compute-bound); in cache it reports ``compute_fraction`` only,
as a binary row does. Binary rows keep the rule above unchanged (``bound``: ``compute`` in cache,
``memory`` out of it, i.e. the fraction they report).

**Sparse X (CSR).** A step on a CSR matrix moves, at the least, its values and column indices twice
(once for ``z = X w``, once more for ``g = X^T r`` on the transpose stored as CSR), each product's
row pointers, the labels, and the parameters read and written (the weights gathered, the gradient
scattered): :func:`sparse_bytes_per_step`, about ``2 nnz (itemsize + 4)`` bytes. Its arithmetic is
``4 nnz K`` flops, one multiply-add per stored value and product, so a sparse step is memory-bound
at every size (1 flop per 6 bytes in float32); its floor is ``bytes / host_read`` and
``roofline_fraction`` is reported for every sparse row, in cache or not
(:func:`sparse_floor_fields`; where the matrix fits in cache the fraction may pass 1: that row is
bound by the gathers' latency, not by DRAM, and the verdict says so).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

MIN_ARRAY_BYTES = 2**28  # at least 256 MiB ...
LLC_MULTIPLE = 4  # ... and at least four times the last-level cache ...
MEMORY_FRACTION = 0.25  # ... but at most a quarter of the available memory
COPY_BYTES = 256 * 2**20
GEMM_N = 256  # in-cache matrix product for the FMA rate
READ_REPS = 5


def _best(fn, reps=READ_REPS) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def last_level_cache_bytes() -> int:
    """Size of the largest cache level reported by Linux sysfs (0 if unknown)."""
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in os.listdir(base):
            if not entry.startswith("index"):
                continue
            with open(os.path.join(base, entry, "size")) as fh:
                text = fh.read().strip().upper()
            mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
            best = max(best, int(text.rstrip("KMG")) * mult)
    except (OSError, ValueError):
        try:
            best = int(os.sysconf("SC_LEVEL3_CACHE_SIZE")) or int(os.sysconf("SC_LEVEL2_CACHE_SIZE"))
        except (ValueError, OSError, AttributeError):
            best = 0
    return max(best, 0)


def available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def array_bytes() -> int:
    """The read array's size: max(256 MiB, 4 x LLC), capped to a quarter of available memory."""
    size = max(MIN_ARRAY_BYTES, LLC_MULTIPLE * last_level_cache_bytes())
    avail = available_memory_bytes()
    if avail:
        size = min(size, int(avail * MEMORY_FRACTION))
    return max(size, 64 * 2**20)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def host_bandwidth(threads: int | None = None, size_bytes: int | None = None) -> dict:
    """Per-method host read bandwidths (GB/s), their best ``host_read``, and ``host_copy``."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = threads or _cores()
    size_bytes = size_bytes or array_bytes()
    cols = 256
    rows = size_bytes // (4 * cols)
    # every page faulted in before timing, and every page different: pages of equal content can be
    # merged by the kernel or the hypervisor (KSM), and a read of one shared page comes from cache
    a = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
    nbytes = a.nbytes
    v = np.ones(cols, dtype=np.float32)
    t = torch.from_numpy(a)
    chunks = np.array_split(a, threads)
    before = torch.get_num_threads()
    out = {}
    try:
        torch.set_num_threads(threads)
        with threadpool_limits(limits=threads), ThreadPoolExecutor(threads) as pool:
            out["host_read_torch_sum"] = nbytes / _best(lambda: t.sum()) / 1e9
            out["host_read_numpy_threads"] = nbytes / _best(lambda: sum(pool.map(np.sum, chunks))) / 1e9
            out["host_read_gemv"] = nbytes / _best(lambda: a @ v) / 1e9
            src = a.reshape(-1)[: COPY_BYTES // 4]
            dst = np.empty_like(src)
            out["host_copy"] = 2 * src.nbytes / _best(lambda: np.copyto(dst, src)) / 1e9
    finally:
        torch.set_num_threads(before)
    out = {k: round(x, 2) for k, x in out.items()}
    out["host_read"] = max(out[k] for k in ("host_read_torch_sum", "host_read_numpy_threads", "host_read_gemv"))
    out["array_mib"] = round(nbytes / 2**20)
    out["llc_mib"] = round(last_level_cache_bytes() / 2**20, 2)
    out["threads"] = threads
    return out


def host_gflops(threads: int | None = None, n: int = GEMM_N) -> dict:
    """In-cache FMA rate per dtype (GFLOP/s): best of NumPy's BLAS and torch on an ``n x n`` product."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = threads or _cores()
    before = torch.get_num_threads()
    out = {}
    try:
        torch.set_num_threads(threads)
        with threadpool_limits(limits=threads):
            for dtype in ("float32", "float64"):
                a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
                c = np.empty_like(a)
                ta, tc = torch.from_numpy(a), torch.from_numpy(c)
                t = min(_best(lambda a=a, c=c: np.matmul(a, a, out=c), reps=10),
                        _best(lambda ta=ta, tc=tc: torch.mm(ta, ta, out=tc), reps=10))
                out[f"host_gflops_{dtype}"] = round(2 * n**3 / t / 1e9, 1)
    finally:
        torch.set_num_threads(before)
    return out


def device_bandwidth(device: str, size_bytes: int = 2**30) -> float | None:
    import torch

    try:
        dev = torch.device(device)
        if dev.type == "cuda" and torch.cuda.is_available():
            sync = lambda: torch.cuda.synchronize(dev)  # noqa: E731
        elif dev.type == "mps" and torch.backends.mps.is_available():
            sync = torch.mps.synchronize
        else:
            return None
        src = torch.ones(size_bytes // 4, dtype=torch.float32, device=dev)
        dst = torch.empty_like(src)

        def copy():
            dst.copy_(src)
            sync()

        return round(2 * size_bytes / _best(copy) / 1e9, 2)
    except RuntimeError:
        return None


DEVICE_READ_BYTES = 4 * 2**30  # the device read: 4 GiB, far beyond any GPU's L2 (an H200 has 60 MiB)
DEVICE_GEMM_N = 8192  # the device compute roof: an 8192^2 matrix product per dtype


def device_floor(device: str, read_bytes: int = DEVICE_READ_BYTES, gemm_n: int = DEVICE_GEMM_N) -> dict:
    """A CUDA device's floor and roof, timed with CUDA events (best of ``READ_REPS``), as the host's:

    * ``device_read``  GB/s: ``torch.sum`` over a ``read_bytes`` float32 tensor (HBM read bandwidth,
      the memory floor of a ``cuda`` row: ``roofline_fraction = achieved_gbps / device_read``);
    * ``device_copy``  GB/s: a device-to-device copy, read + write counted (for reference);
    * ``device_gflops_float32`` / ``device_gflops_float64``: an ``N x N`` matrix product with TF32
      off (true float32 FMAs), the compute roof;
    * ``device_name``, ``device_read_mib``.

    Every figure is None where the device is not a usable CUDA device (or runs out of memory: the
    read array is halved down to 256 MiB first)."""
    out = {"device_read": None, "device_copy": None, "device_gflops_float32": None,
           "device_gflops_float64": None, "device_name": None, "device_read_mib": None}
    try:
        import torch

        dev = torch.device(device)
        if dev.type != "cuda" or not torch.cuda.is_available():
            return out
        dev = torch.device("cuda", dev.index if dev.index is not None else torch.cuda.current_device())
        out["device_name"] = torch.cuda.get_device_name(dev)

        def best(fn, reps=READ_REPS):
            fn()
            torch.cuda.synchronize(dev)
            times = []
            for _ in range(reps):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b) / 1e3)
            return min(times)

        with torch.cuda.device(dev):
            size = read_bytes
            while True:
                try:
                    x = torch.arange(size // 4, dtype=torch.float32, device=dev)  # every page different
                    break
                except torch.cuda.OutOfMemoryError:
                    if size <= 256 * 2**20:
                        raise
                    size //= 2
            out["device_read"] = round(x.numel() * 4 / best(lambda: x.sum()) / 1e9, 1)
            out["device_read_mib"] = round(x.numel() * 4 / 2**20)
            half = x[: x.numel() // 2]
            dst = torch.empty_like(half)
            out["device_copy"] = round(2 * half.numel() * 4 / best(lambda: dst.copy_(half)) / 1e9, 1)
            x = half = dst = None  # free the device memory (the lambdas above are done with them)
            tf32 = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = False
            try:
                for dtype in ("float32", "float64"):
                    a = torch.randn(gemm_n, gemm_n, dtype=getattr(torch, dtype), device=dev)
                    c = torch.empty_like(a)
                    seconds = best(lambda a=a, c=c: torch.mm(a, a, out=c))
                    out[f"device_gflops_{dtype}"] = round(2 * gemm_n**3 / seconds / 1e9, 1)
                    a = c = None
            finally:
                torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.cuda.empty_cache()
    except Exception:  # no CUDA torch, a driver problem: the floor is unknown, the rows still run
        pass
    return out


def measure_roofline(devices=("cpu",), threads: int | None = None, host_bytes: int | None = None) -> dict:
    """Every figure of the module docstring in one dict (GB/s, GFLOP/s); on a CUDA device also
    :func:`device_floor`'s (``device_read`` is the device's memory floor, ``device_copy`` kept for
    reference). ``host_bytes``: the host read array's size (default :func:`array_bytes`).

    ``LOGREG_BENCH_FLOOR=skip`` in the environment measures nothing and returns ``{}`` (rows then
    have no roofline or compute fraction): the test suite sets it, since the measurement takes
    seconds on every command it starts and most tests are about something else."""
    if os.environ.get("LOGREG_BENCH_FLOOR", "").strip().lower() == "skip":
        return {}
    out = host_bandwidth(threads, host_bytes)
    out.update(host_gflops(threads))
    gpu = next((d for d in devices if d != "cpu"), None)
    if gpu and str(gpu).startswith("cuda"):
        out.update(device_floor(gpu))
    else:
        out["device_copy"] = device_bandwidth(gpu) if gpu else None
    return out



def flops_per_step(m: int, d: int, n_classes: int = 2) -> int:
    """Multiply-adds of one step on ``m`` rows: ``z = X w`` and ``X^T r``, ``2 m d`` flops each
    (binary); with ``n_classes = K >= 3``, ``Z = X W`` and ``X^T (P - Y)``, ``2 m d K`` flops each."""
    return 4 * m * d * (n_classes if n_classes >= 3 else 1)


def compute_fraction(time_per_step_s: float, m: int, d: int, dtype: str, figures: dict,
                     n_classes: int = 2, device: str = "cpu") -> float | None:
    """``flops_per_step / time_per_step / <roof>`` (1.0 = the FMA rate); None if unknown. The roof is
    ``host_gflops_<dtype>`` on the CPU, ``device_gflops_<dtype>`` elsewhere."""
    peak = figures.get(f"host_gflops_{dtype}" if device == "cpu" else f"device_gflops_{dtype}")
    if not peak or not time_per_step_s or time_per_step_s <= 0:
        return None
    return flops_per_step(m, d, n_classes) / time_per_step_s / (peak * 1e9)


def fits_in_cache(bytes_per_step: int, figures: dict) -> bool:
    """True when a step's data fits in the last-level cache: report ``compute_fraction``, not ``roofline_fraction``."""
    llc = figures.get("llc_mib") or 0
    return bytes_per_step <= llc * 2**20


class StepFloor(NamedTuple):
    """The least time a step can take on this hardware, and what sets it."""

    seconds: float | None  # None: neither the bandwidth nor the compute roof is known
    bound: str | None  # "memory" or "compute" (None with seconds)
    memory_s: float | None  # bytes_per_step / bandwidth
    compute_s: float | None  # flops_per_step / compute roof


def step_floor(bytes_per_step: int, m: int, d: int, dtype: str, figures: dict, n_classes: int = 2,
               device: str = "cpu") -> StepFloor:
    """``max(bytes / bandwidth, flops / compute roof)`` and which term is the larger. Bandwidth:
    ``host_read`` on the CPU, ``device_read`` (else ``device_copy``) on a device; roof:
    ``host_gflops_<dtype>`` / ``device_gflops_<dtype>``. A term whose figure is unknown is left out."""
    if device == "cpu":
        bw, peak = figures.get("host_read"), figures.get(f"host_gflops_{dtype}")
    else:
        bw, peak = figures.get("device_read") or figures.get("device_copy"), figures.get(f"device_gflops_{dtype}")
    mem = bytes_per_step / (bw * 1e9) if bw else None
    comp = flops_per_step(m, d, n_classes) / (peak * 1e9) if peak else None
    if mem is None and comp is None:
        return StepFloor(None, None, None, None)
    if comp is not None and (mem is None or comp > mem):
        return StepFloor(comp, "compute", mem, comp)
    return StepFloor(mem, "memory", mem, comp)


INDEX_BYTES = 4  # a CSR column index or row pointer as every sparse backend here holds it (int32)


def sparse_bytes_per_step(m: int, nnz: int, d: int, dtype: str, n_classes: int = 2,
                          index_bytes: int = INDEX_BYTES) -> int:
    """The least a step on ``m`` CSR rows holding ``nnz`` stored values must move: values and column
    indices read for ``X w`` and again for ``X^T r`` (``2 nnz (itemsize + index_bytes)``), both
    products' row pointers (``m + 1`` and ``d + 1``), the ``m`` labels, and the parameters read and
    written (``(d + 1) K``: the weights gathered, the gradient scattered)."""
    item = np.dtype(dtype).itemsize
    k = n_classes if n_classes >= 3 else 1
    return int(2 * nnz * (item + index_bytes) + (m + 1 + d + 1) * index_bytes + item * (m + 2 * (d + 1) * k))


def sparse_floor_fields(bytes_per_step: int, nnz: int, dtype: str, figures: dict, time_per_step_s: float | None,
                        n_classes: int = 2, device: str = "cpu") -> dict:
    """A sparse row's figures against the hardware: ``roofline_fraction`` = (bytes / bandwidth) / the
    measured step, ``compute_fraction`` = ``4 nnz K`` flops against the compute roof, ``bound`` =
    the larger floor (``memory`` at any realistic size). Empty where the step or figures are unknown."""
    if not time_per_step_s or time_per_step_s <= 0 or not figures:
        return {}
    if device == "cpu":
        bw, peak = figures.get("host_read"), figures.get(f"host_gflops_{dtype}")
    else:
        bw, peak = figures.get("device_read") or figures.get("device_copy"), figures.get(f"device_gflops_{dtype}")
    out: dict = {}
    mem = bytes_per_step / (bw * 1e9) if bw else None
    comp = 4 * nnz * (n_classes if n_classes >= 3 else 1) / (peak * 1e9) if peak else None
    if comp is not None:
        out["compute_fraction"] = comp / time_per_step_s
    if mem is not None or comp is not None:
        floor, bound = max((f, b) for f, b in ((mem, "memory"), (comp, "compute")) if f is not None)
        out.update(roofline_fraction=floor / time_per_step_s, bound=bound)
    return out
