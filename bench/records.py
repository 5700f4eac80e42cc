"""What runs and what came out: the typed :class:`Case` and :class:`Row`, the CSV schema derived
from ``Row``'s fields, and :func:`read_run`, the one reader of a run folder.

One source of truth: a column exists because ``Row`` has a field of that name; its pandas dtype
follows from the field's type (``int`` -> ``Int64``, ``float`` -> ``Float64``, ``bool`` ->
``boolean``, ``str`` -> ``string``, all nullable so a skipped row leaves timings empty). Adding a
column is one edit here; a frame with a missing or extra column is refused by :func:`to_frame`.

Reading: :func:`read_run` (a folder: ``runs.csv``, ``losses.csv``, ``env.json``) and :func:`as_run`
(frames held in memory: a live run's, a pytest-benchmark file's) return a :class:`Run` whose frames
have every column the report and ``compare`` read, in usable dtypes, older files included (legacy
columns, case ids and backend attributes are filled in here and nowhere else).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import typing
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from implementations import TrainConfig

STATUSES = ("ok", "skipped", "diverged", "failed")


@dataclass(frozen=True)
class Case:
    """What runs: one backend on one device and dataset with one training configuration."""

    backend: str
    dataset: str
    config: TrainConfig
    # why this case cannot run, found while it was built (e.g. data beyond its dtype): its row fails
    # with this reason, the other cases run
    refused: str | None = field(default=None, compare=False)

    @property
    def device(self) -> str:
        return self.config.device

    @property
    def loop(self) -> str:
        return "full-batch" if self.config.batch_size is None else "mini-batch"

    @property
    def case_id(self) -> str:
        c = self.config
        parts = [self.dataset, c.dtype, c.formulation, "full" if c.batch_size is None else f"b{c.batch_size}",
                 f"l2={c.l2:g}", f"w{c.workers}", f"{self.backend}@{c.device}"]
        if c.optimizer != "gd":  # the seed's optimizer leaves the id as it always was (old runs still match)
            parts.insert(5, c.optimizer)
        return "|".join(parts)


@dataclass(frozen=True)
class Row:
    """What came out of one case: the CSV row. Fields left ``None`` are empty cells."""

    # what ran
    run_id: str
    case_id: str
    backend: str
    device: str
    dtype: str
    formulation: str
    dataset: str
    loop: str
    # what the data is (bench.data): where it came from, the final X and y's content hash, non-zero fraction
    dataset_origin: str | None = None
    dataset_sha256: str | None = None
    density: float | None = None
    # what the backend is (its declared attributes, implementations.base.Trainer)
    library: str | None = None
    gradient: str | None = None
    engine: str | None = None
    compiled: bool | None = None
    style: str | None = None
    n: int | None = None
    d: int | None = None
    n_iters: int | None = None
    batch_size: int | None = None
    epochs: float | None = None
    l2: float | None = None
    lr: float | None = None
    record_every: int | None = None
    workers: int | None = None
    n_classes: int | None = None  # 2: the sigmoid model; K >= 3: softmax
    optimizer: str | None = None  # gd (the seed), momentum, nesterov, adam, lbfgs, solver
    # lbfgs: loss-and-gradient evaluations its line searches used (n_iters counts iterations)
    evaluations: int | None = None
    # threads: asked for, and read back from each library inside the run
    threads: int | None = None
    threads_torch: int | None = None
    threads_blas: int | None = None
    threads_numba: int | None = None
    oversubscribed: bool | None = None
    # timing (bench.timing.Measurement)
    rounds: int | None = None
    warmup_rounds: int | None = None
    time_median_s: float | None = None
    time_iqr_s: float | None = None
    time_min_s: float | None = None
    time_max_s: float | None = None
    time_mean_s: float | None = None
    time_stddev_s: float | None = None
    time_per_iter_s: float | None = None
    iqr_per_iter_s: float | None = None
    noisy: bool | None = None
    other_load: float | None = None  # cores busy with other processes (or stolen by the hypervisor) while timing
    times_s: str | None = None  # every timed round, space-separated seconds (for bench compare)
    transfer_s: float | None = None
    # graphs (torch-compiled), XLA programs (jax), kernels (numba) this row's calls used, and the seconds spent
    # compiling them (warm-up or jax's prepare; never timed, never transfer)
    compiled_graphs: int | None = None
    compile_s: float | None = None
    # cuda rows (bench.timing): CUDA-event time of the same rounds as the wall times above, and the device
    event_time_median_s: float | None = None
    event_time_per_iter_s: float | None = None
    device_name: str | None = None
    # against the hardware
    bytes_per_step: int | None = None
    achieved_gbps: float | None = None
    roofline_fraction: float | None = None  # against the memory floor; empty where a step's data fits in cache
    # (K-class rows: against the larger of the memory and compute floors, bench.roofline.step_floor)
    compute_fraction: float | None = None  # against the in-cache FMA rate; only where a step's data fits in cache
    # (K-class rows: also out of cache, flops 4 m d K against the measured compute roof)
    bound: str | None = None  # which floor applies: "memory" or "compute" (binary: compute in cache, memory out)
    peak_mem_mb: float | None = None
    # against the float64 oracle (bench.oracle)
    final_loss: float | None = None
    max_abs_dw: float | None = None
    abs_db: float | None = None
    max_abs_dloss: float | None = None
    rel_dparam: float | None = None
    rel_dloss: float | None = None
    tolerance: float | None = None
    verdict: str | None = None
    saturated: int | None = None
    first_nonfinite_step: int | None = None
    # against scikit-learn's optimum
    optimum_loss: float | None = None
    suboptimality: float | None = None
    rel_dist_opt: float | None = None
    time_to_target_s: float | None = None
    # scale-out (data-parallel rows, `bench scale`): the group's own costs, and speed-up per step
    startup_s: float | None = None  # process group / cluster start
    collective_s: float | None = None  # one reduction of d + 1 values in the group, alone
    task_overhead_s: float | None = None  # one tiny task through a scheduler: the path the backend avoids
    speedup_vs_ws1: float | None = None  # time per step at workers=1 of the same backend / this one's
    efficiency_vs_ws1: float | None = None  # speedup_vs_ws1 / workers
    baseline: str | None = None  # the fastest single-process backend of the same library in the run
    speedup_vs_single: float | None = None  # baseline's time per step / this one's
    efficiency_vs_single: float | None = None  # speedup_vs_single / workers
    # how it ended
    status: str = "ok"
    reason: str = ""
    # across hosts (`bench scale --simulate-hosts` / `--scheduler`, bench.scale_hosts): where and what it cost
    hosts: int | None = None  # machines (or simulated hosts) the workers ran on
    scaling: str | None = None  # strong (the same data at every world size) or weak (the same rows per worker)
    tx_bytes_per_step: float | None = None  # bytes sent per step per worker (its host's interface, mean over workers)
    rx_bytes_per_step: float | None = None  # bytes received per step per worker, likewise
    worker_peak_mb: str | None = None  # each worker's peak resident memory, MB, space-separated (peak_mem_mb: largest)
    memory_limit_mb: float | None = None  # the per-worker memory limit the row ran under
    # sparse data (bench.data): the stored non-zeros of X, and how X was held ("csr" or "dense")
    nnz: int | None = None
    storage: str | None = None

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @classmethod
    def for_case(cls, run_id: str, case: Case, **fields) -> "Row":
        """A row with the case's own columns filled in; ``fields`` adds the rest (unknown names raise)."""
        c = case.config
        return cls(run_id=run_id, case_id=case.case_id, backend=case.backend, device=c.device, dtype=c.dtype,
                   formulation=c.formulation, dataset=case.dataset, loop=case.loop, n_iters=c.n_iters,
                   batch_size=c.batch_size, l2=c.l2, lr=c.lr, record_every=c.record_every, workers=c.workers,
                   n_classes=c.n_classes, optimizer=c.optimizer,
                   **fields)

    def replace(self, **fields) -> "Row":
        return dataclasses.replace(self, **fields)

    def to_record(self) -> dict:
        return dataclasses.asdict(self)


# Every column of runs.csv, in words: docs/schema.md is generated from these (python -m bench report
# --schema docs/schema.md) and tests/test_schema_doc.py fails when a Row field has none. A new field
# gets its line here.
DESCRIPTIONS: dict[str, str] = {
    # what ran
    "run_id": "the run's id (UTC start time and a random suffix), the same on every row of a run",
    "case_id": "the case's id: dataset, dtype, formulation, batch, l2, workers, (optimizer,) backend@device; "
               "joins `losses.csv` and `time_to_target.csv`",
    "backend": "the registered name or spec of the backend that ran",
    "device": "`cpu`, `cuda[:N]` or `mps`",
    "dtype": "`float32` or `float64`: of the data, the parameters and the arithmetic",
    "formulation": "`probs` (sigmoid, then the log loss, as the seed writes it) or `logits` (the loss from the "
                   "logits, the numerically stable form)",
    "dataset": "the dataset's name, or the data file as given (with its options, e.g. `[standardize]`)",
    "loop": "`full-batch` or `mini-batch`",
    "dataset_origin": "where the data came from: a generator with its seed, a bundled set, or a file's path",
    "dataset_sha256": "content hash of the final `X` and `y` (after casting and options); `bench compare` "
                      "matches rows on it",
    "density": "fraction of non-zero entries of `X`",
    "library": "the backend's library as its class declares it (`numpy`, `torch`, `jax`, `numba`, `sklearn`, ...)",
    "gradient": "how the backend gets its gradient: `hand-derived`, `autograd` or `solver`",
    "engine": "what executes the step: `eager`, `inductor`, `xla`, `numba`, `gloo`, `dask`, ...",
    "compiled": "whether the step runs compiled code (declared by the backend)",
    "style": "how the loop is written, in a few words (\"the seed's loop\", \"hand-blocked, threaded\", ...)",
    "n": "rows (samples) of the data set",
    "d": "features of the data set",
    "n_iters": "training steps (L-BFGS: iterations)",
    "batch_size": "rows per mini-batch step; empty: full batch",
    "epochs": "passes over the data: `n_iters · m / n` (`m` the rows per step)",
    "l2": "L2 penalty: loss + (l2/2)·‖w‖², the bias not penalised",
    "lr": "learning rate (step size); the seed's 0.01 on Iris, 1/L on synthetic data unless given",
    "record_every": "the loss is recorded every this many steps (1: every step, as the seed does)",
    "workers": "data-parallel workers (processes or Dask chunks); 1 for single-process backends",
    "n_classes": "classes: 2 is the sigmoid model, K ≥ 3 softmax",
    "optimizer": "`gd` (the seed's fixed step), `momentum`, `nesterov`, `adam`, `lbfgs`, or `solver` "
                 "(scikit-learn's own)",
    "evaluations": "L-BFGS rows: loss-and-gradient evaluations its line searches used",
    "threads": "threads asked for, for every library (`--threads`, default every available core)",
    "threads_torch": "threads torch reports using inside the run",
    "threads_blas": "threads the BLAS pool under NumPy reports using inside the run (threadpoolctl)",
    "threads_numba": "threads numba reports using inside the run",
    "oversubscribed": "whether the libraries' threads together exceed the cores",
    "rounds": "timed rounds of `run()`",
    "warmup_rounds": "untimed warm-up rounds before them (compilation happens there)",
    "time_median_s": "median wall time of one `run()` over the timed rounds, seconds",
    "time_iqr_s": "interquartile range of those wall times, seconds",
    "time_min_s": "fastest timed round, seconds",
    "time_max_s": "slowest timed round, seconds",
    "time_mean_s": "mean of the timed rounds, seconds",
    "time_stddev_s": "standard deviation of the timed rounds, seconds",
    "time_per_iter_s": "median time per training step: `time_median_s / n_iters`",
    "iqr_per_iter_s": "interquartile range per step: `time_iqr_s / n_iters`",
    "noisy": "whether the IQR exceeds 10 % of the median (the `reason` says why, where it can tell)",
    "other_load": "cores busy with other processes (or stolen by the hypervisor) while the row was timed, "
                  "from `/proc/stat`",
    "times_s": "every timed round, space-separated seconds (for `bench compare`'s tests)",
    "transfer_s": "`prepare()`: validation, cast and host→device copy, timed apart from training",
    "compiled_graphs": "graphs (torch-compiled), XLA programs (jax) or kernels (numba) the row's calls used",
    "compile_s": "seconds spent compiling them, in the warm-up or jax's `prepare`: never timed, never transfer",
    "event_time_median_s": "cuda rows: CUDA-event time of the same rounds as `time_median_s`",
    "event_time_per_iter_s": "cuda rows: CUDA-event time per step",
    "device_name": "cuda rows: the GPU's name",
    "bytes_per_step": "least bytes a step must read: `itemsize · (m·d + m + 2(d+1))`",
    "achieved_gbps": "`bytes_per_step / time_per_iter_s`, GB/s",
    "roofline_fraction": "achieved bandwidth over the run's measured memory floor (1.0 = at the floor); empty "
                         "where a step's data fits in cache (K-class rows: against the larger of the memory and "
                         "compute floors)",
    "compute_fraction": "the step's flops (`4·m·d`; K-class `4·m·d·K`) per second over the measured in-cache "
                        "multiply-add rate; where a step's data fits in cache (K-class rows: also out of cache)",
    "bound": "which floor applies: `memory` or `compute`",
    "peak_mem_mb": "memory `run()` allocates on top of the prepared data, MB (host RSS high-water mark, or "
                   "`torch.cuda.max_memory_allocated`)",
    "final_loss": "the loss after the last step",
    "max_abs_dw": "largest absolute difference of the final weights from the float64 oracle's",
    "abs_db": "absolute difference of the final bias from the oracle's",
    "max_abs_dloss": "largest absolute difference of the recorded losses from the oracle's",
    "rel_dparam": "relative difference of the final parameters from the oracle's, `‖θ − θ_ref‖ / ‖θ_ref‖`",
    "rel_dloss": "largest relative difference of the recorded losses from the oracle's",
    "tolerance": "the relative tolerance for this dtype and run length (docs/methodology.md)",
    "verdict": "`pass` when `rel_dparam` and `rel_dloss` are within `tolerance`, `fail` otherwise, `n/a` where "
               "not judged against the oracle (with why)",
    "saturated": "samples with `p(1−p) < 1e-12` at the oracle's final parameters (where `probs` autograd and "
                 "`p − y` part ways)",
    "first_nonfinite_step": "first step whose loss or parameters became NaN or inf",
    "optimum_loss": "scikit-learn's minimum of the same (penalised) objective, `L*`",
    "suboptimality": "`final_loss − optimum_loss`",
    "rel_dist_opt": "`‖θ − θ*‖ / ‖θ*‖`, distance from the optimum's parameters",
    "time_to_target_s": "seconds until the relative suboptimality `(L − L*)/|L*|` came within `--target` "
                        "(default 1e-3); empty: never (the same definition as `time_to_target.csv`)",
    "startup_s": "data-parallel rows: process group or cluster start, seconds",
    "collective_s": "data-parallel rows: one reduction of d + 1 values in the group, alone, seconds",
    "task_overhead_s": "data-parallel rows: one tiny task through a scheduler (the path the backend avoids), seconds",
    "speedup_vs_ws1": "data-parallel rows: time per step at workers = 1 of the same backend over this row's",
    "efficiency_vs_ws1": "`speedup_vs_ws1 / workers`",
    "baseline": "data-parallel rows: the fastest single-process backend of the same library in the run",
    "speedup_vs_single": "data-parallel rows: the baseline's time per step over this row's",
    "efficiency_vs_single": "`speedup_vs_single / workers`",
    "status": "`ok`, `skipped` (device or library unavailable, or a configuration the backend does not "
              "support), `diverged` (non-finite, or loss above 1e5× its first value) or `failed`",
    "reason": "why a row is not `ok`, noisy or not judged; empty otherwise",
    # across hosts (bench scale --simulate-hosts / --scheduler)
    "hosts": "machines (or simulated hosts, network namespaces) the workers ran on",
    "scaling": "`strong` (the same data at every world size) or `weak` (the same rows per worker)",
    "tx_bytes_per_step": "bytes sent per step per worker, read from its host's interface counters (mean over workers)",
    "rx_bytes_per_step": "bytes received per step per worker, likewise",
    "worker_peak_mb": "each worker's peak resident memory (MB, VmHWM), space-separated; `peak_mem_mb` is the largest",
    "memory_limit_mb": "the per-worker memory limit the row ran under (`--memory-limit`), empty when none",
    # sparse data
    "nnz": "the stored non-zeros of X (sparse data); for a dense X, its non-zero entries",
    "storage": "how X was held: `csr` (sparse, SciPy CSR) or `dense`",
}


def _pandas_dtype(tp) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return {int: "Int64", float: "Float64", bool: "boolean", str: "string"}[args[0]]


SCHEMA: dict[str, str] = {f.name: _pandas_dtype(t) for f, t in
                          ((f, typing.get_type_hints(Row)[f.name]) for f in dataclasses.fields(Row))}


def to_frame(rows, schema: dict[str, str] = SCHEMA, extra_ok: bool = False) -> pd.DataFrame:
    """Rows (``Row`` objects or their records) -> a DataFrame with exactly the schema's columns and
    dtypes. A record with a missing or unknown column is an error (``extra_ok`` keeps unknown ones
    after the schema's, for the benchmark CSV's pytest-benchmark statistics)."""
    records = [r.to_record() if isinstance(r, Row) else dict(r) for r in rows]
    for rec in records:
        missing = [c for c in schema if c not in rec]
        extra = [c for c in rec if c not in schema]
        if missing or (extra and not extra_ok):
            raise ValueError(f"row does not match the Row schema: missing {missing}, unknown {extra}")
    df = pd.DataFrame(records, columns=list(schema) + [c for c in (records[0] if records else {}) if c not in schema])
    return df.astype(schema)


def read_runs(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=SCHEMA, keep_default_na=True)


def new_run_id() -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


# ----------------------------------------------------------------------------------------------
# reading a run: older files normalised to today's columns (for the report and compare)

# The columns a reader relies on, with their pandas dtypes; older files lacking them are filled in.
_READ_STRINGS = ("run_id", "backend", "device", "dtype", "formulation", "dataset", "verdict", "status", "reason")
_READ_NUMERIC = ("n", "d", "n_iters", "lr", "threads", "rounds", "time_median_s", "time_iqr_s", "time_per_iter_s",
                 "iqr_per_iter_s", "bytes_per_step", "achieved_gbps", "roofline_fraction", "final_loss",
                 "rel_dparam", "rel_dloss", "tolerance", "optimum_loss", "suboptimality", "first_nonfinite_step")
_NEWER_COLUMNS: dict[str, str] = {
    "case_id": "string", "loop": "string", "batch_size": "Int64", "l2": "Float64", "epochs": "Float64",
    "workers": "Int64", "times_s": "string", "threads_torch": "Int64", "threads_blas": "Int64",
    "threads_numba": "Int64", "oversubscribed": "boolean", "compute_fraction": "Float64",
    "library": "string", "gradient": "string", "engine": "string", "compiled": "boolean", "style": "string",
    "dataset_origin": "string", "dataset_sha256": "string", "density": "Float64",
    "n_classes": "Int64", "nnz": "Int64", "storage": "string", "bound": "string", "optimizer": "string",
    "evaluations": "Int64", "compiled_graphs": "Int64", "compile_s": "Float64",
}
ATTRIBUTE_COLUMNS = ("library", "gradient", "engine", "compiled", "style")
# time_s: the point's measured wall time where the row recorded one (see point_times), else empty
LOSS_COLUMNS = ["case_id", "step", "loss", "ref_loss", "full_loss", "time_s"]

# FOR OLD RUNS ONLY (files written before rows carried the backend's declared attributes): what each
# backend of that time was. Never consulted for a row that has a ``library`` column — today's rows
# say what they are themselves. In those runs ``torch-compiled`` compiled only full-batch CPU rows
# with n <= 4096 (and CUDA); every other row was an eager hand-blocked threaded step, so it is not
# marked compiled and old verdicts do not claim a compiler.
LEGACY_ATTRIBUTES: dict[str, tuple[str, str, str, bool, str]] = {
    # name: (library, gradient, engine, compiled, style)
    "numpy": ("numpy", "hand-derived", "eager", False, "the seed's loop"),
    "numpy-fused": ("numpy", "hand-derived", "eager", False, "hand-blocked, threaded"),
    "numpy-dask": ("numpy", "hand-derived", "dask", False, "Dask chunks"),
    "torch": ("torch", "autograd", "eager", False, "the seed's loop"),
    "torch-manual": ("torch", "hand-derived", "eager", False, "the seed's loop, no autograd"),
    "torch-compiled": ("torch", "hand-derived", "eager/inductor (mixed)", False,
                       "compiled on small full-batch rows only, else hand-blocked, threaded"),
    "torch-nn": ("torch", "autograd", "eager", False, "nn.Module + optim + DataLoader"),
    "torch-ddp": ("torch", "hand-derived", "gloo", False, "torch.distributed all_reduce"),
    "numba": ("numba", "hand-derived", "numba", True, "whole run in one compiled call"),
    "jax": ("jax", "autograd", "xla", True, "whole loop in one jit"),
}


def _legacy_case_id(r) -> str:
    """A case id for a row written before rows carried one, in :attr:`Case.case_id`'s format."""
    bs, l2, workers = r["batch_size"], r["l2"], r["workers"]
    loop = "full" if pd.isna(bs) else f"b{int(bs)}"
    l2 = 0.0 if pd.isna(l2) else float(l2)
    workers = 1 if pd.isna(workers) else int(workers)
    return "|".join([str(r["dataset"]), str(r["dtype"]), str(r["formulation"]), loop, f"l2={l2:g}", f"w{workers}",
                     f"{r['backend']}@{r['device']}"])


def _normalize_rows(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of a ``runs.csv`` table (today's or an older one) with every column the report and
    ``compare`` read, in usable dtypes. Older files: ``batch_size`` empty (full batch), ``loop``
    from it, ``l2`` 0, ``workers`` 1, ``case_id`` built as :attr:`Case.case_id` would, and — where
    the file has no ``library`` column — the backend attributes from :data:`LEGACY_ATTRIBUTES`."""
    legacy = "library" not in df
    df = df.copy().reset_index(drop=True)
    for col in _READ_STRINGS:
        if col not in df:
            df[col] = pd.NA
        df[col] = df[col].astype("string")
    for col in _READ_NUMERIC:
        if col not in df:
            df[col] = np.nan
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Float64")
    if "noisy" not in df:
        df["noisy"] = pd.NA
    for col, dtype in _NEWER_COLUMNS.items():
        if col not in df:
            df[col] = pd.NA
        if dtype in ("Int64", "Float64"):
            df[col] = pd.to_numeric(df[col], errors="coerce")
            df[col] = df[col].round().astype("Int64") if dtype == "Int64" else df[col].astype("Float64")
        elif dtype == "boolean":
            df[col] = df[col].map(lambda v: pd.NA if pd.isna(v) else str(v).strip().lower() in ("true", "1"))
            df[col] = df[col].astype("boolean")
        else:
            df[col] = df[col].astype("string")
    if legacy:
        for i, name in df["backend"].items():
            if pd.notna(name) and str(name) in LEGACY_ATTRIBUTES:
                for col, value in zip(ATTRIBUTE_COLUMNS, LEGACY_ATTRIBUTES[str(name)], strict=True):
                    df.at[i, col] = value
    df["l2"] = df["l2"].fillna(0.0)
    df["n_classes"] = df["n_classes"].fillna(2)  # runs before softmax were all binary
    df["optimizer"] = df["optimizer"].fillna("gd")  # ... and all plain gradient descent
    loop = np.where(df["batch_size"].isna(), "full-batch", "mini-batch")
    df["loop"] = df["loop"].fillna(pd.Series(loop, index=df.index, dtype="string"))
    missing = df["case_id"].isna()
    if missing.any():
        df.loc[missing, "case_id"] = df[missing].apply(_legacy_case_id, axis=1).astype("string")
    return df


def _normalize_losses(losses: pd.DataFrame | None, rows: pd.DataFrame) -> pd.DataFrame:
    """Tidy curves ``case_id, step, loss, ref_loss, full_loss`` (``rows`` normalised). An older
    ``losses.csv`` (keyed by backend, device, dtype, formulation, dataset; no ``ref_loss``) is
    joined to the rows' ``case_id``."""
    if losses is None or len(losses) == 0:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in LOSS_COLUMNS}).astype({"case_id": "string"})
    losses = losses.copy()
    if "case_id" not in losses:
        keys = ["backend", "device", "dtype", "formulation", "dataset"]
        full = rows[rows["loop"] == "full-batch"].drop_duplicates(keys)[keys + ["case_id"]]
        losses = losses.astype({k: "string" for k in keys}).merge(full, on=keys, how="inner")
    for c in ("ref_loss", "full_loss", "time_s"):
        if c not in losses:
            losses[c] = np.nan
    out = losses[LOSS_COLUMNS].copy()
    out["case_id"] = out["case_id"].astype("string")
    for c in ("step", "loss", "ref_loss", "full_loss", "time_s"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    return out.sort_values(["case_id", "step"], kind="stable").reset_index(drop=True)


class Run(NamedTuple):
    """A run as the report and ``compare`` read it: rows (:func:`_normalize_rows`), curves in
    :data:`LOSS_COLUMNS` (empty when none were recorded) and the ``env.json`` dict (empty if none)."""

    rows: pd.DataFrame
    losses: pd.DataFrame
    env: dict


def as_run(rows: pd.DataFrame, losses: pd.DataFrame | None = None, env: dict | None = None) -> Run:
    """Frames held in memory (a live run's, a pytest-benchmark file's, an older file's) as a :class:`Run`."""
    rows = _normalize_rows(rows)
    return Run(rows, _normalize_losses(losses, rows), dict(env or {}))


def read_run(folder) -> Run:
    """The run saved in ``folder``: ``runs.csv`` (required), ``losses.csv`` and ``env.json`` (each
    optional; an ``env.json`` that is not JSON reads as empty), today's format or an older one."""
    folder = Path(folder)
    rows = pd.read_csv(folder / "runs.csv")
    losses = pd.read_csv(folder / "losses.csv") if (folder / "losses.csv").is_file() else None
    env = {}
    if (folder / "env.json").is_file():
        try:
            env = json.loads((folder / "env.json").read_text())
        except json.JSONDecodeError:
            env = {}
    return as_run(rows, losses, env)
