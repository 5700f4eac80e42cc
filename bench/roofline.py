"""What the hardware allows: memory bandwidth measured in the same process as the run.

A full-batch step must read all of ``X`` at least once (``n d`` elements), so at a read bandwidth
``B`` no implementation can beat ``t_floor = bytes_per_step / B``. ``roofline_fraction`` in the
CSV is ``t_floor / t_measured`` (1.0 = at the floor). On the host ``B`` is the best of a
multi-threaded reduction and a BLAS matrix-vector product over a 256 MiB array (both read it
once); a copy (read + write) is recorded beside it. On a GPU, a device-to-device copy.
"""

from __future__ import annotations

import time

import numpy as np

SIZE_BYTES = 256 * 2**20


def _best(fn, reps=7) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def host_bandwidth(size_bytes: int = SIZE_BYTES) -> dict:
    import torch

    rows = size_bytes // (4 * 256)
    a = np.ones((rows, 256), dtype=np.float32)
    v = np.ones(256, dtype=np.float32)
    t = torch.from_numpy(a)
    read = size_bytes / min(_best(lambda: a @ v), _best(lambda: t.sum())) / 1e9
    dst = np.empty_like(a)
    copy = 2 * size_bytes / _best(lambda: np.copyto(dst, a)) / 1e9
    return {"host_read": round(read, 2), "host_copy": round(copy, 2)}


def device_bandwidth(device: str, size_bytes: int = 4 * SIZE_BYTES) -> float | None:
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


def measure_bandwidth(devices=("cpu",)) -> dict:
    """``{"host_read", "host_copy", "device_copy"}`` in GB/s (device_copy None without a GPU)."""
    out = host_bandwidth()
    gpu = next((d for d in devices if d != "cpu"), None)
    out["device_copy"] = device_bandwidth(gpu) if gpu else None
    return out
