"""Views of the tidy tables (``runs.csv`` rows, ``losses.csv`` curves): verdict-first summary,
time to accuracy, and the plots. :func:`write_report` is the one entry point.

Everything here takes pandas DataFrames and the ``env.json`` dict, never the harness's objects, so
the harness can change underneath. The frames are a :class:`bench.records.Run`'s, as
:func:`bench.records.read_run` (a saved folder, older formats included) or
:func:`bench.records.as_run` (frames in memory) give them; only :func:`write_report` and
:func:`print_summary`, which the harness calls with a live run's frames, read them through
``as_run`` themselves. What a backend is comes from its row's declared attributes (``library``,
``gradient``, ``engine``, ``compiled``, ``style``), never from its name.

- :mod:`.stats` — quartiles, ratios with their crosswise range, correct rows, the baseline, time to target;
- :mod:`.verdict` — the verdict's sentences;
- :mod:`.tables` — each table built once, rendered as markdown (``summary.md``) and on the console;
- :mod:`.plots` — the PNGs;
- :mod:`.format` — numbers, times and the words for a row.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import sparse_sweep
from ..atomic import write_atomic
from ..records import LOSS_COLUMNS, as_run
from ..targets import TARGETS
from .format import backend_order, format_time, what
from .plots import looks, plot_loss_vs_oracle, plot_speed_vs_numpy, plot_suboptimality, plot_time_vs_n, slug, style
from .stats import (
    baseline_backend,
    correct_mask,
    failing_mask,
    first_to_target,
    quartiles,
    ratio_with_range,
    round_times_per_step,
    speed_vs_baseline,
    speed_vs_numpy_frame,
    suboptimality_curves,
    time_to_target,
)
from .tables import (
    failing_table,
    pivot_times,
    print_summary,
    rows_table,
    summary_markdown,
    target_table,
    to_markdown,
    to_rich,
    write_summary,
)
from .verdict import crossovers, headlines, verdict


def write_report(rows_df: pd.DataFrame, losses_df: pd.DataFrame | None, env: dict | None, out_folder) -> list[Path]:
    """Write ``summary.md``, ``time_to_target.csv`` and every plot into ``out_folder``; return the
    paths written (a plot with nothing to show is not written). ``runs.csv``/``losses.csv`` are the
    caller's; the frames may be a live run's (they are read through :func:`bench.records.as_run`)."""
    out = Path(out_folder)
    out.mkdir(parents=True, exist_ok=True)
    rows, losses, _ = as_run(rows_df, losses_df)
    written: list[Path] = []
    write_summary(rows, out / "summary.md", losses, env)
    written.append(out / "summary.md")
    ttt = time_to_target(rows, losses)
    write_atomic(out / "time_to_target.csv", lambda tmp: ttt.to_csv(tmp, index=False))
    written.append(out / "time_to_target.csv")
    written += sparse_sweep.write(rows, out)  # sparse_vs_dense.csv / .png where a density sweep ran
    floor = ((env or {}).get("roofline") or {}).get("host_read")
    ok = rows[(rows["status"] == "ok") & rows["time_per_iter_s"].notna()]
    if ok.groupby("d")["n"].nunique().max() >= 2 and \
            plot_time_vs_n(rows, out / "time_vs_n.png", floor_gbps=floor, env=env):  # a line needs two sizes
        written.append(out / "time_vs_n.png")
    # the density sweep's rows have their own picture (sparse_vs_dense.png): twelve more groups would
    # make these panels unreadable
    sweep = rows["dataset"].astype(str).isin(sparse_sweep.sweep_datasets())
    if plot_speed_vs_numpy(rows[~sweep], out / "speed_vs_numpy.png", env=env):
        written.append(out / "speed_vs_numpy.png")
    for ds in dict.fromkeys(rows.loc[~sweep, "dataset"].dropna()):  # the sweep's 10-step rows: no curve to read
        path = out / f"suboptimality_{slug(ds)}.png"
        if plot_suboptimality(rows, losses, path, ds, env=env):
            written.append(path)
    if plot_loss_vs_oracle(rows, losses, out / "loss_vs_oracle.png", env=env):
        written.append(out / "loss_vs_oracle.png")
    return written


__all__ = [
    "LOSS_COLUMNS", "TARGETS", "backend_order", "baseline_backend", "correct_mask", "crossovers", "failing_mask",
    "failing_table", "first_to_target", "format_time", "headlines", "looks", "pivot_times",
    "plot_loss_vs_oracle", "plot_speed_vs_numpy", "plot_suboptimality", "plot_time_vs_n", "print_summary",
    "quartiles", "ratio_with_range", "round_times_per_step", "rows_table", "speed_vs_baseline",
    "speed_vs_numpy_frame", "style", "suboptimality_curves", "summary_markdown", "target_table", "time_to_target",
    "to_markdown", "to_rich", "verdict", "what", "write_report", "write_summary",
]
