"""Views of the tidy tables (``runs.csv`` rows, ``losses.csv`` curves): verdict-first summary,
time to accuracy, and the plots.

Everything here takes pandas DataFrames and the ``env.json`` dict, never the harness's objects, so
the harness can change underneath. Older files lacking the newer columns (``case_id``, ``loop``,
``batch_size``, ``l2``, ``times_s``, ``ref_loss``, ...) are filled in by :func:`normalize_rows` and
:func:`normalize_losses`.

Definitions used throughout (the summary states them too):

- *agrees with the oracle*: the row's ``verdict`` is ``pass`` — its parameters and loss are within
  the dtype's tolerance of the float64 reference on the same data and init. It answers "is it
  right?", not "is it the answer?".
- *correct*: status ``ok`` and agrees with the oracle. Only correct rows can be "fastest".
- *ratio with uncertainty*: ``a/b`` of the median times per step; its range divides the quartiles
  crosswise, ``[Q1(a)/Q3(b), Q3(a)/Q1(b)]`` (quartiles of the timed rounds, from ``times_s``; from
  ``median ± IQR/2`` where the rounds are not stored). A conservative spread, not a confidence
  interval: when it contains 1 the two are not told apart.
- *relative suboptimality*: ``(L(θ_t) − L*) / |L*|`` with ``L*`` = the row's ``optimum_loss``
  (scikit-learn's minimiser of the same objective, L2 penalty included when ``l2 > 0``). A target
  is reached at the first *recorded* step where it is ``<= target``; its time is
  ``step × time_per_iter_s`` (the loss of step ``t`` is computed in step ``t``'s forward pass,
  i.e. after ``t`` updates).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .records import write_atomic, write_text

TARGETS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4)
NOISY_IQR_FRACTION = 0.10

# Library families: "NumPy or PyTorch?" compares the best of each.
FAMILY: dict[str, str] = {
    "numpy": "NumPy", "numpy-fused": "NumPy", "numpy-dask": "NumPy",
    "torch": "PyTorch", "torch-manual": "PyTorch", "torch-compiled": "PyTorch", "torch-nn": "PyTorch",
    "torch-ddp": "PyTorch", "torch-fused": "PyTorch",
    "numba": "other", "jax": "other",
}

# backend -> (colour, marker, linestyle): one fixed look per backend in every plot.
# NumPy family in blues/greens with solid lines, PyTorch family in reds/oranges with dashes,
# the references in greys/purples with dots.
STYLE: dict[str, tuple[str, str, str]] = {
    "numpy": ("#1f77b4", "o", "-"),
    "numpy-fused": ("#17becf", "s", "-"),
    "numpy-dask": ("#2ca02c", "^", "-"),
    "torch": ("#d62728", "o", "--"),
    "torch-manual": ("#ff7f0e", "s", "--"),
    "torch-compiled": ("#8c564b", "D", "--"),
    "torch-nn": ("#e377c2", "v", "-."),
    "torch-ddp": ("#bcbd22", "P", "-."),
    "torch-fused": ("#ff9896", "X", "--"),
    "numba": ("#7f7f7f", "*", ":"),
    "jax": ("#9467bd", "h", ":"),
}
_EXTRA_COLOURS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")

# columns the newer harness writes, with their pandas dtypes (older files: filled in here)
NEW_COLUMNS: dict[str, str] = {
    "case_id": "string", "loop": "string", "batch_size": "Int64", "l2": "Float64", "epochs": "Float64",
    "workers": "Int64", "times_s": "string", "threads_torch": "Int64", "threads_blas": "Int64",
    "threads_numba": "Int64", "oversubscribed": "boolean", "compute_fraction": "Float64",
}
_NUMERIC = ("n", "d", "n_iters", "lr", "threads", "rounds", "time_median_s", "time_iqr_s", "time_per_iter_s",
            "iqr_per_iter_s", "bytes_per_step", "achieved_gbps", "roofline_fraction", "final_loss",
            "rel_dparam", "rel_dloss", "tolerance", "optimum_loss", "suboptimality", "first_nonfinite_step")
_STRINGS = ("run_id", "backend", "device", "dtype", "formulation", "dataset", "verdict", "status", "reason")
LOSS_COLUMNS = ["case_id", "step", "loss", "ref_loss", "full_loss"]


# ----------------------------------------------------------------------------------------------
# files (written atomically: a reader never sees half a file)

# ----------------------------------------------------------------------------------------------
# normalising the frames

def _case_id(r) -> str:
    bs = r["batch_size"]
    loop = "full" if pd.isna(bs) else f"bs={int(bs)}"
    l2 = 0.0 if pd.isna(r["l2"]) else float(r["l2"])
    return f"{r['dataset']}|{r['dtype']}|{r['formulation']}|{loop}|l2={l2:g}|{r['backend']}@{r['device']}"


def normalize_rows(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of the row table with every column this module reads, in usable dtypes.

    Missing newer columns are added: ``batch_size`` empty (full batch), ``loop`` from it,
    ``l2`` 0, ``case_id`` built as ``dataset|dtype|formulation|full|l2=0|backend@device``."""
    df = df.copy().reset_index(drop=True)
    for col in _STRINGS:
        if col not in df:
            df[col] = pd.NA
        df[col] = df[col].astype("string")
    for col in _NUMERIC:
        if col not in df:
            df[col] = np.nan
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Float64")
    if "noisy" not in df:
        df["noisy"] = pd.NA
    for col, dtype in NEW_COLUMNS.items():
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
    df["l2"] = df["l2"].fillna(0.0)
    loop = np.where(df["batch_size"].isna(), "full-batch", "mini-batch")
    df["loop"] = df["loop"].fillna(pd.Series(loop, index=df.index, dtype="string"))
    missing = df["case_id"].isna()
    if missing.any():
        df.loc[missing, "case_id"] = df[missing].apply(_case_id, axis=1).astype("string")
    return df


def normalize_losses(losses: pd.DataFrame | None, rows: pd.DataFrame) -> pd.DataFrame:
    """Tidy curves ``case_id, step, loss, ref_loss``. An older ``losses.csv`` (keyed by backend,
    device, dtype, formulation, dataset; no ``ref_loss``) is joined to the rows' ``case_id``."""
    if losses is None or len(losses) == 0:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in LOSS_COLUMNS}).astype({"case_id": "string"})
    losses = losses.copy()
    if "case_id" not in losses:
        keys = ["backend", "device", "dtype", "formulation", "dataset"]
        full = rows[rows["loop"] == "full-batch"].drop_duplicates(keys)[keys + ["case_id"]]
        losses = losses.astype({k: "string" for k in keys}).merge(full, on=keys, how="inner")
    for c in ("ref_loss", "full_loss"):
        if c not in losses:
            losses[c] = np.nan
    out = losses[LOSS_COLUMNS].copy()
    out["case_id"] = out["case_id"].astype("string")
    for c in ("step", "loss", "ref_loss", "full_loss"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    return out.sort_values(["case_id", "step"], kind="stable").reset_index(drop=True)


def round_times_per_step(row) -> np.ndarray | None:
    """The timed rounds of one row (``times_s``, seconds per ``run()``) divided by its steps."""
    raw = row.get("times_s") if hasattr(row, "get") else None
    if raw is None or pd.isna(raw) or not str(raw).strip():
        return None
    t = np.array([float(x) for x in str(raw).split()], dtype=float)
    n_iters = row.get("n_iters")
    return t / float(n_iters) if n_iters is not None and pd.notna(n_iters) and n_iters > 0 else t


def quartiles(row) -> tuple[float, float, float]:
    """(Q1, median, Q3) of the time per step: the median is the row's ``time_per_iter_s``; the
    quartiles come from the stored rounds, else from ``median ± IQR/2``."""
    med = _f(row.get("time_per_iter_s"))
    t = round_times_per_step(row)
    if t is not None and len(t) >= 2:
        q1, q3 = np.percentile(t, [25, 75])
        return float(q1), med, float(q3)
    iqr = _f(row.get("iqr_per_iter_s"))
    iqr = 0.0 if math.isnan(iqr) else iqr
    return med - iqr / 2, med, med + iqr / 2


def ratio_with_range(a, b) -> tuple[float, float, float]:
    """``median(a)/median(b)`` and the crosswise quartile range ``[Q1a/Q3b, Q3a/Q1b]``."""
    a1, am, a3 = quartiles(a)
    b1, bm, b3 = quartiles(b)
    lo = a1 / b3 if b3 > 0 else math.nan
    hi = a3 / b1 if b1 > 0 else math.inf
    return am / bm, lo, hi


# ----------------------------------------------------------------------------------------------
# small formatting helpers

def _f(x) -> float:
    try:
        return math.nan if x is None or pd.isna(x) else float(x)
    except (TypeError, ValueError):
        return math.nan


def _fmt_time(s) -> str:
    s = _f(s)
    if math.isnan(s):
        return "—"
    for unit, k in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if s >= k:
            return f"{s / k:.3g} {unit}"
    return f"{s:.3g} s"


def _num(x, fmt) -> str:
    x = _f(x)
    return "—" if math.isnan(x) or math.isinf(x) else fmt.format(x)


def _md(text) -> str:
    return "—" if text is None or pd.isna(text) else str(text).replace("|", "\\|").replace("\n", " ")


def _agrees(r) -> bool:
    return str(r["verdict"]) == "pass" if pd.notna(r["verdict"]) else False


def correct_mask(df: pd.DataFrame) -> pd.Series:
    """Rows that ran (``ok``), agree with the oracle and have a time: the only candidates for fastest."""
    return ((df["status"] == "ok") & (df["verdict"] == "pass") & df["time_per_iter_s"].notna()).fillna(False)


def failing_mask(df: pd.DataFrame) -> pd.Series:
    """Rows that ran but do not agree with the oracle, or diverged, or failed."""
    return ((df["verdict"] == "fail") | df["status"].isin(["diverged", "failed"])).fillna(False)


def _backend_order(backends) -> list[str]:
    known = [b for b in STYLE if b in set(backends)]
    return known + sorted(set(backends) - set(STYLE))


def _who(r, with_device: bool = False) -> str:
    dev = f"@{r['device']}" if with_device else ""
    return f"{r['backend']}{dev}"


def _config(r, group_rows: pd.DataFrame | None = None) -> str:
    """dtype, formulation (and l2, batch size where they vary) of one row."""
    parts = [str(r["dtype"]), str(r["formulation"])]
    if _f(r["l2"]) not in (0.0,) and not math.isnan(_f(r["l2"])):
        parts.append(f"l2={_f(r['l2']):g}")
    if pd.notna(r["batch_size"]):
        parts.append(f"batch {int(r['batch_size'])}")
    return ", ".join(parts)


def _failing_metric(r) -> str:
    parts = []
    tol = _f(r["tolerance"])
    for name, col in (("rel Δparam", "rel_dparam"), ("rel Δloss", "rel_dloss")):
        v = _f(r[col])
        if not math.isnan(v) and not math.isnan(tol) and v > tol:
            parts.append(f"{name} {v:.2e} > tolerance {tol:.1e}")
    if str(r["status"]) == "diverged":
        step = _f(r["first_nonfinite_step"])
        parts.append("non-finite loss" + ("" if math.isnan(step) else f" from step {int(step)}"))
    elif str(r["status"]) == "failed":
        parts.append("raised an exception")
    return "; ".join(parts) or "verdict fail"


def _cause(reason) -> str:
    """The explanatory part of a reason: what follows the first '; ' (the numbers are elsewhere)."""
    if reason is None or pd.isna(reason):
        return "no reason recorded"
    text = str(reason)
    head, sep, tail = text.partition("; ")
    return tail if sep and head.startswith("differs from") else text


def _dataset_title(g: pd.DataFrame) -> str:
    r = g.iloc[0]
    n, d = _f(r["n"]), _f(r["d"])
    shape = f" (n={int(n)}, d={int(d)})" if not (math.isnan(n) or math.isnan(d)) else ""
    return f"{r['dataset']}{shape}"


def _loop_title(g: pd.DataFrame) -> str:
    if (g["loop"] == "mini-batch").any():
        sizes = sorted({int(b) for b in g["batch_size"].dropna()})
        return "mini-batch SGD" + (f" (batch {', '.join(map(str, sizes))})" if sizes else "")
    return "full batch"


def _groups(df: pd.DataFrame):
    """(dataset, loop) groups in the order they appear, full batch before mini-batch."""
    order = list(dict.fromkeys(df["dataset"]))
    for ds in order:
        for loop in ("full-batch", "mini-batch"):
            g = df[(df["dataset"] == ds) & (df["loop"] == loop)]
            if len(g):
                yield ds, loop, g
        other = df[(df["dataset"] == ds) & ~df["loop"].isin(["full-batch", "mini-batch"])]
        if len(other):
            yield ds, "other", other


# ----------------------------------------------------------------------------------------------
# time to accuracy

def suboptimality_curves(rows: pd.DataFrame, losses: pd.DataFrame) -> pd.DataFrame:
    """Per recorded point: ``case_id, step, loss, ref_loss, time_s, subopt, rel_subopt`` plus the
    row's identity columns. ``subopt = objective − optimum_loss`` with the objective the row's own
    loss on full batch and ``full_loss`` (the full-data objective along the oracle's path) on
    mini-batch, whose recorded loss is the batch's; ``time_s = step × time_per_iter_s``."""
    cols = ["case_id", "backend", "device", "dtype", "formulation", "dataset", "loop", "batch_size", "l2",
            "time_per_iter_s", "optimum_loss", "verdict", "status"]
    cur = losses.merge(rows[cols], on="case_id", how="inner")
    cur["time_s"] = cur["step"] * cur["time_per_iter_s"].astype("float64")
    opt = cur["optimum_loss"].astype("float64")
    cur["subopt"] = cur["full_loss"].fillna(cur["loss"]) - opt
    cur["rel_subopt"] = cur["subopt"] / opt.abs()
    return cur


def time_to_target(rows: pd.DataFrame, losses: pd.DataFrame | None, targets=TARGETS) -> pd.DataFrame:
    """Tidy: one row per (case, target): the first recorded ``step`` whose relative suboptimality
    ``(L − L*)/|L*|`` is ``<= target`` and ``time_s = step × time_per_iter_s``; NaN exactly when the
    run never got there. Cases without a loss curve or without ``optimum_loss`` are left out
    (unknown, not "never")."""
    rows = normalize_rows(rows) if "loop" not in rows or "case_id" not in rows else rows
    losses = normalize_losses(losses, rows)
    id_cols = ["case_id", "backend", "device", "dtype", "formulation", "dataset", "loop", "batch_size", "l2",
               "verdict", "status"]
    out_cols = id_cols + ["target", "step", "time_s", "optimum_loss", "time_per_iter_s"]
    if losses.empty:
        return pd.DataFrame(columns=out_cols)
    cur = suboptimality_curves(rows, losses)
    cur = cur[cur["optimum_loss"].notna()]
    parts = []
    by_case = dict(tuple(cur.groupby("case_id", sort=False)))
    for cid in rows["case_id"]:
        if cid not in by_case:
            continue
        c = by_case[cid].sort_values("step")
        rel = c["rel_subopt"].to_numpy(dtype=float)
        first = c.iloc[0]
        for target in targets:
            hit = np.flatnonzero(rel <= target)  # NaN compares False: a diverged curve never reaches
            step = float(c["step"].iloc[hit[0]]) if len(hit) else math.nan
            tpi = _f(first["time_per_iter_s"])
            parts.append({**{k: first[k] for k in id_cols}, "target": target, "step": step,
                          "time_s": step * tpi if not math.isnan(step) else math.nan,
                          "optimum_loss": _f(first["optimum_loss"]), "time_per_iter_s": tpi})
    out = pd.DataFrame(parts, columns=out_cols)
    return out.astype({"step": "float64", "time_s": "float64", "target": "float64"})


def first_to_target(ttt: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, loop, target): the row agreeing with the oracle that got there first
    (``backend`` empty when none did), and how many of the group's rows got there."""
    out = []
    for (ds, loop, target), g in ttt.groupby(["dataset", "loop", "target"], sort=False):
        ok = g[(g["verdict"] == "pass").fillna(False) & (g["status"] == "ok").fillna(False)]
        reached = ok[ok["time_s"].notna()].sort_values("time_s", kind="stable")
        best = reached.iloc[0] if len(reached) else None
        out.append({"dataset": ds, "loop": loop, "target": target,
                    "backend": None if best is None else best["backend"],
                    "device": None if best is None else best["device"],
                    "dtype": None if best is None else best["dtype"],
                    "formulation": None if best is None else best["formulation"],
                    "time_s": math.nan if best is None else best["time_s"],
                    "step": math.nan if best is None else best["step"],
                    "reached": int(g["time_s"].notna().sum()), "cases": len(g)})
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------------------------
# the verdict

def verdict(rows_df: pd.DataFrame, losses_df: pd.DataFrame | None = None) -> list[tuple[str, list[str]]]:
    """Per dataset × loop: a title and the answer in sentences (markdown; ``**`` for bold)."""
    df = normalize_rows(rows_df)
    losses = normalize_losses(losses_df, df)
    ttt = time_to_target(df, losses) if not losses.empty else None
    firsts = first_to_target(ttt) if ttt is not None and len(ttt) else None
    out = []
    for ds, loop, g in _groups(df):
        title = f"{_dataset_title(g)}, {_loop_title(g)}"
        lines = [_agreement_sentence(g)]
        not_run = g[~g["status"].isin(["ok", "diverged", "failed"])]
        if len(not_run):
            parts = []
            for (who, status, reason), h in not_run.assign(_who=not_run.apply(_who, axis=1, with_device=True)) \
                    .groupby(["_who", "status", not_run["reason"].fillna("no reason recorded")], sort=False):
                parts.append(f"`{who}` ({len(h)} row{'s' if len(h) > 1 else ''}): {status} — {_md(reason)}")
            lines.append("Not measured: " + "; ".join(parts) + ".")
        good = g[correct_mask(g)]
        ran = g[g["status"].isin(["ok", "diverged", "failed"])]
        for device in sorted(set(ran["device"].dropna())):
            lines.append(_fastest_sentence(g, good[good["device"] == device], device))
            for dtype in list(dict.fromkeys(good.loc[good["device"] == device, "dtype"])):
                s = _library_sentence(good[(good["device"] == device) & (good["dtype"] == dtype)], device, dtype)
                if s:
                    lines.append(s)
        if firsts is not None:
            s = _target_sentence(firsts[(firsts["dataset"] == ds) & (firsts["loop"] == loop)], g)
            if s:
                lines.append(s)
        if loop == "mini-batch":
            lines.append("Mini-batch rows record the loss of each step's batch (noisy); their suboptimality "
                         "and time to target use the full-data objective along the float64 oracle's path over "
                         "the same batches, which each row agrees with within its tolerance.")
        out.append((title, lines))
    return out


def _agreement_sentence(g: pd.DataFrame) -> str:
    ran = g[g["status"].isin(["ok", "diverged", "failed"])]
    bad = ran[failing_mask(ran)]
    backends = ", ".join(f"`{b}`" for b in _backend_order(set(ran["backend"])))
    if ran.empty:
        return "No row ran."
    if bad.empty:
        return f"All {len(ran)} rows that ran agree with the float64 oracle ({backends})."
    agreeing = ran[~failing_mask(ran)]
    text = (f"{len(agreeing)} of {len(ran)} rows agree with the float64 oracle; "
            f"**{len(bad)} {'does' if len(bad) == 1 else 'do'} not**: ")
    parts = []
    for (cfg, cause), h in bad.assign(_cfg=bad.apply(_config, axis=1), _cause=bad["reason"].map(_cause)) \
            .groupby(["_cfg", "_cause"], sort=False):
        who = ", ".join(f"`{_who(r, True)}`" for _, r in h.iterrows())
        metric = _failing_metric(h.iloc[0])
        same = cause.split(" from ")[0] in metric  # e.g. "non-finite ..." says nothing new
        parts.append(f"{who} ({cfg}: {metric})" + ("" if same else f" — {cause}"))
    return text + "; ".join(parts) + "."


def _fraction_phrase(r) -> str:
    cf, rf = _f(r["compute_fraction"]), _f(r["roofline_fraction"])
    if not math.isnan(cf):
        return f"{cf:.1%} of the compute floor (its data fit in cache)"
    if not math.isnan(rf):
        return f"{rf:.1%} of the memory-bandwidth floor"
    return ""


def _fastest_sentence(g: pd.DataFrame, good: pd.DataFrame, device: str) -> str:
    if good.empty:
        return f"Fastest correct on {device}: none — no row on {device} ran and agreed with the oracle."
    best = good.sort_values("time_per_iter_s", kind="stable").iloc[0]
    q1, med, q3 = quartiles(best)
    text = (f"Fastest correct on {device}: **{best['backend']}** ({_config(best)}) at "
            f"{_fmt_time(med)} per step (IQR {_fmt_time(q3 - q1)})")
    base = good[(good["backend"] == "numpy") & (good["dtype"] == best["dtype"])
                & (good["formulation"] == best["formulation"]) & (good["l2"] == best["l2"])
                & (good["batch_size"].fillna(-1) == (-1 if pd.isna(best["batch_size"]) else best["batch_size"]))]
    if best["backend"] != "numpy" and len(base):
        r, lo, hi = ratio_with_range(base.iloc[0], best)
        text += f", {r:.2f}× faster than `numpy` in the same setting (range {lo:.2f}–{hi:.2f}×)"
    frac = _fraction_phrase(best)
    return text + (f"; it runs at {frac}." if frac else ".")


def _library_sentence(good: pd.DataFrame, device: str, dtype: str) -> str | None:
    """Best NumPy-family vs best PyTorch-family row in the setting of the fastest correct row."""
    if good.empty:
        return None
    lead = good.sort_values("time_per_iter_s", kind="stable").iloc[0]
    same = good[(good["formulation"] == lead["formulation"]) & (good["l2"] == lead["l2"])
                & (good["batch_size"].fillna(-1) == (-1 if pd.isna(lead["batch_size"]) else lead["batch_size"]))]
    fam = same["backend"].map(lambda b: FAMILY.get(str(b), "other"))
    npy = same[fam == "NumPy"].sort_values("time_per_iter_s", kind="stable")
    pt = same[fam == "PyTorch"].sort_values("time_per_iter_s", kind="stable")
    setting = f"{dtype}, {lead['formulation']}" + (f", l2={_f(lead['l2']):g}" if _f(lead["l2"]) else "") \
        + (f", batch {int(lead['batch_size'])}" if pd.notna(lead["batch_size"]) else "")
    if npy.empty or pt.empty:
        missing = "NumPy" if npy.empty else "PyTorch"
        return f"NumPy vs PyTorch on {device} ({setting}): no correct {missing}-family row to compare."
    a, b = npy.iloc[0], pt.iloc[0]
    r, lo, hi = ratio_with_range(a, b)  # NumPy time / PyTorch time: > 1 means PyTorch is faster
    if r >= 1:
        winner, ratio, rng = "PyTorch", r, (lo, hi)
    else:
        winner, ratio, rng = "NumPy", 1 / r, (1 / hi if hi else math.nan, 1 / lo if lo else math.inf)
    tie = " — the ranges overlap, so not told apart" if rng[0] <= 1 else ""
    return (f"NumPy vs PyTorch on {device} ({setting}): best NumPy `{a['backend']}` "
            f"{_fmt_time(a['time_per_iter_s'])}, best PyTorch `{b['backend']}` {_fmt_time(b['time_per_iter_s'])}: "
            f"**{winner} {ratio:.2f}× faster** (quartile range {rng[0]:.2f}–{rng[1]:.2f}×){tie}.")


def _target_sentence(firsts: pd.DataFrame, g: pd.DataFrame) -> str | None:
    if firsts.empty:
        return None
    parts, never = [], []
    for _, f in firsts.iterrows():
        if f["backend"] is None or pd.isna(f["backend"]):
            never.append(f"{f['target']:.0e}")
        else:
            parts.append(f"{f['target']:.0e} first by **{f['backend']}** ({f['dtype']}, {f['formulation']}) in "
                         f"{_fmt_time(f['time_s'])} (step {int(f['step'])}; {f['reached']} of {f['cases']} rows get there)")
    text = "Time to relative suboptimality (L−L*)/L*: " + "; ".join(parts) if parts else \
        "Time to relative suboptimality (L−L*)/L*: no row agreeing with the oracle reaches any target"
    if never and parts:
        steps = sorted({int(x) for x in g["n_iters"].dropna()})
        text += f"; {', '.join(never)} not reached by any correct row in {'/'.join(map(str, steps))} steps"
    return text + "."


# ----------------------------------------------------------------------------------------------
# tables

def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per measurement with display columns; speed relative to ``numpy`` on cpu in the same
    setting (dataset, loop, batch size, l2, dtype, formulation)."""
    df = normalize_rows(df)
    keys = ["dataset", "loop", "batch_size", "l2", "dtype", "formulation"]
    base = df[(df["backend"] == "numpy") & (df["device"] == "cpu") & (df["status"] == "ok")]
    base = base.assign(batch_size=base["batch_size"].fillna(-1)).drop_duplicates(keys)
    base = base.set_index(keys)["time_per_iter_s"].rename("numpy_s")
    tmp = df.assign(batch_size=df["batch_size"].fillna(-1))
    numpy_s = tmp.join(base, on=keys)["numpy_s"]
    out = df.copy()
    out["numpy_s"] = numpy_s.astype("Float64").values
    out["vs_numpy"] = out["numpy_s"] / out["time_per_iter_s"]
    return out


def _col_label(r, vary: dict[str, bool]) -> str:
    parts = [str(r["dataset"])]
    if vary["loop"]:
        parts.append("full" if r["loop"] == "full-batch" else
                     f"mini-batch {int(r['batch_size'])}" if pd.notna(r["batch_size"]) else str(r["loop"]))
    if vary["formulation"]:
        parts.append(str(r["formulation"]))
    if vary["l2"]:
        parts.append(f"l2={_f(r['l2']):g}")
    return " · ".join(parts)


def pivot_times(df: pd.DataFrame, dtype: str) -> pd.DataFrame:
    """Backend (× device when more than one) by dataset/loop/formulation: median time per step
    as text; ``✗`` marks a row that does not agree with the oracle, ``~`` a noisy one."""
    df = normalize_rows(df)
    ran_devices = set(df.loc[df["status"] != "skipped", "device"].dropna())
    if ran_devices:  # a device where nothing ran is in the verdict's "Not measured", not the pivot
        df = df[df["device"].isin(ran_devices)]
    g = df[df["dtype"] == dtype]
    if g.empty:
        return pd.DataFrame()
    vary = {"loop": df["loop"].nunique() > 1 or df["batch_size"].nunique() > 1,
            "formulation": df["formulation"].nunique() > 1, "l2": df["l2"].nunique() > 1}
    multi_dev = df["device"].nunique() > 1
    cells: dict[str, dict[str, str]] = {}
    cols: list[str] = []
    for _, r in g.iterrows():
        col = _col_label(r, vary)
        if col not in cols:
            cols.append(col)
        row = f"{r['backend']} ({r['device']})" if multi_dev else str(r["backend"])
        if r["status"] == "ok":
            text = _fmt_time(r["time_per_iter_s"])
            if r["noisy"] is True or str(r["noisy"]) == "True":
                text += " ~"
            if not _agrees(r):
                text += " ✗"
        else:
            text = str(r["status"])
        cells.setdefault(row, {})[col] = text
    order = []
    for b in _backend_order(set(g["backend"])):
        order += [k for k in cells if k == b or k.startswith(f"{b} (")]
    table = pd.DataFrame.from_dict(cells, orient="index").reindex(index=order, columns=cols).fillna("—")
    table.index.name = "backend"
    return table


def _md_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["---"] * len(header)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(_md(c) if c != "—" else c for c in row) + " |" for row in rows]
    return out


def _env_line(df: pd.DataFrame, env: dict | None) -> str:
    run_ids = list(dict.fromkeys(df["run_id"].dropna()))
    run_id = run_ids[0] if run_ids else (env or {}).get("run_id", "?")
    if not env:
        return f"Run `{run_id}`."
    cpu = env.get("cpu") or {}
    gpu = env.get("gpu") or {}
    v = env.get("versions") or {}
    libs = ", ".join(f"{k} {v[k]}" for k in ("numpy", "torch", "numba", "jax") if v.get(k))
    return (f"Run `{run_id}` on {cpu.get('model', '?')} ({cpu.get('logical_cores', '?')} logical cores)"
            f"{', GPU ' + str(gpu.get('name')) if gpu else ', no GPU'}; {libs}; "
            f"{env.get('threads', '?')} threads per library.")


def summary_markdown(rows_df: pd.DataFrame, losses_df: pd.DataFrame | None = None, env: dict | None = None) -> str:
    """Verdict first, then a pivot per dtype, rows that do not agree, time to target, all rows."""
    df = normalize_rows(rows_df)
    losses = normalize_losses(losses_df, df)
    s = summary_frame(df)
    lines = ["# NumPy or PyTorch: the answer for this run", "", _env_line(df, env), "", "## Verdict", ""]
    for title, sentences in verdict(df, losses):
        lines += [f"**{title}**", ""] + [f"- {x}" for x in sentences] + [""]
    lines += [
        "How to read this. *Agrees with the oracle*: parameters and loss within the dtype's tolerance of a "
        "float64 reference run on the same data and init (it says the code is right, not that training "
        "has converged). *Correct*: ran and agrees. Ratios are of median times per step; the range divides "
        "the quartiles of the timed rounds crosswise (Q1/Q3 to Q3/Q1), a conservative spread: when it "
        "contains 1 the two are not told apart. Relative suboptimality is (L(θ_t) − L*)/|L*| with L* the "
        "scikit-learn optimum of the same objective (penalised when l2 > 0), checked at the recorded steps; "
        "time = step × median time per step.", ""]
    for dtype in list(dict.fromkeys(df["dtype"].dropna())):
        p = pivot_times(df, dtype)
        if p.empty:
            continue
        lines += [f"## Time per step, {dtype}", "",
                  "Median time per training step (`✗` = does not agree with the oracle, `~` = noisy: IQR > 10 % "
                  "of the median).", ""]
        lines += _md_table(["backend", *p.columns], [[i, *p.loc[i].tolist()] for i in p.index],
                           ["---"] + ["---:"] * len(p.columns))
        lines.append("")
    bad = df[failing_mask(df)]
    lines += ["## Rows that do not agree with the oracle", ""]
    if bad.empty:
        lines += ["None: every row that ran agrees with the float64 oracle.", ""]
    else:
        lines += _md_table(["backend", "device", "dataset", "loop", "dtype", "formulation", "failing metric",
                            "status", "reason"],
                           [[r["backend"], r["device"], r["dataset"], _loop_title(pd.DataFrame([r])), r["dtype"],
                             r["formulation"], _failing_metric(r), r["status"], r["reason"]]
                            for _, r in bad.iterrows()])
        lines.append("")
    if not losses.empty:
        ttt = time_to_target(df, losses)
        firsts = first_to_target(ttt)
        if len(firsts):
            lines += ["## Time to target", "",
                      "First row agreeing with the oracle to reach each relative suboptimality; every row's "
                      "figure is in `time_to_target.csv` (empty where the run never got there).", ""]
            lines += _md_table(["dataset", "loop", "target", "first", "time", "step", "rows reaching it"],
                               [[f["dataset"], f["loop"], f"{f['target']:.0e}",
                                 "—" if pd.isna(f["backend"]) else f"{f['backend']} ({f['device']}, {f['dtype']}, "
                                                                  f"{f['formulation']})",
                                 _fmt_time(f["time_s"]), _num(f["step"], "{:.0f}"), f"{f['reached']} of {f['cases']}"]
                                for _, f in firsts.iterrows()])
            lines.append("")
    lines += ["## All rows", ""]
    for (ds, loop, dtype), g in s.groupby(["dataset", "loop", "dtype"], sort=False):
        k = sorted({int(x) for x in g["n_iters"].dropna()})
        lines += [f"### {_dataset_title(g)}, {_loop_title(g)}, {dtype}, {'/'.join(map(str, k))} steps", ""]
        rows = []
        for _, r in g.sort_values(["formulation", "l2", "device", "backend"]).iterrows():
            frac = r["compute_fraction"] if pd.notna(r["compute_fraction"]) else r["roofline_fraction"]
            frac_kind = " (compute)" if pd.notna(r["compute_fraction"]) else ""
            rows.append([r["backend"], r["device"], r["formulation"], _num(r["l2"], "{:g}"),
                         _fmt_time(r["time_per_iter_s"]) + (" ~" if str(r["noisy"]) == "True" else ""),
                         _fmt_time(r["iqr_per_iter_s"]), _num(r["vs_numpy"], "{:.2f}×"),
                         _num(r["achieved_gbps"], "{:.2f}"), _num(frac, "{:.1%}") + (frac_kind if pd.notna(frac) else ""),
                         _num(r["rel_dparam"], "{:.1e}"), _num(r["rel_dloss"], "{:.1e}"), _num(r["tolerance"], "{:.1e}"),
                         "yes" if _agrees(r) else ("no" if pd.notna(r["verdict"]) else "—"),
                         _num(r["threads"], "{:.0f}"),
                         str(r["status"]) if r["status"] == "ok" else f"{r['status']}: {r['reason']}"])
        lines += _md_table(["backend", "device", "formulation", "l2", "time/step", "IQR", "vs numpy", "GB/s",
                            "of floor", "rel Δparam", "rel Δloss", "tol", "agrees with oracle", "threads", "status"],
                           rows, ["---"] * 4 + ["---:"] * 8 + ["---", "---:", "---"])
        lines.append("")
    lines += ["## GPU/CPU crossover", ""] + [f"- {x}" for x in crossovers(df)]
    return "\n".join(lines)


def print_summary(df: pd.DataFrame, console=None, losses_df: pd.DataFrame | None = None, env: dict | None = None) -> None:
    """The console version: the verdict, then one pivot per dtype, then rows that do not agree.
    (The long per-row tables are in ``summary.md``.)"""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    df = normalize_rows(df)

    def rich(text: str) -> str:
        text = text.replace("[", "\\[")
        text = re.sub(r"\*\*(.+?)\*\*", r"[bold]\1[/bold]", text)
        return re.sub(r"`([^`]+)`", r"[cyan]\1[/cyan]", text)

    console.print(f"[bold]Verdict[/bold] — {rich(_env_line(df, env))}")
    for title, sentences in verdict(df, losses_df):
        console.print(f"\n[bold underline]{rich(title)}[/bold underline]")
        for x in sentences:
            console.print(f"  • {rich(x)}")
    for dtype in list(dict.fromkeys(df["dtype"].dropna())):
        p = pivot_times(df, dtype)
        if p.empty:
            continue
        t = Table(title=f"time per step, {dtype} (✗ does not agree with the oracle, ~ noisy)")
        t.add_column("backend")
        for c in p.columns:
            t.add_column(c, justify="right")
        for i in p.index:
            t.add_row(i, *[f"[red]{v}[/red]" if "✗" in v else v for v in p.loc[i]])
        console.print(t)
    bad = df[failing_mask(df)]
    if len(bad):
        t = Table(title="rows that do not agree with the oracle")
        for c in ("backend", "dataset", "dtype", "formulation", "failing metric", "reason"):
            t.add_column(c, overflow="fold")
        for _, r in bad.iterrows():
            t.add_row(str(r["backend"]) + f"@{r['device']}", str(r["dataset"]), str(r["dtype"]),
                      str(r["formulation"]), _failing_metric(r), escape(str(r["reason"])))
        console.print(t)


def crossovers(df: pd.DataFrame) -> list[str]:
    """Per backend, dtype, formulation and loop: the smallest n at which its GPU row beats its CPU row."""
    df = normalize_rows(df)
    ok = df[(df["status"] == "ok") & df["time_per_iter_s"].notna()]
    gpus = sorted(set(ok["device"]) - {"cpu"})
    if not gpus:
        return ["GPU/CPU crossover: no GPU row in this run"]
    lines = []
    keys = ["backend", "dtype", "formulation", "loop"]
    for (backend, dtype, form, loop, dev), g in ok[ok["device"].isin(gpus)].groupby(keys + ["device"]):
        cpu = ok[(ok["backend"] == backend) & (ok["dtype"] == dtype) & (ok["formulation"] == form)
                 & (ok["loop"] == loop) & (ok["device"] == "cpu")]
        both = g.merge(cpu, on=["dataset", "n", "d", "l2"], suffixes=("_gpu", "_cpu"))
        faster = both[both["time_per_iter_s_gpu"] < both["time_per_iter_s_cpu"]].sort_values("n")
        where = f"n >= {int(faster['n'].iloc[0])} (d={int(faster['d'].iloc[0])})" if len(faster) else "never in this run"
        lines.append(f"GPU/CPU crossover, {backend} {dtype} {form} {loop}: {dev} faster from {where}")
    return lines


def write_summary(df: pd.DataFrame, path: Path, losses_df: pd.DataFrame | None = None, env: dict | None = None) -> None:
    write_text(summary_markdown(df, losses_df, env) + "\n", path)


# ----------------------------------------------------------------------------------------------
# plots

def style(backend: str) -> dict:
    """matplotlib keyword arguments of a backend's fixed look (colour, marker, line style)."""
    if backend in STYLE:
        c, m, ls = STYLE[backend]
    else:  # an unknown backend still gets a stable look
        i = sum(map(ord, backend))
        c, m, ls = _EXTRA_COLOURS[i % len(_EXTRA_COLOURS)], "xd+1"[i % 4], (0, (3, 1, 1, 1))
    return {"color": c, "marker": m, "linestyle": ls}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _corner(fig, df: pd.DataFrame | None, env: dict | None) -> None:
    run_ids = list(dict.fromkeys(df["run_id"].dropna())) if df is not None and "run_id" in df else []
    run_id = run_ids[0] if run_ids else (env or {}).get("run_id", "?")
    machine = ((env or {}).get("cpu") or {}).get("model", "machine unknown")
    gpu = ((env or {}).get("gpu") or {}).get("name")
    fig.text(0.995, 0.003, f"{machine}{' + ' + gpu if gpu else ''} · run {run_id}", ha="right", va="bottom",
             fontsize=7, color="0.4")


def _save(fig, path: Path) -> bool:
    plt = _plt()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)
    return True


def _legend_outside(fig, axes) -> None:
    """One legend for the figure, right of the panels, each label once."""
    seen: dict[str, object] = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
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
    d = 100 points); full batch, ``probs`` where present, no L2. False when nothing to plot.
    (``write_report`` draws it only when some d has two sizes or more.)"""
    df = normalize_rows(df)
    ok = df[(df["status"] == "ok") & df["time_per_iter_s"].notna() & (df["loop"] == "full-batch")
            & (df["l2"] == 0)]
    if ok.empty:
        return False
    d = ok.groupby("d")["n"].nunique().idxmax()  # with one n per d: points, nothing joined
    ok = ok[ok["d"] == d]
    dtypes = list(dict.fromkeys(ok["dtype"]))
    plt = _plt()
    fig, axes = plt.subplots(1, len(dtypes), figsize=(5.5 * len(dtypes) + 2, 4.2), squeeze=False, sharey=True,
                             layout="constrained")
    for ax, dtype in zip(axes[0], dtypes):
        g = ok[ok["dtype"] == dtype]
        form = "probs" if "probs" in set(g["formulation"]) else g["formulation"].iloc[0]
        g = g[g["formulation"] == form]
        for backend in _backend_order(set(g["backend"])):
            for device, h in g[g["backend"] == backend].groupby("device"):
                h = h.groupby("n", as_index=False)["time_per_iter_s"].median().sort_values("n")
                st = style(backend)
                if device != "cpu":
                    st["markerfacecolor"] = "none"
                ax.plot(h["n"].astype(float), h["time_per_iter_s"].astype(float), lw=1.3, ms=5,
                        label=f"{backend} ({device})", **st)
        if floor_gbps:
            bpsn = g.groupby("n")["bytes_per_step"].first().sort_index().astype(float)
            ax.plot(bpsn.index.astype(float), bpsn.values / (floor_gbps * 1e9), color="k", ls="--", lw=1,
                    label=f"floor: X read once at {floor_gbps:.0f} GB/s")
        ax.set_xscale("log")
        ax.set_yscale("log")
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


def plot_suboptimality(rows_df: pd.DataFrame, losses_df: pd.DataFrame, path: Path, dataset: str,
                       env: dict | None = None, targets=TARGETS) -> bool:
    """benchopt-style: ``L(θ_t) − L*`` (log) against wall time ``step × time per step`` (log), one
    line per backend@device, one panel per loop/dtype/formulation/l2 of one dataset. Points at or
    below the optimum (possible for mini-batch losses and rounding) are not drawn."""
    rows = normalize_rows(rows_df)
    losses = normalize_losses(losses_df, rows)
    g = rows[(rows["dataset"] == dataset) & rows["optimum_loss"].notna() & rows["time_per_iter_s"].notna()]
    cur = suboptimality_curves(g, losses) if len(g) else pd.DataFrame()
    if cur.empty:
        return False
    keys = _panel_keys(g[g["case_id"].isin(set(cur["case_id"]))])
    fig, axes = _grid(len(keys))
    for ax, key in zip(axes.ravel(), keys):
        sub = _panel_rows(g, key)
        for backend in _backend_order(set(sub["backend"])):
            for _, r in sub[sub["backend"] == backend].iterrows():
                c = cur[cur["case_id"] == r["case_id"]]
                c = c[(c["subopt"] > 0) & (c["time_s"] > 0)]
                if c.empty:
                    continue
                st = style(backend)
                every = max(1, len(c) // 8)
                label = f"{backend} ({r['device']})" + ("" if _agrees(r) else " ✗ disagrees")
                ax.plot(c["time_s"], c["subopt"], lw=1.2, ms=4, markevery=every, label=label,
                        alpha=0.85 if r["loop"] == "full-batch" else 0.6, **st)
        opt = _f(sub["optimum_loss"].iloc[0]) if len(sub) else math.nan
        if not math.isnan(opt) and opt > 0:
            for t in targets:
                ax.axhline(t * abs(opt), color="0.6", lw=0.6, ls=":")
                ax.text(0.01, t * abs(opt), f"{t:.0e}", transform=ax.get_yaxis_transform(), fontsize=6,
                        color="0.4", va="bottom", ha="left")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("wall time (s) = step × median time per step")
        ax.set_ylabel("L(θ_t) − L* (loss above optimum)")
        note = " (full-data objective along the oracle's path)" if key[0] == "mini-batch" else ""
        ax.set_title(f"{dataset}: {_panel_title(key)}{note}", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(f"Time to accuracy on {dataset} (dotted: relative targets (L−L*)/L*)", fontsize=10)
    _legend_outside(fig, axes)
    _corner(fig, rows, env)
    return _save(fig, path)


ORACLE_ZERO = 1e-18


def plot_loss_vs_oracle(rows_df: pd.DataFrame, losses_df: pd.DataFrame, path: Path, env: dict | None = None) -> bool:
    """|loss − ref_loss| per recorded step (log), one panel per dataset × dtype, one line per
    backend@device: float32 sits near 1e-7, float64 near 1e-16. Exact zeros are drawn at 1e-18.
    Full batch, first formulation/l2 of each dataset. False when no ``ref_loss`` was recorded."""
    rows = normalize_rows(rows_df)
    losses = normalize_losses(losses_df, rows)
    losses = losses[losses["ref_loss"].notna()]
    if losses.empty:
        return False
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
    for ax, (ds, loop, form, dtype, h) in zip(axes.ravel(), panels):
        for backend in _backend_order(set(h["backend"])):
            for _, r in h[h["backend"] == backend].iterrows():
                c = losses[losses["case_id"] == r["case_id"]]
                diff = (c["loss"] - c["ref_loss"]).abs().clip(lower=ORACLE_ZERO)
                ax.plot(c["step"], diff, lw=0.8, ms=3, alpha=0.8, markevery=max(1, len(c) // 6),
                        label=f"{backend} ({r['device']})", **style(backend))
        ax.set_yscale("log")
        ax.set_ylim(ORACLE_ZERO / 3, None)
        ax.set_xlabel("step")
        ax.set_ylabel("|loss − oracle loss|")
        ax.set_title(f"{ds}, {dtype}, {form}, {'full batch' if loop == 'full-batch' else loop}", fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(f"Difference from the float64 oracle's loss (0 drawn at {ORACLE_ZERO:g})", fontsize=10)
    _legend_outside(fig, axes)
    _corner(fig, rows, env)
    return _save(fig, path)


def speed_vs_numpy_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Time per step of every timed row relative to ``numpy`` on cpu in the same dataset, loop,
    batch size, l2, dtype and formulation, with the crosswise quartile range."""
    df = normalize_rows(df)
    ok = df[(df["status"] == "ok") & df["time_per_iter_s"].notna()]
    keys = ["dataset", "loop", "batch_size", "l2", "dtype", "formulation"]
    out = []
    for _, r in ok.iterrows():
        base = ok[(ok["backend"] == "numpy") & (ok["device"] == "cpu")]
        for k in keys:
            base = base[base[k].isna()] if pd.isna(r[k]) else base[base[k] == r[k]]
        if base.empty:
            continue
        ratio, lo, hi = ratio_with_range(r, base.iloc[0])
        out.append({**{k: r[k] for k in ["case_id", "backend", "device", *keys]}, "ratio": ratio, "lo": lo, "hi": hi,
                    "agrees": _agrees(r)})
    return pd.DataFrame(out)


def plot_speed_vs_numpy(df: pd.DataFrame, path: Path, env: dict | None = None) -> bool:
    """Bars: time per step / numpy's (log scale; below 1 = faster than numpy), grouped by dataset
    (and loop), one bar per backend@device, whiskers = crosswise quartile range; hatched bars do
    not agree with the oracle. One panel per dtype × formulation (and l2 where it varies)."""
    s = speed_vs_numpy_frame(df)
    if s.empty:
        return False
    s["panel"] = s["dtype"].astype(str) + ", " + s["formulation"].astype(str) + \
        np.where(s["l2"].astype(float) > 0, ", l2=" + s["l2"].astype(float).map("{:g}".format), "")
    s["group"] = s["dataset"].astype(str) + np.where(
        s["loop"] == "mini-batch", "\nmini-batch " + s["batch_size"].astype("string").fillna(""), "")
    panels = list(dict.fromkeys(s["panel"]))
    fig, axes = _grid(len(panels), ncols=2, w=6.0, h=3.8)
    for ax, panel in zip(axes.ravel(), panels):
        p = s[s["panel"] == panel]
        groups = list(dict.fromkeys(p["group"]))
        bars = [(b, dev) for b in _backend_order(set(p["backend"])) for dev in sorted(set(p[p["backend"] == b]["device"]))]
        width = 0.8 / max(1, len(bars))
        for j, (b, dev) in enumerate(bars):
            q = p[(p["backend"] == b) & (p["device"] == dev)].set_index("group").reindex(groups)
            x = np.arange(len(groups)) + (j - (len(bars) - 1) / 2) * width
            ratio = q["ratio"].astype(float).to_numpy()
            err = np.vstack([ratio - q["lo"].astype(float).to_numpy(), q["hi"].astype(float).to_numpy() - ratio])
            err = np.clip(np.nan_to_num(err, nan=0.0, posinf=0.0), 0, None)
            colour = style(b)["color"]
            hatch = ["//" if a is False else "" for a in q["agrees"].tolist()]
            cont = ax.bar(x, ratio, width, color=colour, edgecolor="k", lw=0.4,
                          label=f"{b} ({dev})", yerr=err, capsize=2, error_kw={"lw": 0.8})
            for patch, h in zip(cont.patches, hatch):
                patch.set_hatch(h)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        from matplotlib.ticker import FuncFormatter, LogLocator

        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xticks(np.arange(len(groups)))
        ax.set_xticklabels(groups, fontsize=8)
        ax.set_ylabel("time per step / numpy's (×)")
        ax.set_xlabel("dataset")
        ax.set_title(f"{panel}: below 1 = faster than numpy", fontsize=9)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.suptitle("Time per step relative to numpy (cpu), same setting; whiskers: quartile range; "
                 "hatched: does not agree with the oracle", fontsize=9)
    from matplotlib.patches import Patch

    labels = list(dict.fromkeys(f"{b} ({dev})" for b in _backend_order(set(s["backend"]))
                                for dev in sorted(set(s[s["backend"] == b]["device"]))))
    handles = [Patch(facecolor=style(lab.split(" (")[0])["color"], edgecolor="k", lw=0.4) for lab in labels]
    if (~s["agrees"]).any():
        handles.append(Patch(facecolor="white", edgecolor="k", hatch="//", lw=0.4))
        labels.append("does not agree with the oracle")
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    _corner(fig, normalize_rows(df), env)
    return _save(fig, path)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name))


# ----------------------------------------------------------------------------------------------
# the one entry point

def write_report(rows_df: pd.DataFrame, losses_df: pd.DataFrame | None, env: dict | None, out_folder) -> list[Path]:
    """Write ``summary.md``, ``time_to_target.csv`` and every plot into ``out_folder``; return the
    paths written (a plot with nothing to show is not written). ``runs.csv``/``losses.csv`` are the
    caller's."""
    out = Path(out_folder)
    out.mkdir(parents=True, exist_ok=True)
    rows = normalize_rows(rows_df)
    losses = normalize_losses(losses_df, rows)
    written: list[Path] = []
    write_summary(rows, out / "summary.md", losses, env)
    written.append(out / "summary.md")
    ttt = time_to_target(rows, losses)
    write_atomic(out / "time_to_target.csv", lambda tmp: ttt.to_csv(tmp, index=False))
    written.append(out / "time_to_target.csv")
    floor = ((env or {}).get("roofline") or {}).get("host_read")
    ok = rows[(rows["status"] == "ok") & rows["time_per_iter_s"].notna()]
    if ok.groupby("d")["n"].nunique().max() >= 2 and \
            plot_time_vs_n(rows, out / "time_vs_n.png", floor_gbps=floor, env=env):  # a line needs two sizes
        written.append(out / "time_vs_n.png")
    if plot_speed_vs_numpy(rows, out / "speed_vs_numpy.png", env=env):
        written.append(out / "speed_vs_numpy.png")
    for ds in dict.fromkeys(rows["dataset"].dropna()):
        path = out / f"suboptimality_{_slug(ds)}.png"
        if plot_suboptimality(rows, losses, path, ds, env=env):
            written.append(path)
    if plot_loss_vs_oracle(rows, losses, out / "loss_vs_oracle.png", env=env):
        written.append(out / "loss_vs_oracle.png")
    return written
