"""Where the GPU overtakes the CPU: ``crossover.csv``, the plot and the verdict lines.

Input: the rows of a crossover sweep (``runs.csv``, any mix of ``cpu`` and ``cuda`` rows, full
batch) and the measured floors (``bench.roofline.measure_roofline``'s dict: ``host_read``, and on
a CUDA machine ``device_read``). For each backend, dtype and ``d``, the time per step of its
``cuda`` row is set against

* its own ``cpu`` row (the same library's code on the host), and
* the best ``cpu`` row at each ``n`` (the fastest host row measured there, whichever backend),

over the ``n`` measured on both. The crossover ``n*`` is where the GPU row becomes faster and stays
faster: between the two measured points that bracket the last sign change of
``log(t_gpu / t_cpu)``, interpolated linearly in ``log n`` (each time-per-step curve taken as a
straight line in log-log between measured points; their ratio is then straight too, so ``n*`` is
where that line crosses zero). Where the GPU row is faster at every measured ``n``, the crossover
lies below the range (``n* < n_min``); where it is never faster, it is "not within the measured
range". Nothing is extrapolated.

Public API::

    table = crossover_table(rows)             # DataFrame: CROSSOVER_COLUMNS
    lines = verdicts(table)                   # ["on this machine `torch` on the GPU overtakes ..."]
    plot_crossover(rows, figures, path)       # time per step vs n, CPU and GPU per backend, both floors
    write(rows, figures, folder)              # crossover.csv + crossover.png; returns (table, lines)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import write_csv

CROSSOVER_COLUMNS = ["backend", "dtype", "d", "against", "against_backend", "status", "n_cross", "n_below",
                     "n_above", "n_min", "n_max", "points", "gpu_s_per_step_at_n_max", "cpu_s_per_step_at_n_max",
                     "speedup_at_n_max"]
# status: crosses (n_cross interpolated between n_below and n_above), gpu-faster-throughout (n_cross
# below n_min, left empty), not-within-range (the GPU row is never faster), too-few-points (< 2 common n)


def _points(rows: pd.DataFrame) -> pd.DataFrame:
    """The timed full-batch ``ok`` rows: backend, device kind, dtype, n, d, time per step."""
    df = rows.copy()
    if "loop" in df:
        df = df[df["loop"].astype("string").fillna("full-batch") == "full-batch"]
    df = df[(df["status"].astype("string") == "ok") & df["time_per_iter_s"].notna()]
    out = pd.DataFrame({
        "backend": df["backend"].astype(str),
        "kind": df["device"].astype(str).str.split(":").str[0],
        "dtype": df["dtype"].astype(str),
        "n": pd.to_numeric(df["n"]).astype(float),
        "d": pd.to_numeric(df["d"]).astype(float),
        "t": pd.to_numeric(df["time_per_iter_s"]).astype(float),
    })
    out = out[np.isfinite(out["t"]) & (out["t"] > 0)]
    # a repeated case: its best (lowest) time, as a row is its median over rounds already
    return out.groupby(["backend", "kind", "dtype", "d", "n"], as_index=False)["t"].min()


def crossing(n, t_gpu, t_cpu) -> dict:
    """The crossover of two time-per-step series measured at the same ``n`` (ascending).

    Returns ``status`` and, for ``crosses``, ``n_cross`` (log-log interpolation) with the measured
    ``n_below`` / ``n_above`` that bracket it. The last change from "GPU slower" to "GPU faster" is
    taken: the GPU row is faster from there to the end of the range. A tie (equal times) counts
    as faster."""
    n, t_gpu, t_cpu = (np.asarray(a, dtype=float) for a in (n, t_gpu, t_cpu))
    order = np.argsort(n)
    n, t_gpu, t_cpu = n[order], t_gpu[order], t_cpu[order]
    if len(n) < 2:
        return {"status": "too-few-points", "n_cross": math.nan, "n_below": math.nan, "n_above": math.nan}
    r = np.log(t_gpu / t_cpu)  # > 0: the GPU row is slower
    faster = r <= 0
    if faster.all():
        return {"status": "gpu-faster-throughout", "n_cross": math.nan, "n_below": math.nan, "n_above": n[0]}
    if not faster[-1]:
        return {"status": "not-within-range", "n_cross": math.nan, "n_below": math.nan, "n_above": math.nan}
    i = int(np.flatnonzero(~faster)[-1])  # the last point where the GPU row is slower; i + 1 is faster
    x0, x1 = math.log(n[i]), math.log(n[i + 1])
    frac = r[i] / (r[i] - r[i + 1])  # r[i] > 0 >= r[i + 1]
    return {"status": "crosses", "n_cross": math.exp(x0 + frac * (x1 - x0)), "n_below": n[i], "n_above": n[i + 1]}


def crossover_table(rows: pd.DataFrame, d: int | None = None) -> pd.DataFrame:
    """One line per (GPU backend, dtype, d) and comparison (``own-cpu``, ``best-cpu``): see the
    module docstring. ``d``: only that feature count (default: every ``d`` with >= 2 ``n`` measured)."""
    pts = _points(rows)
    if d is not None:
        pts = pts[pts["d"] == d]
    cpu, gpu = pts[pts["kind"] == "cpu"], pts[pts["kind"] == "cuda"]
    best = cpu.loc[cpu.groupby(["dtype", "d", "n"])["t"].idxmin()] if len(cpu) else cpu
    out = []
    for (backend, dtype, dd), g in gpu.groupby(["backend", "dtype", "d"], sort=True):
        g = g.set_index("n")["t"]
        own = cpu[(cpu["backend"] == backend) & (cpu["dtype"] == dtype) & (cpu["d"] == dd)].set_index("n")["t"]
        b = best[(best["dtype"] == dtype) & (best["d"] == dd)].set_index("n")
        for against, series, who in (("own-cpu", own, backend), ("best-cpu", b["t"] if len(b) else own.iloc[:0],
                                                                  None)):
            common = sorted(set(g.index) & set(series.index))
            res = crossing(common, [g[x] for x in common], [series[x] for x in common])
            if who is None and common:
                names = b.loc[common, "backend"]
                who = "/".join(dict.fromkeys(names.tolist())) if len(set(names)) > 1 else names.iloc[0]
            top = common[-1] if common else None
            out.append({
                "backend": backend, "dtype": dtype, "d": int(dd), "against": against, "against_backend": who,
                **res, "n_min": common[0] if common else math.nan, "n_max": top if top else math.nan,
                "points": len(common),
                "gpu_s_per_step_at_n_max": g[top] if top else math.nan,
                "cpu_s_per_step_at_n_max": series[top] if top else math.nan,
                "speedup_at_n_max": series[top] / g[top] if top else math.nan,
            })
    table = pd.DataFrame(out, columns=CROSSOVER_COLUMNS)
    for c in ("n_cross", "n_below", "n_above", "n_min", "n_max"):
        table[c] = pd.to_numeric(table[c], errors="coerce")
    return table


def _n(x: float) -> str:
    """A size as people write it: 3.2e4 -> '3.2e4', 100 -> '100'."""
    if not math.isfinite(x):
        return "?"
    if x < 1e3:
        return f"{x:.0f}"
    mant, exp = f"{x:.1e}".split("e")
    return f"{mant}e{int(exp)}"


def _against(row) -> str:
    if row["status"] == "crosses":
        return (f"at n ≈ {_n(row['n_cross'])} (between the measured {_n(row['n_below'])} and "
                f"{_n(row['n_above'])})")
    if row["status"] == "gpu-faster-throughout":
        return f"already at the smallest measured n ({_n(row['n_min'])})"
    if row["status"] == "not-within-range":
        return f"not within the measured range (n {_n(row['n_min'])} to {_n(row['n_max'])})"
    return "not measured at two common sizes"


def verdicts(table: pd.DataFrame, dtypes=None, d: int = 100) -> list[str]:
    """One sentence per (backend, dtype) at feature count ``d``, e.g. "on this machine `torch` on
    the GPU (float32, d = 100) overtakes its CPU row at n ≈ 3.2e4 …, and the best CPU row
    (`numpy-fused`) at n ≈ 1.1e5 …; below that kernel-launch and synchronisation overhead
    dominate"."""
    lines = []
    t = table[table["d"] == d]
    for (backend, dtype), g in t.groupby(["backend", "dtype"], sort=True):
        if dtypes and dtype not in dtypes:
            continue
        own = g[g["against"] == "own-cpu"].iloc[0] if (g["against"] == "own-cpu").any() else None
        best = g[g["against"] == "best-cpu"].iloc[0] if (g["against"] == "best-cpu").any() else None
        parts = []
        if own is not None:
            parts.append(f"overtakes its CPU row {_against(own)}")
        if best is not None:
            parts.append(f"the best CPU row (`{best['against_backend']}`) {_against(best)}")
        text = f"on this machine `{backend}` on the GPU ({dtype}, d = {d}) " + ", and ".join(parts)
        crossed = [r for r in (own, best) if r is not None and r["status"] == "crosses"]
        if crossed:
            text += ("; below that, per-step kernel-launch and synchronisation overhead dominate (the "
                     "host-to-device transfer, counted apart in transfer_s, comes on top)")
        elif own is not None and own["status"] == "not-within-range":
            text += "; over the whole range launch and synchronisation overhead outweigh the device's bandwidth"
        if best is not None and math.isfinite(best["speedup_at_n_max"]):
            text += f"; at n = {_n(best['n_max'])} it takes {1 / best['speedup_at_n_max']:.2g}× the best CPU row's time"
        lines.append(text + ".")
    return lines


def floor_seconds(n, d: int, dtype: str, bandwidth_gbps: float | None):
    """The memory floor of one full-batch step: ``bench.cases.bytes_per_step / bandwidth``."""
    if not bandwidth_gbps:
        return None
    item = np.dtype(dtype).itemsize
    n = np.asarray(n, dtype=float)
    return item * (n * d + n + 2 * (d + 1)) / (bandwidth_gbps * 1e9)


def plot_crossover(rows: pd.DataFrame, figures: dict | None, path, d: int = 100, title_note: str = "") -> Path | None:
    """Time per step against ``n`` at feature count ``d``, one panel per dtype: each backend's CPU
    row dashed and GPU row solid in the same colour, the host floor (``host_read``) and the device
    floor (``device_read``) as grey lines. None if there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = _points(rows)
    pts = pts[pts["d"] == d]
    if pts.empty:
        return None
    figures = figures or {}
    dtypes = sorted(pts["dtype"].unique())
    backends = list(dict.fromkeys(pts.sort_values("backend")["backend"]))
    colours = {b: plt.get_cmap("tab10")(i % 10) for i, b in enumerate(backends)}
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6.5 * len(dtypes), 4.8), squeeze=False)
    for ax, dtype in zip(axes[0], dtypes, strict=True):  # one column of axes per dtype
        p = pts[pts["dtype"] == dtype]
        for (backend, kind), g in p.groupby(["backend", "kind"], sort=True):
            g = g.sort_values("n")
            ax.plot(g["n"], g["t"], marker="o" if kind == "cuda" else "s", ms=4, lw=1.6,
                    ls="-" if kind == "cuda" else "--", color=colours[backend], label=f"{backend} @ {kind}")
        ns = np.geomspace(p["n"].min(), p["n"].max(), 50)
        for key, label, ls in (("host_read", "host floor", ":"), ("device_read", "device floor", "-.")):
            fl = floor_seconds(ns, d, dtype, figures.get(key))
            if fl is not None:
                ax.plot(ns, fl, color="0.4", ls=ls, lw=1.2, label=f"{label} ({figures[key]:g} GB/s)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("n (rows), d = %d" % d)
        ax.set_ylabel("time per step (s)")
        ax.set_title(f"{dtype}: GPU (solid) vs CPU (dashed)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    if title_note:
        fig.suptitle(title_note, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(rows: pd.DataFrame, figures: dict | None, folder, title_note: str = "") -> tuple[pd.DataFrame, list[str]]:
    """``crossover.csv`` (every ``d`` measured) and ``crossover.png`` (at ``d = 100``) into ``folder``;
    returns the table and the verdict lines at ``d = 100``."""
    folder = Path(folder)
    table = crossover_table(rows)
    write_csv(table, folder / "crossover.csv")
    plot_crossover(rows, figures, folder / "crossover.png", title_note=title_note)
    return table, verdicts(table)


__all__ = ["CROSSOVER_COLUMNS", "crossing", "crossover_table", "floor_seconds", "plot_crossover", "verdicts", "write"]
