"""pytest-benchmark glue: one shared Evaluator (the pipeline's), and a CSV at the session's end.

Each benchmark's row is built by ``bench.measure.Evaluator.evaluate`` — the same code as
``python -m bench run`` — and stored whole in ``extra_info``. The CSV written here has every
``runs.csv`` column (``bench.records.SCHEMA``, in that order) followed by pytest-benchmark's own
statistics, one row per benchmark. Nothing is written when timing is disabled
(``--benchmark-disable``, as ``make test`` runs them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import atomic, records
from bench.cases import RunOptions
from bench.env import environment
from bench.measure import Evaluator

STAT_FIELDS = ("min", "max", "mean", "median", "stddev", "iqr", "q1", "q3", "rounds", "ops")
RUN_ID = records.new_run_id()


@pytest.fixture(scope="session")
def evaluator(request):
    """The floor and roof are measured once per session, only when timings are real."""
    figures = {}
    if not request.config.getoption("benchmark_disable", False):
        from bench.roofline import measure_roofline

        figures = measure_roofline(("cpu",))
    return Evaluator(RUN_ID, RunOptions(), roofline=figures, max_problems=8)  # parametrization interleaves datasets


def pytest_sessionfinish(session, exitstatus):
    bs = getattr(session.config, "_benchmarksession", None)
    if bs is None or bs.disabled:
        return
    done = [b for b in bs.benchmarks if b.stats is not None and b.stats.rounds and "row" in b.extra_info]
    if not done:
        return
    rows = []
    for b in done:
        stats = {f"bench_{k}_s" if k not in ("rounds", "ops") else f"bench_{k}": getattr(b.stats, k)
                 for k in STAT_FIELDS}
        rows.append({**b.extra_info["row"], "bench_name": b.name, "bench_group": b.group, **stats})
    out = Path(session.config.getoption("bench_out"))
    out.mkdir(parents=True, exist_ok=True)
    df = records.to_frame(rows, extra_ok=True)
    atomic.write_csv(df, out / f"{RUN_ID}.csv")
    atomic.write_csv(df, out / "latest.csv")
    atomic.write_json(environment(RUN_ID), out / f"{RUN_ID}.env.json")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write_line(f"benchmark CSV: {out / (RUN_ID + '.csv')} (and latest.csv), {len(df)} rows")
