"""The summary's tables, each built once as a DataFrame (``attrs``: title, column alignment) and
rendered twice: as markdown in ``summary.md`` (:func:`to_markdown`) and on the console
(:func:`to_rich`). Tables are views of the tidy rows: nothing here computes a statistic."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..atomic import write_text
from ..records import as_run
from .format import (
    agrees,
    as_float,
    backend_order,
    dataset_title,
    failing_metric,
    format_number,
    format_time,
    loop_title,
    md_cell,
)
from .stats import baseline_backend, failing_mask, first_to_target, judged_by_optimum, speed_vs_baseline, time_to_target
from .verdict import crossovers, verdict

HOW_TO_READ = (
    "How to read this. *Agrees with the oracle*: parameters and loss within the dtype's tolerance of a "
    "float64 reference run on the same data and init (it says the code is right, not that training "
    "has converged). *Correct*: ran and agrees. Ratios are of median times per step; the range divides "
    "the quartiles of the timed rounds crosswise (Q1/Q3 to Q3/Q1), a conservative spread: when it "
    "contains 1 the two are not told apart. Relative suboptimality is (L(θ_t) − L*)/|L*| with L* the "
    "scikit-learn optimum of the same objective (penalised when l2 > 0), checked at the recorded steps; "
    "time = step × median time per step.")


def _table(cells: list[list], columns: list[str], title: str = "", right: tuple[str, ...] = ()) -> pd.DataFrame:
    t = pd.DataFrame(cells, columns=columns).astype(object)
    t.attrs = {"title": title, "right": [c for c in columns if c in right]}
    return t


# ----------------------------------------------------------------------------------------------
# the tables

def _col_label(r, vary: dict[str, bool]) -> str:
    parts = [str(r["dataset"])]
    if vary["loop"]:
        parts.append("full" if r["loop"] == "full-batch" else
                     f"mini-batch {int(r['batch_size'])}" if pd.notna(r["batch_size"]) else str(r["loop"]))
    if vary["formulation"]:
        parts.append(str(r["formulation"]))
    if vary["l2"]:
        parts.append(f"l2={float(r['l2']):g}")
    if vary.get("optimizer"):  # part of a row's identity: gd and adam rows of one backend are two cells
        parts.append(str(r["optimizer"]))
    return " · ".join(parts)


def pivot_times(df: pd.DataFrame, dtype: str) -> pd.DataFrame:
    """Backend (× device when more than one) by dataset/loop/formulation: median time per step
    as text; ``✗`` marks a row that does not agree with the oracle, ``~`` a noisy one. The index
    is the backend; the first column of the rendered table."""
    ran_devices = set(df.loc[df["status"] != "skipped", "device"].dropna())
    if ran_devices:  # a device where nothing ran is in the verdict's "Not measured", not the pivot
        df = df[df["device"].isin(ran_devices)]
    g = df[(df["dtype"] == dtype) & ~judged_by_optimum(df)]  # an L-BFGS iteration or a solver's fit is not a step
    if g.empty:
        return pd.DataFrame()
    vary = {"loop": df["loop"].nunique() > 1 or df["batch_size"].nunique() > 1,
            "formulation": df["formulation"].nunique() > 1, "l2": df["l2"].nunique() > 1,
            "optimizer": df["optimizer"].nunique() > 1}
    multi_dev = df["device"].nunique() > 1
    cells: dict[str, dict[str, str]] = {}
    cols: list[str] = []
    for _, r in g.iterrows():
        col = _col_label(r, vary)
        if col not in cols:
            cols.append(col)
        row = f"{r['backend']} ({r['device']})" if multi_dev else str(r["backend"])
        if r["status"] == "ok":
            text = format_time(r["time_per_iter_s"])
            if r["noisy"] is True or str(r["noisy"]) == "True":
                text += " ~"
            if not agrees(r):
                text += " ✗"
        else:
            text = str(r["status"])
        cells.setdefault(row, {})[col] = text
    order = []
    for b in backend_order(g):
        order += [k for k in cells if k == b or k.startswith(f"{b} (")]
    table = pd.DataFrame.from_dict(cells, orient="index").reindex(index=order, columns=cols).fillna("—")
    table.index.name = "backend"
    table.attrs = {"title": f"Time per step, {dtype}", "right": cols}
    return table


def failing_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that do not agree with the oracle (or diverged, or failed), with the failing metric."""
    bad = df[failing_mask(df)]
    return _table([[r["backend"], r["device"], r["dataset"], loop_title(pd.DataFrame([r])), r["dtype"],
                    r["formulation"], failing_metric(r), r["status"], r["reason"]] for _, r in bad.iterrows()],
                  ["backend", "device", "dataset", "loop", "dtype", "formulation", "failing metric", "status",
                   "reason"], title="Rows that do not agree with the oracle")


def target_table(firsts: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, loop and target: the first correct row to get there."""
    return _table([[f["dataset"], f["loop"], f"{f['target']:.0e}",
                    "—" if pd.isna(f["backend"])
                    else f"{f['backend']} ({f['device']}, {f['dtype']}, {f['formulation']}"
                    + ("" if pd.isna(f.get("optimizer")) or f.get("optimizer") in (None, "gd")
                       else f", {f['optimizer']}")
                    + ")",
                    format_time(f["time_s"]), format_number(f["step"], "{:.0f}"), f"{f['reached']} of {f['cases']}"]
                   for _, f in firsts.iterrows()],
                  ["dataset", "loop", "target", "first", "time", "step", "rows reaching it"], title="Time to target")


def rows_table(g: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """Every row of one group (``g`` from :func:`speed_vs_baseline`), one line each."""
    cells = []
    for _, r in g.sort_values(["formulation", "l2", "optimizer", "device", "backend"]).iterrows():
        frac = r["compute_fraction"] if pd.notna(r["compute_fraction"]) else r["roofline_fraction"]
        frac_kind = " (compute)" if pd.notna(r["compute_fraction"]) else ""
        if as_float(r.get("n_classes")) >= 3 and pd.notna(r["roofline_fraction"]):  # softmax: the larger floor
            frac, frac_kind = r["roofline_fraction"], f" ({r['bound']})" if pd.notna(r.get("bound")) else ""
        cells.append([r["backend"], r["device"], r["formulation"], format_number(r["l2"], "{:g}"), str(r["optimizer"]),
                      format_time(r["time_per_iter_s"]) + (" ~" if str(r["noisy"]) == "True" else ""),
                      format_time(r["iqr_per_iter_s"]), format_number(r["vs_baseline"], "{:.2f}×"),
                      format_number(r["achieved_gbps"], "{:.2f}"),
                      format_number(frac, "{:.1%}") + (frac_kind if pd.notna(frac) else ""),
                      format_number(r["rel_dparam"], "{:.1e}"), format_number(r["rel_dloss"], "{:.1e}"),
                      format_number(r["tolerance"], "{:.1e}"),
                      "yes" if agrees(r) else (str(r["verdict"]) if str(r["verdict"]).startswith("n/a") else
                                                "no" if pd.notna(r["verdict"]) else "—"),
                      format_number(r["threads"], "{:.0f}"),
                      str(r["status"]) if r["status"] == "ok" else f"{r['status']}: {r['reason']}"])
    vs = f"vs {baseline or 'numpy'}"
    return _table(cells, ["backend", "device", "formulation", "l2", "optimizer", "time/step", "IQR", vs, "GB/s",
                          "of floor", "rel Δparam", "rel Δloss", "tol", "agrees with oracle", "threads", "status"],
                  right=("time/step", "IQR", vs, "GB/s", "of floor", "rel Δparam", "rel Δloss", "tol", "threads"))


# ----------------------------------------------------------------------------------------------
# the two renderings

def to_markdown(table: pd.DataFrame) -> list[str]:
    """A table as markdown lines (the index too when it is named, as a pivot's)."""
    t = table.reset_index() if table.index.name else table
    right = set(table.attrs.get("right", ()))
    header = [str(c) for c in t.columns]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if c in right else "---" for c in t.columns) + "|"]
    out += ["| " + " | ".join(md_cell(c) if c != "—" else c for c in row) + " |" for row in t.itertuples(index=False)]
    return out


def to_rich(table: pd.DataFrame, title: str | None = None):
    """The same table as a ``rich.table.Table``; a cell marked ``✗`` (does not agree) is red."""
    from rich.markup import escape
    from rich.table import Table

    t = table.reset_index() if table.index.name else table
    right = set(table.attrs.get("right", ()))
    out = Table(title=title if title is not None else table.attrs.get("title"))
    for c in t.columns:
        out.add_column(str(c), justify="right" if c in right else "left", overflow="fold")
    for row in t.itertuples(index=False):
        out.add_row(*[f"[red]{escape(str(v))}[/red]" if str(v).endswith("✗") else escape("—" if pd.isna(v) else str(v))
                      for v in row])
    return out


# ----------------------------------------------------------------------------------------------
# the summary: summary.md and the console

def _env_line(df: pd.DataFrame, env: dict | None) -> str:
    run_ids = list(dict.fromkeys(df["run_id"].dropna()))
    run_id = run_ids[0] if run_ids else (env or {}).get("run_id", "?")
    if not env:
        return f"Run `{run_id}`."
    cpu = env.get("cpu") or {}
    gpu = env.get("gpu") or {}
    v = env.get("versions") or {}
    libs = ", ".join(f"{k} {v[k]}" for k in ("numpy", "torch", "numba", "jax") if v.get(k))
    # env.json's gpu: a dict, None, or a string saying why it could not be read
    gpu_text = ", no GPU" if not gpu else f", GPU {gpu.get('name') if isinstance(gpu, dict) else gpu}"
    return (f"Run `{run_id}` on {cpu.get('model', '?')} ({cpu.get('logical_cores', '?')} logical cores)"
            f"{gpu_text}; {libs}; {env.get('threads', '?')} threads per library.")


PIVOT_NOTE = ("Median time per training step (`✗` = does not agree with the oracle, "
              "`~` = noisy: IQR > 10 % of the median).")


def summary_markdown(df: pd.DataFrame, losses: pd.DataFrame | None = None, env: dict | None = None) -> str:
    """Verdict first, then a pivot per dtype, rows that do not agree, time to target, all rows."""
    lines = ["# NumPy or PyTorch: the answer for this run", "", _env_line(df, env), "", "## Verdict", ""]
    for title, sentences in verdict(df, losses):
        lines += [f"**{title}**", ""] + [f"- {x}" for x in sentences] + [""]
    lines += [HOW_TO_READ, ""]
    for dtype in list(dict.fromkeys(df["dtype"].dropna())):
        p = pivot_times(df, dtype)
        if p.empty:
            continue
        lines += [f"## {p.attrs['title']}", "", PIVOT_NOTE, ""] + to_markdown(p) + [""]
    bad = failing_table(df)
    lines += [f"## {bad.attrs['title']}", ""]
    lines += (["None: every row that ran agrees with the float64 oracle."] if bad.empty else to_markdown(bad)) + [""]
    if losses is not None and not losses.empty:
        firsts = first_to_target(time_to_target(df, losses))
        if len(firsts):
            t = target_table(firsts)
            lines += [f"## {t.attrs['title']}", "",
                      "First row agreeing with the oracle to reach each relative suboptimality; every row's "
                      "figure is in `time_to_target.csv` (empty where the run never got there).", ""]
            lines += to_markdown(t) + [""]
    lines += ["## All rows", ""]
    s = speed_vs_baseline(df)
    baseline = baseline_backend(df)
    for (_ds, _loop, dtype), g in s.groupby(["dataset", "loop", "dtype"], sort=False):
        k = sorted({int(x) for x in g["n_iters"].dropna()})
        lines += [f"### {dataset_title(g)}, {loop_title(g)}, {dtype}, {'/'.join(map(str, k))} steps", ""]
        lines += to_markdown(rows_table(g, baseline)) + [""]
    lines += ["## GPU/CPU crossover", ""] + [f"- {x}" for x in crossovers(df)]
    return "\n".join(lines)


def print_summary(df: pd.DataFrame, console=None, losses: pd.DataFrame | None = None, env: dict | None = None) -> None:
    """The console version: the verdict, then one pivot per dtype, then rows that do not agree —
    the same tables as ``summary.md`` (whose long per-row tables stay in the file). The frames may
    be a live run's: they are read through :func:`bench.records.as_run` first."""
    from rich.console import Console

    console = console or Console()
    df, losses, _ = as_run(df, losses)

    def rich(text: str) -> str:
        text = text.replace("[", "\\[")
        text = re.sub(r"\*\*(.+?)\*\*", r"[bold]\1[/bold]", text)
        return re.sub(r"`([^`]+)`", r"[cyan]\1[/cyan]", text)

    console.print(f"[bold]Verdict[/bold] — {rich(_env_line(df, env))}")
    for title, sentences in verdict(df, losses):
        console.print(f"\n[bold underline]{rich(title)}[/bold underline]")
        for x in sentences:
            console.print(f"  • {rich(x)}")
    for dtype in list(dict.fromkeys(df["dtype"].dropna())):
        p = pivot_times(df, dtype)
        if not p.empty:
            console.print(to_rich(p, f"{p.attrs['title'].lower()} (✗ does not agree with the oracle, ~ noisy)"))
    bad = failing_table(df)
    if len(bad):
        console.print(to_rich(bad, bad.attrs["title"].lower()))


def write_summary(df: pd.DataFrame, path: Path, losses: pd.DataFrame | None = None, env: dict | None = None) -> None:
    write_text(summary_markdown(df, losses, env) + "\n", path)
