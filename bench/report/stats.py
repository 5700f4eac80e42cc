"""The statistics of the report: quartiles of the timed rounds, ratios with their crosswise range,
which rows are correct, the reference backend and speed against it, and time to target.

*Ratio with uncertainty*: ``a/b`` of the median times per step; its range divides the quartiles
crosswise, ``[Q1(a)/Q3(b), Q3(a)/Q1(b)]`` (quartiles of the timed rounds, from ``times_s``; from
``median ± IQR/2`` where the rounds are not stored). A conservative spread, not a confidence
interval: when it contains 1 the two are not told apart.

*Time to target*: the first recorded step whose relative suboptimality ``(L − L*)/|L*|`` is
``<= target`` (:func:`bench.targets.first_step_to_target`, the one definition, also behind
``Row.time_to_target_s``), times ``time_per_iter_s``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..targets import JUDGED_BY_OPTIMUM, TARGETS, first_step_to_target, point_times, relative_suboptimality
from .format import as_float

# The reference of "vs numpy": the seed's loop written in NumPy (found by its attributes), else the
# backend registered under the seed's name.
BASELINE_ATTRIBUTES = {"library": "numpy", "style": "the seed's loop"}
BASELINE_NAME = "numpy"
SETTING = ["dataset", "loop", "batch_size", "l2", "dtype", "formulation", "optimizer"]


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
    med = as_float(row.get("time_per_iter_s"))
    t = round_times_per_step(row)
    if t is not None and len(t) >= 2:
        q1, q3 = np.percentile(t, [25, 75])
        return float(q1), med, float(q3)
    iqr = as_float(row.get("iqr_per_iter_s"))
    iqr = 0.0 if math.isnan(iqr) else iqr
    return med - iqr / 2, med, med + iqr / 2


MIN_ROUNDS = 3  # fewer timed rounds give no spread: a ratio's range would be one point


def timed_rounds(row) -> int:
    """How many rounds a row was timed in: its ``rounds``, else the count of its stored ``times_s``."""
    n = as_float(row.get("rounds")) if hasattr(row, "get") else math.nan
    if not math.isnan(n):
        return int(n)
    t = round_times_per_step(row)
    return 0 if t is None else len(t)


def too_few_rounds(*rows) -> list[int]:
    """The round counts of ``rows`` when any of them has fewer than :data:`MIN_ROUNDS` (such rows
    cannot be told apart: no spread to compare), else []."""
    counts = [timed_rounds(r) for r in rows]
    return counts if any(c < MIN_ROUNDS for c in counts) else []


def few_rounds_phrase(counts) -> str:
    """The words for :func:`too_few_rounds`: ``timed in 1 and 1 rounds (fewer than 3): not told apart``."""
    shown = " and ".join(str(c) for c in counts)
    return (f"timed in {shown} round{'' if list(counts) == [1] else 's'} (fewer than {MIN_ROUNDS}), so the rows "
            f"cannot be told apart; time {MIN_ROUNDS} or more rounds (--repeats) for a range")


def ratio_with_range(a, b) -> tuple[float, float, float]:
    """``median(a)/median(b)`` and the crosswise quartile range ``[Q1a/Q3b, Q3a/Q1b]``."""
    a1, am, a3 = quartiles(a)
    b1, bm, b3 = quartiles(b)
    lo = a1 / b3 if b3 > 0 else math.nan
    hi = a3 / b1 if b1 > 0 else math.inf
    return am / bm, lo, hi


def correct_mask(df: pd.DataFrame) -> pd.Series:
    """Rows that ran (``ok``), agree with the oracle and have a time: the only candidates for fastest."""
    return ((df["status"] == "ok") & (df["verdict"] == "pass") & df["time_per_iter_s"].notna()).fillna(False) \
        & ~judged_by_optimum(df)  # an L-BFGS iteration or a solver's fit is not a step: judged by time to target


def judged_by_optimum(df: pd.DataFrame) -> pd.Series:
    """``lbfgs`` and ``solver`` rows: no lockstep path (each library's own line search, a library's own
    solver), judged by the optimum they reach; their "time per step" is not comparable with a gradient
    step's, so the per-step views (fastest, NumPy vs PyTorch, the speed plot) leave them out."""
    if "optimizer" not in df:
        return pd.Series(False, index=df.index)
    return df["optimizer"].isin(JUDGED_BY_OPTIMUM).fillna(False).astype(bool)


def judged_ok(df: pd.DataFrame) -> pd.Series:
    """Rows whose time to target counts: ``ok`` and agreeing with the oracle, or — for rows judged by
    the optimum — ``ok`` and not failing (their ``n/a`` verdict means "not converged", not "wrong")."""
    ok = (df["status"] == "ok").fillna(False)
    agrees = (df["verdict"] == "pass").fillna(False)
    return (ok & (agrees | (judged_by_optimum(df) & (df["verdict"] != "fail").fillna(True)))).astype(bool)


def failing_mask(df: pd.DataFrame) -> pd.Series:
    """Rows that ran but do not agree with the oracle, or diverged, or failed."""
    return ((df["verdict"] == "fail") | df["status"].isin(["diverged", "failed"])).fillna(False)


def baseline_backend(df: pd.DataFrame) -> str | None:
    """The backend every "vs numpy" figure divides by: the one whose rows declare the seed's loop in
    NumPy (``library`` numpy, ``style`` "the seed's loop"; ``numpy`` first if several do), else the
    backend named ``numpy``, else None (no such column or figure)."""
    m = pd.Series(True, index=df.index)
    for col, value in BASELINE_ATTRIBUTES.items():
        m &= (df[col] == value).fillna(False) if col in df else False
    names = list(dict.fromkeys(df.loc[m, "backend"].dropna().astype(str)))
    if names:
        return BASELINE_NAME if BASELINE_NAME in names else names[0]
    return BASELINE_NAME if (df["backend"] == BASELINE_NAME).fillna(False).any() else None


def _setting_key(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(batch_size=df["batch_size"].fillna(-1))


def speed_vs_baseline(df: pd.DataFrame) -> pd.DataFrame:
    """Every row with ``baseline_s`` (the baseline backend's time per step on cpu in the same
    dataset, loop, batch size, l2, dtype and formulation; NA where it has none) and ``vs_baseline``
    = baseline_s / time_per_iter_s (> 1: faster than the baseline)."""
    name = baseline_backend(df)
    base = df[(df["backend"] == name) & (df["device"] == "cpu") & (df["status"] == "ok")] if name else df.iloc[:0]
    base = _setting_key(base).drop_duplicates(SETTING).set_index(SETTING)["time_per_iter_s"].rename("baseline_s")
    out = df.copy()
    out["baseline_s"] = _setting_key(df).join(base, on=SETTING)["baseline_s"].astype("Float64").values
    out["vs_baseline"] = out["baseline_s"] / out["time_per_iter_s"]
    return out


def speed_vs_numpy_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Time per step of every timed row relative to the baseline backend (:func:`baseline_backend`,
    the seed's NumPy loop) on cpu in the same setting, with the crosswise quartile range."""
    name = baseline_backend(df)
    ok = df[(df["status"] == "ok") & df["time_per_iter_s"].notna() & ~judged_by_optimum(df)]
    if name is None:
        return pd.DataFrame()
    def key(r):  # the setting, a missing value matching only a missing value
        return tuple(None if pd.isna(r[k]) else r[k] for k in SETTING)

    bases = {}
    for _, b in ok[(ok["backend"] == name) & (ok["device"] == "cpu")].iterrows():
        bases.setdefault(key(b), b)  # the first baseline row of each setting
    out = []
    for _, r in ok.iterrows():
        base = bases.get(key(r))
        if base is None:
            continue
        ratio, lo, hi = ratio_with_range(r, base)
        out.append({**{k: r[k] for k in ["case_id", "backend", "library", "device", *SETTING]},
                    "ratio": ratio, "lo": lo, "hi": hi, "agrees": str(r["verdict"]) == "pass"})
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------------------------
# time to accuracy

def suboptimality_curves(rows: pd.DataFrame, losses: pd.DataFrame) -> pd.DataFrame:
    """Per recorded point: ``case_id, step, loss, ref_loss, time_s, subopt, rel_subopt`` plus the
    row's identity columns. ``subopt = objective − optimum_loss`` with the objective the row's own
    loss on full batch and ``full_loss`` (the full-data objective along the oracle's path) on
    mini-batch, whose recorded loss is the batch's; ``time_s = step × time_per_iter_s``."""
    cols = ["case_id", "backend", "library", "device", "dtype", "formulation", "dataset", "loop", "batch_size", "l2",
            "optimizer", "time_per_iter_s", "optimum_loss", "verdict", "status"]
    cur = losses.merge(rows[cols], on="case_id", how="inner")
    # the one definition (bench.targets.point_times): a measured time where the row recorded one, else step × per step
    measured = cur["time_s"] if "time_s" in cur else None
    cur["time_s"] = point_times(cur["step"], cur["time_per_iter_s"].astype("float64").to_numpy(), measured)
    opt = cur["optimum_loss"].astype("float64")
    cur["objective"] = cur["full_loss"].fillna(cur["loss"])
    cur["subopt"] = cur["objective"] - opt
    cur["rel_subopt"] = cur["subopt"] / opt.abs()
    return cur


def time_to_target(rows: pd.DataFrame, losses: pd.DataFrame | None, targets=TARGETS) -> pd.DataFrame:
    """Tidy: one row per (case, target): the first recorded ``step`` whose relative suboptimality
    ``(L − L*)/|L*|`` is ``<= target`` and ``time_s = step × time_per_iter_s``; NaN exactly when the
    run never got there. Cases without a loss curve or without ``optimum_loss`` are left out
    (unknown, not "never"). ``losses`` may be None (no curves: an empty table)."""
    id_cols = ["case_id", "backend", "library", "device", "dtype", "formulation", "dataset", "loop", "batch_size", "l2",
               "optimizer", "verdict", "status"]
    out_cols = id_cols + ["target", "step", "time_s", "optimum_loss", "time_per_iter_s"]
    if losses is None or losses.empty:
        return pd.DataFrame(columns=out_cols)
    cur = suboptimality_curves(rows, losses)
    cur = cur[cur["optimum_loss"].notna()]
    parts = []
    by_case = dict(tuple(cur.groupby("case_id", sort=False)))
    for cid in rows["case_id"]:
        if cid not in by_case:
            continue
        c = by_case[cid].sort_values("step")
        first = c.iloc[0]
        opt, tpi = as_float(first["optimum_loss"]), as_float(first["time_per_iter_s"])
        for target in targets:
            steps = c["step"].to_numpy(dtype=float)
            step = first_step_to_target(steps, c["objective"].to_numpy(dtype=float), opt, target)
            at = c["time_s"].to_numpy(dtype=float)[steps == step] if not math.isnan(step) else ()
            parts.append({**{k: first[k] for k in id_cols}, "target": target, "step": step,
                          "time_s": float(at[0]) if len(at) else math.nan,
                          "optimum_loss": opt, "time_per_iter_s": tpi})
    out = pd.DataFrame(parts, columns=out_cols)
    return out.astype({"step": "float64", "time_s": "float64", "target": "float64"})


def first_to_target(ttt: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, loop, target): the row agreeing with the oracle that got there first
    (``backend`` empty when none did), and how many of the group's rows got there."""
    out = []
    for (ds, loop, target), g in ttt.groupby(["dataset", "loop", "target"], sort=False):
        ok = g[judged_ok(g)]
        reached = ok[ok["time_s"].notna()].sort_values("time_s", kind="stable")
        best = reached.iloc[0] if len(reached) else None
        out.append({"dataset": ds, "loop": loop, "target": target,
                    "backend": None if best is None else best["backend"],
                    "device": None if best is None else best["device"],
                    "dtype": None if best is None else best["dtype"],
                    "formulation": None if best is None else best["formulation"],
                    "optimizer": None if best is None else best["optimizer"],
                    "time_s": math.nan if best is None else best["time_s"],
                    "step": math.nan if best is None else best["step"],
                    "reached": int(g["time_s"].notna().sum()), "cases": len(g)})
    return pd.DataFrame(out)


__all__ = ["MIN_ROUNDS", "TARGETS", "relative_suboptimality", "first_step_to_target", "round_times_per_step",
           "quartiles", "timed_rounds", "too_few_rounds", "few_rounds_phrase",
           "ratio_with_range", "correct_mask", "failing_mask", "baseline_backend", "speed_vs_baseline",
           "speed_vs_numpy_frame", "suboptimality_curves", "time_to_target", "first_to_target"]
