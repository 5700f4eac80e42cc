"""``python -m bench compare A B`` on fabricated runs: p-values, calls, the CI gate, bad input."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import compare
from tests.fabricate import case_id, environment, fabricate_rows, write_run


def _run(*argv) -> int:
    parser = argparse.ArgumentParser()
    compare.add_arguments(parser)
    return compare.cmd_compare(parser.parse_args([str(a) for a in argv]))


def _slowed(rows: pd.DataFrame, factor: float, where=None) -> pd.DataFrame:
    rows = rows.copy()
    where = rows.status == "ok" if where is None else where & (rows.status == "ok")
    for i in rows.index[where]:
        t = np.array(rows.at[i, "times_s"].split(), dtype=float) * factor
        rows.at[i, "times_s"] = " ".join(map(repr, t.tolist()))
        for c in ("time_median_s", "time_per_iter_s", "iqr_per_iter_s", "time_iqr_s"):
            rows.at[i, c] = rows.at[i, c] * factor
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    a = write_run(root / "a", fabricate_rows(seed=0), environment("run-a"))
    b = write_run(root / "b", fabricate_rows(seed=1), environment("run-b"))  # same machine, fresh noise
    slow = write_run(root / "slow", _slowed(fabricate_rows(seed=1), 1.5),
                     environment("run-slow", versions__torch="2.14.0+cpu", threads=1))
    return a, b, slow


def test_two_runs_of_the_same_code_get_p_values_and_exit_0(runs, tmp_path, capsys):
    a, b, _ = runs
    assert _run(a, b, "--out", tmp_path) == 0
    cmp = pd.read_csv(tmp_path / "compare.csv")
    ok = cmp[cmp.status_a == "ok"]
    assert len(cmp) == 77 and len(ok) == 75  # every row matched on case_id; jax skipped, one diverged
    assert ok.p_value.between(0, 1).all() and (ok.test == "mann-whitney").all()
    assert (ok.rounds_a == 5).all() and (ok.rounds_b == 5).all()
    assert set(ok.call) <= {"same", "faster", "slower"}
    assert (ok.call == "same").mean() > 0.9, "fresh noise of 2 % is not a 5 % change"
    assert cmp.agreement_change.isna().all()  # written empty: no verdict changed
    out = capsys.readouterr().out
    assert "B / A time per step" in out
    assert "environment: no difference" in out  # only run_id differs, and it is not an environment difference
    assert pd.read_csv(tmp_path / "env_diff.csv").empty


def test_a_synthetic_slowdown_is_called_slower_and_fails_the_gate(runs, tmp_path, capsys):
    a, _, slow = runs
    assert _run(a, slow, "--out", tmp_path, "--fail-above", "10") == 1
    cmp = pd.read_csv(tmp_path / "compare.csv")
    ok = cmp[(cmp.status_a == "ok") & (cmp.status_b == "ok")]
    assert (ok.call == "slower").all()
    assert ok.ratio.between(1.35, 1.65).all()
    assert (ok.p_value < 0.05).all()  # 5 vs 5 rounds, fully separated: p = 2/252
    assert ok.p_value.min() == pytest.approx(2 / 252)
    err = capsys.readouterr().err
    assert "slower by more than 10%" in err
    envd = pd.read_csv(tmp_path / "env_diff.csv")
    assert {"versions.torch", "threads"} <= set(envd.key)
    # the same slowdown under a gate it does not exceed passes
    assert _run(a, slow, "--out", tmp_path, "--fail-above", "60", "--overwrite") == 0


def test_faster_and_agreement_changes(runs, tmp_path):
    a, _, _ = runs
    rows = fabricate_rows(seed=1)
    numba = rows.backend == "numba"
    rows = _slowed(rows, 0.5, where=numba)
    i = rows.index[(rows.backend == "numpy") & (rows.dataset == "iris")][0]
    rows.at[i, "verdict"] = "fail"
    b = write_run(tmp_path / "b", rows, environment("run-b"))
    assert _run(a, b, "--out", tmp_path / "out", "--fail-above", "10") == 0
    cmp = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert (cmp[cmp.backend == "numba"].call == "faster").all()
    changed = cmp[cmp.agreement_change.notna()]
    assert list(changed.case_id) == [rows.at[i, "case_id"]] and changed.agreement_change.iloc[0] == "pass -> fail"


def test_old_runs_without_case_id_match_on_the_row_keys(runs, tmp_path):
    a, _, _ = runs
    old = _slowed(fabricate_rows(seed=1), 1.5).drop(columns=["case_id"])
    b = write_run(tmp_path / "old", old, environment("old"))
    assert _run(a, b, "--out", tmp_path / "out", "--fail-above", "10") == 1
    cmp = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert len(cmp) == 77


def test_too_few_rounds_fall_back_to_separation():
    a = np.array([1.0, 1.1, 1.2])
    b = a * 1.5
    p, sig, test = compare.significance(a, b, 0.05)
    assert p == pytest.approx(0.1) and sig is True and test.startswith("separation")
    p, sig, _ = compare.significance(a, np.array([1.05, 1.15, 1.25]), 0.05)
    assert sig is False
    assert compare.min_p_value(5, 5) == pytest.approx(2 / 252)


def test_pytest_benchmark_json_files(tmp_path):
    def bench_json(path, factor, seed):
        rng = np.random.default_rng(seed)
        benchmarks = []
        for backend in ("numpy", "torch"):
            data = (0.4 if backend == "numpy" else 1.8) * factor * (1 + 0.01 * rng.standard_normal(5))
            benchmarks.append({
                "name": f"test_train[{backend}-cpu-iris-probs-float32]",
                "fullname": f"tests/benchmarks/test_train.py::test_train[{backend}-cpu-iris-probs-float32]",
                "params": {"backend": backend, "device": "cpu", "dtype": "float32"},
                "stats": {"median": float(np.median(data)), "iqr": 0.01, "rounds": 5, "data": data.tolist()},
                "extra_info": {"backend": backend, "device": "cpu", "dataset": "iris", "dtype": "float32",
                               "formulation": "probs", "n_iters": 5000, "threads": 2, "verdict": "pass"}})
        path.write_text(json.dumps({"machine_info": {"cpu": {"brand_raw": "AMD EPYC"}, "python_version": "3.11.7"},
                                    "commit_info": {"id": "abc"}, "benchmarks": benchmarks, "version": "5.1.0"}))
        return path

    a = bench_json(tmp_path / "a.json", 1.0, 0)
    b = bench_json(tmp_path / "b.json", 1.5, 1)
    assert _run(a, b, "--out", tmp_path / "out", "--fail-above", "10") == 1
    cmp = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert len(cmp) == 2 and (cmp.call == "slower").all() and (cmp.p_value < 0.05).all()
    assert _run(a, a, "--out", tmp_path / "out2", "--fail-above", "10") == 0


@pytest.mark.parametrize("case", ["missing", "no-runs-csv", "not-json", "no-common-rows"])
def test_bad_input_exits_2_with_one_error_line(runs, tmp_path, capsys, case):
    a, _, _ = runs
    if case == "missing":
        other, expect = tmp_path / "nowhere", "no such file or folder"
    elif case == "no-runs-csv":
        (tmp_path / "empty").mkdir()
        other, expect = tmp_path / "empty", "no runs.csv"
    elif case == "not-json":
        other = tmp_path / "x.json"
        other.write_text("{not json")
        expect = "neither a run folder nor a pytest-benchmark JSON file"
    else:
        rows = fabricate_rows()
        rows["dataset"] = "elsewhere"
        rows["case_id"] = rows.apply(case_id, axis=1)
        other, expect = write_run(tmp_path / "other", rows, environment()), "no row in common"
    assert _run(a, other, "--out", tmp_path / "out") == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m bench compare: error: ") and expect in lines[0]
    assert captured.out == ""


# ----------------------------------------------------------------------------------------------
# compare on odd input: what used to go wrong

def _one_error_line(capsys, *expect) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "error: " in lines[0], captured.err
    for e in expect:
        assert e in lines[0], lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


@pytest.mark.parametrize("cut", ["mid-line", "mid-row", "short-row"])
def test_a_runs_csv_cut_short_exits_2_naming_the_file(runs, tmp_path, capsys, cut):
    a, b, _ = runs
    text = (b / "runs.csv").read_text()
    bad = tmp_path / "cut"
    bad.mkdir()
    if cut == "mid-line":  # killed while writing: the last line stops in the middle
        text = text[: len(text) - 40]
    elif cut == "mid-row":  # a row with fewer fields, the file still ending with a newline
        lines = text.splitlines(keepends=True)
        text = "".join(lines[:5]) + ",".join(lines[5].split(",")[:10]) + "\n" + "".join(lines[6:])
    else:  # the last row cut at a field boundary
        lines = text.splitlines(keepends=True)
        text = "".join(lines[:-1]) + ",".join(lines[-1].split(",")[:20]) + "\n"
    (bad / "runs.csv").write_text(text)
    assert _run(a, bad, "--out", tmp_path / "out") == 2
    _one_error_line(capsys, str(bad / "runs.csv"))
    assert not (tmp_path / "out" / "compare.csv").exists()


@pytest.mark.parametrize("column", ["status", "time_per_iter_s", "backend", "dataset"])
def test_a_runs_csv_lacking_a_column_exits_2_naming_it(runs, tmp_path, capsys, column):
    a, _, _ = runs
    b = write_run(tmp_path / "b", fabricate_rows(seed=1).drop(columns=[column]), environment("run-b"))
    assert _run(a, b, "--out", tmp_path / "out") == 2
    _one_error_line(capsys, str(b / "runs.csv"), column)


def test_a_row_that_ran_without_a_time_exits_2(runs, tmp_path, capsys):
    a, _, _ = runs
    rows = fabricate_rows(seed=1)
    rows.loc[rows.index[3], "time_per_iter_s"] = np.nan
    b = write_run(tmp_path / "b", rows, environment("run-b"))
    assert _run(a, b, "--out", tmp_path / "out") == 2
    _one_error_line(capsys, "row 4 has an empty time_per_iter_s")


def _project_json(path, rows: pd.DataFrame, factor: float = 1.0) -> Path:
    """A pytest-benchmark JSON as tests/benchmarks writes it: the whole row under extra_info["row"],
    the rounds (seconds per run() of n_iters steps) in stats.data."""
    benchmarks = []
    for _, r in rows[rows.status == "ok"].iterrows():
        rec = {k: (None if pd.isna(v) else v) for k, v in r.to_dict().items()}
        data = [float(t) * factor for t in str(r["times_s"]).split()]
        rec.update(times_s=" ".join(map(repr, data)), time_per_iter_s=float(np.median(data)) / r["n_iters"],
                   time_median_s=float(np.median(data)))
        benchmarks.append({
            "name": f"test_train[{r['backend']}]",
            "fullname": f"tests/benchmarks/test_train.py::test_train[{r['case_id']}]",
            "params": {"backend": r["backend"], "device": r["device"], "dtype": r["dtype"]},
            "stats": {"median": float(np.median(data)), "iqr": 0.0, "rounds": len(data), "data": data},
            "extra_info": {"row": rec}})
    path.write_text(json.dumps({"machine_info": {"cpu": {"brand_raw": "AMD EPYC"}}, "commit_info": {"id": "abc"},
                                "benchmarks": benchmarks, "version": "5.1.0"}, default=str))
    return path


def test_the_projects_own_benchmark_json_matches_a_run_and_keeps_the_time_per_step(runs, tmp_path):
    a, _, _ = runs
    rows = fabricate_rows(seed=1)
    ja = _project_json(tmp_path / "a.json", rows)
    jb = _project_json(tmp_path / "b.json", rows, factor=1.5)
    # JSON vs a run folder: matched on case_id, not "no row in common"
    assert _run(a, ja, "--out", tmp_path / "o1") == 0
    cmp = pd.read_csv(tmp_path / "o1" / "compare.csv")
    assert len(cmp) == (rows.status == "ok").sum()
    # JSON vs JSON: the time per step, not the per-run median
    assert _run(ja, jb, "--out", tmp_path / "o2", "--fail-above", "10") == 1
    cmp = pd.read_csv(tmp_path / "o2" / "compare.csv").set_index("case_id")
    want = rows[rows.status == "ok"].set_index("case_id").time_per_iter_s
    assert np.allclose(cmp.time_per_iter_a_s.astype(float), want.reindex(cmp.index).astype(float), rtol=1e-9)
    assert cmp.ratio.between(1.49, 1.51).all() and (cmp.call == "slower").all()


def test_a_benchmark_json_without_n_iters_exits_2(tmp_path, capsys):
    bm = {"name": "t", "stats": {"median": 0.3, "data": [0.3, 0.31]}, "extra_info": {"backend": "numpy"}}
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"benchmarks": [bm]}))
    assert _run(p, p, "--out", tmp_path / "out") == 2
    _one_error_line(capsys, "no n_iters")


@pytest.mark.parametrize("flags", [["--fail-above", "nan"], ["--threshold", "nan"], ["--threshold", "inf"],
                                   ["--fail-above", "inf"], ["--threshold", "-inf"], ["--alpha", "nan"]])
def test_non_finite_percentages_are_refused(runs, tmp_path, capsys, flags):
    from bench.cli import main

    a, _, slow = runs
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(a), str(slow), "--out", str(tmp_path / "out"), "--fail-above", "10", *flags])
    assert exc.value.code == 2
    _one_error_line(capsys, flags[0])


def test_fail_above_does_not_depend_on_threshold(runs, tmp_path, capsys):
    a, _, slow = runs  # every row 50 % slower, 5 vs 5 separated rounds
    assert _run(a, slow, "--out", tmp_path / "o1", "--threshold", "80", "--fail-above", "10") == 1
    cmp = pd.read_csv(tmp_path / "o1" / "compare.csv")
    assert (cmp[cmp.status_a == "ok"].call == "same").any(), "under an 80 % threshold the call is 'same'"
    assert "slower by more than 10%" in capsys.readouterr().err
    # noise (rounds that overlap) is not a failure, whatever the median says
    a2, b2, _ = runs
    assert _run(a2, b2, "--out", tmp_path / "o2", "--threshold", "0", "--fail-above", "0.001") in (0, 1)
    cmp = pd.read_csv(tmp_path / "o2" / "compare.csv")
    flagged = cmp[(cmp.change_pct > 0.001) & (cmp.status_a == "ok") & (cmp.status_b == "ok")]
    assert (flagged.significant == False).any()  # noqa: E712 - some rows are noise and do not fail the gate
