"""The verdict: per dataset × loop, the answer in sentences (markdown; ``**`` for bold).

Who is who comes from each row's declared attributes: "NumPy vs PyTorch" compares the best correct
row whose ``library`` is ``numpy`` with the best whose ``library`` is ``torch``, and names each
backend with what it is (engine, gradient, how the loop is written).

Definitions: *agrees with the oracle* — the row's ``verdict`` is ``pass`` (parameters and loss
within the dtype's tolerance of the float64 reference on the same data and init; it answers "is it
right?", not "is it the answer?"). *Correct* — status ``ok`` and agrees with the oracle; only
correct rows can be "fastest".
"""

from __future__ import annotations

import math

import pandas as pd

from .. import sparse_sweep
from .format import (
    as_float,
    backend_at,
    backend_order,
    cause_of,
    dataset_title,
    failing_metric,
    format_time,
    groups,
    library_label,
    loop_title,
    md_cell,
    named,
    row_setting,
    what,
)
from .stats import (
    baseline_backend,
    correct_mask,
    failing_mask,
    few_rounds_phrase,
    first_to_target,
    judged_by_optimum,
    quartiles,
    ratio_with_range,
    time_to_target,
    too_few_rounds,
)
from .time_to_model import time_to_model_verdict

MINI_BATCH_NOTE = ("Mini-batch rows record the loss of each step's batch (noisy); their suboptimality and time to "
                   "target use the full-data objective along the float64 oracle's path over the same batches, "
                   "which each row agrees with within its tolerance.")


def verdict(df: pd.DataFrame, losses: pd.DataFrame | None = None) -> list[tuple[str, list[str]]]:
    """Per dataset × loop: a title and the answer in sentences (markdown; ``**`` for bold)."""
    ttt = time_to_target(df, losses) if losses is not None and not losses.empty else None
    firsts = first_to_target(ttt) if ttt is not None and len(ttt) else None
    baseline = baseline_backend(df)
    out = []
    for ds, loop, g in groups(df):
        title = _title(g)
        lines = [_agreement_sentence(g[~judged_by_optimum(g)]) + _judged_note(g)]
        not_run = g[~g["status"].isin(["ok", "diverged", "failed"])]
        if len(not_run):
            parts = []
            for (who, status, reason), h in not_run.assign(_who=not_run.apply(backend_at, axis=1, with_device=True)) \
                    .groupby(["_who", "status", not_run["reason"].fillna("no reason recorded")], sort=False):
                parts.append(f"`{who}` ({len(h)} row{'s' if len(h) > 1 else ''}): {status} — {md_cell(reason)}")
            lines.append("Not measured: " + "; ".join(parts) + ".")
        lines += _answer_lines(g, baseline)
        if firsts is not None:
            s = _target_sentence(firsts[(firsts["dataset"] == ds) & (firsts["loop"] == loop)], g)
            if s:
                lines.append(s)
        if loop == "mini-batch":
            lines.append(MINI_BATCH_NOTE)
        out.append((title, lines))
    soft = softmax_verdict(df)
    if soft:
        out.append((SOFTMAX_TITLE, soft))
    out += time_to_model_verdict(df, losses)  # a block wherever L-BFGS / solver rows ran
    out += sparse_sweep.verdict_block(df)  # a block wherever a density sweep ran (CSR and dense rows)
    return out


def headlines(df: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """The answer alone, per dataset × loop: the title and, per device, the fastest correct row and
    NumPy vs PyTorch per dtype -- the very sentences of :func:`verdict` (the console ends with them)."""
    baseline = baseline_backend(df)
    return [(_title(g), _answer_lines(g, baseline)) for _ds, _loop, g in groups(df)]


def _title(g: pd.DataFrame) -> str:
    return f"{dataset_title(g)}, {loop_title(g)}"


def _answer_lines(g: pd.DataFrame, baseline: str | None) -> list[str]:
    """Per device the row ran on: the fastest correct row, then NumPy vs PyTorch per dtype."""
    good = g[correct_mask(g)]
    ran = g[g["status"].isin(["ok", "diverged", "failed"])]
    lines = []
    for device in sorted(set(ran["device"].dropna())):
        lines.append(_fastest_sentence(good[good["device"] == device], device, baseline))
        for dtype in list(dict.fromkeys(good.loc[good["device"] == device, "dtype"])):
            s = _library_sentence(good[(good["device"] == device) & (good["dtype"] == dtype)], device, dtype)
            if s:
                lines.append(s)
    return lines


def _judged_note(g: pd.DataFrame) -> str:
    """L-BFGS and solver rows have no lockstep path to agree with: say how they were judged instead."""
    j = g[judged_by_optimum(g) & g["status"].isin(["ok", "diverged", "failed"])]
    if j.empty:
        return ""
    passed = int((j["verdict"] == "pass").fillna(False).sum())
    return (f" {len(j)} L-BFGS/solver row{'s' if len(j) > 1 else ''} "
            f"({', '.join(f'`{b}`' for b in backend_order(j))}) "
            f"follow{'' if len(j) > 1 else 's'} no lockstep path and {'are' if len(j) > 1 else 'is'} judged by the "
            f"optimum reached instead: {passed} of {len(j)} within the dtype's relative suboptimality "
            "(1e-6 in float64).")


def _agreement_sentence(g: pd.DataFrame) -> str:
    ran = g[g["status"].isin(["ok", "diverged", "failed"])]
    bad = ran[failing_mask(ran)]
    backends = ", ".join(f"`{b}`" for b in backend_order(ran))
    if ran.empty:
        return "No row ran."
    if bad.empty:
        return f"All {len(ran)} rows that ran agree with the float64 oracle ({backends})."
    agreeing = ran[~failing_mask(ran)]
    text = (f"{len(agreeing)} of {len(ran)} rows agree with the float64 oracle; "
            f"**{len(bad)} {'does' if len(bad) == 1 else 'do'} not**: ")
    parts = []
    for (cfg, cause), h in bad.assign(_cfg=bad.apply(row_setting, axis=1), _cause=bad["reason"].map(cause_of)) \
            .groupby(["_cfg", "_cause"], sort=False):
        who = ", ".join(f"`{backend_at(r, True)}`" for _, r in h.iterrows())
        metric = failing_metric(h.iloc[0])
        same = cause.split(" from ")[0] in metric  # e.g. "non-finite ..." says nothing new
        parts.append(f"{who} ({cfg}: {metric})" + ("" if same else f" — {cause}"))
    return text + "; ".join(parts) + "."


def _fraction_phrase(r) -> str:
    cf, rf = as_float(r["compute_fraction"]), as_float(r["roofline_fraction"])
    if str(r.get("storage")) == "csr" and not math.isnan(rf):  # sparse: memory-bound at any size (bench.roofline)
        if rf > 1:
            return (f"{rf:.1%} of the CSR memory floor: its matrix fits in cache, so the gathers' latency, not DRAM "
                    "bandwidth, bounds it")
        near = ("near the memory bound" if rf >= 0.5 else
                "far from it: bound by its gathers, scatters and per-call overhead, not by bandwidth")
        return f"{rf:.1%} of the CSR memory floor (values and indices read for X w and again for Xᵀ r; {near})"
    if as_float(r.get("n_classes")) >= 3 and not math.isnan(rf):  # softmax out of cache: the larger floor (bound)
        which = "compute" if str(r.get("bound")) == "compute" else "memory-bandwidth"
        return f"{rf:.1%} of its floor (the {which} floor: a K-class step does 4·m·d·K flops per read of X)"
    if not math.isnan(cf):
        return f"{cf:.1%} of the compute floor (its data fit in cache)"
    if not math.isnan(rf):
        return f"{rf:.1%} of the memory-bandwidth floor"
    return ""


def _same_setting(df: pd.DataFrame, r) -> pd.Series:
    return ((df["formulation"] == r["formulation"]) & (df["l2"] == r["l2"])
            & (df["optimizer"].fillna("gd") == (r["optimizer"] if pd.notna(r["optimizer"]) else "gd"))
            & (df["batch_size"].fillna(-1) == (-1 if pd.isna(r["batch_size"]) else r["batch_size"]))).fillna(False)


def _fastest_sentence(good: pd.DataFrame, device: str, baseline: str | None) -> str:
    if good.empty:
        return f"Fastest correct on {device}: none — no row on {device} ran and agreed with the oracle."
    best = good.sort_values("time_per_iter_s", kind="stable").iloc[0]
    q1, med, q3 = quartiles(best)
    desc = what(best)
    text = (f"Fastest correct on {device}: **{best['backend']}**{f' ({desc})' if desc else ''} "
            f"in {row_setting(best)} at {format_time(med)} per step (IQR {format_time(q3 - q1)})")
    base = good[(good["backend"] == baseline) & (good["dtype"] == best["dtype"]) & _same_setting(good, best)]
    if baseline is not None and best["backend"] != baseline and len(base):
        r, lo, hi = ratio_with_range(base.iloc[0], best)
        few = too_few_rounds(base.iloc[0], best)
        text += (f", {r:.2f}× faster than `{baseline}` in the same setting "
                 + (f"({few_rounds_phrase(few)})" if few else f"(range {lo:.2f}–{hi:.2f}×)"))
    frac = _fraction_phrase(best)
    return text + (f"; it runs at {frac}." if frac else ".")


def _library_sentence(good: pd.DataFrame, device: str, dtype: str) -> str | None:
    """Best ``library == numpy`` row vs best ``library == torch`` row in the setting of the fastest
    correct row."""
    if good.empty:
        return None
    lead = good.sort_values("time_per_iter_s", kind="stable").iloc[0]
    same = good[_same_setting(good, lead)]
    npy = same[(same["library"] == "numpy").fillna(False)].sort_values("time_per_iter_s", kind="stable")
    pt = same[(same["library"] == "torch").fillna(False)].sort_values("time_per_iter_s", kind="stable")
    NP, PT = library_label("numpy"), library_label("torch")
    setting = f"{dtype}, {lead['formulation']}" + (f", l2={as_float(lead['l2']):g}" if as_float(lead["l2"]) else "") \
        + (f", batch {int(lead['batch_size'])}" if pd.notna(lead["batch_size"]) else "")
    if npy.empty or pt.empty:
        missing = NP if npy.empty else PT
        return f"{NP} vs {PT} on {device} ({setting}): no correct {missing} row to compare."
    a, b = npy.iloc[0], pt.iloc[0]
    r, lo, hi = ratio_with_range(a, b)  # NumPy time / PyTorch time: > 1 means PyTorch is faster
    if r >= 1:
        winner, ratio, rng = PT, r, (lo, hi)
    else:
        winner, ratio, rng = NP, 1 / r, (1 / hi if hi else math.nan, 1 / lo if lo else math.inf)
    tie = " — the ranges overlap, so not told apart" if rng[0] <= 1 else ""
    few = too_few_rounds(a, b)
    spread = f" ({few_rounds_phrase(few)})" if few else f" (quartile range {rng[0]:.2f}–{rng[1]:.2f}×){tie}"
    return (f"{NP} vs {PT} on {device} ({setting}): best {NP} {named(a)} {format_time(a['time_per_iter_s'])}, "
            f"best {PT} {named(b)} {format_time(b['time_per_iter_s'])}: "
            f"**{winner} {ratio:.2f}× faster**{spread}.")


def _target_sentence(firsts: pd.DataFrame, g: pd.DataFrame) -> str | None:
    if firsts.empty:
        return None
    parts, never = [], []
    for _, f in firsts.iterrows():
        if f["backend"] is None or pd.isna(f["backend"]):
            never.append(f"{f['target']:.0e}")
        else:
            opt = "" if pd.isna(f.get("optimizer")) or f.get("optimizer") in (None, "gd") else f", {f['optimizer']}"
            parts.append(f"{f['target']:.0e} first by **{f['backend']}** ({f['dtype']}, {f['formulation']}{opt}) in "
                         f"{format_time(f['time_s'])} (step {int(f['step'])}; {f['reached']} of {f['cases']} rows "
                         "get there)")
    text = "Time to relative suboptimality (L−L*)/L*: " + "; ".join(parts) if parts else \
        "Time to relative suboptimality (L−L*)/L*: no row agreeing with the oracle reaches any target"
    if never and parts:
        steps = sorted({int(x) for x in g["n_iters"].dropna()})
        text += f"; {', '.join(never)} not reached by any correct row in {'/'.join(map(str, steps))} steps"
    return text + "."


SOFTMAX_TITLE = "Softmax (K classes): NumPy or PyTorch, and does the answer change from the binary model?"


def _answer(a, b) -> tuple[str, float, tuple[float, float], bool]:
    """Best NumPy row ``a`` against best PyTorch row ``b``: the faster library's label, how many times
    faster, the crosswise quartile range of that ratio, and whether the range contains 1 (a tie)."""
    r, lo, hi = ratio_with_range(a, b)  # NumPy time / PyTorch time: > 1 means PyTorch is faster
    if r >= 1:
        return library_label("torch"), r, (lo, hi), lo <= 1
    rng = (1 / hi if hi else math.nan, 1 / lo if lo else math.inf)
    return library_label("numpy"), 1 / r, rng, rng[0] <= 1


def _best_pair(rows: pd.DataFrame):
    """The fastest correct NumPy row and the fastest correct PyTorch row of ``rows`` (None if missing)."""
    good = rows[correct_mask(rows)]
    npy = good[(good["library"] == "numpy").fillna(False)].sort_values("time_per_iter_s", kind="stable")
    pt = good[(good["library"] == "torch").fillna(False)].sort_values("time_per_iter_s", kind="stable")
    return (npy.iloc[0] if len(npy) else None), (pt.iloc[0] if len(pt) else None)


def _binary_twin(df: pd.DataFrame, g: pd.DataFrame) -> pd.DataFrame:
    """The binary full-batch rows of the run with the same shape (n, d) as the K-class rows ``g``;
    for ``iris-3class`` (150 rows) with none, the seed's binary ``iris`` (100 of those rows, 2 classes)."""
    binary = df[(df["n_classes"].fillna(2) < 3) & (df["loop"] == "full-batch")]
    r = g.iloc[0]
    twin = binary[(binary["n"] == r["n"]) & (binary["d"] == r["d"])]
    if twin.empty and str(r["dataset"]).startswith("iris-3class"):
        twin = binary[binary["dataset"] == str(r["dataset"]).replace("iris-3class", "iris", 1)]
    return twin


def softmax_verdict(df: pd.DataFrame) -> list[str]:
    """The softmax block's verdict: per K-class dataset (full batch), device, dtype and
    formulation, NumPy's best correct row against PyTorch's best, and whether that answer is the one
    the binary model gives on the same shape in the same run (same device, dtype, formulation, l2)."""
    k_rows = df[(df["n_classes"].fillna(2) >= 3) & (df["loop"] == "full-batch") & df["status"].isin(["ok"])]
    if "optimizer" in k_rows:  # plain gradient descent, the seed's: the block's rows
        k_rows = k_rows[k_rows["optimizer"].fillna("gd") == "gd"]
    NP, PT = library_label("numpy"), library_label("torch")
    lines = []
    for ds in dict.fromkeys(k_rows["dataset"]):
        g = k_rows[k_rows["dataset"] == ds]
        twin = _binary_twin(df, g)
        if "optimizer" in twin:
            twin = twin[twin["optimizer"].fillna("gd") == "gd"]
        k = int(as_float(g["n_classes"].iloc[0]))
        for (device, dtype, form, l2), h in g.groupby(["device", "dtype", "formulation", "l2"], sort=False,
                                                      dropna=False):
            setting = f"{dtype}, {form}" + (f", l2={as_float(l2):g}" if as_float(l2) else "")
            head = f"{dataset_title(h)}, K={k}, on {device} ({setting})"
            a, b = _best_pair(h)
            if a is None or b is None:
                missing = NP if a is None else PT
                lines.append(f"{head}: no correct {missing} row to compare.")
                continue
            winner, ratio, rng, tie = _answer(a, b)
            few = too_few_rounds(a, b)
            tie = tie or bool(few)
            spread = (few_rounds_phrase(few) if few else
                      f"quartile range {rng[0]:.2f}–{rng[1]:.2f}×{', not told apart' if tie else ''}")
            text = (f"{head}: best {NP} {named(a)} {format_time(a['time_per_iter_s'])}, best {PT} {named(b)} "
                    f"{format_time(b['time_per_iter_s'])} per step: **{winner} {ratio:.2f}× faster** ({spread})")
            frac = _fraction_phrase(b if winner == PT else a)
            if frac:
                text += f"; the winner runs at {frac}"
            t = twin[(twin["device"] == device) & (twin["dtype"] == dtype) & (twin["formulation"] == form)
                     & (twin["l2"].fillna(0) == (as_float(l2) if not math.isnan(as_float(l2)) else 0))]
            if t.empty:
                lines.append(text + ". Binary model on the same shape: no such row in this run.")
                continue
            ba, bb = _best_pair(t)
            bname = f"`{t['dataset'].iloc[0]}`"
            if ba is None or bb is None:
                lines.append(text + f". Binary {bname} ({setting}): no correct "
                                    f"{NP if ba is None else PT} row to compare.")
                continue
            bwinner, bratio, _, btie = _answer(ba, bb)
            btie = btie or bool(too_few_rounds(ba, bb))
            if bwinner == winner:
                same = "the same answer"
            else:
                same = "**the answer flips**" + (" (one of the two is within noise)" if tie or btie else "")
            lines.append(text + f". Binary {bname} ({setting}): {NP if bwinner == NP else PT} {bratio:.2f}× faster"
                                f"{' (not told apart)' if btie else ''}; K={k}: {winner} {ratio:.2f}× faster — {same}.")
    return lines


def crossovers(df: pd.DataFrame) -> list[str]:
    """Per backend, dtype, formulation and loop: the smallest n at which its GPU row beats its CPU row."""
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
        where = (f"n >= {int(faster['n'].iloc[0])} (d={int(faster['d'].iloc[0])})" if len(faster)
                 else "never in this run")
        lines.append(f"GPU/CPU crossover, {backend} {dtype} {form} {loop}: {dev} faster from {where}")
    return lines
