"""The plots (matplotlib, imported only when a plot is drawn). Each takes the tidy rows (and curves)
and writes one PNG atomically; a plot with nothing to show returns False and writes nothing.

A backend's look comes from its name and library, never from a list of names: the colour and marker
from a stable hash of the name (:func:`style`; within one run, :func:`looks` moves a colliding
backend to the next free colour, in name order), the line style from the library (NumPy solid,
PyTorch dashed, any other library dotted). A user's new backend gets a look with no edit here.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_atomic
from ..targets import JUDGED_BY_OPTIMUM, TARGETS
from .format import agrees, as_float, backend_order
from .stats import baseline_backend, speed_vs_numpy_frame, suboptimality_curves

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
           "#756bb1", "#636363")
MARKERS = "osD^vP*hXp<>"
LINESTYLES = {"numpy": "-", "torch": "--"}  # by library; any other library: dotted
OTHER_LINESTYLE = ":"


def _hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(str(name).encode()).digest()[:8], "big")


def style(backend: str, library: str | None = None, colour: int | None = None) -> dict:
    """matplotlib keyword arguments of a backend's look: colour and marker from a stable hash of its
    name (``colour`` overrides the palette slot), line style from its library."""
    h = _hash(backend)
    c = PALETTE[(h if colour is None else colour) % len(PALETTE)]
    lib = None if library is None or pd.isna(library) else str(library)
    return {"color": c, "marker": MARKERS[(h // len(PALETTE)) % len(MARKERS)],
            "linestyle": LINESTYLES.get(lib, OTHER_LINESTYLE)}


def looks(df: pd.DataFrame) -> dict[str, dict]:
    """Every backend of a run -> its look (:func:`style`), colours kept distinct within the run
    while the palette lasts: in name order, a backend whose hashed colour is taken takes the next
    free one."""
    library = {}
    for b, lib in zip(df["backend"], df["library"] if "library" in df else [None] * len(df), strict=True):
        if pd.notna(b):
            library.setdefault(str(b), lib)
    taken: set[int] = set()
    out = {}
    for b in sorted(library):
        slot = _hash(b) % len(PALETTE)
        for k in range(len(PALETTE)):
            if (slot + k) % len(PALETTE) not in taken:
                slot = (slot + k) % len(PALETTE)
                break
        taken.add(slot)
        out[b] = style(b, library[b], colour=slot)
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _corner(fig, df: pd.DataFrame | None, env: dict | None) -> None:
    run_ids = list(dict.fromkeys(df["run_id"].dropna())) if df is not None and "run_id" in df else []
    run_id = run_ids[0] if run_ids else (env or {}).get("run_id", "?")
    machine = ((env or {}).get("cpu") or {}).get("model", "machine unknown")
    gpu = (env or {}).get("gpu")
    gpu = gpu.get("name") if isinstance(gpu, dict) else None  # a string: the GPU could not be read
    # a figure-level x label: constrained layout makes room for it below the axes' own labels (text
    # placed at the bottom edge sat on them)
    fig.supxlabel(f"{machine}{' + ' + gpu if gpu else ''} · run {run_id}", x=0.995, ha="right", fontsize=7,
                  color="0.4")


def _log_axes(ax, x: bool = True, y: bool = True) -> None:
    """Log scale with at most about eight labelled decades and minor ticks at 2 and 5 only, labels in
    plain text ("1e-05"): the defaults (a tick at every integer multiple, mathtext labels) made
    tick layout most of a report's time on axes that span many decades."""
    from matplotlib.ticker import LogFormatter, LogLocator

    for on, axis, scale in ((x, ax.xaxis, ax.set_xscale), (y, ax.yaxis, ax.set_yscale)):
        if on:
            scale("log")
            axis.set_major_locator(LogLocator(base=10, numticks=9))
            axis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0), numticks=9))
            axis.set_major_formatter(LogFormatter())
            axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5)))


def _save(fig, path: Path) -> bool:
    plt = _plt()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return True


def _legend_outside(fig, axes) -> None:
    """One legend for the figure, right of the panels, each label once."""
    seen: dict[str, object] = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    if seen:
        fig.legend(list(seen.values()), list(seen.keys()), loc="outside right center", fontsize=8, frameon=False)


def _grid(k: int, ncols: int = 2, w: float = 5.0, h: float = 3.6, **kw):
    plt = _plt()
    ncols = min(ncols, k)
    nrows = math.ceil(k / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols + 1.8, h * nrows), squeeze=False,
                             layout="constrained", **kw)
    for ax in axes.ravel()[k:]:
        ax.set_visible(False)
    return fig, axes


def plot_time_vs_n(df: pd.DataFrame, path: Path, floor_gbps: float | None = None, env: dict | None = None) -> bool:
    """log-log median time per step vs n, one line per backend@device, at one width d only (the
    one with the most sizes n: a sweep also varies d at fixed n, and Iris (d = 4) is never joined to
    d = 100 points); binary, full batch, plain gradient descent, ``probs`` where present, no L2 (a
    K-class set of the same d, such as iris-3class beside iris, is another model, not another n).
    False when no d has two sizes: a line needs two."""
    look = looks(df)
    ok = df[(df["status"] == "ok") & df["time_per_iter_s"].notna() & (df["loop"] == "full-batch")
            & (df["l2"] == 0) & (df["n_classes"].fillna(2) == 2) & (df["optimizer"].fillna("gd") == "gd")]
    if ok.empty or ok.groupby("d")["n"].nunique().max() < 2:
        return False
    d = ok.groupby("d")["n"].nunique().idxmax()
    ok = ok[ok["d"] == d]
    dtypes = list(dict.fromkeys(ok["dtype"]))
    plt = _plt()
    fig, axes = plt.subplots(1, len(dtypes), figsize=(5.5 * len(dtypes) + 2, 4.2), squeeze=False, sharey=True,
                             layout="constrained")
    for ax, dtype in zip(axes[0], dtypes, strict=True):
        g = ok[ok["dtype"] == dtype]
        form = "probs" if "probs" in set(g["formulation"]) else g["formulation"].iloc[0]
        g = g[g["formulation"] == form]
        for backend in backend_order(g):
            for device, h in g[g["backend"] == backend].groupby("device"):
                h = h.groupby("n", as_index=False)["time_per_iter_s"].median().sort_values("n")
                st = dict(look[backend])
                if device != "cpu":
                    st["markerfacecolor"] = "none"
                ax.plot(h["n"].astype(float), h["time_per_iter_s"].astype(float), lw=1.3, ms=5,
                        label=f"{backend} ({device})", **st)
        if floor_gbps:
            bpsn = g.groupby("n")["bytes_per_step"].first().sort_index().astype(float)
            ax.plot(bpsn.index.astype(float), bpsn.values / (floor_gbps * 1e9), color="k", ls="--", lw=1,
                    label=f"floor: X read once at {floor_gbps:.0f} GB/s")
        _log_axes(ax)
        ax.set_xlabel("n (samples)")
        ax.set_title(f"{dtype}, {form}, d = {int(d)}, full batch")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("median time per step (s)")
    _legend_outside(fig, axes)
    _corner(fig, df, env)
    return _save(fig, path)


def _panel_keys(g: pd.DataFrame) -> list[tuple]:
    keys = g[["loop", "batch_size", "dtype", "formulation", "l2"]].drop_duplicates()
    keys = keys.assign(_b=keys["batch_size"].fillna(0)).sort_values(["loop", "_b", "dtype", "formulation", "l2"])
    return [tuple(k) for k in keys[["loop", "batch_size", "dtype", "formulation", "l2"]].itertuples(index=False)]


def _panel_title(key) -> str:
    loop, bs, dtype, form, l2 = key
    lp = "full batch" if loop == "full-batch" else (f"mini-batch {int(bs)}" if pd.notna(bs) else str(loop))
    return f"{lp}, {dtype}, {form}" + (f", l2={float(l2):g}" if l2 and not pd.isna(l2) else "")


def _panel_rows(g: pd.DataFrame, key) -> pd.DataFrame:
    loop, bs, dtype, form, l2 = key
    m = (g["loop"] == loop) & (g["dtype"] == dtype) & (g["formulation"] == form) & (g["l2"] == l2)
    m &= g["batch_size"].isna() if pd.isna(bs) else (g["batch_size"] == bs)
    return g[m.fillna(False)]


def plot_suboptimality(rows: pd.DataFrame, losses: pd.DataFrame, path: Path, dataset: str,
                       env: dict | None = None, targets=TARGETS) -> bool:
    """benchopt-style: ``L(θ_t) − L*`` (log) against wall time ``step × time per step`` (log), one
    line per backend@device, one panel per loop/dtype/formulation/l2 of one dataset. Points at or
    below the optimum (possible for mini-batch losses and rounding) are not drawn."""
    look = looks(rows)
    g = rows[(rows["dataset"] == dataset) & rows["optimum_loss"].notna() & rows["time_per_iter_s"].notna()]
    cur = suboptimality_curves(g, losses) if len(g) else pd.DataFrame()
    if cur.empty:
        return False
    keys = _panel_keys(g[g["case_id"].isin(set(cur["case_id"]))])
    fig, axes = _grid(len(keys))
    for ax, key in zip(axes.ravel(), keys, strict=False):  # the grid's spare axes stay hidden
        sub = _panel_rows(g, key)
        for backend in backend_order(sub):
            for _, r in sub[sub["backend"] == backend].iterrows():
                c = cur[cur["case_id"] == r["case_id"]]
                c = c[(c["subopt"] > 0) & (c["time_s"] > 0)]
                if c.empty:
                    continue
                st = dict(look[backend])
                if r["optimizer"] in OPTIMIZER_MARKERS:  # one backend's loops told apart by marker
                    st["marker"] = OPTIMIZER_MARKERS[r["optimizer"]]
                every = max(1, len(c) // 8)
                opt = "" if pd.isna(r["optimizer"]) or r["optimizer"] == "gd" else f", {r['optimizer']}"
                judged = str(r["verdict"]).startswith("n/a") or (r["optimizer"] in JUDGED_BY_OPTIMUM)
                label = f"{backend} ({r['device']}{opt})" + ("" if agrees(r) or judged else " ✗ disagrees")
                ax.plot(c["time_s"], c["subopt"], lw=1.2, ms=4, markevery=every, label=label,
                        alpha=0.85 if r["loop"] == "full-batch" else 0.6, **st)
        opt = as_float(sub["optimum_loss"].iloc[0]) if len(sub) else math.nan
        if not math.isnan(opt) and opt > 0:
            for t in targets:
                ax.axhline(t * abs(opt), color="0.6", lw=0.6, ls=":")
                ax.text(0.01, t * abs(opt), f"{t:.0e}", transform=ax.get_yaxis_transform(), fontsize=6,
                        color="0.4", va="bottom", ha="left")
        _log_axes(ax)
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel("L(θ_t) − L* (loss above optimum)")
        note = "\n(full-data objective along the oracle's path)" if key[0] == "mini-batch" else ""
        ax.set_title(f"{_panel_title(key)}{note}", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(f"Time to accuracy on {dataset}\nwall time: step × time per step (L-BFGS, scikit-learn: as measured); "
                 "dotted: relative targets (L−L*)/L*", fontsize=9)
    _legend_outside(fig, axes)
    _corner(fig, rows, env)
    return _save(fig, path)


ORACLE_ZERO = 1e-18
OPTIMIZER_MARKERS = {"momentum": "^", "nesterov": "v", "adam": "x", "lbfgs": "D", "solver": "s"}  # gd: the backend's


def plot_loss_vs_oracle(rows: pd.DataFrame, losses: pd.DataFrame, path: Path, env: dict | None = None) -> bool:
    """|loss − ref_loss| per recorded step (log), one panel per dataset × dtype, one line per
    backend@device: float32 sits near 1e-7, float64 near 1e-16. Exact zeros are drawn at 1e-18.
    Full batch, first formulation/l2 of each dataset. False when no ``ref_loss`` was recorded."""
    losses = losses[losses["ref_loss"].notna()]
    if losses.empty:
        return False
    look = looks(rows)
    g = rows[rows["case_id"].isin(set(losses["case_id"]))]
    panels = []
    for ds in dict.fromkeys(g["dataset"]):
        h = g[g["dataset"] == ds]
        loop = "full-batch" if (h["loop"] == "full-batch").any() else h["loop"].iloc[0]
        h = h[h["loop"] == loop]
        form = "logits" if "logits" in set(h["formulation"]) else h["formulation"].iloc[0]
        h = h[(h["formulation"] == form) & (h["l2"] == h["l2"].min())]
        for dtype in sorted(set(h["dtype"])):
            panels.append((ds, loop, form, dtype, h[h["dtype"] == dtype]))
    fig, axes = _grid(len(panels), ncols=min(4, max(2, len(set(g["dtype"])))), w=4.0, h=3.0, sharey=True)
    # the grid's spare axes stay hidden
    for ax, (ds, loop, form, dtype, h) in zip(axes.ravel(), panels, strict=False):
        for backend in backend_order(h):
            for _, r in h[h["backend"] == backend].iterrows():
                c = losses[losses["case_id"] == r["case_id"]]
                diff = (c["loss"] - c["ref_loss"]).abs().clip(lower=ORACLE_ZERO)
                ax.plot(c["step"], diff, lw=0.8, ms=3, alpha=0.8, markevery=max(1, len(c) // 6),
                        label=f"{backend} ({r['device']})", **look[backend])
        _log_axes(ax, x=False)
        ax.set_ylim(ORACLE_ZERO / 3, None)
        ax.set_xlabel("step")
        ax.set_ylabel("|loss − oracle loss|")
        ax.set_title(f"{ds}, {dtype}, {form}, {'full batch' if loop == 'full-batch' else loop}", fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(f"Difference from the float64 oracle's loss (0 drawn at {ORACLE_ZERO:g})", fontsize=10)
    _legend_outside(fig, axes)
    _corner(fig, rows, env)
    return _save(fig, path)


def plot_speed_vs_numpy(rows: pd.DataFrame, path: Path, env: dict | None = None) -> bool:
    """Bars: time per step / numpy's (log scale; below 1 = faster than numpy), grouped by dataset
    (and loop), one bar per backend@device, whiskers = crosswise quartile range; hatched bars do
    not agree with the oracle. One panel per dtype × formulation (and l2 where it varies)."""
    s = speed_vs_numpy_frame(rows)
    if s.empty:
        return False
    look = looks(rows)
    base = baseline_backend(rows)
    s["panel"] = s["dtype"].astype(str) + ", " + s["formulation"].astype(str) + \
        np.where(s["l2"].astype(float) > 0, ", l2=" + s["l2"].astype(float).map("{:g}".format), "")
    s["group"] = s["dataset"].astype(str) + np.where(
        s["loop"] == "mini-batch", "\nmini-batch " + s["batch_size"].astype("string").fillna(""), "") + \
        np.where(s["optimizer"].astype(str) != "gd", "\n" + s["optimizer"].astype(str), "")  # part of the identity
    panels = list(dict.fromkeys(s["panel"]))
    fig, axes = _grid(len(panels), ncols=2, w=6.0, h=3.8)
    for ax, panel in zip(axes.ravel(), panels, strict=False):  # the grid's spare axes stay hidden
        p = s[s["panel"] == panel]
        groups = list(dict.fromkeys(p["group"]))
        bars = [(b, dev) for b in backend_order(p) for dev in sorted(set(p[p["backend"] == b]["device"]))]
        width = 0.8 / max(1, len(bars))
        for j, (b, dev) in enumerate(bars):
            q = p[(p["backend"] == b) & (p["device"] == dev)].set_index("group").reindex(groups)
            x = np.arange(len(groups)) + (j - (len(bars) - 1) / 2) * width
            ratio = q["ratio"].astype(float).to_numpy()
            err = np.vstack([ratio - q["lo"].astype(float).to_numpy(), q["hi"].astype(float).to_numpy() - ratio])
            err = np.clip(np.nan_to_num(err, nan=0.0, posinf=0.0), 0, None)
            colour = look[b]["color"]
            hatch = ["//" if a is False else "" for a in q["agrees"].tolist()]
            cont = ax.bar(x, ratio, width, color=colour, edgecolor="k", lw=0.4,
                          label=f"{b} ({dev})", yerr=err, capsize=2, error_kw={"lw": 0.8})
            for patch, h in zip(cont.patches, hatch, strict=True):
                patch.set_hatch(h)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        from matplotlib.ticker import FuncFormatter, LogLocator

        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xticks(np.arange(len(groups)))
        # about 70 characters of 8-point text fit side by side under a 6-inch panel: longer names break at their
        # hyphens rather than run into the next group's
        ax.set_xticklabels([_wrap(g, max(8, 70 // max(1, len(groups)))) for g in groups], fontsize=8)
        ax.set_ylabel(f"time per step / {base}'s (×)")
        ax.set_xlabel("dataset")
        ax.set_title(f"{panel}: below 1 = faster than {base}", fontsize=9)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.suptitle(f"Time per step relative to {base} (cpu), same setting; whiskers: quartile range; "
                 "hatched: does not agree with the oracle", fontsize=9)
    from matplotlib.patches import Patch

    labels = list(dict.fromkeys(f"{b} ({dev})" for b in backend_order(s)
                                for dev in sorted(set(s[s["backend"] == b]["device"]))))
    handles = [Patch(facecolor=look[lab.split(" (")[0]]["color"], edgecolor="k", lw=0.4) for lab in labels]
    if (~s["agrees"]).any():
        handles.append(Patch(facecolor="white", edgecolor="k", hatch="//", lw=0.4))
        labels.append("does not agree with the oracle")
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    _corner(fig, rows, env)
    return _save(fig, path)


def _wrap(label: str, width: int) -> str:
    """Each line of ``label`` longer than ``width`` characters broken after its hyphens (a part
    longer than ``width`` stays whole)."""
    out = []
    for line in str(label).split("\n"):
        parts, cur = re.findall(r"[^-]+-?|-", line), ""
        for part in parts:
            if cur and len(cur) + len(part) > width:
                out.append(cur)
                cur = ""
            cur += part
        out.append(cur)
    return "\n".join(out)


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name))
