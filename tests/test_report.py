"""The report: verdict first, pivots, failing rows, time to target, plots, one entry point.

Every test runs on fabricated tables (``tests/fabricate.py``) whose answers are known in advance.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest

from bench import report
from tests.fabricate import (FASTEST_IRIS, WRONG_REASON, environment, expected_step, fabricate_losses,
                             fabricate_rows)


@pytest.fixture(scope="module")
def rows():
    return fabricate_rows()


@pytest.fixture(scope="module")
def losses(rows):
    return fabricate_losses(rows)


@pytest.fixture(scope="module")
def env():
    return environment()


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
    # torch-compiled float32 probs is faster (10 µs) but does not agree; numba float64 logits (20 µs) does
    assert "**numba** (float64, logits)" in line
    assert "torch-compiled" not in line
    t = rows.loc[rows.case_id == "iris|float64|logits|full|l2=0|numba@cpu", "time_per_iter_s"].iloc[0]
    assert t == pytest.approx(FASTEST_IRIS, rel=0.1) and f"at {report._fmt_time(t)} per step" in line
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
    df = report.normalize_rows(rows)
    iris64 = df[(df.dataset == "iris") & (df.loop == "full-batch") & (df.dtype == "float64")
                & (df.formulation == "logits") & report.correct_mask(df)]
    npy = iris64[iris64.backend.map(report.FAMILY) == "NumPy"].sort_values("time_per_iter_s").iloc[0]
    pt = iris64[iris64.backend.map(report.FAMILY) == "PyTorch"].sort_values("time_per_iter_s").iloc[0]
    r, lo, hi = report.ratio_with_range(npy, pt)
    assert lo <= r <= hi
    # the quartiles come from the stored rounds, not from median ± IQR/2
    t = report.round_times_per_step(npy)
    assert len(t) == 5 and report.quartiles(npy)[0] == pytest.approx(np.percentile(t, 25))
    line = next(x for x in _group(md, "iris (n=100, d=4), full batch").splitlines()
                if x.startswith("- NumPy vs PyTorch on cpu (float64"))
    winner, ratio = ("PyTorch", r) if r >= 1 else ("NumPy", 1 / r)
    assert f"**{winner} {ratio:.2f}× faster**" in line
    assert f"`{npy.backend}`" in line and f"`{pt.backend}`" in line


def test_mini_batch_group_has_its_own_verdict_and_the_noise_caveat(md):
    mb = _group(md, "iris (n=100, d=4), mini-batch SGD (batch 20)")
    assert "All 4 rows that ran agree" in mb
    assert "Mini-batch rows record the loss of each step's batch (noisy)" in mb
    assert "full-data objective along the float64 oracle's path" in mb
    assert "batch 20" in mb


def test_pivot_has_one_row_per_backend_and_marks_disagreement(rows):
    p = report.pivot_times(rows, "float32")
    backends = set(rows[rows.dtype == "float32"].backend)
    assert list(p.index) == report._backend_order(backends)
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
    df = report.normalize_rows(rows)
    for _, t in ttt[ttt.loop == "full-batch"].iterrows():
        r = df[df.case_id == t.case_id].iloc[0]
        if r.status == "diverged" or r.verdict == "fail":
            continue  # their curves are off the fabricated law
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
    assert "1e-02, 1e-03, 1e-04 not reached by any correct row in 50 steps" in syn


def test_old_files_without_the_new_columns_still_report():
    """Today's reference run: no case_id, loop, times_s, ref_loss; losses keyed by backend etc."""
    from tests.fabricate import REFERENCE

    rows = pd.read_csv(REFERENCE / "runs.csv")
    losses = pd.read_csv(REFERENCE / "losses.csv")
    df = report.normalize_rows(rows)
    assert (df.loop == "full-batch").all() and df.case_id.is_unique
    assert df.case_id.iloc[0] == "iris|float32|probs|full|l2=0|numpy@cpu"
    cur = report.normalize_losses(losses, df)
    assert list(cur.columns) == report.LOSS_COLUMNS and cur.ref_loss.isna().all() and len(cur) == len(losses)
    md = report.summary_markdown(rows, losses)
    assert "All 24 rows that ran agree" in md and "Fastest correct on cpu" in md
    ttt = report.time_to_target(rows, losses)
    assert ttt.time_s.isna().all(), "5000 steps at lr 0.01 never come within 10% of the optimum"


def test_console_summary_opens_with_the_verdict(rows, losses, env):
    from rich.console import Console

    buf = io.StringIO()
    report.print_summary(rows, Console(file=buf, width=200, color_system=None), losses, env)
    text = buf.getvalue()
    assert text.lstrip().startswith("Verdict")
    assert "Fastest correct on cpu: numba (float64, logits)" in text
    assert "rows that do not agree with the oracle" in text


def test_styles_cover_every_backend_and_are_distinct():
    names = ["numpy", "torch", "torch-manual", "numpy-fused", "torch-compiled", "numba", "torch-nn", "jax",
             "torch-ddp", "numpy-dask", "torch-fused"]
    looks = [tuple(report.style(n).values()) for n in names]
    assert len(set(looks)) == len(names)
    assert all(report.FAMILY[n] in ("NumPy", "PyTorch", "other") for n in names)
    assert report.style("something-new") == report.style("something-new")  # stable for unknown names


def test_write_report_writes_every_file(rows, losses, env, tmp_path):
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


def test_time_vs_n_joins_one_width_only(tmp_path):
    """Iris (d = 4) is never joined to d = 100 points; one n per d draws nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = fabricate_rows()
    drawn = {}
    real_save = report._save

    def spy(fig, path):
        drawn["lines"] = [ln for ax in fig.axes for ln in ax.get_lines()]
        plt.close(fig)
        return True

    report._save = spy
    try:
        assert report.plot_time_vs_n(rows, tmp_path / "t.png", floor_gbps=24.3)
    finally:
        report._save = real_save
    xs = {float(x) for ln in drawn["lines"] for x in ln.get_xdata()}
    assert xs == {10_000.0, 100_000.0}, "only the d = 100 sizes, never Iris's n = 100"
    written = report.write_report(rows[rows.dataset == "iris"], None, None, tmp_path / "iris-only")
    assert "time_vs_n.png" not in {p.name for p in written}, "one n per d: no line to draw"


def test_speed_vs_numpy_is_relative_to_numpy_in_the_same_setting(rows):
    s = report.speed_vs_numpy_frame(rows)
    base = s[s.backend == "numpy"]
    assert np.allclose(base.ratio.astype(float), 1.0)
    assert (s.lo <= s.ratio).all() and (s.ratio <= s.hi).all()
    df = report.normalize_rows(rows)
    r = s[s.case_id == "iris|float64|logits|full|l2=0|numba@cpu"].iloc[0]
    numpy_t = df[df.case_id == "iris|float64|logits|full|l2=0|numpy@cpu"].time_per_iter_s.iloc[0]
    assert r.ratio == pytest.approx(FASTEST_IRIS / numpy_t, rel=0.1)


def test_mini_batch_suboptimality_uses_the_full_data_objective():
    rows = pd.DataFrame({"case_id": ["c"], "backend": ["numpy"], "device": ["cpu"], "dtype": ["float32"],
                         "formulation": ["probs"], "dataset": ["iris"], "loop": ["mini-batch"], "batch_size": [8],
                         "l2": [0.0], "time_per_iter_s": [1e-3], "optimum_loss": [0.5], "verdict": ["pass"],
                         "status": ["ok"]})
    # the batch loss dips below the optimum by chance at step 1; the full objective never gets within 10 %
    losses = pd.DataFrame({"case_id": ["c"] * 3, "step": [0, 1, 2], "loss": [0.9, 0.3, 0.8],
                           "ref_loss": [0.9, 0.3, 0.8], "full_loss": [0.9, 0.7, 0.6]})
    ttt = report.time_to_target(rows, losses, targets=(0.25, 0.1))
    assert ttt.set_index("target").loc[0.25, "step"] == 2 and np.isnan(ttt.set_index("target").loc[0.1, "step"])
