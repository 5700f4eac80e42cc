"""What a run is made of: cases, their defaults (backends, devices, steps, learning rate) and the
checks a set of cases must pass before any work (sizes, memory).

A :class:`~bench.records.Case` is one backend on one device and dataset with one
``TrainConfig``; :func:`matrix` builds every combination of a selection, grouped by dataset.
Nothing here imports torch: :func:`default_devices` asks it only when called.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np

from implementations import BACKENDS, TrainConfig, get_backend, origin

from . import data as datasets, oracle, roofline, suites
from .records import Case

SEED_LR = 0.01  # the seed article's learning rate
SEED_K_CLASS = "iris-3class"  # the seed's data with its three classes: the seed's settings too


@dataclass(frozen=True)
class RunOptions:
    repeats: int = suites.ROUNDS_MIN  # the least timed rounds of a row
    warmup: int = 1
    # per row: rounds are added while the timed ones took less than this (None: `repeats` rounds exactly)
    budget_s: float | None = suites.ROUND_BUDGET_S
    threads: int | None = None
    seed: int = 0
    target: float = 1e-3  # relative suboptimality (L - L*)/|L*| defining time_to_target_s
    optimum: bool = True  # fit scikit-learn's optimum per dataset and penalty
    row_timeout: float | None = None  # seconds per row (construction to result) before it is a `failed` row


DEFAULT_OPTIONS = RunOptions()  # frozen, so one shared instance serves as every default argument


def default_devices() -> tuple[str, ...]:
    """``cpu``, plus ``cuda`` and ``mps`` where torch sees them."""
    import torch  # deferred on purpose: listing cases with --devices given never loads torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if torch.backends.mps.is_available():
        devices.append("mps")
    return tuple(devices)


def declared(name: str) -> tuple[bool, tuple[str, ...]] | None:
    """What backend ``name`` declares: ``(data_parallel, optimizers)``; None if it cannot be imported
    here. The built-ins' answers are read from :mod:`bench.suites` (no import: torch stays unloaded);
    any other backend's class is imported and asked."""
    if origin(name) == "built-in":
        if name in suites.SOLVER_BACKENDS:
            return False, ("solver",)
        return name in suites.DATA_PARALLEL_BACKENDS, ("gd",)
    try:
        cls = get_backend(name)
    except Exception:  # not importable here: its rows say why
        return None
    return bool(cls.data_parallel), tuple(cls.optimizers)


def default_backends() -> tuple[str, ...]:
    """Every registered backend that does not declare ``data_parallel`` (those have ``bench scale``),
    read from the registry when called. One that cannot be imported here is kept: its rows are
    ``skipped`` with the reason."""
    def single_process(name):
        what = declared(name)
        if what is None:
            return True
        # a backend without gradient descent (scikit-learn's solvers: optimizer "solver") has its own block
        return not what[0] and "gd" in what[1]

    return tuple(name for name in BACKENDS if single_process(name))


def solver_only(name: str) -> bool:
    """A backend whose only optimizer is a library's own solver (scikit-learn's)."""
    what = declared(name)
    return what is not None and what[1] == ("solver",)


def default_iters(n: int, d: int) -> int:
    """The seed's 5000 steps where a step is cheap; fewer on big data (about 5e7 multiply-adds
    per run, at least 10 steps) so the default run stays within its time budget."""
    return int(max(10, min(5000, 5e7 // (n * d))))


def fixed_lr(dataset: str) -> bool:
    """Whether :func:`default_lr` is the seed's 0.01 on ``dataset``, known from its name alone."""
    return datasets.is_seed(dataset) or datasets.source(dataset).base == SEED_K_CLASS


def default_lr(dataset: str, l2: float = 0.0, seed: int = 0) -> float:
    """The seed's 0.01 on ``iris`` (the article's recipe, unchanged) and on ``iris-3class`` (the same
    data with its three classes, the softmax seed; 5000 steps there too, from :func:`default_iters`);
    ``1/L`` elsewhere, ``L`` the smoothness bound of :func:`bench.oracle.smoothness`: the largest
    step plain gradient descent takes safely, so that a run gets somewhere in its few steps and
    time-to-accuracy means something (at 0.01 no default synthetic run comes within 10 % of the
    optimum). A dataset that cannot be built keeps 0.01; its rows then fail with the reason."""
    if fixed_lr(dataset):
        return SEED_LR
    try:
        X = datasets.load(dataset, seed).X
    except (ValueError, MemoryError):
        return SEED_LR
    with np.errstate(all="ignore"):  # features near the float64 limit: L overflows (the caller names the data)
        try:
            return 1.0 / oracle.smoothness(X, l2, datasets.n_classes(dataset))
        except (ValueError, np.linalg.LinAlgError):
            return math.nan


def _beyond(dataset: str, dtype: str, rate: float) -> str:
    """Why the step size the tool chose for ``dataset`` cannot run in ``dtype``: the data's fault."""
    what = "is not a finite number" if not math.isfinite(rate) else f"is {rate:.3g}, which {dtype} cannot hold"
    return (f"dataset {dataset!r} holds values too large for a safe step in {dtype}: 1/L from its smoothness bound "
            f"L {what}; rescale the features (--standardize) or give a learning rate (--lr)")


def bytes_per_step(m: int, d: int, dtype: str, n_classes: int = 2) -> int:
    """The least a step must move: read its ``m`` rows of X once, plus y and the parameters (read
    and written: ``d + 1`` of them, ``(d + 1) K`` with ``n_classes = K >= 3``)."""
    return np.dtype(dtype).itemsize * (m * d + m + 2 * (d + 1) * (n_classes if n_classes >= 3 else 1))


def matrix(backends, devices, datasets_, dtypes, formulations, batch_sizes=(None,), l2s=(0.0,), iters=None,
           lr=SEED_LR, record_every=1, workers=1, shuffle_seed=0, optimizers=("gd",)) -> list[Case]:
    """Every combination as a case, grouped by dataset (each is loaded once). ``iters=None``: the
    default for the dataset's size, counted in full-batch steps' work (a mini-batch run does as
    many epochs' worth of steps as fit the same budget, at most 5000 steps). ``lr`` is a number or
    a function ``lr(dataset, l2)`` (see :func:`default_lr`)."""
    cases = []
    for ds in datasets_:
        n, d = datasets.shape(ds)
        for dtype, form, bs, l2, opt in itertools.product(dtypes, formulations, batch_sizes, l2s, optimizers):
            k = iters or (default_iters(n, d) if bs is None else default_iters(min(bs, n), d))
            rate, refused = lr(ds, l2) if callable(lr) else lr, None
            settings = dict(n_classes=datasets.n_classes(ds), n_iters=k, dtype=dtype, formulation=form,
                            record_every=record_every, batch_size=bs, l2=l2, workers=workers,
                            shuffle_seed=shuffle_seed, optimizer=opt)
            try:
                cfg = TrainConfig(lr=rate, **settings)
            except ValueError:
                if not callable(lr):  # the user's own --lr: their error, refused up front
                    raise
                refused = _beyond(ds, dtype, rate)  # the tool's 1/L: this data set's rows fail, the others run
                cfg = TrainConfig(lr=SEED_LR, **settings)
            for backend, device in itertools.product(backends, devices):
                cases.append(Case(backend, ds, replace(cfg, device=device), refused))
    return cases


def sparse_memory(n: int, d: int, nnz: int, item: int) -> int:
    """Bytes of a sparse case's data: the float64 CSR matrix and the oracle's copy, the run's dtype copy
    and its CSR transpose (values and int32 indices each), the labels."""
    return int(2 * (12 * nnz + 8 * (n + 1)) + 2 * ((item + 4) * nnz + 4 * (n + d + 2)) + 8 * n * 2)


def memory_needed(case: Case) -> int:
    """Bytes a case needs at its peak, roughly: the float64 dataset, its copy in the run's dtype
    (and the oracle's rounded float64 copy), the loss buffers of backend and oracle, the schedule."""
    n, d = datasets.shape(case.dataset)
    c = case.config
    item = np.dtype(c.dtype).itemsize
    data = 8 * n * (d + 1) * 2 + item * n * (d + 1) * 2
    nnz = datasets.nnz(case.dataset)
    if nnz is not None:  # sparse: by the stored values, never n x d (bench.data.sparse_files)
        data = sparse_memory(n, d, nnz, item)
    losses = 8 * c.n_records * 4
    schedule = 0 if c.batch_size is None else 8 * (c.n_iters * c.batch_size + c.n_iters) * 2
    return int(data + losses + schedule)


def preflight(cases: list[Case]) -> None:
    """Refuse, before any work, a run that cannot work or fit: a batch size or a world size larger
    than the dataset's rows, a dataset beyond the memory; ValueError naming the case, the figure
    and the limit."""
    for case in cases:
        n = datasets.shape(case.dataset)[0]
        c = case.config
        if c.batch_size is not None and c.batch_size > n:
            raise ValueError(f"batch size {c.batch_size} is larger than {case.dataset} ({n} rows): "
                             f"choose at most {n}, or 'full'")
        if c.workers > n:
            raise ValueError(f"{c.workers} workers are more than the {n} rows of {case.dataset}: choose at most {n}")
    limit = roofline.available_memory_bytes()
    if limit is None:
        return
    worst = max(cases, key=memory_needed, default=None)
    if worst is not None and memory_needed(worst) > limit:
        need = memory_needed(worst)
        raise ValueError(f"{worst.dataset} with {worst.config.n_iters} steps ({worst.config.dtype}) needs about "
                         f"{need / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB of memory available")


def describe(case: Case, lr: str | None = None) -> str:
    """One line naming a case for ``--list``: its id, steps and learning rate (``lr`` overrides the
    number, e.g. ``auto`` where 1/L would need the data)."""
    c = case.config
    return f"{case.case_id}  n_iters={c.n_iters} lr={lr or format(c.lr, 'g')}"
