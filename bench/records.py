"""Tidy records: one row per measurement, the CSV schema, atomic writes, the environment record."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pandas as pd

# column -> pandas dtype. Nullable types so a skipped row can leave timings empty.
SCHEMA: dict[str, str] = {
    "run_id": "string", "backend": "string", "device": "string", "dtype": "string",
    "formulation": "string", "dataset": "string", "n": "Int64", "d": "Int64", "n_iters": "Int64",
    "lr": "Float64", "threads": "Int64",
    "rounds": "Int64", "warmup_rounds": "Int64", "time_median_s": "Float64", "time_iqr_s": "Float64",
    "time_min_s": "Float64", "time_max_s": "Float64", "time_mean_s": "Float64", "time_stddev_s": "Float64",
    "time_per_iter_s": "Float64", "iqr_per_iter_s": "Float64", "noisy": "boolean", "transfer_s": "Float64",
    "bytes_per_step": "Int64", "achieved_gbps": "Float64", "roofline_fraction": "Float64",
    "peak_mem_mb": "Float64",
    "final_loss": "Float64", "max_abs_dw": "Float64", "abs_db": "Float64", "max_abs_dloss": "Float64",
    "rel_dparam": "Float64", "rel_dloss": "Float64", "tolerance": "Float64", "verdict": "string",
    "saturated": "Int64", "first_nonfinite_step": "Int64",
    "optimum_loss": "Float64", "suboptimality": "Float64", "rel_dist_opt": "Float64",
    "time_to_target_s": "Float64",
    "status": "string", "reason": "string",
}
STATUSES = ("ok", "skipped", "diverged", "failed")


def new_run_id() -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def to_frame(rows: list[dict], schema: dict[str, str] = SCHEMA) -> pd.DataFrame:
    """Rows -> a DataFrame with exactly the schema's columns and dtypes (extra keys kept at the end)."""
    df = pd.DataFrame(rows)
    for col in schema:
        if col not in df:
            df[col] = pd.NA
    extra = [c for c in df.columns if c not in schema]
    df = df[list(schema) + extra]
    return df.astype({c: t for c, t in schema.items()})


def read_runs(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=SCHEMA)


def write_atomic(path: Path, write) -> None:
    """``write(tmp_path)`` then rename over ``path``: a reader (or a Ctrl-C) never sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def write_text(text: str, path: Path) -> None:
    def _w(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)

    write_atomic(path, _w)


def check_writable(folder: Path) -> Path:
    """Create ``folder`` and prove a file can be written there; ValueError naming it if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as exc:
        raise ValueError(f"--out must be a folder that can be written, got {str(folder)!r} ({exc.strerror or exc})") from None
    return folder


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        sha = out.stdout.strip()
        if sha:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                   text=True, timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
            return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
        return getattr(mod, "__version__", "unknown")
    except Exception:  # not installed, or fails to import (e.g. CuPy without CUDA)
        return None


def environment(run_id: str, threads: int) -> dict:
    """Versions, BLAS pools, CPU, GPU and git sha: written once per run beside the CSV."""
    import torch
    from threadpoolctl import threadpool_info

    env = {
        "run_id": run_id,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {m: _version(m) for m in ("numpy", "torch", "sklearn", "pandas", "cupy", "numba", "threadpoolctl")},
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "blas": [
            {k: info.get(k) for k in ("user_api", "internal_api", "version", "num_threads", "architecture", "filepath")}
            for info in threadpool_info()
        ],
        "cpu": {"model": _cpu_model(), "logical_cores": os.cpu_count(), "machine": platform.machine()},
        "gpu": None,
        "git_sha": _git_sha(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        driver = None
        try:
            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=10).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            pass
        env["gpu"] = {"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1),
                      "cuda": torch.version.cuda, "driver": driver, "count": torch.cuda.device_count()}
    elif torch.backends.mps.is_available():
        env["gpu"] = {"name": "Apple MPS", "cuda": None, "driver": None}
    return env


def write_json(obj: dict, path: Path) -> None:
    write_text(json.dumps(obj, indent=2, default=str) + "\n", path)
