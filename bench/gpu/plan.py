"""The GPU plan's arithmetic: the stages' backends, sizes, data sets and budgets are plain data in
:mod:`bench.suites` (``GPU_FULL``/``GPU_SMOKE``); this module turns them into chunks, deadlines and estimates.

Two plans share every stage and every backend: ``FULL`` (the measurement, under 8 minutes on a GPU
machine) and ``SMOKE`` (``--smoke``/``--tiny``: the same stages and backends on tiny sizes, about a
minute, run first on a lent GPU and by ``make test`` on the CPU).
"""

from __future__ import annotations

import numpy as np

from ..data import shape, short_count

# the plan's names, as the gpu modules and their tests use them (the values live in bench.suites)
from ..suites import (  # noqa: F401
    GPU_COMPILED as COMPILED,
    GPU_DDP_BACKENDS as DDP_BACKENDS,
    GPU_DEFAULT_DTYPE as DEFAULT_DTYPE,
    GPU_FORMULATION as FORMULATION,
    GPU_FULL as FULL,
    GPU_HOST_ONLY_BACKENDS as HOST_ONLY_BACKENDS,
    GPU_SMOKE as SMOKE,
    GPU_STAGES as STAGES,
    GPU_SWEEP_BACKENDS as SWEEP_BACKENDS,
    GPU_SWEEP_DTYPES as SWEEP_DTYPES,
)

# --budget scales the stage budgets; the hard deadline is the scaled plan plus HARD_MARGIN_S and never
# below MIN_HARD_S: the first chunk alone starts every compiler (numba, Inductor, XLA) once
HARD_MARGIN_S = 20
MIN_HARD_S = 150

ARCHIVE_MAX_BYTES = 15 * 2**20  # a lent machine returns files up to 16 MiB
OWNED = ("summary.md", "env.json", "runs.csv", "crossover.csv", "crossover.png", "gpu-run.tar.gz")


# -- derived from the data -------------------------------------------------------------------------

def plan_for(smoke: bool) -> dict:
    return SMOKE if smoke else FULL


def deadlines(smoke: bool, budget: float | None) -> tuple[dict, float]:
    """``({stage: planned end in seconds since the start}, hard deadline)``; ``budget`` (seconds
    for all stages) scales the stage budgets, and the hard deadline only as far as
    ``HARD_MARGIN_S``/``MIN_HARD_S`` allow."""
    p = plan_for(smoke)
    plan, hard = dict(p["plan"]), float(p["hard_limit"])
    if budget:
        scale = budget / sum(plan.values())
        plan = {k: v * scale for k, v in plan.items()}
        hard = max(sum(plan.values()) + HARD_MARGIN_S, MIN_HARD_S)
    ends, total = {}, 0.0
    for name in STAGES:
        total += plan[name]
        ends[name] = total
    return ends, hard


def sweep_iters(n: int, d: int) -> int:
    """Steps per sweep row: about 5e8 multiply-adds per run, between 20 and 1000 steps, so that a
    GPU row's per-run costs (the final sync, the loss copy) are spread over enough steps near the
    crossover; 10 steps at the largest size (n d >= 1e9), where a step alone reads gigabytes."""
    if n * d >= 1e9:
        return 10
    return int(max(20, min(1000, 5e8 // (n * d))))


def dataset_name(n: int, d: int) -> str:
    return f"synthetic-{short_count(n)}x{d}"


def sweep_chunks(smoke: bool = False) -> list[tuple[str, str, str]]:
    """The sweep's (group, dataset, dtype) chunks, in the order that answers the question first
    when the budget runs short. Group ``main`` (every sweep backend but ``torch-compiled``): n
    ascending at d = 100 in float32, then in float64, then d 10 and 1000 at n = 1e5, then the
    largest n. Group ``compiled`` (``torch-compiled``, which compiles once per shape and dtype on
    each device, tens of seconds each) after it, in the same order."""
    p = plan_for(smoke)
    at, ds_ = p["d_at"]
    largest = [dataset_name(*p["largest"])] if p["largest"] else []
    order = ([(dataset_name(n, 100), dt) for dt in SWEEP_DTYPES for n in p["sweep_n"]]
             + [(dataset_name(at, d), dt) for d in ds_ for dt in SWEEP_DTYPES]
             + [(ds, dt) for ds in largest for dt in SWEEP_DTYPES])
    groups = ["main"] + (["compiled"] if COMPILED in SWEEP_BACKENDS else [])
    return [(g, ds, dt) for g in groups for ds, dt in order]


def chunk_cost(dataset: str, dtype: str) -> float:
    """A chunk's relative cost for the estimate: bytes of X, at least those of a 5e6-element one
    (below that a row's time is its step count's, not its size's)."""
    n, d = shape(dataset)
    return max(n * d, 5e6) * np.dtype(dtype).itemsize


def estimate(last_cost: float, last_seconds: float, last_compile_s: float, cost: float) -> float:
    """A chunk's seconds from the group's last chunk: its time less its one-time compilation
    (``compile_s`` of its rows), scaled by the cost ratio, plus that compilation again (a new dtype
    or shape may compile as much; it does not grow with the data)."""
    compile_s = min(max(last_compile_s, 0.0), last_seconds)
    return (last_seconds - compile_s) * cost / last_cost + compile_s
