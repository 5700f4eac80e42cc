"""Peak memory of a training run: host RSS growth (Linux) or the CUDA allocator's peak.

Host: the kernel's high-water mark ``VmHWM`` is reset to the current RSS (``5`` written to
``/proc/self/clear_refs``) after ``prepare()``, so ``VmHWM - VmRSS`` read after the runs is what
``run()`` itself allocated on top of the prepared data: its temporaries. No sampling thread, so
the timed region is not disturbed. Elsewhere (macOS, restricted /proc) the value is left empty.
"""

from __future__ import annotations

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


class PeakMemory:
    """``with PeakMemory(device) as pm: ...`` then ``pm.mb`` (MiB above the start, or None)."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.mb = None

    def __enter__(self):
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
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

            self.mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        else:
            hwm = _status_kb("VmHWM")
            self.mb = None if hwm is None else max(0, hwm - self._base) / 1024
        return False
