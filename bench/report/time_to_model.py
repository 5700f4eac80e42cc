"""The verdict of the time-to-a-trained-model block (the cases: :mod:`bench.time_to_model`).

A block is any full-batch dataset × dtype × formulation × l2 of a run where a row is judged by the
optimum it reaches (``optimizer`` ``lbfgs`` or ``solver``): read from the rows, never from names.
Per library (its rows' declared ``library``: NumPy+SciPy, PyTorch, JAX, scikit-learn) it names the first
loop to reach each target relative suboptimality ``(L − L*)/|L*|`` and when (the one definition of
time to target, :func:`bench.report.stats.time_to_target`: measured point times for L-BFGS iterations
and scikit-learn fits, step × time per step for equal steps), says plainly whether fixed-step gradient
descent gets there, and sets the answer beside the per-step one.
"""

from __future__ import annotations

import math

import pandas as pd

from .format import as_float, dataset_title, format_time, library_label
from .stats import correct_mask, judged_by_optimum, judged_ok, time_to_target

TTM_TARGETS = (1e-4, 1e-6)
LABELS = {"numpy": "NumPy+SciPy", "torch": "PyTorch", "jax": "JAX", "sklearn": "scikit-learn"}
KEYS = ["dataset", "dtype", "formulation", "l2"]


def _label(library) -> str:
    return LABELS.get(str(library), library_label(library)) if pd.notna(library) else "?"


def _loop(r) -> str:
    return f"`{r['backend']}` {r['optimizer']}"


def blocks(df: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    full = df[(df["loop"] == "full-batch").fillna(False)]
    out = []
    for key, g in full.groupby(KEYS, sort=False, dropna=False):
        if judged_by_optimum(g).any():
            out.append((key, g))
    return out


def time_to_model_verdict(df: pd.DataFrame, losses: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """One (title, sentences) per block; empty when the run has none."""
    out = []
    for (_ds, dtype, form, l2), g in blocks(df):
        ttt = time_to_target(g, losses, targets=TTM_TARGETS)
        if ttt.empty:
            continue
        ttt = ttt[judged_ok(ttt)]
        title = f"Time to a trained model: {dataset_title(g)}, full batch, {dtype}, {form}" + \
            (f", l2={as_float(l2):g}" if as_float(l2) else "")
        lines = ["Each library's loops run to relative suboptimality (L−L*)/|L*| of 1e-4 and 1e-6 against "
                 "scikit-learn's optimum; L-BFGS and scikit-learn rows are judged by the optimum they reach "
                 "(no lockstep path), their points timed as measured (an L-BFGS iteration's end, a fit with "
                 "max_iter = 2^i), the others at step × time per step."]
        winners = {}
        for lib in dict.fromkeys(g.loc[g["status"] == "ok", "library"].dropna()):
            t = ttt[ttt["library"] == lib]
            parts = []
            for target in TTM_TARGETS:
                hit = t[(t["target"] == target) & t["time_s"].notna()].sort_values("time_s", kind="stable")
                if hit.empty:
                    tried = ", ".join(dict.fromkeys(t["optimizer"].dropna().astype(str))) or "none ran"
                    parts.append(f"{target:.0e} not reached by any of its loops ({tried})")
                    continue
                r = hit.iloc[0]
                winners.setdefault(target, []).append((r["time_s"], lib, r))
                unit = "fit" if r["optimizer"] == "solver" else "iteration" if r["optimizer"] == "lbfgs" else "step"
                point = f"max_iter {2 ** int(r['step'])}" if unit == "fit" else f"{unit} {int(r['step'])}"
                parts.append(f"{target:.0e} in **{format_time(r['time_s'])}** by {_loop(r)} ({point})")
            lines.append(f"{_label(lib)}: " + "; ".join(parts) + ".")
        lines.append(_gd_sentence(g, ttt))
        for target in TTM_TARGETS:
            if target in winners:
                t, lib, r = min(winners[target], key=lambda x: x[0])
                lines.append(f"First to {target:.0e}: **{_label(lib)}**, {_loop(r)} in {format_time(t)}.")
        s = _per_step_sentence(g, winners)
        if s:
            lines.append(s)
        out.append((title, lines))
    return out


def _gd_sentence(g: pd.DataFrame, ttt: pd.DataFrame) -> str:
    gd = g[(g["optimizer"] == "gd").fillna(False) & (g["status"] == "ok").fillna(False)]
    if gd.empty:
        return "Fixed-step gradient descent: no row ran in this block."
    steps = "/".join(str(int(k)) for k in sorted(set(gd["n_iters"].dropna())))
    lr = ", ".join(f"{as_float(x):.3g}" for x in dict.fromkeys(gd["lr"].dropna()))
    rel = (gd["suboptimality"].astype(float) / gd["optimum_loss"].astype(float).abs())
    best = gd.loc[rel.idxmin()] if rel.notna().any() else None
    reached = ttt[(ttt["optimizer"] == "gd") & ttt["time_s"].notna()]
    never = [t for t in TTM_TARGETS if not (reached["target"] == t).any()]
    text = f"Fixed-step gradient descent (lr {lr}, {steps} steps): "
    if len(never) == len(TTM_TARGETS):
        text += f"**never gets to {never[0]:.0e}** in its {steps} steps"
    elif never:
        text += f"reaches {', '.join(f'{t:.0e}' for t in TTM_TARGETS if t not in never)} but **never gets to " \
                f"{never[0]:.0e}** in its {steps} steps"
    else:
        text += "reaches every target"
    if best is not None and not math.isnan(float(rel.min())):
        text += f" (its best: {float(rel.min()):.1e} relative suboptimality, `{best['backend']}`)"
    return text + "."


def _per_step_sentence(g: pd.DataFrame, winners: dict) -> str | None:
    """The per-step answer (the fastest gradient-descent step that agrees with the oracle) beside the
    time-to-model answer: where the two verdicts differ."""
    good = g[correct_mask(g) & (g["optimizer"] == "gd").fillna(False)]
    last = TTM_TARGETS[-1]
    if good.empty or last not in winners:
        return None
    step = good.sort_values("time_per_iter_s", kind="stable").iloc[0]
    t, lib, r = min(winners[last], key=lambda x: x[0])
    same = str(step["library"]) == str(lib)
    return (f"Per step, the fastest gradient-descent loop here is `{step['backend']}` ({_label(step['library'])}, "
            f"{format_time(step['time_per_iter_s'])} per step); to a model at {last:.0e} it is {_label(lib)} "
            f"({_loop(r)}): " + ("the two verdicts agree on the library." if same else
                                 "**the verdicts differ** — the per-step race does not decide time to a model."))
