"""The report: verdict first, pivots, failing rows, time to target, plots, one entry point.

Every test runs on fabricated tables (``tests/fabricate.py``) whose answers are known in advance.
"""

from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bench import report
from bench.records import LEGACY_ATTRIBUTES, as_run, read_run
from bench.targets import first_step_to_target
from tests.fabricate import (
    FASTEST_IRIS,
    ROOT,
    WRONG_REASON,
    environment,
    expected_step,
    fabricate_losses,
    fabricate_rows,
)

NUMBA = "numba (numba, hand-derived, whole run in one compiled call)"


@pytest.fixture(scope="module")
def run():
    rows = fabricate_rows()
    return as_run(rows, fabricate_losses(rows), environment())


@pytest.fixture(scope="module")
def rows(run):
    return run.rows


@pytest.fixture(scope="module")
def losses(run):
    return run.losses


@pytest.fixture(scope="module")
def env(run):
    return run.env


@pytest.fixture(scope="module")
def md(rows, losses, env):
    return report.summary_markdown(rows, losses, env)


def _verdict_section(md: str) -> str:
    return md.split("## Verdict", 1)[1].split("\n## ", 1)[0]


def _group(md: str, title_start: str) -> str:
    section = _verdict_section(md)
    block = section.split(f"**{title_start}", 1)[1]
    return block.split("\n**", 1)[0]


def test_summary_opens_with_the_verdict(md):
    head = md.split("\n## ")
    assert head[1].startswith("Verdict"), "the verdict is the first section"
    assert md.index("## Verdict") < md.index("## Time per step") < md.index("## All rows")
    assert "AMD EPYC" in md.splitlines()[2] and "20261124T021514Z-8581cc" in md.splitlines()[2]


def test_verdict_names_the_fastest_correct_backend_not_the_fastest_wrong_one(rows, md):
    iris = _group(md, "iris (n=100, d=4), full batch")
    line = next(x for x in iris.splitlines() if x.startswith("- Fastest correct on cpu"))
    # torch-compiled float32 probs is faster (10 µs) but does not agree; numba float64 logits (20 µs) does;
    # the verdict says what numba is, from the row's declared attributes
    assert "**numba** (numba, hand-derived, whole run in one compiled call) in float64, logits" in line
    assert "torch-compiled" not in line
    t = rows.loc[rows.case_id == "iris|float64|logits|full|l2=0|w1|numba@cpu", "time_per_iter_s"].iloc[0]
    assert t == pytest.approx(FASTEST_IRIS, rel=0.1) and f"at {report.format_time(t)} per step" in line
    assert "of the compute floor" in line  # Iris rows carry compute_fraction (in cache)
    big = _group(md, "synthetic-100kx100")
    assert "of the memory-bandwidth floor" in big


def test_verdict_lists_the_failing_row_with_its_reason(md):
    iris = _group(md, "iris (n=100, d=4), full batch")
    assert "23 of 24 rows agree" in iris and "**1 does not**" in iris
    assert "`torch-compiled@cpu` (float32, probs: rel Δparam 3.00e-03 > tolerance" in iris
    assert WRONG_REASON in iris
    syn = _group(md, "synthetic-10kx100")
    assert "**6 do not**" in syn and "44 samples saturate" in syn and "rel Δloss 4.51e-01" in syn
    assert "skipped — jax is not installed" in iris


def test_library_ratio_matches_the_rows_and_its_quartile_range(rows, md):
    df = rows
    iris64 = df[(df.dataset == "iris") & (df.loop == "full-batch") & (df.dtype == "float64")
                & (df.formulation == "logits") & report.correct_mask(df)]
    npy = iris64[iris64.library == "numpy"].sort_values("time_per_iter_s").iloc[0]
    pt = iris64[iris64.library == "torch"].sort_values("time_per_iter_s").iloc[0]
    r, lo, hi = report.ratio_with_range(npy, pt)
    assert lo <= r <= hi
    # the quartiles come from the stored rounds, not from median ± IQR/2
    t = report.round_times_per_step(npy)
    assert len(t) == 5 and report.quartiles(npy)[0] == pytest.approx(np.percentile(t, 25))
    line = next(x for x in _group(md, "iris (n=100, d=4), full batch").splitlines()
                if x.startswith("- NumPy vs PyTorch on cpu (float64"))
    winner, ratio = ("PyTorch", r) if r >= 1 else ("NumPy", 1 / r)
    assert f"**{winner} {ratio:.2f}× faster**" in line
    assert f"best NumPy `{npy.backend}` ({report.what(npy)})" in line
    assert f"best PyTorch `{pt.backend}` ({report.what(pt)})" in line


def test_mini_batch_group_has_its_own_verdict_and_the_noise_caveat(md):
    mb = _group(md, "iris (n=100, d=4), mini-batch SGD (batch 20)")
    assert "All 4 rows that ran agree" in mb
    assert "Mini-batch rows record the loss of each step's batch (noisy)" in mb
    assert "full-data objective along the float64 oracle's path" in mb
    assert "batch 20" in mb


def test_pivot_has_one_row_per_backend_and_marks_disagreement(rows):
    p = report.pivot_times(rows, "float32")
    backends = set(rows[rows.dtype == "float32"].backend)
    assert list(p.index) == report.backend_order(rows[rows.dtype == "float32"])
    libs = [rows[rows.backend == b].library.iloc[0] for b in p.index]
    assert libs == sorted(libs, key=lambda lib: {"numpy": 0, "torch": 1}.get(lib, 2)), "NumPy's, PyTorch's, the rest"
    assert len(p) == len(backends) == len(set(p.index))
    assert p.loc["torch-compiled", "iris · full · probs"].endswith("✗")
    assert not p.loc["numba", "iris · full · probs"].endswith("✗")
    assert p.loc["jax", "iris · full · probs"] == "skipped"
    assert p.loc["numpy-fused", "iris · mini-batch 20 · probs"] == "—"  # never ran mini-batch


def test_failing_rows_table_and_the_renamed_column(md):
    table = md.split("## Rows that do not agree with the oracle", 1)[1].split("\n## ", 1)[0]
    assert WRONG_REASON in table and "non-finite loss from step 4" in table
    assert table.count("\n| ") - 1 == 8  # header excluded: 1 Iris + 6 saturated + 1 diverged
    assert "| agrees with oracle |" in md and "| verdict |" not in md


def test_time_to_target_is_empty_exactly_when_never_reached(rows, losses):
    ttt = report.time_to_target(rows, losses)
    assert set(ttt.columns) >= {"case_id", "backend", "target", "step", "time_s"}
    assert set(ttt.target) == set(report.TARGETS)
    df = rows
    for _, t in ttt[ttt.loop == "full-batch"].iterrows():
        r = df[df.case_id == t.case_id].iloc[0]
        if r.status == "diverged" or r.verdict == "fail":
            continue  # their curves are off the fabricated law
        if t.target < 1e-5 and r["dtype"] == "float32":
            continue  # the fabricated float32 losses carry 3e-7 relative noise: 1e-6 is within it
        want = expected_step(r.dataset, float(r.optimum_loss), t.target, int(r.n_iters))
        if math.isnan(want):
            assert math.isnan(t.step) and math.isnan(t.time_s), t.case_id
        else:
            assert t.step == want and t.time_s == pytest.approx(want * float(r.time_per_iter_s))
    # the diverged row never gets there; 100k×100 in 10 steps reaches nothing; Iris reaches 1e-4
    assert ttt[ttt.status == "diverged"].time_s.isna().all()
    assert ttt[ttt.dataset == "synthetic-100kx100"].time_s.isna().all()
    assert ttt[(ttt.dataset == "iris") & (ttt.loop == "full-batch") & (ttt.target == 1e-4)
               & (ttt.verdict == "pass")].time_s.notna().all()
    # a row without a loss curve is left out (unknown, not "never")
    assert "jax" not in set(ttt.backend)


def test_summary_says_who_reaches_each_target_first(rows, losses, md):
    ttt = report.time_to_target(rows, losses)
    ok = ttt[(ttt.dataset == "iris") & (ttt.loop == "full-batch") & (ttt.verdict == "pass") & (ttt.target == 1e-2)]
    first = ok.sort_values("time_s").iloc[0]
    iris = _group(md, "iris (n=100, d=4), full batch")
    assert f"1e-02 first by **{first['backend']}** ({first['dtype']}, {first['formulation']})" in iris
    syn = _group(md, "synthetic-10kx100")
    assert "1e-02, 1e-03, 1e-04, 1e-06 not reached by any correct row in 50 steps" in syn


def test_old_files_without_the_new_columns_still_report():
    """Today's reference run: no case_id, loop, times_s, ref_loss; losses keyed by backend etc."""
    from tests.fabricate import REFERENCE

    old = read_run(REFERENCE)
    df, cur = old.rows, old.losses
    assert (df.loop == "full-batch").all() and df.case_id.is_unique
    assert df.case_id.iloc[0] == "iris|float32|probs|full|l2=0|w1|numpy@cpu"  # Case.case_id's format
    # the backends' attributes come from the table for old runs; old torch-compiled rows were mostly eager
    assert df.library.notna().all() and set(df.library) == {"numpy", "torch", "numba"}
    tc = df[df.backend == "torch-compiled"]
    assert (tc.engine == "eager/inductor (mixed)").all() and not tc.compiled.any()
    losses = pd.read_csv(REFERENCE / "losses.csv")
    assert list(cur.columns) == report.LOSS_COLUMNS and cur.ref_loss.isna().all() and len(cur) == len(losses)
    md = report.summary_markdown(df, cur)
    assert "All 24 rows that ran agree" in md and "Fastest correct on cpu" in md
    assert "`torch-compiled` (eager/inductor (mixed), hand-derived," in md or "`torch-compiled`" not in md
    ttt = report.time_to_target(df, cur)
    assert ttt.time_s.isna().all(), "5000 steps at lr 0.01 never come within 10% of the optimum"


def test_console_summary_opens_with_the_verdict(rows, losses, env):
    from rich.console import Console

    buf = io.StringIO()
    report.print_summary(rows, Console(file=buf, width=200, color_system=None), losses, env)
    text = buf.getvalue()
    assert text.lstrip().startswith("Verdict")
    assert f"Fastest correct on cpu: {NUMBA} in float64, logits" in text
    assert "rows that do not agree with the oracle" in text


def test_looks_come_from_the_name_and_library_not_a_list_of_names():
    names = ["numpy", "torch", "torch-manual", "numpy-fused", "torch-compiled", "numba", "torch-nn", "jax",
             "torch-ddp", "numpy-dask", "torch-fused", "my-trial"]
    libs = ["numpy", "torch", "torch", "numpy", "torch", "numba", "torch", "jax", "torch", "numpy", "torch", "torch"]
    looks = report.looks(pd.DataFrame({"backend": names, "library": libs}))
    assert len({v["color"] for v in looks.values()}) == len(names), "distinct colours within a run"
    assert {looks[n]["linestyle"] for n, lib in zip(names, libs, strict=True) if lib == "numpy"} == {"-"}
    assert {looks[n]["linestyle"] for n, lib in zip(names, libs, strict=True) if lib == "torch"} == {"--"}
    # stable: the same name gets the same look in another process and another run
    assert report.style("something-new", "torch") == report.style("something-new", "torch")
    again = report.looks(pd.DataFrame({"backend": names[::-1], "library": libs[::-1]}))
    assert again == looks


def _one_panel_each(rows, losses):
    """The float32 ``probs`` rows of every dataset and loop (the failing, saturated, skipped and
    mini-batch rows among them) and every row that did not run cleanly (the diverged one), with their
    curves: every plot ``write_report`` draws from the whole fixture is still drawn, with something
    in it (time vs n keeps both d = 100 sizes), but on one to three panels instead of two to six
    (about a third of them). matplotlib's layout and log-axis ticks cost ~0.5-1 s per panel on a
    2-core machine; which files are written, and that they are whole, does not depend on it."""
    keep = ((rows.dtype == "float32") & (rows.formulation == "probs")) | (rows.status != "ok")
    sub = rows[keep]
    return sub, losses[losses.case_id.isin(set(sub.case_id))]


@pytest.mark.slow
def test_write_report_writes_every_file(rows, losses, env, tmp_path):
    rows, losses = _one_panel_each(rows, losses)
    written = report.write_report(rows, losses, env, tmp_path)
    names = {p.name for p in written}
    assert {"summary.md", "time_to_target.csv", "speed_vs_numpy.png", "loss_vs_oracle.png", "time_vs_n.png",
            "suboptimality_iris.png", "suboptimality_synthetic-10kx100.png"} <= names
    assert "loss_curves.png" not in names
    for p in written:
        assert p.stat().st_size > 0 and p.parent == tmp_path
    ttt = pd.read_csv(tmp_path / "time_to_target.csv")
    assert len(ttt) == len(report.time_to_target(rows, losses))
    assert (tmp_path / "summary.md").read_text().startswith(report.summary_markdown(rows, losses, env))


@pytest.mark.slow
def test_time_vs_n_joins_one_width_only(rows, tmp_path):
    """Iris (d = 4) is never joined to d = 100 points; one n per d draws nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = {}
    real_save = report.plots._save

    def spy(fig, path):
        drawn["lines"] = [ln for ax in fig.axes for ln in ax.get_lines()]
        plt.close(fig)
        return True

    report.plots._save = spy
    try:
        assert report.plot_time_vs_n(rows, tmp_path / "t.png", floor_gbps=24.3)
    finally:
        report.plots._save = real_save
    xs = {float(x) for ln in drawn["lines"] for x in ln.get_xdata()}
    assert xs == {10_000.0, 100_000.0}, "only the d = 100 sizes, never Iris's n = 100"
    # Iris alone, one dtype and formulation: one n per d whatever the subset (the speed plot that is
    # still drawn has one panel instead of four)
    iris = rows[(rows.dataset == "iris") & (rows.dtype == "float32") & (rows.formulation == "probs")]
    written = report.write_report(iris, None, None, tmp_path / "iris-only")
    assert "time_vs_n.png" not in {p.name for p in written}, "one n per d: no line to draw"


def test_speed_vs_numpy_is_relative_to_numpy_in_the_same_setting(rows):
    s = report.speed_vs_numpy_frame(rows)
    base = s[s.backend == "numpy"]
    assert np.allclose(base.ratio.astype(float), 1.0)
    assert (s.lo <= s.ratio).all() and (s.ratio <= s.hi).all()
    df = rows
    r = s[s.case_id == "iris|float64|logits|full|l2=0|w1|numba@cpu"].iloc[0]
    numpy_t = df[df.case_id == "iris|float64|logits|full|l2=0|w1|numpy@cpu"].time_per_iter_s.iloc[0]
    assert r.ratio == pytest.approx(FASTEST_IRIS / numpy_t, rel=0.1)


def test_mini_batch_suboptimality_uses_the_full_data_objective():
    rows = pd.DataFrame({"case_id": ["c"], "backend": ["numpy"], "device": ["cpu"], "dtype": ["float32"],
                         "formulation": ["probs"], "dataset": ["iris"], "loop": ["mini-batch"], "batch_size": [8],
                         "l2": [0.0], "time_per_iter_s": [1e-3], "optimum_loss": [0.5], "verdict": ["pass"],
                         "status": ["ok"]})
    # the batch loss dips below the optimum by chance at step 1; the full objective never gets within 10 %
    losses = pd.DataFrame({"case_id": ["c"] * 3, "step": [0, 1, 2], "loss": [0.9, 0.3, 0.8],
                           "ref_loss": [0.9, 0.3, 0.8], "full_loss": [0.9, 0.7, 0.6]})
    ttt = report.time_to_target(*as_run(rows, losses)[:2], targets=(0.25, 0.1))
    assert ttt.set_index("target").loc[0.25, "step"] == 2 and np.isnan(ttt.set_index("target").loc[0.1, "step"])


# ----------------------------------------------------------------------------------------------
# the backend's attributes, not its name

def _renamed(rows, old, new, **attrs):
    rows = rows.copy()
    m = rows.backend == old
    rows.loc[m, "backend"] = new
    for col, value in attrs.items():
        rows.loc[m, col] = value
    rows["case_id"] = rows.case_id.str.replace(f"|{old}@", f"|{new}@", regex=False)
    return rows


def test_a_new_backend_is_named_by_its_attributes(rows, losses):
    """A user's backend, unknown to the report, is placed, described and drawn by its row's columns."""
    ours = _renamed(rows, "torch-manual", "my-trial", engine="eager", gradient="hand-derived",
                    style="hand-blocked, threaded")
    i = ours.index[(ours.backend == "my-trial") & (ours.dataset == "synthetic-100kx100") & (ours.dtype == "float32")
                   & (ours.formulation == "probs")][0]
    best_t = ours[(ours.dataset == "synthetic-100kx100") & (ours.status == "ok")].time_per_iter_s.min()
    for c in ("time_per_iter_s", "time_median_s", "iqr_per_iter_s", "time_iqr_s"):
        ours.at[i, c] = ours.at[i, c] * (best_t / ours.at[i, "time_per_iter_s"]) / 2
    ours.at[i, "times_s"] = None
    md = report.summary_markdown(ours, None, None)
    big = _group(md, "synthetic-100kx100")
    assert "Fastest correct on cpu: **my-trial** (eager, hand-derived, hand-blocked, threaded) in float32, probs" in big
    assert "best PyTorch `my-trial` (eager, hand-derived, hand-blocked, threaded)" in big
    assert "my-trial" in report.pivot_times(ours, "float32").index
    assert "my-trial" in report.looks(ours)


def test_the_baseline_is_found_by_its_attributes_and_may_be_absent(rows, tmp_path):
    # Iris's rows only: the baseline is found from each row's declared attributes, whatever the
    # dataset, and Iris has every dtype, formulation and both loops (a third of the rows: the
    # summary and the per-row speed frame cost a third as much)
    rows = rows[rows.dataset == "iris"]
    seed = _renamed(rows, "numpy", "seed-numpy")
    assert report.baseline_backend(seed) == "seed-numpy"
    md = report.summary_markdown(seed, None, None)
    assert "faster than `seed-numpy` in the same setting" in md and "| vs seed-numpy |" in md
    s = report.speed_vs_numpy_frame(seed)
    assert np.allclose(s[s.backend == "seed-numpy"].ratio.astype(float), 1.0)
    # nothing declares the seed's NumPy loop and no backend is named numpy: no ratio, no plot, no crash
    none = _renamed(rows, "numpy", "other-numpy", style="something else")
    assert report.baseline_backend(none) is None
    md = report.summary_markdown(none, None, None)
    assert "faster than `" not in md and "Fastest correct on cpu" in md
    written = {p.name for p in report.write_report(none[none.dataset == "iris"], None, None, tmp_path)}
    assert "speed_vs_numpy.png" not in written and "summary.md" in written


def test_legacy_attributes_are_for_old_runs_only(rows):
    """A row that records its attributes keeps them, whatever its name."""
    ours = _renamed(rows, "numba", "torch-compiled-2", library="torch", engine="inductor", compiled=True)
    ours = ours.assign(library=ours.library.where(ours.backend != "torch-compiled", "torch"))
    df = as_run(ours).rows
    tc = df[df.backend == "torch-compiled"]
    assert (tc.engine == "inductor").all() and tc.compiled.all(), "today's torch-compiled is compiled"
    assert "torch-fused" not in LEGACY_ATTRIBUTES, "the legacy table names only backends of old runs"


# ----------------------------------------------------------------------------------------------
# one definition of time to target

def test_time_to_target_is_relative_suboptimality():
    steps = np.array([0, 10, 20])
    loss = np.array([0.2, 0.1005, 0.10001])  # L* = 0.1: 5e-3 then 1e-4 relative (5e-4 and 1e-5 absolute)
    assert first_step_to_target(steps, loss, 0.1, 1e-3) == 20  # absolute L − L* < 1e-3 would say 10
    assert first_step_to_target(steps, loss, 0.1, 1e-2) == 10
    assert math.isnan(first_step_to_target(steps, np.array([0.2, np.nan, np.nan]), 0.1, 1e-3))


def test_row_and_time_to_target_csv_agree(tmp_path):
    """``Row.time_to_target_s`` (the pipeline) and ``time_to_target.csv`` (the report) answer alike."""
    from bench.cases import RunOptions, matrix
    from bench.runner import run

    target = 1e-2
    cases = matrix(["numpy"], ["cpu"], ["synthetic-2000x10"], ["float64"], ["logits"], iters=500, lr=1.0)
    result = run(cases, options=RunOptions(repeats=3, budget_s=0.05, warmup=0, target=target), figures={})
    rows, losses, _ = as_run(result.frame(), result.losses())
    ttt = report.time_to_target(rows, losses, targets=(target,))
    csv_t = float(ttt.time_s.iloc[0])
    assert not math.isnan(csv_t), "the run reaches the target (else the test says nothing)"
    assert rows.time_to_target_s.iloc[0] == pytest.approx(csv_t)  # L* ≈ 0.19: absolute 1e-2 is ~5e-2 relative


# ----------------------------------------------------------------------------------------------
# reading results imports no training library

@pytest.mark.subprocess
def test_importing_compare_and_report_imports_no_training_library():
    code = ("import sys, bench.compare, bench.report, bench.records; "
            "print(sorted(m for m in ('torch', 'jax', 'numba', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
