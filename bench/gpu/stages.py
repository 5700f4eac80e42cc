"""The stages of ``python -m bench gpu`` after the floors: each a series of chunks (a dataset and a
dtype), one ``bench.runner.run`` each, so that the budget is checked between chunks."""

from __future__ import annotations

import functools
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from .. import atomic, records
from ..cases import RunOptions, default_backends, default_lr, matrix
from ..data import shape
from ..runner import run
from ..suites import GPU_SPARSE_BACKENDS as SPARSE_BACKENDS, SPARSE_ITERS
from .deadline import Clock, Deadline
from .plan import (
    COMPILED,
    DDP_BACKENDS,
    DEFAULT_DTYPE,
    FORMULATION,
    HOST_ONLY_BACKENDS,
    SWEEP_BACKENDS,
    chunk_cost,
    estimate,
    plan_for,
    sweep_chunks,
    sweep_iters,
)


@dataclass
class Stage:
    name: str
    end: float  # planned end, seconds since the command started
    seconds: float = 0.0
    chunks_run: int = 0
    not_run: list = field(default_factory=list)  # (what, why)
    error: str = ""


@dataclass(frozen=True)
class ChunkTime:
    seconds: float  # the chunk's wall time, its dataset's construction included
    compile_s: float  # of which its rows' recorded one-time compilation (compile_s)


def _fix_row(row):
    """What the parent process cannot see of a data-parallel row: its collectives' engine on CUDA is
    NCCL (the class declares gloo, the CPU's), and its device memory lives in the rank's process (the
    parent's allocator saw none of it): ``peak_mem_mb`` is left empty rather than near zero."""
    if row.backend != "torch-ddp":
        return row
    fields = {"peak_mem_mb": None}
    if str(row.device).startswith("cuda"):
        fields["engine"] = "nccl"
    return row.replace(**fields)


class Collect:
    """A sink keeping a chunk's rows and loss curves (the run folder of a stage is written from them)."""

    def __init__(self):
        self.rows, self.curves = [], []

    def start(self, result, n_cases):
        pass

    def case(self, case):
        pass

    def row(self, outcome, result):
        self.rows.append(_fix_row(result.rows[-1]))
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
    options: RunOptions
    clock: Clock
    rows: list = field(default_factory=list)  # (stage, Row)
    curves: dict = field(default_factory=dict)  # stage -> [DataFrame]
    notes: list = field(default_factory=list)
    failed: bool = False

    def run(self, stage: Stage, label: str, cases, options=None) -> ChunkTime:
        """One pipeline run of ``cases``; its rows and curves are added to ``work/<stage>/runs.csv``
        and ``losses.csv`` at once."""
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
        compile_s = sum(float(r.compile_s) for r in sink.rows
                        if r.compile_s is not None and math.isfinite(float(r.compile_s)))
        return ChunkTime(secs, compile_s)

    def _save(self, stage: str, sink: Collect) -> None:
        self.rows += [(stage, r) for r in sink.rows]
        self.curves.setdefault(stage, []).extend(sink.curves)
        folder = self.work / stage
        folder.mkdir(parents=True, exist_ok=True)
        mine = [r for s, r in self.rows if s == stage]
        if mine:
            atomic.write_csv(records.to_frame(mine), folder / "runs.csv")
        if self.curves[stage]:
            atomic.write_csv(pd.concat(self.curves[stage], ignore_index=True), folder / "losses.csv")


@functools.lru_cache(maxsize=None)
def _lr(dataset: str, l2: float) -> float:
    """``bench.cases.default_lr`` (as ``bench run`` and ``bench sweep``), once per dataset: the
    float32 and float64 chunks of a size share it."""
    return default_lr(dataset, l2, seed=0)


def _cases(backends, devices, dataset, dtype, iters=None, workers=1):
    return matrix(backends, devices, (dataset,), (dtype,), (FORMULATION,), iters=iters, workers=workers, lr=_lr)


def expected_backends(stage: str) -> tuple[str, ...]:
    """The backends a stage runs (the smoke checks that each has a row)."""
    if stage == "default":
        return tuple(plan_for(False)["default_backends"] or default_backends())
    if stage == "ddp":
        return DDP_BACKENDS
    if stage == "sweep":
        return SWEEP_BACKENDS + HOST_ONLY_BACKENDS
    return ()


def stage_default(runner: Runner, stage: Stage, devices, smoke: bool) -> None:
    """Every default backend on the default datasets, then the sparse (CSR) chunks: torch's CSR loops
    on every device, numpy beside them (SciPy on the host; on cuda a skipped row saying why)."""
    p = plan_for(smoke)
    backends = p["default_backends"] or default_backends()

    def cases(group, ds, dt):
        if group == "sparse":
            return _cases(SPARSE_BACKENDS, devices, ds, dt, iters=p["iters"] or SPARSE_ITERS)
        return _cases(backends, devices, ds, dt, iters=p["iters"])

    chunks = ([("default", ds, DEFAULT_DTYPE) for ds in p["default_datasets"]]
              + [("sparse", ds, DEFAULT_DTYPE) for ds in p.get("sparse_datasets", ())])
    _chunked(runner, stage, chunks, cases, estimated=p["estimate"])


def stage_ddp(runner: Runner, stage: Stage, devices, smoke: bool) -> None:
    """``torch`` and ``torch-ddp`` (one spawned rank) on the first CUDA device, else the CPU."""
    p = plan_for(smoke)
    if p["estimate"] and runner.clock.elapsed() >= stage.end:
        stage.not_run.append(("the whole stage", "the stage's budget was spent before it began"))
        return
    dev = next((d for d in devices if d.startswith("cuda")), "cpu")
    ds, iters = p["ddp_dataset"], p["ddp_iters"]
    cases = (_cases(DDP_BACKENDS[:1], (dev,), ds, DEFAULT_DTYPE, iters=iters)
             + _cases(DDP_BACKENDS[1:], (dev,), ds, DEFAULT_DTYPE, iters=iters, workers=1))
    opts = RunOptions(repeats=5, warmup=1, budget_s=None, threads=runner.options.threads, optimum=False)
    runner.run(stage, f"{ds}-{dev.replace(':', '')}", cases, opts)


def stage_sweep(runner: Runner, stage: Stage, devices, smoke: bool) -> None:
    p = plan_for(smoke)

    def cases(group, ds, dt):
        n, d = shape(ds)
        iters = p["iters"] or sweep_iters(n, d)
        if group == "compiled":
            return _cases((COMPILED,), devices, ds, dt, iters=iters)
        return (_cases([b for b in SWEEP_BACKENDS if b != COMPILED], devices, ds, dt, iters=iters)
                + _cases(HOST_ONLY_BACKENDS, ("cpu",), ds, dt, iters=iters))

    # as `bench sweep`: no scikit-learn optimum per size (at n = 1e7 the fit alone would take the budget)
    _chunked(runner, stage, sweep_chunks(smoke), cases, replace(runner.options, optimum=False),
             estimated=p["estimate"])


def _chunked(runner: Runner, stage: Stage, chunks, make_cases, options=None, estimated: bool = True) -> None:
    """Run each (group, dataset, dtype) chunk that its estimate (:func:`bench.gpu.plan.estimate`,
    from the group's last chunk) says fits before the stage's planned end; a group's first chunk
    runs while any time is left. ``estimated=False`` (the smoke): every chunk runs, the hard
    deadline alone can stop them."""
    last = {}  # group -> (cost, ChunkTime) of its last chunk run
    for group, ds, dt in chunks:
        what = f"{ds} {dt}" + ("" if group in ("main", "default") else f" ({group})")
        left = stage.end - runner.clock.elapsed()
        if estimated and group in last:
            guess = estimate(last[group][0], last[group][1].seconds, last[group][1].compile_s, chunk_cost(ds, dt))
            if guess > left:
                stage.not_run.append((what, f"estimated {guess:.3g} s, {max(left, 0):.3g} s left of the "
                                            "stage's budget"))
                continue
        elif estimated and left <= 0:
            stage.not_run.append((what, "the stage's budget was spent before it began"))
            continue
        t0 = runner.clock.elapsed()  # building the cases builds the dataset (the learning rate needs it): count it
        took = runner.run(stage, f"{ds}-{dt}" + ("" if group in ("main", "default") else f"-{group}"),
                          make_cases(group, ds, dt), options)
        last[group] = (chunk_cost(ds, dt), ChunkTime(runner.clock.elapsed() - t0, took.compile_s))
