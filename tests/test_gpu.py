"""The GPU half, tested on the CPU: the crossover analysis on a recorded FAKE fixture
(tests/data/gpu-fixture/, made-up numbers, never a measurement), the plan and the budget logic, the
CUDA-event fields, and the smoke run ``python -m bench gpu --devices cpu --smoke`` (every stage and
backend). The deadline, the endings and the CUDA skip decisions: tests/test_gpu_endings.py."""

from __future__ import annotations

import json
import math
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import cli, crossover
from bench.gpu import command, plan, stages
from bench.records import SCHEMA
from bench.timing import Measurement, _CudaEvents

FIXTURE = Path(__file__).parent / "data" / "gpu-fixture"


@pytest.fixture(scope="module")
def fixture_rows():
    df = pd.read_csv(FIXTURE / "runs.csv")
    assert (df["run_id"] == "FIXTURE-not-a-measurement").all()  # the fixture says what it is
    return df


@pytest.fixture(scope="module")
def table(fixture_rows):
    return crossover.crossover_table(fixture_rows)


# -- the crossing itself --------------------------------------------------------------------------

def test_crossing_interpolates_in_log_log():
    # t_cpu = n * 1e-6, t_gpu = 1e-4: equal at n = 100 exactly, between the measured 10 and 1000
    n = [10, 1000, 1e5]
    res = crossover.crossing(n, [1e-4] * 3, [x * 1e-6 for x in n])
    assert res["status"] == "crosses"
    assert res["n_cross"] == pytest.approx(100, rel=1e-9)
    assert (res["n_below"], res["n_above"]) == (10, 1000)


def test_crossing_power_laws_meet_where_they_should():
    # two straight lines in log-log: 1e-5 * n^0.2 and 1e-8 * n^1.0 meet at n = 1e3^(1/0.8)
    n = np.array([1e2, 1e3, 1e4, 1e5])
    res = crossover.crossing(n, 1e-5 * n**0.2, 1e-8 * n)
    assert res["n_cross"] == pytest.approx(1e3 ** (1 / 0.8), rel=1e-9)


def test_crossing_edges():
    assert crossover.crossing([1, 10], [1, 1], [2, 2])["status"] == "gpu-faster-throughout"
    never = crossover.crossing([1, 10, 100], [3, 3, 3], [1, 2, 2.9])
    assert never["status"] == "not-within-range" and math.isnan(never["n_cross"])
    assert crossover.crossing([10], [1], [2])["status"] == "too-few-points"
    # faster, slower again, then faster for good: the last change counts (faster from there on)
    res = crossover.crossing([1, 10, 100, 1000], [1, 3, 3, 1], [2, 2, 4, 4])
    assert res["status"] == "crosses" and 10 < res["n_cross"] < 100
    # unordered input is sorted first
    assert crossover.crossing([1000, 10], [1e-4, 1e-4], [1e-3, 1e-5])["n_cross"] == pytest.approx(100)


# -- the table, the verdicts, the plot on the fixture -----------------------------------------------

def test_table_on_fixture(table):
    assert list(table.columns) == crossover.CROSSOVER_COLUMNS
    t100 = table[table["d"] == 100]
    # every cuda backend of the fixture, both dtypes, both comparisons
    assert set(t100["backend"]) == {"numpy", "torch", "torch-manual", "torch-compiled", "jax"}
    assert len(t100) == 5 * 2 * 2
    crosses = t100[t100["status"] == "crosses"]
    assert ((crosses["n_cross"] > crosses["n_below"]) & (crosses["n_cross"] < crosses["n_above"])).all()
    best = t100[t100["against"] == "best-cpu"]
    assert set(best["against_backend"]) == {"numpy-fused"}  # the fastest host row of the fixture
    # the GPU row must beat the best CPU row later than (or where) it beats its own CPU row
    for _, g in crosses.groupby(["backend", "dtype"]):
        own, bst = g.set_index("against").loc["own-cpu", "n_cross"], g.set_index("against").loc["best-cpu", "n_cross"]
        assert bst >= own
    jax = t100[t100["backend"] == "jax"]
    assert set(jax["status"]) == {"not-within-range"}
    # d = 10 and 1000 at n = 1e5 are one point each: too few to cross, but present
    assert set(table[table["d"] != 100]["status"]) == {"too-few-points"}


def test_failed_and_skipped_rows_are_ignored(fixture_rows, table):
    # the fixture's failed torch@cuda row claims 1e-9 s at n = 1000; an ok row there says otherwise
    pts = crossover._points(fixture_rows)
    t = pts[(pts["backend"] == "torch") & (pts["kind"] == "cuda") & (pts["dtype"] == "float32") & (pts["n"] == 1000)]
    assert len(t) == 1 and t["t"].iloc[0] > 1e-6


def test_verdicts(table):
    lines = crossover.verdicts(table)
    assert len(lines) == 5 * 2
    torch32 = next(x for x in lines if x.startswith("on this machine `torch` on the GPU (float32"))
    assert "overtakes its CPU row at n ≈ " in torch32
    assert "the best CPU row (`numpy-fused`) at n ≈ " in torch32
    assert "launch and synchronisation overhead dominate" in torch32
    jax = next(x for x in lines if "`jax`" in x and "float32" in x)
    assert "not within the measured range" in jax
    assert crossover._n(31622.7) == "3.2e4" and crossover._n(483) == "483"


def test_plot_and_write(tmp_path, fixture_rows):
    figures = json.loads((FIXTURE / "floors.json").read_text())
    t, lines = crossover.write(fixture_rows, figures, tmp_path, title_note="FAKE fixture: not a measurement")
    assert (tmp_path / "crossover.png").stat().st_size > 1000
    back = pd.read_csv(tmp_path / "crossover.csv")
    assert list(back.columns) == crossover.CROSSOVER_COLUMNS and len(back) == len(t)
    assert lines
    fl = crossover.floor_seconds([1e6], 100, "float32", 4000.0)
    assert fl[0] == pytest.approx(4 * (1e8 + 1e6 + 202) / 4e12)
    assert crossover.plot_crossover(fixture_rows.iloc[:0], figures, tmp_path / "none.png") is None


# -- the plan and the budget ----------------------------------------------------------------------

def test_plan_fits_eight_minutes():
    full = plan.FULL
    assert sum(full["plan"].values()) < full["hard_limit"] <= 450  # packing after the hard deadline: < 480 s
    chunks = plan.sweep_chunks()
    main = [(ds, dt) for g, ds, dt in chunks if g == "main"]
    # the question first: float32 over n at d = 100, then float64, then d, then the largest n
    assert main[:5] == [(f"synthetic-{n}x100", "float32") for n in ("100", "1k", "10k", "100k", "1M")]
    assert main[5:10] == [(f"synthetic-{n}x100", "float64") for n in ("100", "1k", "10k", "100k", "1M")]
    assert {ds for ds, _ in main[10:14]} == {"synthetic-100kx10", "synthetic-100kx1000"}
    assert main[-2:] == [("synthetic-10Mx100", "float32"), ("synthetic-10Mx100", "float64")]
    assert [(ds, dt) for g, ds, dt in chunks if g == "compiled"] == main  # torch-compiled: a second pass
    assert plan.sweep_iters(100, 100) == 1000 and plan.sweep_iters(10_000_000, 100) == 10
    assert plan.sweep_iters(1_000_000, 100) == 20 and plan.sweep_iters(100_000, 100) == 50
    assert len(plan.OWNED) <= 8


def test_smoke_plan_takes_every_stage_and_group():
    full, smoke = plan.sweep_chunks(), plan.sweep_chunks(smoke=True)
    assert {g for g, _, _ in smoke} == {g for g, _, _ in full} == {"main", "compiled"}
    assert {dt for _, _, dt in smoke} == {"float32", "float64"}
    assert set(plan.SMOKE) == set(plan.FULL) and set(plan.SMOKE["plan"]) == set(plan.STAGES)
    assert plan.SMOKE["iters"] % 5 == 0  # torch-compiled: K-step calls only, one graph per dtype
    assert plan.SMOKE["largest"] and plan.SMOKE["optimum"] and plan.SMOKE["reports"]


def test_budget_scales_stages_not_the_deadline_into_uselessness():
    ends, hard = plan.deadlines(False, None)
    assert hard == plan.FULL["hard_limit"] and ends["sweep"] == sum(plan.FULL["plan"].values())
    ends, hard = plan.deadlines(False, 60)
    assert ends["sweep"] == pytest.approx(60)
    assert hard >= plan.MIN_HARD_S  # the first chunk starts every compiler: never 63 s
    _, hard = plan.deadlines(False, 1000)
    assert hard == pytest.approx(1000 + plan.HARD_MARGIN_S)


def test_estimate_leaves_compilation_out():
    # 30 s of which 25 s compiling: ten times the data is 5 * 10 + 25 s, not 300 s
    assert plan.estimate(1.0, 30.0, 25.0, 10.0) == pytest.approx(75.0)
    assert plan.estimate(1.0, 30.0, 0.0, 10.0) == pytest.approx(300.0)
    assert plan.estimate(1.0, 3.0, 99.0, 10.0) == pytest.approx(3.0)  # compile_s is capped by the chunk's time


class _FakeClock:
    def __init__(self):
        self.now, self.hit = 0.0, False

    def elapsed(self):
        return self.now


class _FakeRunner:
    """Each chunk 'takes' a time proportional to its cost plus a fixed compile time (no real run)."""

    def __init__(self, per_unit, compile_s=0.0):
        self.clock, self.per_unit, self.compile_s, self.ran = _FakeClock(), per_unit, compile_s, []

    def run(self, stage, label, cases, options=None):
        _, ds, dt = cases
        secs = self.per_unit * plan.chunk_cost(ds, dt) + self.compile_s
        self.clock.now += secs
        stage.seconds += secs
        self.ran.append(label)
        return stages.ChunkTime(secs, self.compile_s)


def test_budget_stops_adding_sizes_and_says_so():
    stage = stages.Stage("sweep", end=100.0)
    runner = _FakeRunner(per_unit=10.0 / plan.chunk_cost("synthetic-1Mx100", "float32"))  # 1e6 x 100 f32: 10 s
    chunks = [c for c in plan.sweep_chunks() if c[0] == "main"]
    stages._chunked(runner, stage, chunks, lambda g, ds, dt: (g, ds, dt))
    assert "synthetic-10Mx100-float32" not in runner.ran  # 100 s estimated, not started
    assert any(w == "synthetic-10Mx100 float32" and "estimated" in why for w, why in stage.not_run)
    assert runner.clock.now <= stage.end
    assert "synthetic-100x100-float32" in runner.ran


def test_compile_time_does_not_cut_the_larger_sizes():
    # a 20 s compile in every chunk: counted as a constant, the 100k chunk (1 s of work) still fits
    stage = stages.Stage("sweep", end=200.0)
    runner = _FakeRunner(per_unit=1.0 / plan.chunk_cost("synthetic-100kx100", "float32"), compile_s=20.0)
    chunks = [("main", f"synthetic-{n}x100", "float32") for n in ("100", "1k", "10k", "100k")]
    stages._chunked(runner, stage, chunks, lambda g, ds, dt: (g, ds, dt))
    assert runner.ran[-1] == "synthetic-100kx100-float32" and not stage.not_run


def test_smoke_runs_every_chunk_whatever_the_estimate():
    stage = stages.Stage("sweep", end=0.0)
    runner = _FakeRunner(per_unit=1.0)
    chunks = plan.sweep_chunks(smoke=True)
    stages._chunked(runner, stage, chunks, lambda g, ds, dt: (g, ds, dt), estimated=False)
    assert len(runner.ran) == len(chunks) and not stage.not_run


def test_devices_argument():
    assert command.parse_devices("cpu,cuda") == ("cpu", "cuda")
    assert command.parse_devices("cpu cuda:1 cpu") == ("cpu", "cuda:1")
    with pytest.raises(Exception, match="expected devices"):
        command.parse_devices("tpu")


# -- CUDA-event time beside wall time ---------------------------------------------------------------

def test_event_fields_only_on_event_timed_rows():
    plain = Measurement((1.0, 2.0, 3.0), 10).as_dict()
    assert not any(k.startswith("event_") or k == "device_name" for k in plain)
    ev = Measurement((1.0, 2.0, 3.0), 10, 1, (0.9, 1.9, 2.9), "Some GPU").as_dict()
    assert ev["event_time_median_s"] == pytest.approx(1.9) and ev["event_time_per_iter_s"] == pytest.approx(0.19)
    assert ev["device_name"] == "Some GPU"
    for k in ("event_time_median_s", "event_time_per_iter_s", "device_name"):
        assert k in SCHEMA  # the keys are Row fields: the pipeline's row.replace(**m.as_dict()) takes them
    assert _CudaEvents.for_device("cpu") is None


def test_device_floor_without_cuda_is_empty():
    from bench.roofline import device_floor

    figs = device_floor("cpu")
    assert figs["device_read"] is None and figs["device_gflops_float32"] is None


# -- the smoke run on the CPU: every stage and backend of the full run -------------------------------

@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-smoke")
    t0 = time.monotonic()
    with pytest.MonkeyPatch.context() as mp:  # the smoke measures the (tiny) floors: the suite skips them elsewhere
        mp.delenv("LOGREG_BENCH_FLOOR", raising=False)
        code = cli.main(["gpu", "--out", str(out), "--devices", "cpu", "--smoke"])
    return code, out, time.monotonic() - t0


@pytest.mark.slow
def test_smoke_run_reaches_every_stage_and_backend(smoke_run):
    code, out, _seconds = smoke_run
    assert code == 0, (out / "summary.md").read_text() if (out / "summary.md").exists() else "no summary"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(plan.OWNED) and len(names) <= 8  # no lock, no work folder left behind
    summary = (out / "summary.md").read_text()
    assert "Smoke run" in summary and "it holds no GPU figure" in summary
    assert "every backend of every stage has a row" in summary
    env = json.loads((out / "env.json").read_text())
    assert env["status"] == "complete" and env["smoke"] and env["exit_code"] == 0 and not env["not_reached"]
    assert [s["name"] for s in env["stages"]] == list(plan.STAGES)
    assert all(s["chunks_run"] >= 1 and not s["not_run"] and not s["error"] for s in env["stages"])
    assert env["roofline"]["host_read"] > 0
    rows = pd.read_csv(out / "runs.csv")
    assert set(rows["device"]) == {"cpu"} and set(rows["status"]) <= {"ok", "skipped"}
    by_stage = rows.groupby("stage")["backend"].agg(set)
    assert {"jax", "torch-compiled", "numba", "numpy", "torch"} <= by_stage["default"]
    assert by_stage["ddp"] == {"torch", "torch-ddp"}
    assert set(plan.SWEEP_BACKENDS) | set(plan.HOST_ONLY_BACKENDS) == by_stage["sweep"]
    assert {"event_time_median_s", "device_name", "transfer_s", "stage"} <= set(rows.columns)
    assert rows["event_time_median_s"].isna().all()  # no CUDA events on CPU rows
    assert set(rows[rows["stage"] == "sweep"]["dtype"]) == {"float32", "float64"}
    assert rows[rows["stage"] == "default"]["suboptimality"].notna().any()  # the optimum was fitted
    assert list(pd.read_csv(out / "crossover.csv").columns) == crossover.CROSSOVER_COLUMNS
    assert (out / "crossover.png").stat().st_size > 1000
    with tarfile.open(out / "gpu-run.tar.gz") as tf:
        inside = tf.getnames()
    assert any(n.endswith("sweep/runs.csv") for n in inside) and any(n.endswith("floors.json") for n in inside)
    assert any("default/report/" in n for n in inside) and any("sweep/report/" in n for n in inside)


@pytest.mark.slow
def test_smoke_run_refuses_its_own_folder_without_overwrite(smoke_run, capsys):
    _code, out, _ = smoke_run
    assert cli.main(["gpu", "--out", str(out), "--devices", "cpu", "--smoke"]) == 2
    assert "error" in capsys.readouterr().err


def test_cli_registers_gpu(capsys):
    from bench.cli import build_parser

    args = build_parser().parse_args(["gpu", "--out", "somewhere", "--devices", "cpu", "--tiny"])
    assert args.devices == ("cpu",) and args.smoke and callable(args.func)
    assert build_parser().parse_args(["gpu", "--out", "somewhere", "--smoke"]).smoke
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["gpu", "--out", "somewhere", "--devices", "tpu"])
    assert exc.value.code == 2 and "expected devices" in capsys.readouterr().err
