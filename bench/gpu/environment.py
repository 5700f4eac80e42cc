"""The environment of a GPU run (``env.json``): ``bench.records.environment`` plus every GPU
``nvidia-smi`` lists and the CUDA / cuDNN / CuPy / JAX views. Every part is guarded: a failing
query is recorded as its error, never the end of the run."""

from __future__ import annotations

import os
import subprocess

from implementations.jax_backend import MATMUL_PRECISION

from .. import records

SMI_QUERY = "name,driver_version,memory.total,clocks.max.sm,clocks.max.memory,power.limit,pci.bus_id"


def _error(exc: BaseException) -> str:
    return f"unavailable: {type(exc).__name__}: {exc}"


def environment(run_id: str, devices) -> dict:
    """Versions, CPU, git sha (``bench.records.environment``) and the GPU details; a part that fails
    is replaced by its error (``environment_error``, ``gpu_details[...]``)."""
    try:
        env = records.environment(run_id)
    except Exception as exc:  # e.g. a CUDA device whose properties cannot be read
        env = {"run_id": run_id, "environment_error": _error(exc)}
    gpu = {}
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={SMI_QUERY}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        gpu["nvidia_smi"] = [dict(zip(SMI_QUERY.split(","), (x.strip() for x in line.split(","))))
                             for line in out.splitlines()]
    except (OSError, subprocess.SubprocessError):
        gpu["nvidia_smi"] = None
    try:
        import torch

        gpu["torch_cuda"] = torch.version.cuda
        gpu["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
        gpu["torch_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        gpu["torch_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    except Exception as exc:
        gpu["torch_devices"] = _error(exc)
    # the jax backend traces and compiles every program under this matmul precision (no TF32 on cuda)
    gpu["jax_matmul_precision"] = MATMUL_PRECISION
    if any(d.startswith("cuda") for d in devices):
        try:
            import cupy

            gpu["cupy"] = {"version": cupy.__version__, "runtime": cupy.cuda.runtime.runtimeGetVersion()}
        except Exception as exc:
            gpu["cupy"] = _error(exc)
        try:
            import jax

            gpu["jax_devices"] = [str(d) for d in jax.devices()]
        except Exception as exc:
            gpu["jax_devices"] = _error(exc)
    env["gpu_details"] = gpu
    env["devices"] = list(devices)
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE")
    return env
