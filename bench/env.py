"""The environment record (``env.json``): versions, BLAS pools, CPU, GPU and git sha, written once
per run beside the CSV; with ``devices``, also what a GPU run needs (every GPU nvidia-smi lists,
CUDA / cuDNN / CuPy / JAX device views).

Nothing here raises on a machine without (or with a broken) GPU stack: what cannot be read is
recorded as None or as a string saying why.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

from threadpoolctl import threadpool_info

from implementations import get_backend

VERSIONED = ("numpy", "torch", "sklearn", "scipy", "pandas", "cupy", "numba", "jax", "dask", "distributed",
             "threadpoolctl")
NVIDIA_SMI_FIELDS = "name,driver_version,memory.total,clocks.max.sm,clocks.max.memory,power.limit,pci.bus_id"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_sha() -> str:
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=here).stdout.strip()
        if sha:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                   text=True, timeout=5, cwd=here).stdout.strip()
            return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


@functools.lru_cache(maxsize=1)
def _distributions() -> dict:
    return importlib.metadata.packages_distributions()


def _version(module: str) -> str | None:
    """The module's ``__version__`` if it is imported; else its installed distribution's version, read
    from the package metadata without importing it (JAX, numba, Dask, CuPy cost seconds to import, and
    CuPy without CUDA fails); None when not installed."""
    mod = sys.modules.get(module)
    if mod is not None:
        return getattr(mod, "__version__", "unknown")
    try:
        names = _distributions().get(module)
        return importlib.metadata.version(names[0]) if names else None
    except Exception:
        return None


def _nvidia_smi(query: str) -> str | None:
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _gpu(torch) -> dict | str | None:
    """The first CUDA device (or Apple MPS); None without one; a string saying why when the CUDA
    runtime is there but cannot be read (a broken driver, a lost device)."""
    try:
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return {"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1),
                    "cuda": torch.version.cuda, "driver": _nvidia_smi("driver_version") or None,
                    "count": torch.cuda.device_count()}
        if torch.backends.mps.is_available():
            return {"name": "Apple MPS", "cuda": None, "driver": None}
    except Exception as exc:
        return f"unavailable: {type(exc).__name__}: {exc}"
    return None


def _gpu_details(torch, devices) -> dict:
    """What a GPU run records besides :func:`_gpu`: every GPU nvidia-smi lists, CUDA / cuDNN and the
    devices torch sees; where a ``cuda`` device is asked for, CuPy's and JAX's views too."""
    gpu = {}
    out = _nvidia_smi(NVIDIA_SMI_FIELDS)
    gpu["nvidia_smi"] = None if out is None else [
        # strict=False: a line nvidia-smi prints instead of the fields (an error) gives fewer values
        dict(zip(NVIDIA_SMI_FIELDS.split(","), (x.strip() for x in line.split(",")), strict=False))
        for line in out.splitlines()]
    try:
        gpu["torch_cuda"] = torch.version.cuda
        gpu["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
        gpu["torch_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        gpu["torch_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    except Exception as exc:
        gpu["torch_devices"] = f"{type(exc).__name__}: {exc}"
    # the jax backend traces and compiles every program under this matmul precision (no TF32 on cuda)
    try:
        gpu["jax_matmul_precision"] = get_backend("jax").matmul_precision
    except Exception as exc:
        gpu["jax_matmul_precision"] = f"unavailable: {type(exc).__name__}: {exc}"
    if any(str(d).startswith("cuda") for d in devices):
        try:
            import cupy  # deferred: seconds to import, and it fails without CUDA

            gpu["cupy"] = {"version": cupy.__version__, "runtime": cupy.cuda.runtime.runtimeGetVersion()}
        except Exception as exc:
            gpu["cupy"] = f"unavailable: {type(exc).__name__}: {exc}"
        try:
            import jax  # deferred: seconds to import

            gpu["jax_devices"] = [str(d) for d in jax.devices()]
        except Exception as exc:
            gpu["jax_devices"] = f"unavailable: {type(exc).__name__}: {exc}"
    return gpu


def environment(run_id: str, devices=None) -> dict:
    """Versions, BLAS pools, CPU, GPU and git sha: written once per run beside the CSV. With
    ``devices`` (a GPU run's devices), also ``gpu_details``, ``devices`` and JAX's preallocation
    setting."""
    import torch  # deferred: a second to import, and reading results never needs it

    env = {
        "run_id": run_id,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {m: _version(m) for m in VERSIONED},
        "blas": [
            {k: info.get(k) for k in ("user_api", "internal_api", "version", "num_threads", "architecture", "filepath")}
            for info in threadpool_info()
        ],
        "cpu": {"model": _cpu_model(), "logical_cores": os.cpu_count(), "machine": platform.machine()},
        "gpu": _gpu(torch),
        "git_sha": _git_sha(),
    }
    if devices is not None:
        env["gpu_details"] = _gpu_details(torch, devices)
        env["devices"] = list(devices)
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE")
    return env
