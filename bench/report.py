"""Views of the tidy runs table: the summary (terminal + markdown) and the plots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .records import write_atomic, write_text


def _fmt_time(s) -> str:
    if s is None or pd.isna(s):
        return "—"
    for unit, k in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if s >= k:
            return f"{s / k:.3g} {unit}"
    return f"{s:.3g} s"


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per measurement with display columns; speed relative to numpy on cpu."""
    keys = ["dataset", "dtype", "formulation"]
    base = df[(df.backend == "numpy") & (df.device == "cpu") & (df.status == "ok")]
    base = base.set_index(keys)["time_per_iter_s"].rename("numpy_s")
    out = df.join(base, on=keys)
    out["vs_numpy"] = out["numpy_s"] / out["time_per_iter_s"]
    return out


def summary_markdown(df: pd.DataFrame) -> str:
    s = summary_frame(df)
    run_id = s["run_id"].iloc[0] if len(s) else "?"
    lines = [f"# Run {run_id}", "",
             "Median time per training step over the timed rounds (IQR beside it), speed relative to the "
             "`numpy` backend on cpu (>1 is faster), and agreement with the float64 NumPy reference on the "
             "same data and init (relative parameter difference against the dtype's tolerance).", ""]
    for (ds, dtype), g in s.groupby(["dataset", "dtype"], sort=False):
        n, d, k = int(g.n.iloc[0]), int(g.d.iloc[0]), int(g.n_iters.iloc[0])
        lines += [f"## {ds} (n={n}, d={d}), {dtype}, {k} steps", "",
                  "| backend | device | formulation | time/step | IQR | vs numpy | GB/s | rel Δparam | tol | verdict | status |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
        for _, r in g.sort_values(["formulation", "device", "backend"]).iterrows():
            status = r.status if r.status == "ok" else f"{r.status}: {r.reason}"
            noisy = " (noisy)" if r.noisy is True else ""
            lines.append(
                f"| {r.backend} | {r.device} | {r.formulation} | {_fmt_time(r.time_per_iter_s)}{noisy} | "
                f"{_fmt_time(r.iqr_per_iter_s)} | {_num(r.vs_numpy, '{:.2f}×')} | {_num(r.achieved_gbps, '{:.2f}')} | "
                f"{_num(r.rel_dparam, '{:.1e}')} | {_num(r.tolerance, '{:.1e}')} | {r.verdict if pd.notna(r.verdict) else '—'} | {status} |"
            )
        lines.append("")
    return "\n".join(lines)


def _num(x, fmt) -> str:
    return "—" if x is None or pd.isna(x) or (isinstance(x, float) and math.isinf(x)) else fmt.format(x)


def print_summary(df: pd.DataFrame, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    s = summary_frame(df)
    for (ds, dtype), g in s.groupby(["dataset", "dtype"], sort=False):
        t = Table(title=f"{ds} (n={int(g.n.iloc[0])}, d={int(g.d.iloc[0])}) {dtype}, {int(g.n_iters.iloc[0])} steps")
        for col, just in (("backend", "left"), ("device", "left"), ("form.", "left"), ("time/step", "right"),
                          ("IQR", "right"), ("vs numpy", "right"), ("verdict", "left"), ("status", "left")):
            t.add_column(col, justify=just)
        for _, r in g.sort_values(["formulation", "device", "backend"]).iterrows():
            verdict = r.verdict if pd.notna(r.verdict) else "—"
            style = "green" if verdict == "pass" else ("red" if verdict == "fail" else "yellow")
            t.add_row(r.backend, r.device, r.formulation,
                      _fmt_time(r.time_per_iter_s) + (" ~" if r.noisy is True else ""),
                      _fmt_time(r.iqr_per_iter_s), _num(r.vs_numpy, "{:.2f}×"),
                      f"[{style}]{verdict}[/{style}]", r.status if r.status == "ok" else f"{r.status}: {r.reason}")
        console.print(t)


def _finish(fig, axes, path: Path, ylabel: str, legend_size: int) -> bool:
    """Label, add the legend, write the PNG atomically, free the figure."""
    import matplotlib.pyplot as plt

    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=legend_size)
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)
    return True


def plot_time_vs_n(df: pd.DataFrame, path: Path, floor_gbps: float | None = None) -> bool:
    """log-log time per step vs n, one line per backend@device (float32 and float64 panels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = df[(df.status == "ok") & df.time_per_iter_s.notna()]
    if ok.empty:
        return False
    # one width d per plot: the one with the most sizes n (a sweep also varies d at fixed n)
    d = ok.groupby("d").n.nunique().idxmax()
    ok = ok[ok.d == d]
    dtypes = list(dict.fromkeys(ok.dtype))
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6 * len(dtypes), 4.5), squeeze=False, sharey=True)
    for ax, dtype in zip(axes[0], dtypes):
        g = ok[(ok.dtype == dtype)]
        form = "probs" if "probs" in set(g.formulation) else g.formulation.iloc[0]
        g = g[g.formulation == form]
        for (backend, device), h in g.groupby(["backend", "device"]):
            h = h.groupby("n", as_index=False)["time_per_iter_s"].median().sort_values("n")
            ax.plot(h.n, h.time_per_iter_s, marker="o", label=f"{backend} ({device})")
        if floor_gbps:
            ns = np.unique(g.n)
            bpsn = g.groupby("n")["bytes_per_step"].first().reindex(ns)
            ax.plot(ns, bpsn.values / (floor_gbps * 1e9), "k--", lw=1, label=f"floor: X read once at {floor_gbps:.0f} GB/s")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("n (samples)")
        ax.set_title(f"{dtype}, {form}, d = {d}")
        ax.grid(True, which="both", alpha=0.3)
    return _finish(fig, axes, path, "median time per step (s)", legend_size=8)


def plot_loss_curves(curves: list[dict], path: Path, dataset: str = "iris", optimum_loss: float | None = None) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [c for c in curves if c["dataset"] == dataset]
    if not curves:
        return False
    forms = list(dict.fromkeys(c["formulation"] for c in curves))
    fig, axes = plt.subplots(1, len(forms), figsize=(6 * len(forms), 4.5), squeeze=False, sharey=True)
    for ax, form in zip(axes[0], forms):
        for c in (c for c in curves if c["formulation"] == form):
            ls = "-" if c["dtype"] == "float64" else "--"
            ax.plot(c["step"], c["loss"], ls, lw=1, label=f"{c['backend']} ({c['device']}, {c['dtype']})")
        if optimum_loss is not None:
            ax.axhline(optimum_loss, color="k", lw=0.8, ls=":", label=f"optimum {optimum_loss:.3f} (scikit-learn)")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"{dataset}: loss per step, {form}")
        ax.grid(True, which="both", alpha=0.3)
    return _finish(fig, axes, path, "mean BCE loss", legend_size=7)


def loss_frame(curves: list[dict]) -> pd.DataFrame:
    parts = [pd.DataFrame({k: c[k] for k in ("step", "loss")}).assign(
        **{k: c[k] for k in ("backend", "device", "dtype", "formulation", "dataset")}) for c in curves]
    if not parts:
        return pd.DataFrame(columns=["backend", "device", "dtype", "formulation", "dataset", "step", "loss"])
    return pd.concat(parts, ignore_index=True)[["backend", "device", "dtype", "formulation", "dataset", "step", "loss"]]


def crossovers(df: pd.DataFrame) -> list[str]:
    """Per backend and dtype: the smallest n at which its GPU row beats its CPU row."""
    ok = df[(df.status == "ok") & df.time_per_iter_s.notna()]
    gpus = sorted(set(ok.device) - {"cpu"})
    if not gpus:
        return ["GPU/CPU crossover: no GPU row in this run"]
    lines = []
    for (backend, dtype, form, dev), g in ok[ok.device.isin(gpus)].groupby(["backend", "dtype", "formulation", "device"]):
        cpu = ok[(ok.backend == backend) & (ok.dtype == dtype) & (ok.formulation == form) & (ok.device == "cpu")]
        both = g.merge(cpu, on=["dataset", "n", "d"], suffixes=("_gpu", "_cpu"))
        faster = both[both.time_per_iter_s_gpu < both.time_per_iter_s_cpu].sort_values("n")
        where = f"n >= {int(faster.n.iloc[0])} (d={int(faster.d.iloc[0])})" if len(faster) else "never in this run"
        lines.append(f"GPU/CPU crossover, {backend} {dtype} {form}: {dev} faster from {where}")
    return lines


def write_summary(df: pd.DataFrame, path: Path) -> None:
    text = summary_markdown(df) + "\n\n" + "\n".join(f"- {line}" for line in crossovers(df)) + "\n"
    write_text(text, path)


def write_report(df: pd.DataFrame, losses: pd.DataFrame, env: dict, folder: Path) -> list[str]:
    """summary.md and the plots of one run; returns the names of the files written."""
    folder = Path(folder)
    write_summary(df, folder / "summary.md")
    written = ["summary.md"]
    keys = df.set_index("case_id")[["backend", "device", "dtype", "formulation", "dataset"]]
    curves = [{**keys.loc[cid].to_dict(), "step": g.step.to_numpy(), "loss": g.loss.to_numpy()}
              for cid, g in losses.groupby("case_id", sort=False)]
    opt = df.loc[df.dataset == "iris", "optimum_loss"].dropna()
    if plot_loss_curves(curves, folder / "loss_curves.png", optimum_loss=float(opt.iloc[0]) if len(opt) else None):
        written.append("loss_curves.png")
    if plot_time_vs_n(df, folder / "time_vs_n.png", floor_gbps=(env.get("bandwidth_gbps") or {}).get("host_read")):
        written.append("time_vs_n.png")
    return written
