"""``python -m bench gpu``: the GPU half in one prepared command, within a fixed time (issue 21).

    PYTHONPATH=. python -m bench gpu --out results/gpu            # on a CUDA machine: <= 8 minutes
    python -m bench gpu --out /tmp/gpu-dry --devices cpu --tiny    # the dry run (seconds), in `make test`

What it runs, in this order, each stage with a time budget (``PLAN``, scaled by ``--budget``):

1. **env**: versions, driver, device (``nvidia-smi``), CPU, BLAS, git sha.
2. **floors**: the host's measured read bandwidth and in-cache FMA rate, and on CUDA the device's
   (HBM read bandwidth with ``torch.sum`` over 4 GiB, and an 8192² matrix product per dtype:
   ``bench.roofline.device_floor``).
3. **default**: the default comparison (every single-process backend) on every device, float32,
   the seed's ``probs`` formulation, on ``iris``, ``synthetic-10kx100`` and ``synthetic-100kx100``.
4. **ddp**: ``torch-ddp`` with one rank (NCCL on CUDA, gloo on the CPU), beside ``torch`` on the same
   device.
5. **sweep**: the crossover sweep: ``numpy`` (CuPy on CUDA), ``torch``, ``torch-manual``,
   ``torch-compiled``, ``jax`` on every device, plus ``numpy-fused`` on the CPU (the host at its best),
   ``n`` from 1e2 to 1e6 at ``d = 100`` in float32, then in float64, ``d`` 10 and 1000 at ``n = 1e5``,
   then ``n = 1e7``; ``torch-compiled`` (a compile per shape, dtype and device) in a second pass
   in the same order (:func:`sweep_chunks`).

Every run goes through ``bench.pipeline.run`` (one owner), one run per chunk (a dataset and a
dtype; in the dry run torch-ddp's spawned rank and the report plots are left out), so that the budget is checked between chunks: a chunk whose estimated time (the previous
chunk's, scaled by its size) would end past the stage's planned end is not started, and
``summary.md`` lists it under "not run". A hard deadline (:class:`Watchdog`) ends whatever is still
running so that packing always happens in time; the rows finished by then are kept. Missing optional
libraries and devices are ``skipped`` rows with the reason, never a failure.

GPU timing (``bench.timing``): every ``cuda`` row holds its wall time with the device synchronized
*and* the CUDA-event time of the same rounds (``event_time_median_s``), the transfer apart
(``transfer_s``), warm-up and compilation outside the timed rounds, peak device memory; its
``roofline_fraction`` is set against the measured HBM read bandwidth (``device_read``).

``--out`` receives at most 8 files: ``summary.md``, ``env.json``, ``runs.csv`` (every row),
``crossover.csv``, ``crossover.png`` and ``gpu-run.tar.gz`` (each stage's rows and loss curves, the
reports of the default comparison and of the sweep, the floors). Exit code: 0 done (a budget cut is planned,
not a failure); 1 a row or a stage failed; 2 a bad argument or ``--out``; 130 interrupted.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import shutil
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

# -- the plan -----------------------------------------------------------------------------------

SWEEP_BACKENDS = ("numpy", "torch", "torch-manual", "torch-compiled", "jax")
COMPILED = "torch-compiled"  # its own pass after the others (see sweep_chunks)
HOST_ONLY_BACKENDS = ("numpy-fused",)  # the host at its best, beside the GPU rows (cpu rows only)
SWEEP_N = (100, 1_000, 10_000, 100_000, 1_000_000)  # at d = 100; 1e7 comes last (LARGEST)
SWEEP_D_AT = (100_000, (10, 1000))  # d = 10 and 1000 at n = 1e5
LARGEST = (10_000_000, 100)
DEFAULT_DATASETS = ("iris", "synthetic-10kx100", "synthetic-100kx100")
DDP_DATASET = "synthetic-1Mx100"

# seconds per stage, cumulative (a stage may use what the earlier ones left); then the hard deadline
PLAN = {"floors": 45, "default": 110, "ddp": 35, "sweep": 220}
HARD_LIMIT_S = 430  # the Watchdog: whatever still runs is ended; packing follows (< 8 minutes in all)

TINY = {"sweep_n": (100, 1_000), "d_at": (1_000, (10,)), "largest": None,
        "backends": ("numpy", "torch", "torch-manual"), "host_only": HOST_ONLY_BACKENDS,
        "default_backends": ("numpy", "torch"), "default_datasets": ("iris", "synthetic-1kx10"),
        "ddp_dataset": "synthetic-1kx10", "iters": 20, "host_bytes": 64 * 2**20,
        "plan": {"floors": 10, "default": 15, "ddp": 15, "sweep": 30}, "hard_limit": 100}

ARCHIVE_MAX_BYTES = 15 * 2**20
OWNED = ("summary.md", "env.json", "runs.csv", "crossover.csv", "crossover.png", "gpu-run.tar.gz")
FORMULATION = "probs"  # the seed's


def sweep_iters(n: int, d: int) -> int:
    """Steps per sweep row: about 5e8 multiply-adds per run, between 20 and 1000 steps, so that a
    GPU row's per-run costs (the final sync, the loss copy) are spread over enough steps near the
    crossover; 10 steps at the largest size (n d >= 1e9), where a step alone reads gigabytes."""
    if n * d >= 1e9:
        return 10
    return int(max(20, min(1000, 5e8 // (n * d))))


def _name(n: int, d: int) -> str:
    from .data import _short

    return f"synthetic-{_short(n)}x{d}"


def sweep_chunks(tiny: bool = False) -> list[tuple[str, str, str]]:
    """The sweep's (group, dataset, dtype) chunks, in the order that answers the question first
    when the budget runs short. Group ``main`` (every sweep backend but ``torch-compiled``): n
    ascending at d = 100 in float32, then in float64, then d 10 and 1000 at n = 1e5, then the
    largest n. Group ``compiled`` (``torch-compiled``, which compiles once per shape and dtype on
    each device, tens of seconds each) after it, in the same order."""
    ns = TINY["sweep_n"] if tiny else SWEEP_N
    at, ds_ = TINY["d_at"] if tiny else SWEEP_D_AT
    largest = [] if tiny else [_name(*LARGEST)]
    order = ([(_name(n, 100), "float32") for n in ns] + [(_name(n, 100), "float64") for n in ns]
             + [(_name(at, d), dt) for d in ds_ for dt in ("float32", "float64")]
             + [(ds, dt) for ds in largest for dt in ("float32", "float64")])
    groups = ["main"] + (["compiled"] if COMPILED in (TINY["backends"] if tiny else SWEEP_BACKENDS) else [])
    return [(g, ds, dt) for g in groups for ds, dt in order]


def chunk_cost(dataset: str, dtype: str) -> float:
    """A chunk's relative cost for the estimate: bytes of X, at least those of a 5e6-element one
    (below that a row's time is its step count's, not its size's)."""
    from .data import shape

    n, d = shape(dataset)
    return max(n * d, 5e6) * np.dtype(dtype).itemsize


# -- the deadline -------------------------------------------------------------------------------

class Deadline(BaseException):
    """The hard deadline was reached: no further chunk or stage starts."""


@dataclass
class Clock:
    start: float = field(default_factory=time.monotonic)
    hit: bool = False

    def elapsed(self) -> float:
        return time.monotonic() - self.start


class Watchdog:
    """The hard deadline: after ``seconds``, mark ``clock.hit`` and interrupt the main thread as a
    Ctrl-C would (``_thread.interrupt_main``). ``bench.pipeline.run`` then ends the run in progress
    the way it ends on SIGINT (finished rows kept), and the command goes on to pack. A thread, not
    SIGALRM: the pipeline's per-row timeout owns that signal. ``stop()`` before packing; after it
    the watchdog never fires."""

    def __init__(self, clock: Clock, seconds: float):
        import threading

        self.clock, self._lock, self._stopped = clock, threading.Lock(), False
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def _fire(self):
        import _thread

        with self._lock:
            if self._stopped:
                return
            self.clock.hit = True
            _thread.interrupt_main()

    def start(self) -> "Watchdog":
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self._timer.cancel()


@dataclass
class Stage:
    name: str
    end: float  # planned end, seconds since the command started
    seconds: float = 0.0
    chunks_run: int = 0
    not_run: list = field(default_factory=list)  # (what, why)
    error: str = ""


# -- devices and arguments ----------------------------------------------------------------------

def parse_devices(text: str | None) -> tuple[str, ...]:
    """``cpu,cuda`` (comma- or space-separated); default: ``cpu`` plus ``cuda`` where torch sees it."""
    import re

    if text is None:
        try:
            import torch

            return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
        except Exception:
            return ("cpu",)
    values = [v for v in re.split(r"[,\s]+", text.strip()) if v]
    bad = [v for v in values if not re.match(r"^(cpu|cuda(:\d+)?)$", v)]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"expected devices among cpu, cuda, cuda:N (comma-separated), got {text!r}")
    return tuple(dict.fromkeys(values))


def _positive(text):
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (0 < v < math.inf):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .output import folder_arg

    p.add_argument("--out", type=folder_arg, required=True,
                   help="folder for the (at most 8) files; created if missing (e.g. results/gpu)")
    p.add_argument("--devices", type=parse_devices, default=None, metavar="DEV[,DEV]",
                   help="cpu,cuda (default: cpu, plus cuda where torch sees one)")
    p.add_argument("--tiny", "--dry-run", dest="tiny", action="store_true",
                   help="the dry run: tiny sizes and a few backends, seconds on a CPU (what `make test` runs)")
    p.add_argument("--budget", type=_positive, default=None,
                   help=f"seconds for all stages, scaled from the plan (default {sum(PLAN.values())}; "
                        f"hard deadline {HARD_LIMIT_S} s, then packing)")
    p.add_argument("--threads", type=int, default=None, help="host threads for every library (default: every core)")
    p.add_argument("--overwrite", action="store_true", help="replace this command's files already in --out")


# -- one chunk: a pipeline run into its own folder ------------------------------------------------

class Collect:
    """A sink keeping a chunk's rows and loss curves (the run folder of a stage is written from them)."""

    def __init__(self):
        self.rows, self.curves = [], []

    def start(self, result, n_cases):
        pass

    def case(self, case):
        pass

    def row(self, outcome, result):
        self.rows.append(result.rows[-1])
        if outcome.curve is not None and len(outcome.curve):
            self.curves.append(outcome.curve)

    def finish(self, result):
        pass

    def end(self, result):
        pass


@dataclass
class Runner:
    work: Path
    figures: dict
    options: object  # bench.pipeline.RunOptions
    clock: Clock
    rows: list = field(default_factory=list)  # (stage, Row)
    curves: dict = field(default_factory=dict)  # stage -> [DataFrame]
    notes: list = field(default_factory=list)
    failed: bool = False

    def run(self, stage: Stage, label: str, cases, options=None) -> float:
        """One pipeline run of ``cases``; its rows and curves are added to ``work/<stage>/runs.csv``
        and ``losses.csv`` at once. Returns the chunk's seconds."""
        from .runner import run

        t0 = time.monotonic()
        sink = Collect()
        try:
            result = run(cases, [sink], options or self.options, figures=self.figures)
        finally:  # the rows finished before a deadline are kept too
            self._save(stage.name, sink)
            secs = time.monotonic() - t0
            stage.seconds += secs
            stage.chunks_run += 1
        self.notes += [f"{stage.name}/{label}: {n}" for n in result.notes]
        counts = {}
        for r in result.rows:
            counts[r.status] = counts.get(r.status, 0) + 1
        if counts.get("failed") or (result.status == "failed" and not self.clock.hit):
            self.failed = True
        print(f"bench gpu [{self.clock.elapsed():5.0f}s] {stage.name} {label}: {len(result.rows)} rows {counts}"
              f" in {secs:.1f}s" + (f" ({result.status}: {result.reason})" if result.status != "complete" else ""),
              file=sys.stderr, flush=True)
        if self.clock.hit:
            raise Deadline()
        return secs

    def _save(self, stage: str, sink: Collect) -> None:
        import pandas as pd

        from . import records

        self.rows += [(stage, r) for r in sink.rows]
        self.curves.setdefault(stage, []).extend(sink.curves)
        folder = self.work / stage
        folder.mkdir(parents=True, exist_ok=True)
        mine = [r for s, r in self.rows if s == stage]
        if mine:
            records.write_csv(records.to_frame(mine), folder / "runs.csv")
        if self.curves[stage]:
            records.write_csv(pd.concat(self.curves[stage], ignore_index=True), folder / "losses.csv")


@functools.lru_cache(maxsize=None)
def _lr(dataset: str, l2: float) -> float:
    """``bench.pipeline.default_lr`` (as ``bench run`` and ``bench sweep``), once per dataset: the
    float32 and float64 chunks of a size share it."""
    from .cases import default_lr

    return default_lr(dataset, l2, seed=0)


def _cases(backends, devices, dataset, dtype, iters=None, workers=1):
    from .cases import matrix

    return matrix(backends, devices, (dataset,), (dtype,), (FORMULATION,), iters=iters, workers=workers, lr=_lr)


# -- the stages ---------------------------------------------------------------------------------

def stage_default(runner: Runner, stage: Stage, devices, tiny: bool) -> None:
    from .cases import default_backends

    backends = TINY["default_backends"] if tiny else default_backends()
    datasets = TINY["default_datasets"] if tiny else DEFAULT_DATASETS
    _chunked(runner, stage, [("default", ds, "float32") for ds in datasets],
             lambda group, ds, dt: _cases(backends, devices, ds, dt, iters=TINY["iters"] if tiny else None))


def stage_ddp(runner: Runner, stage: Stage, devices, tiny: bool) -> None:
    from .cases import RunOptions

    if runner.clock.elapsed() >= stage.end:
        stage.not_run.append(("the whole stage", "the stage's budget was spent before it began"))
        return
    dev = next((d for d in devices if d.startswith("cuda")), "cpu")
    ds = TINY["ddp_dataset"] if tiny else DDP_DATASET
    iters = TINY["iters"] if tiny else 20
    cases = _cases(("torch",), (dev,), ds, "float32", iters=iters)
    if not tiny:  # a spawned rank costs seconds: the dry run keeps to the single-process baseline
        cases += _cases(("torch-ddp",), (dev,), ds, "float32", iters=iters, workers=1)
    else:
        stage.not_run.append(("torch-ddp", "--tiny: the spawned rank is left to the full run"))
    opts = RunOptions(repeats=5, warmup=1, budget_s=None, threads=runner.options.threads, optimum=False)
    runner.run(stage, f"{ds}-{dev.replace(':', '')}", cases, opts)


def stage_sweep(runner: Runner, stage: Stage, devices, tiny: bool) -> None:
    backends = TINY["backends"] if tiny else SWEEP_BACKENDS

    def cases(group, ds, dt):
        from .data import shape

        n, d = shape(ds)
        iters = TINY["iters"] if tiny else sweep_iters(n, d)
        if group == "compiled":
            return _cases((COMPILED,), devices, ds, dt, iters=iters)
        return (_cases([b for b in backends if b != COMPILED], devices, ds, dt, iters=iters)
                + _cases(TINY["host_only"] if tiny else HOST_ONLY_BACKENDS, ("cpu",), ds, dt, iters=iters))

    # as `bench sweep`: no scikit-learn optimum per size (at n = 1e7 the fit alone would take the budget)
    _chunked(runner, stage, sweep_chunks(tiny), cases, replace(runner.options, optimum=False))


def _chunked(runner: Runner, stage: Stage, chunks, make_cases, options=None) -> None:
    """Run each (group, dataset, dtype) chunk that its estimate says fits before the stage's planned
    end. The estimate: the group's last chunk's time, scaled by :func:`chunk_cost`; a group's first
    chunk runs while any time is left."""
    last = {}  # group -> (cost, seconds) of its last chunk run
    for group, ds, dt in chunks:
        what = f"{ds} {dt}" + ("" if group in ("main", "default") else f" ({group})")
        left = stage.end - runner.clock.elapsed()
        if group in last:
            estimate = last[group][1] * chunk_cost(ds, dt) / last[group][0]
            if estimate > left:
                stage.not_run.append((what, f"estimated {estimate:.3g} s, {max(left, 0):.3g} s left of the "
                                            "stage's budget"))
                continue
        elif left <= 0:
            stage.not_run.append((what, "the stage's budget was spent before it began"))
            continue
        t0 = runner.clock.elapsed()  # building the cases builds the dataset (the learning rate needs it): count it
        runner.run(stage, f"{ds}-{dt}" + ("" if group in ("main", "default") else f"-{group}"),
                   make_cases(group, ds, dt), options)
        last[group] = (chunk_cost(ds, dt), runner.clock.elapsed() - t0)


# -- environment --------------------------------------------------------------------------------

def environment(run_id: str, devices) -> dict:
    """``bench.records.environment`` plus what a GPU run needs: every GPU nvidia-smi lists, CUDA /
    cuDNN / CuPy / JAX device views (each None where unavailable)."""
    import subprocess

    from . import records

    env = records.environment(run_id)
    gpu = {}
    try:
        q = "name,driver_version,memory.total,clocks.max.sm,clocks.max.memory,power.limit,pci.bus_id"
        out = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        gpu["nvidia_smi"] = [dict(zip(q.split(","), (x.strip() for x in line.split(",")))) for line in out.splitlines()]
    except (OSError, subprocess.SubprocessError):
        gpu["nvidia_smi"] = None
    try:
        import torch

        gpu["torch_cuda"] = torch.version.cuda
        gpu["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
        gpu["torch_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as exc:
        gpu["torch_devices"] = f"{type(exc).__name__}: {exc}"
    if any(d.startswith("cuda") for d in devices):
        try:
            import cupy

            gpu["cupy"] = {"version": cupy.__version__, "runtime": cupy.cuda.runtime.runtimeGetVersion()}
        except Exception as exc:
            gpu["cupy"] = f"unavailable: {type(exc).__name__}: {exc}"
        try:
            import jax

            gpu["jax_devices"] = [str(d) for d in jax.devices()]
        except Exception as exc:
            gpu["jax_devices"] = f"unavailable: {type(exc).__name__}: {exc}"
    env["gpu_details"] = gpu
    env["devices"] = list(devices)
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE")
    return env


# -- the summary --------------------------------------------------------------------------------

def _fmt(x, spec=".3g", unit=""):
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:{spec}}{unit}"


def gpu_figures(df) -> dict:
    """The closing note's figures from the sweep's rows: the best ``cuda`` row at the largest ``n``
    (d = 100) and its fraction of the device floor; the CUDA-event vs wall-time difference."""
    import pandas as pd

    out = {"best_gpu_row": None, "event_vs_wall": None}
    if df is None or df.empty:
        return out
    ok = df[(df["status"] == "ok") & df["device"].astype(str).str.startswith("cuda") & df["time_per_iter_s"].notna()]
    big = ok[ok["d"] == 100]
    if len(big):
        top = big[big["n"] == big["n"].max()]
        r = top.loc[top["time_per_iter_s"].astype(float).idxmin()]
        out["best_gpu_row"] = {k: (None if pd.isna(r[k]) else r[k]) for k in
                               ("backend", "dtype", "n", "d", "time_per_iter_s", "achieved_gbps", "roofline_fraction",
                                "event_time_per_iter_s")}
    ev = ok[ok["event_time_median_s"].notna()]
    if len(ev):
        diff = (ev["time_median_s"].astype(float) - ev["event_time_median_s"].astype(float))
        rel = diff / ev["time_median_s"].astype(float)
        out["event_vs_wall"] = {"rows": int(len(ev)), "median_wall_minus_event_s": float(diff.median()),
                                "median_relative": float(rel.median()), "max_relative": float(rel.max())}
    return out


def summary_text(env: dict, figures: dict, stages: list[Stage], df, table, lines, clock: Clock, devices,
                 tiny: bool) -> str:
    gpu_env = (env.get("gpu") or {}) if env else {}
    cuda = any(d.startswith("cuda") for d in devices)
    s = ["# GPU half: floors, default comparison, crossover (`python -m bench gpu`)", ""]
    if tiny:
        s += ["**Dry run (`--tiny`)**: tiny sizes and a few backends; its numbers say nothing about any "
              "hardware's speed.", ""]
    if not cuda or not gpu_env.get("name"):
        s += ["**No CUDA device was used in this run: it holds no GPU figure.**", ""]
    s += [f"- devices: {', '.join(devices)}; GPU: {gpu_env.get('name') or '—'} (driver {gpu_env.get('driver') or '—'}, "
          f"CUDA {gpu_env.get('cuda') or '—'}); CPU: {(env.get('cpu') or {}).get('model', '—')}",
          f"- git {env.get('git_sha', '—')}; total {clock.elapsed():.0f} s"
          + ("; **the hard deadline was reached**: the stage running then was ended, its finished rows kept"
             if clock.hit else ""), "",
          "## Floors and roofs (measured in this run)", "",
          "| figure | value |", "|---|---|"]
    for key, unit in (("host_read", " GB/s"), ("host_gflops_float32", " GFLOP/s"), ("host_gflops_float64", " GFLOP/s"),
                      ("device_read", " GB/s"), ("device_copy", " GB/s"), ("device_gflops_float32", " GFLOP/s"),
                      ("device_gflops_float64", " GFLOP/s")):
        s.append(f"| {key} | {_fmt(figures.get(key), 'g', unit)} |")
    s += ["", "## Stages and budget", "", "| stage | planned end (s) | ran (s) | chunks run | not run |",
          "|---|---|---|---|---|"]
    for st in stages:
        nr = "; ".join(f"{w} ({why})" for w, why in st.not_run) or "—"
        s.append(f"| {st.name} | {st.end:.0f} | {st.seconds:.0f} | {st.chunks_run} | {nr}"
                 + (f" **error: {st.error}**" if st.error else "") + " |")
    s += [""]
    if df is not None and not df.empty:
        counts = df.groupby(["stage", "status"]).size().unstack(fill_value=0)
        s += ["## Rows (by stage and status)", "", "```", counts.to_string(), "```", ""]
    s += ["## Crossover (sweep, d = 100; `crossover.csv` holds every d)", ""]
    if lines:
        s += [f"- {x}" for x in lines]
    else:
        s += ["- no backend has both a CPU and a GPU row here: no crossover to state"
              + ("" if cuda else " (no CUDA device in this run)")]
    g = gpu_figures(df[df["stage"] == "sweep"] if df is not None and not df.empty else None)
    b, e = g["best_gpu_row"], g["event_vs_wall"]
    s += ["", "## The GPU's own figures", ""]
    if b:
        s.append(f"- best GPU row at the largest n: `{b['backend']}` {b['dtype']} n = {int(b['n'])}, d = {int(b['d'])}: "
                 f"{_fmt(b['time_per_iter_s'])} s/step, {_fmt(b['achieved_gbps'], '.4g')} GB/s = "
                 f"{_fmt(b['roofline_fraction'], '.1%')} of the measured device read bandwidth")
    else:
        s.append("- no GPU row was timed")
    if e:
        s.append(f"- CUDA-event vs wall time over {e['rows']} cuda rows: wall − event = "
                 f"{_fmt(e['median_wall_minus_event_s'])} s per run (median), {e['median_relative']:.1%} of the "
                 f"wall time (median), at most {e['max_relative']:.1%}")
    if df is not None and not df.empty:
        sk = df[df["status"] == "skipped"]
        if len(sk):
            s += ["", "## Skipped (missing library or device)", ""]
            for (backend, device), grp in sk.groupby(["backend", "device"]):
                s.append(f"- `{backend}@{device}` ({len(grp)} rows): {str(grp['reason'].iloc[0])[:200]}")
    s += ["", "`gpu-run.tar.gz` holds each stage's runs.csv and losses.csv, the reports of the default comparison "
          "and of the sweep (`<stage>/report/`, not in a dry run), floors.json, env.json and this summary."]
    return "\n".join(s) + "\n"


# -- the command --------------------------------------------------------------------------------

def cmd_gpu(args) -> int:
    from . import records
    from .cases import RunOptions
    from .output import FolderError, claim_folder
    from .roofline import measure_roofline

    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX must not take 75 % of the GPU from torch
    clock = Clock()
    tiny = args.tiny
    devices = args.devices or parse_devices(None)
    plan = dict(TINY["plan"] if tiny else PLAN)
    hard = TINY["hard_limit"] if tiny else HARD_LIMIT_S
    if args.budget:
        scale = args.budget / sum(plan.values())
        plan = {k: v * scale for k, v in plan.items()}
        hard = hard * scale
    try:
        claim = claim_folder(args.out, OWNED, overwrite=args.overwrite, what="a GPU run")
    except (FolderError, ValueError) as exc:
        print(f"python -m bench gpu: error: {exc}", file=sys.stderr)
        return 2
    run_id = records.new_run_id()
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    stages, ends, total = [], {}, 0.0
    for name, secs in plan.items():
        total += secs
        ends[name] = total
    env, figures, interrupted = {}, {}, False
    opts = RunOptions(repeats=5, warmup=1, budget_s=0.5, threads=args.threads, seed=0, optimum=not tiny)
    runner = Runner(work, figures, opts, clock)

    watchdog = Watchdog(clock, hard).start()
    try:
        try:
            env = environment(run_id, devices)
            st = Stage("floors", ends["floors"])
            stages.append(st)
            t0 = time.monotonic()
            try:
                figures.update(measure_roofline(devices, args.threads, host_bytes=TINY["host_bytes"] if tiny else None))
            except Exception as exc:
                st.error = f"{type(exc).__name__}: {exc}"
            st.seconds, st.chunks_run = time.monotonic() - t0, 1
            for name, fn in (("default", stage_default), ("ddp", stage_ddp), ("sweep", stage_sweep)):
                st = Stage(name, ends[name])
                stages.append(st)
                try:
                    fn(runner, st, devices, tiny)
                except Deadline:
                    raise
                except Exception as exc:  # a stage's own failure (not a row's): the others still run
                    st.error = f"{type(exc).__name__}: {exc}"
                    runner.failed = True
        except Deadline:
            clock.hit = True
        except KeyboardInterrupt:  # the watchdog's (clock.hit) or the user's Ctrl-C
            interrupted = not clock.hit
    finally:
        watchdog.stop()
    for st in stages:  # a stage the deadline cut short: say what it did not reach
        if clock.hit and not st.not_run and st.name == stages[-1].name:
            st.not_run.append(("the rest of the stage", "the hard deadline ended it"))
    ran = {st.name for st in stages}
    for name in plan:
        if name not in ran:
            stages.append(Stage(name, ends[name], not_run=[("the whole stage", "the hard deadline came first"
                                                              if clock.hit else "interrupted")]))
    try:
        return _pack(args.out, work, run_id, env, figures, stages, runner, clock, devices, tiny, interrupted, claim)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        claim.close()


def _pack(out: Path, work: Path, run_id, env, figures, stages, runner: Runner, clock, devices, tiny, interrupted,
          claim) -> int:
    import pandas as pd

    from . import crossover, records

    out = Path(out)
    frames = []
    if runner.rows:
        df = records.to_frame([r for _, r in runner.rows])
        df.insert(0, "stage", pd.Series([s for s, _ in runner.rows], dtype="string"))
        frames.append(df)
    df = frames[0] if frames else None
    if df is not None:
        records.write_csv(df, out / "runs.csv")
    sweep = df[df["stage"] == "sweep"].drop(columns="stage") if df is not None else None
    table, lines = None, []
    note = ("DRY RUN (--tiny): not a measurement of any hardware" if tiny else
            f"{(env.get('gpu') or {}).get('name') or 'no GPU'} vs {(env.get('cpu') or {}).get('model', 'CPU')}")
    try:
        if sweep is not None and len(sweep):
            table, lines = crossover.write(sweep, figures, out, title_note=note)
        else:  # no sweep row (the deadline came first): the table's header, no plot
            records.write_csv(pd.DataFrame(columns=crossover.CROSSOVER_COLUMNS), out / "crossover.csv")
    except Exception as exc:
        runner.notes.append(f"crossover analysis failed: {type(exc).__name__}: {exc}")
        runner.failed = True
    # the reports of the default comparison and of the sweep, inside the archive
    for stage in () if tiny else ("default", "sweep"):  # the dry run skips the (slow) plots
        part = df[df["stage"] == stage].drop(columns="stage") if df is not None else None
        if part is not None and len(part):
            try:
                from . import report

                curves = runner.curves.get(stage) or []
                report.write_report(part, pd.concat(curves, ignore_index=True) if curves else None, env,
                                    work / stage / "report")
            except Exception as exc:
                runner.notes.append(f"{stage} report failed: {type(exc).__name__}: {exc}")
    records.write_json(figures, work / "floors.json")
    text = summary_text(env, figures, stages, df, table, lines, clock, devices, tiny)
    if runner.notes:
        text += "\n## Notes\n\n" + "\n".join(f"- {n}" for n in runner.notes) + "\n"
    records.write_text(text, out / "summary.md")
    shutil.copy(out / "summary.md", work / "summary.md")
    status = "interrupted" if interrupted else ("failed" if runner.failed else "complete")
    code = 130 if interrupted else (1 if runner.failed else 0)
    env = {**env, "roofline": figures, "status": status, "exit_code": code, "deadline_hit": clock.hit,
           "seconds": round(clock.elapsed(), 1), "tiny": tiny,
           "stages": [{"name": s.name, "planned_end_s": round(s.end, 1), "seconds": round(s.seconds, 1),
                       "chunks_run": s.chunks_run, "not_run": s.not_run, "error": s.error} for s in stages],
           "gpu_figures": gpu_figures(sweep), "verdicts": lines, "notes": runner.notes}
    records.write_json(env, out / "env.json")
    shutil.copy(out / "env.json", work / "env.json")

    def _tar(tmp, losses=True):
        with tarfile.open(tmp, "w:gz") as tf:
            tf.add(work, arcname=f"gpu-run-{run_id}",
                   filter=None if losses else (lambda ti: None if ti.name.endswith("losses.csv") else ti))

    records.write_atomic(out / "gpu-run.tar.gz", _tar)
    if (out / "gpu-run.tar.gz").stat().st_size > ARCHIVE_MAX_BYTES:  # a lent machine returns files up to 16 MiB
        records.write_atomic(out / "gpu-run.tar.gz", lambda tmp: _tar(tmp, losses=False))
        records.write_text(text + f"\n(`gpu-run.tar.gz` left out the loss curves: with them it was over "
                                  f"{ARCHIVE_MAX_BYTES / 2**20:.0f} MiB.)\n", out / "summary.md")
    print(f"bench gpu: {status} in {clock.elapsed():.0f} s; wrote {out}/ ("
          + ", ".join(sorted(p.name for p in out.iterdir() if not p.name.startswith("."))) + ")", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
    return code
