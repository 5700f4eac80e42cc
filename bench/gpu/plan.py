"""What ``python -m bench gpu`` runs: the stages' backends, sizes, data sets and budgets as plain
data (top of this module), and the few functions that turn them into chunks and estimates.

Two plans share every stage and every backend: ``FULL`` (the measurement, under 8 minutes on a GPU
machine) and ``SMOKE`` (``--smoke``/``--tiny``: the same stages and backends on tiny sizes, about a
minute, run first on a lent GPU and by ``make test`` on the CPU).
"""

from __future__ import annotations

import numpy as np

from ..data import shape, short_count

# -- the plan, as data ---------------------------------------------------------------------------

STAGES = ("floors", "default", "ddp", "sweep")  # after "env"; in this order
SWEEP_BACKENDS = ("numpy", "torch", "torch-manual", "torch-compiled", "jax")  # numpy is CuPy on cuda
COMPILED = "torch-compiled"  # its own pass after the others (see sweep_chunks)
HOST_ONLY_BACKENDS = ("numpy-fused",)  # the host at its best, beside the GPU rows (cpu rows only)
DDP_BACKENDS = ("torch", "torch-ddp")  # torch-ddp: one spawned rank (NCCL on cuda, gloo on cpu)
FORMULATION = "probs"  # the seed's
DEFAULT_DTYPE = "float32"
SWEEP_DTYPES = ("float32", "float64")

FULL = {
    "default_backends": None,  # None: every single-process backend (bench.cases.default_backends)
    "default_datasets": ("iris", "synthetic-10kx100", "synthetic-100kx100"),
    "ddp_dataset": "synthetic-1Mx100",
    "sweep_n": (100, 1_000, 10_000, 100_000, 1_000_000),  # at d = 100
    "d_at": (100_000, (10, 1000)),  # d = 10 and 1000 at n = 1e5
    "largest": (10_000_000, 100),  # last
    "iters": None,  # None: sweep_iters(n, d) in the sweep, the pipeline's default elsewhere
    "ddp_iters": 20,
    "host_bytes": None,  # the floor's host read array: bench.roofline's default
    "optimum": True,  # scikit-learn's optimum for the default comparison
    "reports": True,  # the default comparison's and the sweep's report folders (plots)
    # seconds per stage, cumulative (a stage may use what the earlier ones left)
    "plan": {"floors": 45, "default": 110, "ddp": 35, "sweep": 220},
    "hard_limit": 430,  # the Watchdog: whatever still runs is ended; packing follows (< 8 minutes)
    "estimate": True,  # a chunk whose estimate ends past its stage's end is not started
}

SMOKE = {
    "default_backends": None,
    "default_datasets": ("iris",),
    "ddp_dataset": "synthetic-1kx10",
    "sweep_n": (100, 1_000),
    "d_at": (1_000, (10,)),
    "largest": (3_000, 100),
    "iters": 20,  # a multiple of torch-compiled's 5 steps per call: one graph per dtype
    "ddp_iters": 20,
    "host_bytes": 64 * 2**20,
    "optimum": True,
    "reports": True,
    "plan": {"floors": 15, "default": 60, "ddp": 30, "sweep": 75},
    "hard_limit": 170,
    "estimate": False,  # every chunk runs: the smoke is about reaching every stage, not the budget
}

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
