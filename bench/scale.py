"""Strong scaling of the data-parallel backends: the same problem on 1, 2, ... workers.

``python -m bench scale`` builds cases — every data-parallel backend (``data_parallel = True`` on
its class) at every world size, on each dataset — and runs them through the one run owner,
:func:`bench.runner.run`: thread parity, ``prepare`` timed apart, warm-up and timed rounds, the
float64 oracle, one :class:`bench.records.Row` per case in ``runs.csv``, ``env.json`` on every
ending. The scale-only figures are ``Row`` fields, filled in by the evaluator from what a trainer
declares and offers, never from its name:

* ``startup_s`` (the process group or cluster), ``collective_s`` (the trainer's
  ``collective_time()``: one reduction of ``d + 1`` values in its group, alone) and
  ``task_overhead_s`` (``task_overhead()`` where a backend offers it: a tiny task through the
  scheduler, the path the backend avoids);
* ``speedup_vs_ws1`` and ``efficiency_vs_ws1``: ``T_1 / T_W`` and ``T_1 / (W T_W)`` against
  workers = 1 of the same backend;
* ``baseline``, ``speedup_vs_single`` and ``efficiency_vs_single``: against the fastest
  single-process backend of the same declared ``library`` named in ``--backends`` (e.g.
  ``--backends torch-ddp numpy-dask torch-manual numpy``), run first at one thread per worker;
* ``oversubscribed`` when workers × threads exceed the cores this process may use: such rows are
  kept and flagged, not hidden.

Across hosts (``--simulate-hosts N`` or ``--scheduler``) the rows come from :mod:`bench.scale_hosts`
instead, into the same files: they add ``hosts``, ``scaling`` (strong / weak), bytes per step per
worker, peak memory per worker and the memory limit, and the plot shows strong and weak scaling.

``scale.csv`` and ``scale.png`` are views of those rows (:func:`view`, :func:`plot`), written by
:class:`ScaleView` beside ``runs.csv`` in the same claimed folder.
"""

from __future__ import annotations

import platform
from pathlib import Path

import pandas as pd

from implementations import BACKENDS, BackendUnavailableError, get_backend

from .atomic import write_atomic, write_csv
from .cases import SEED_LR, matrix
from .records import Case
from .report.format import format_number
from .results import Sink
from .suites import (
    SCALE_DATASETS,
    SCALE_DTYPE,
    SCALE_FORMULATION,
    SCALE_ITERS,
    SCALE_WORKERS,
)
from .timing import available_cores

OWNED = ("scale.csv", "scale.png")  # what the view writes beside a run's files
COLUMNS = [  # scale.csv: these columns of the rows, in this order
    "backend", "library", "engine", "workers", "dataset", "n", "d", "dtype", "n_iters", "threads", "rounds",
    "time_per_iter_s", "iqr_per_iter_s", "noisy", "collective_s", "task_overhead_s", "startup_s", "transfer_s",
    "speedup_vs_ws1", "efficiency_vs_ws1", "baseline", "speedup_vs_single", "efficiency_vs_single",
    "rel_dparam", "tolerance", "verdict", "oversubscribed", "status", "reason",
    # across hosts (bench.scale_hosts): empty on rows of one machine
    "hosts", "scaling", "tx_bytes_per_step", "rx_bytes_per_step", "peak_mem_mb", "worker_peak_mb", "memory_limit_mb",
]


def format_cell(x) -> str:
    """One number of the console table: three significant digits, '—' where empty."""
    return format_number(x, "{:.3g}")


def _data_parallel(name: str) -> bool | None:
    """What the backend declares; None when it cannot be imported here (its row says why)."""
    try:
        return bool(get_backend(name).data_parallel)
    except BackendUnavailableError:
        return None


def data_parallel_backends() -> tuple[str, ...]:
    """Every registered backend that declares ``data_parallel`` (and imports here)."""
    return tuple(name for name in BACKENDS if _data_parallel(name))


def cases(backends, workers=SCALE_WORKERS, datasets=SCALE_DATASETS, dtype: str = SCALE_DTYPE,
          n_iters: int = SCALE_ITERS, lr: float = SEED_LR) -> list[Case]:
    """Per dataset: the single-process backends among ``backends`` (the baselines, workers = 1)
    first, then each data-parallel one at every world size, smallest first (so that workers = 1
    is there when the others are related to it). A backend that cannot be imported gets one case,
    which becomes a ``skipped`` row with the reason."""
    sizes = sorted(dict.fromkeys(workers))
    parallel = {name: _data_parallel(name) for name in backends}
    out = []
    for ds in datasets:
        common = dict(devices=("cpu",), datasets_=(ds,), dtypes=(dtype,), formulations=(SCALE_FORMULATION,),
                      iters=n_iters, lr=lr)
        out += matrix(backends=[b for b in backends if not parallel[b]], **common)
        for b in (b for b in backends if parallel[b]):
            for ws in sizes:
                out += matrix(backends=[b], workers=ws, **common)
    return out


def view(frame: pd.DataFrame) -> pd.DataFrame:
    """``scale.csv``: the rows' scale columns."""
    return frame[COLUMNS]


def plot(frame: pd.DataFrame, path: Path, machine: str) -> None:
    """Speed-up per step against world size, one line per data-parallel backend and dataset (the
    rows with a ``speedup_vs_ws1``), the ideal line, oversubscribed points circled. Rows across
    hosts (a ``scaling``): :func:`plot_hosts` instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if frame["scaling"].notna().any():
        plot_hosts(frame, path, machine, plt)
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ok = frame[(frame["status"] == "ok") & frame["speedup_vs_ws1"].notna()]
    sizes = sorted(int(w) for w in ok["workers"].unique()) or [1]
    ax.plot(sizes, sizes, "k--", lw=1, label="ideal (speedup = world size)")
    for (backend, ds), g in ok.groupby(["backend", "dataset"]):
        g = g.sort_values("workers")
        ax.plot(g["workers"], g["speedup_vs_ws1"], "o-", label=f"{backend} ({g['engine'].iloc[0]}), {ds}")
        over = g[g["oversubscribed"].fillna(False).astype(bool)]
        ax.scatter(over["workers"], over["speedup_vs_ws1"], s=120, facecolors="none", edgecolors="red")
    if ok["oversubscribed"].fillna(False).astype(bool).any():
        ax.scatter([], [], s=120, facecolors="none", edgecolors="red", label="oversubscribed (workers > cores)")
    ax.set_xlabel("world size (workers, 1 thread each)")
    ax.set_ylabel("speedup per step vs world size 1")
    ax.set_xticks(sizes)
    ax.set_title(f"Strong scaling, {ok['dtype'].iloc[0] if len(ok) else ''}")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.text(0.99, 0.01, machine, ha="right", va="bottom", fontsize=6, color="0.4")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def plot_hosts(frame: pd.DataFrame, path: Path, machine: str, plt) -> None:
    """Across hosts: strong scaling (speed-up against workers = 1, solid, and against the fastest
    single-process backend on the same data, dotted) and weak scaling (efficiency ``T_1 / T_W`` at
    fixed rows per worker, ideal 1), one line per engine and data set."""
    ok = frame[(frame["status"] == "ok") & frame["scaling"].notna()]
    kinds = [k for k in ("strong", "weak") if (ok["scaling"] == k).any()] or ["strong"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(6.4 * len(kinds), 4.4), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        g_all = ok[ok["scaling"] == kind]
        sizes = sorted(int(w) for w in g_all["workers"].unique()) or [1]
        key = g_all["dataset"] if kind == "strong" else (g_all["n"] // g_all["workers"]).astype(str) + " rows/worker"
        if kind == "strong":
            ax.plot(sizes, sizes, "k--", lw=1, label="ideal (speedup = world size)")
        else:
            ax.axhline(1.0, color="k", ls="--", lw=1, label="ideal (time per step constant)")
        for (backend, what), g in g_all.groupby([g_all["backend"], key]):
            g = g.sort_values("workers")
            y = g["speedup_vs_ws1"] if kind == "strong" else g["efficiency_vs_ws1"]
            line = ax.plot(g["workers"], y, "o-", label=f"{backend}, {what}")[0]
            if kind == "strong" and g["speedup_vs_single"].notna().any():
                ax.plot(g["workers"], g["speedup_vs_single"], "s:", color=line.get_color(),
                        label=f"{backend} vs {g['baseline'].dropna().iloc[0]} (one process)")
        hosts = sorted(int(h) for h in g_all["hosts"].dropna().unique())
        ax.set_xlabel(f"world size (workers, 1 thread each; hosts {', '.join(map(str, hosts)) or '?'})")
        ax.set_ylabel("speedup per step" if kind == "strong" else "efficiency T_1 / T_W (fixed rows per worker)")
        ax.set_xticks(sizes)
        ax.set_title(f"{kind.capitalize()} scaling across hosts")
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    fig.text(0.99, 0.01, machine, ha="right", va="bottom", fontsize=6, color="0.4")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


class ScaleView(Sink):
    """Writes ``scale.csv`` as rows finish and ``scale.png`` on every ending, into ``folder`` (a
    claimed :class:`bench.output.RunFolder`; put this sink before it, so that the files are
    written while the folder is still claimed). Prints the table at the end."""

    def __init__(self, folder, console: bool = True):
        self.folder, self.console = folder, console

    def row(self, outcome, result) -> None:
        write_csv(view(result.frame()), self.folder.folder / "scale.csv")

    def finish(self, result) -> None:
        if not result.rows:
            return
        df = view(result.frame())
        write_csv(df, self.folder.folder / "scale.csv")
        cpu = (getattr(self.folder, "env", None) or {}).get("cpu", {}).get("model") or platform.machine()
        plot(df, self.folder.folder / "scale.png", f"{platform.node()} ({cpu}, {available_cores()} cores)")
        self.folder.written += [n for n in OWNED if n not in self.folder.written]
        if self.console:
            shown = ["backend", "engine", "workers", "dataset", "time_per_iter_s", "collective_s", "speedup_vs_ws1",
                     "speedup_vs_single", "rel_dparam", "oversubscribed", "status"]
            if df["scaling"].notna().any():  # across hosts: where, start-up, bytes and memory per worker
                shown[3:3] = ["hosts", "scaling"]
                shown[-3:-3] = ["startup_s", "tx_bytes_per_step", "peak_mem_mb"]
            # numbers as .3g, so that a small agreement figure (1e-07) is not printed as 0.0
            numeric = [c for c in shown if pd.api.types.is_numeric_dtype(df[c])
                       and not pd.api.types.is_bool_dtype(df[c]) and c not in ("workers", "hosts")]
            print(df[shown].to_string(index=False, formatters={c: format_cell for c in numeric}))
