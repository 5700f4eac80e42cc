"""Peak memory of a training run: host RSS growth (Linux) or the CUDA allocator's peak.

Host: the kernel's high-water mark ``VmHWM`` is reset to the current RSS (``5`` written to
``/proc/self/clear_refs``) after ``prepare()``, so ``VmHWM - VmRSS`` read after the runs is what
``run()`` itself allocated on top of the prepared data: its temporaries. No sampling thread, so
the timed region is not disturbed. Elsewhere (macOS, restricted /proc) the value is left empty.

CUDA: torch's allocator peak (CuPy's and JAX's own allocators are not seen). Before each cuda row,
what earlier rows left cached (torch's cache, CuPy's pools, dropped JAX arrays) is given back, so
that a large row does not find the device full of a finished row's buffers.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def release_device_memory() -> None:
    """What earlier rows left cached on the device, given back: the garbage collector first (a
    dropped trainer's arrays, JAX's included, are freed with it), then torch's caching allocator and
    CuPy's pools (each only where its library is already imported). Memory still held is kept."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()


def _cuda_start() -> int | None:
    """Before a cuda row's rounds: earlier rows' cached memory released, the peak counter reset;
    torch's allocated bytes now, or None (no value) where torch has no usable CUDA device."""
    import torch

    try:
        if not torch.cuda.is_available():
            return None
        release_device_memory()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    except Exception:  # a broken CUDA context: the row's own code will say so; memory is left empty
        return None


class PeakMemory:
    """``with PeakMemory(device) as pm: ...`` then ``pm.mb`` (MiB above the start, or None)."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.mb = None

    def __enter__(self):
        if self.device.startswith("cuda"):
            self._base = _cuda_start()
        elif self.device == "cpu":
            try:
                _CLEAR.write_text("5")
                self._base = _status_kb("VmRSS")
            except OSError:
                self._base = None
        else:
            self._base = None
        return self

    def __exit__(self, *exc):
        if self._base is None:
            return False
        if self.device.startswith("cuda"):
            import torch

            try:
                self.mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
            except Exception:
                self.mb = None
        else:
            hwm = _status_kb("VmHWM")
            self.mb = None if hwm is None else max(0, hwm - self._base) / 1024
        return False
