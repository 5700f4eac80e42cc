"""pytest-benchmark glue: shared references, and a tidy CSV (with every extra_info field) at the end.

pytest-benchmark's own ``compare --csv`` drops ``extra_info``; the CSV written here keeps it, one
row per benchmark, with the run id tying it to ``<run-id>.env.json``. Nothing is written when
timing is disabled (``--benchmark-disable``, as ``make test`` runs them).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
import pytest

from bench import records
from bench.data import init_params, load
from bench.equivalence import reference
from implementations import TrainConfig

STAT_FIELDS = ("min", "max", "mean", "median", "stddev", "iqr", "q1", "q3", "rounds", "ops")


@functools.lru_cache(maxsize=None)
def problem(dataset: str, seed: int = 0):
    ds = load(dataset, seed)
    w0, b0 = init_params(ds.d, seed, ds.init_scale)
    return ds, w0, b0


@functools.lru_cache(maxsize=None)
def reference_run(dataset: str, dtype: str, formulation: str, n_iters: int, lr: float):
    ds, w0, b0 = problem(dataset)
    return reference(ds.X, ds.y, w0, b0, TrainConfig(lr=lr, n_iters=n_iters, dtype=dtype, formulation=formulation))


@pytest.fixture(scope="session")
def host_bandwidth(request):
    """Measured once per session, only when timings are real."""
    if request.config.getoption("benchmark_disable", False):
        return None
    from bench.roofline import host_bandwidth as measure

    return measure()["host_read"]


def pytest_sessionfinish(session, exitstatus):
    bs = getattr(session.config, "_benchmarksession", None)
    if bs is None or bs.disabled:
        return
    done = [b for b in bs.benchmarks if b.stats is not None and b.stats.rounds]
    if not done:
        return
    run_id = records.new_run_id()
    rows = []
    for b in done:
        row = {"run_id": run_id, "name": b.name, "fullname": b.fullname, "group": b.group,
               "iterations": b.iterations}
        row.update({f"time_{k}_s" if k not in ("rounds", "ops") else k: getattr(b.stats, k)
                    for k in STAT_FIELDS})
        row.update(b.extra_info)
        rows.append(row)
    out = Path(session.config.getoption("bench_out"))
    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    records.write_csv(df, out / f"{run_id}.csv")
    records.write_csv(df, out / "latest.csv")
    records.write_json(records.environment(run_id, int(df["threads"].iloc[0]) if "threads" in df else 0),
                       out / f"{run_id}.env.json")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write_line(f"benchmark CSV: {out / (run_id + '.csv')} (and latest.csv), {len(df)} rows")
