"""Nothing lost, nothing misreported: every way a run can end, every input that cannot work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import records
from bench.cli import main
from bench.output import RunFolder
from tests.cli import run_cli

from .conftest import ROOT, RUN_ARGS

TINY = [*RUN_ARGS, "--devices", "cpu", "--formulations", "logits"]


def _env(folder):
    return json.loads((folder / "env.json").read_text())


def _no_temp_files(folder):
    return not list(Path(folder).glob(".*.tmp")) and not (Path(folder) / ".lock").exists()


def _start(folder, *extra):
    """A run in a subprocess, for a test that signals it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--datasets", "iris", "--iters", "3000", "--repeats", "3",
         "--backends", "numpy", "torch", "torch-manual", "--devices", "cpu", "--out", str(folder), *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # SIGINT not ignored: conftest


def _wait_for_rows(proc, csv):
    deadline = time.time() + 120
    while not csv.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert csv.exists(), "no row was written"


def test_sigterm_writes_what_it_has(tmp_path):
    # a subprocess: the test sends SIGTERM to the process
    proc = _start(tmp_path)
    _wait_for_rows(proc, tmp_path / "runs.csv")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "terminated by SIGTERM" in err
    env = _env(tmp_path)
    assert env["status"] == "interrupted" and env["reason"] == "terminated by SIGTERM"
    df = records.read_runs(tmp_path / "runs.csv")
    assert env["rows"] == len(df) >= 1
    for name in ("summary.md", "losses.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert _no_temp_files(tmp_path)


def test_sigint_while_writing_the_reports_still_writes_them(tmp_path, monkeypatch):
    from bench import report

    real = report.write_report

    def interrupted_report(*args):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of plotting
        return real(*args)

    monkeypatch.setattr(report, "write_report", interrupted_report)
    before = signal.getsignal(signal.SIGTERM)
    code = main(["run", *TINY, "--backends", "numpy", "--dtypes", "float64", "--out", str(tmp_path)])
    assert code == 130
    assert (tmp_path / "summary.md").exists() and list(tmp_path.glob("*.png"))
    env = _env(tmp_path)  # every row had finished and the reports were completed, but the exit is 130: env.json says so
    assert env["status"] == "interrupted" and env["exit_code"] == 130 and env["rows"] == 1
    assert "SIGINT" in env["reason"] and "while writing the reports" in env["reason"]
    assert _no_temp_files(tmp_path)
    assert signal.getsignal(signal.SIGTERM) is before  # run() put back the handler it found, not its own


def test_early_sigint_leaves_a_record_not_an_empty_folder(tmp_path, monkeypatch):
    from bench import roofline

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(roofline, "measure_roofline", interrupted)
    assert main(["run", *TINY, "--backends", "numpy", "--out", str(tmp_path)]) == 130
    env = _env(tmp_path)
    assert env["status"] == "interrupted" and env["rows"] == 0
    assert _no_temp_files(tmp_path)


def test_an_exception_outside_a_row_keeps_the_finished_rows(tmp_path, monkeypatch):
    from bench.pipeline import Evaluator

    real, calls = Evaluator.execute, []

    def second_case_runs_out_of_memory(self, case):
        calls.append(case)
        if len(calls) == 2:
            raise MemoryError("Unable to allocate 72.8 TiB")
        return real(self, case)

    monkeypatch.setattr(Evaluator, "execute", second_case_runs_out_of_memory)
    code = main(["run", *TINY, "--backends", "numpy", "torch", "--dtypes", "float64", "--out", str(tmp_path)])
    assert code == 1
    env = _env(tmp_path)
    assert env["status"] == "failed" and "MemoryError: Unable to allocate 72.8 TiB" in env["reason"]
    assert len(records.read_runs(tmp_path / "runs.csv")) == 1
    assert (tmp_path / "summary.md").exists() and (tmp_path / "losses.csv").exists()


def test_a_folder_holding_a_run_is_refused_then_overwritten(tmp_path):
    args = ["run", *TINY, "--backends", "numpy", "--dtypes", "float64", "--out", str(tmp_path)]
    assert main(args) == 0
    stale = tmp_path / "suboptimality_an-older-dataset.png"  # a plot of the old run the new one does not redraw
    stale.write_bytes(b"old plot")
    mine = tmp_path / "holiday.png"  # the user's, beside the run: never the run's to remove
    mine.write_bytes(b"\x89PNG holiday")
    first = _env(tmp_path)["run_id"]
    proc = run_cli(*args)
    assert proc.returncode == 2 and "already holds a run" in proc.stderr and "--overwrite" in proc.stderr
    assert "holiday.png" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and _env(tmp_path)["run_id"] == first
    assert main(args + ["--overwrite"]) == 0
    assert _env(tmp_path)["run_id"] != first and not stale.exists()
    assert mine.read_bytes() == b"\x89PNG holiday"


def test_a_second_process_is_kept_out_by_the_lock(tmp_path):
    holder = RunFolder(tmp_path).open()  # this process holds the folder, as a running `bench run` would
    try:
        # a subprocess: the lock must keep out another process (this one holds it)
        proc = run_cli("run", *TINY, "--backends", "numpy", "--out", str(tmp_path), isolated=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert f"in use by another run (pid {os.getpid()})" in proc.stderr and "Traceback" not in proc.stderr
        assert not (tmp_path / "runs.csv").exists()
    finally:
        holder.close()
    assert _no_temp_files(tmp_path)


def test_leftovers_of_a_kill_9_are_removed_by_the_next_run(tmp_path):
    (tmp_path / ".runs.csv.x1y2.tmp").write_text("half a file")
    assert main(["run", *TINY, "--backends", "numpy", "--dtypes", "float64", "--out", str(tmp_path)]) == 0
    assert _no_temp_files(tmp_path)


@pytest.mark.parametrize("args, message", [
    (["--iters", "10000000000000"], "more than the"),
    (["--datasets", "synthetic-1000000Mx1000"], "more than the"),
    (["--seed", "-1"], "argument --seed: expected an integer between 0 and 4294967295, got '-1'"),
    (["--batch-sizes", "foo"], "argument --batch-sizes: expected 'full' or a positive integer, got 'foo'"),
    (["--l2", "nan"], "argument --l2: expected a finite number >= 0, got 'nan'"),
])
def test_checked_before_any_work(tmp_path, args, message):
    out = tmp_path / "out"
    proc = run_cli("run", "--backends", "numpy", *args, "--out", str(out))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (out / "runs.csv").exists() and not (out / "env.json").exists()


def test_a_dataset_that_overflows_the_dtype_fails_alone(tmp_path):
    # --lr given: the default 1/L of data scaled by 1e39 is below float32's smallest value, refused before any work
    code = main(["run", "--datasets", "synthetic-100x5-x1e39", "iris", "--iters", "20", "--backends", "numpy",
                 "--devices", "cpu", "--dtypes", "float32", "--formulations", "logits", "--lr", "0.01",
                 "--out", str(tmp_path)])
    df = records.read_runs(tmp_path / "runs.csv")
    bad = df[df.dataset == "synthetic-100x5-x1e39"].iloc[0]
    assert bad.status == "failed" and "X must fit in float32" in bad.reason
    assert df[df.dataset == "iris"].status.tolist() == ["ok"]
    assert code == 1 and _env(tmp_path)["status"] == "complete" and (tmp_path / "summary.md").exists()
    assert _env(tmp_path)["exit_code"] == 1  # env.json states the exit the run ends with


def test_threads_are_recorded_as_used(tmp_path):
    # a subprocess: numba reads NUMBA_NUM_THREADS once, when it is imported
    proc = run_cli("run", *TINY, "--backends", "numpy", "numba", "--dtypes", "float64", "--out", str(tmp_path),
                   env={"NUMBA_NUM_THREADS": "1"}, isolated=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    df = records.read_runs(tmp_path / "runs.csv")
    assert (df.threads_torch == df.threads).all() and df.threads_numba.eq(1).all()


def test_oversubscription_is_flagged(tmp_path):
    code = main(["run", *TINY, "--backends", "numpy", "--dtypes", "float64", "--threads", str(os.cpu_count() * 4),
                 "--out", str(tmp_path)])
    df = records.read_runs(tmp_path / "runs.csv")
    assert code == 0 and df.oversubscribed.all() and (df.threads_torch == os.cpu_count() * 4).all()
    assert any("oversubscribed" in n for n in _env(tmp_path)["notes"])


def test_an_environment_that_breaks_numba_skips_its_rows(tmp_path):
    # a subprocess: numba reads NUMBA_NUM_THREADS once, when it is imported
    proc = run_cli("run", *TINY, "--backends", "numpy", "numba", "--dtypes", "float64", "--out", str(tmp_path),
                   env={"NUMBA_NUM_THREADS": "0"}, isolated=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    df = records.read_runs(tmp_path / "runs.csv").set_index("backend")
    assert df.loc["numpy", "status"] == "ok"
    assert df.loc["numba", "status"] == "skipped" and "numba cannot start here" in df.loc["numba", "reason"]


def test_grad_on_a_missing_device_is_skipped_and_fails(tmp_path):
    proc = run_cli("grad", "--backends", "numpy", "torch", "--devices", "cuda:7", "--random-points", "1",
                   "--out", str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "skipped: torch on cuda:7" in proc.stderr and "no comparison ran" in proc.stderr


def test_trajectory_on_a_missing_device_is_skipped_and_fails(tmp_path):
    proc = run_cli("trajectory", "--devices", "cuda:7", "--iters", "5", "--out", str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "skipped: cuda:7" in proc.stderr


def test_trajectory_against_itself_is_refused():
    proc = run_cli("trajectory", "--a", "numpy", "--b", "numpy")
    assert proc.returncode == 2 and "two different backends" in proc.stderr and "Traceback" not in proc.stderr


def test_a_library_that_raises_on_overflow_is_diverged_not_failed(tmp_path):
    """torch's BCE refuses the NaN probabilities of an overflowed float32 run: that is the
    divergence, noticed by the library, and the row says so."""
    code = main(["run", "--datasets", "synthetic-200x4-x1e30", "--iters", "20", "--backends", "torch-manual",
                 "--devices", "cpu", "--dtypes", "float32", "--formulations", "probs", "--lr", "1e9",
                 "--out", str(tmp_path)])
    row = records.read_runs(tmp_path / "runs.csv").iloc[0]
    assert code == 0 and row.status == "diverged" and row.verdict == "fail"
    assert "beyond float32's largest value" in row.reason and "all elements of input should be between 0 and 1" in row.reason
