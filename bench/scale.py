"""Strong scaling of the data-parallel backends: the same problem on 1, 2, ... workers.

For each library (``torch-ddp``, ``numpy-dask``), world size and dataset, one case runs through the
trainer contract (``prepare`` untimed, ``run`` timed by :func:`bench.timing.measure`) and becomes one
tidy row of ``scale.csv``:

* time per step (median and IQR over rounds), and the collective alone: for ``torch-ddp`` an
  ``all_reduce`` of ``d + 1`` values measured inside its process group, for ``numpy-dask`` one
  reduction round over the chunks' actors on a tiny payload (``dask_task_s``: the same through the
  scheduler, ``sum().compute()`` of a tiny array — the path the backend avoids);
* speedup and parallel efficiency against world size 1 of the same library (``T_1 / T_W`` and
  ``T_1 / (W T_W)``) and against the single-process backend of the same library at one thread
  (``numpy`` for ``numpy-dask``, ``torch-manual`` for ``torch-ddp``), whose rows are written too;
* start-up (process group / cluster) and ``prepare`` seconds; rel Δparam against the float64 oracle;
* ``oversubscribed`` when world size × threads exceeds the cores this process may use: such rows
  are kept and flagged, not hidden.

Rows are written as they finish (a failed case is a ``failed`` row with its reason). ``scale.png``
plots speedup against world size with the ideal line. ``python -m bench.scale --help``; the CLI
hooks :func:`add_arguments` / :func:`cmd_scale` as ``python -m bench scale``.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data import init_params, load, parse_name
from bench.records import write_atomic, write_csv
from bench.oracle import compare, config_tolerance, reference_run
from bench.timing import available_cores, measure, thread_parity
from implementations import TrainConfig, create_trainer

LIBRARIES = ("torch-ddp", "numpy-dask")
SINGLE_PROCESS = {"torch-ddp": "torch-manual", "numpy-dask": "numpy"}
DEFAULT_DATASETS = ("synthetic-1Mx100",)
COLUMNS = [
    "library", "engine", "world_size", "dataset", "n", "d", "dtype", "n_iters", "threads", "rounds",
    "time_per_step_median_s", "time_per_step_iqr_s", "noisy", "collective_s", "dask_task_s", "startup_s",
    "prepare_s", "speedup_vs_ws1", "efficiency_vs_ws1", "baseline", "speedup_vs_single", "efficiency_vs_single",
    "rel_dparam", "tolerance", "verdict", "oversubscribed", "cores", "machine", "status", "reason",
]


def machine_name() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{platform.node()} ({model}, {available_cores()} cores)"


def _engine(trainer) -> str:
    if trainer.name == "torch-ddp":
        return "gloo" if trainer.dev.type == "cpu" else "nccl"
    if trainer.name == "numpy-dask":
        return "dask-actors"
    return "single-process"


def _case(name, ds, w0, b0, ref, config, rounds, threads, cores):
    """One row (a dict) for backend ``name`` on ``ds`` with ``config``."""
    row = {"library": name, "world_size": config.workers, "dataset": ds.name, "n": ds.n, "d": ds.d,
           "dtype": config.dtype, "n_iters": config.n_iters, "threads": threads, "cores": cores,
           "oversubscribed": config.workers * threads > cores, "status": "ok", "reason": ""}
    trainer = None
    try:
        with thread_parity(threads):
            trainer = create_trainer(name, config)
            row["engine"] = _engine(trainer)
            t0 = pd.Timestamp.now()
            trainer.prepare(ds.X, ds.y, w0, b0)
            row["prepare_s"] = (pd.Timestamp.now() - t0).total_seconds()
            group = getattr(trainer, "group", None)
            row["startup_s"] = getattr(group, "startup_s", np.nan)
            m = measure(trainer, rounds=rounds, warmup=1)
            row.update(rounds=len(m.times), time_per_step_median_s=m.median / config.n_iters,
                       time_per_step_iqr_s=m.iqr / config.n_iters, noisy=m.noisy)
            if hasattr(trainer, "collective_time"):
                row["collective_s"] = trainer.collective_time()
            if hasattr(trainer, "task_overhead"):
                row["dask_task_s"] = trainer.task_overhead()
            agreement = compare(trainer.result(), ref, config_tolerance(config, ds.n, ds.d))
            row.update(rel_dparam=agreement.rel_dparam, tolerance=agreement.tolerance, verdict=agreement.verdict)
    except Exception as exc:  # every finished row is kept; this one says why it failed
        row.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
    finally:
        if trainer is not None:
            trainer.close()
    return row


def _derive(df: pd.DataFrame) -> pd.DataFrame:
    df["baseline"] = df["baseline"].astype(object)
    t = df["time_per_step_median_s"]
    for (lib, ds), group in df.groupby(["library", "dataset"]):
        one = group.loc[group["world_size"] == 1, "time_per_step_median_s"]
        if len(one):
            idx = group.index
            df.loc[idx, "speedup_vs_ws1"] = one.iloc[0] / t[idx]
            df.loc[idx, "efficiency_vs_ws1"] = one.iloc[0] / (t[idx] * df.loc[idx, "world_size"])
        base = SINGLE_PROCESS.get(lib)
        ref = df.loc[(df["library"] == base) & (df["dataset"] == ds), "time_per_step_median_s"]
        if base and len(ref):
            idx = group.index
            df.loc[idx, "baseline"] = base
            df.loc[idx, "speedup_vs_single"] = ref.iloc[0] / t[idx]
            df.loc[idx, "efficiency_vs_single"] = ref.iloc[0] / (t[idx] * df.loc[idx, "world_size"])
    return df


def plot(df: pd.DataFrame, path: Path, machine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ok = df[(df["status"] == "ok") & df["library"].isin(LIBRARIES)]
    sizes = sorted(ok["world_size"].unique()) or [1]
    ax.plot(sizes, sizes, "k--", lw=1, label="ideal (speedup = world size)")
    for (lib, ds), g in ok.groupby(["library", "dataset"]):
        g = g.sort_values("world_size")
        ax.plot(g["world_size"], g["speedup_vs_ws1"], "o-", label=f"{lib} ({g['engine'].iloc[0]}), {ds}")
        over = g[g["oversubscribed"]]
        ax.scatter(over["world_size"], over["speedup_vs_ws1"], s=120, facecolors="none", edgecolors="red")
    if ok["oversubscribed"].any():
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


def run_scale(libraries=LIBRARIES, workers=(1, 2), datasets=DEFAULT_DATASETS, dtype="float32", n_iters=20,
              rounds=5, threads=1, out="results/scale", lr=0.01, baselines=True, progress=print) -> pd.DataFrame:
    """Run the study; write ``<out>/scale.csv`` (rows as they finish) and ``<out>/scale.png``.

    ``threads`` per worker (each rank / Dask worker is single-threaded; the client's NumPy and the
    single-process baselines get ``threads``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv, png = out / "scale.csv", out / "scale.png"
    cores, machine = available_cores(), machine_name()
    rows = []

    def keep(row):
        row["machine"] = machine
        rows.append(row)
        write_csv(_derive(pd.DataFrame(rows).reindex(columns=COLUMNS)), csv)
        if progress:
            progress(f"{row['library']:>12} ws={row['world_size']} {row['dataset']}: "
                     + (f"{row['time_per_step_median_s'] * 1e3:.3f} ms/step" if row["status"] == "ok" else row["reason"]))

    for name in datasets:
        ds = load(name)
        w0, b0 = init_params(ds.d, seed=0, scale=ds.init_scale)
        ref_cfg = TrainConfig(lr=lr, n_iters=n_iters, dtype=dtype)
        ref = reference_run(ds.X, ds.y, w0, b0, ref_cfg)
        if baselines:
            for lib in dict.fromkeys(SINGLE_PROCESS[lib] for lib in libraries):
                keep(_case(lib, ds, w0, b0, ref, ref_cfg, rounds, threads, cores))
        for lib in libraries:
            for ws in workers:
                config = TrainConfig(lr=lr, n_iters=n_iters, dtype=dtype, workers=ws)
                keep(_case(lib, ds, w0, b0, ref, config, rounds, threads, cores))
    df = _derive(pd.DataFrame(rows).reindex(columns=COLUMNS))
    write_csv(df, csv)
    plot(df, png, machine)
    return df


def _dataset(text):
    try:
        parse_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.cli import _positive_int

    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=list(LIBRARIES))
    parser.add_argument("--workers", nargs="+", type=_positive_int, default=[1, 2], help="world sizes (default: 1 2)")
    parser.add_argument("--datasets", nargs="+", type=_dataset, default=list(DEFAULT_DATASETS),
                        help="iris or synthetic-<n>x<d> (default: synthetic-1Mx100, ~400 MB in float32)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--iters", type=_positive_int, default=20, help="steps per timed run (default 20)")
    parser.add_argument("--rounds", type=_positive_int, default=5, help="timed runs per case (default 5)")
    parser.add_argument("--threads", type=_positive_int, default=1, help="threads per worker (default 1)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the single-process numpy / torch-manual rows")
    parser.add_argument("--out", default="results/scale", help="folder for scale.csv and scale.png")


def cmd_scale(args: argparse.Namespace) -> int:
    df = run_scale(args.libraries, args.workers, args.datasets, args.dtype, args.iters, args.rounds,
                   args.threads, args.out, baselines=not args.no_baselines)
    cols = ["library", "engine", "world_size", "dataset", "time_per_step_median_s", "collective_s",
            "speedup_vs_ws1", "speedup_vs_single", "rel_dparam", "oversubscribed", "status"]
    print(df[cols].to_string(index=False))
    print(f"wrote {os.path.join(args.out, 'scale.csv')} and scale.png")
    return 0 if (df["status"] == "ok").all() else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    add_arguments(p)
    raise SystemExit(cmd_scale(p.parse_args()))
