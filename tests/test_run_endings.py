"""Nothing misreported: every way a run can end (a signal, also while the reports are written or during
the imports; an exception; a failed row), its exit status and env.json, every input that cannot work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench import records
from bench.cli import main
from tests.cli import run_cli

from .conftest import ROOT, RUN_ARGS

TINY = [*RUN_ARGS, "--devices", "cpu", "--formulations", "logits"]
NUMPY_RUN = ["run", *TINY, "--backends", "numpy", "--dtypes", "float64"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SLOW = 240  # seconds: a bound for a loaded machine, not an expectation


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


@pytest.mark.subprocess
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
    code = main([*NUMPY_RUN, "--out", str(tmp_path)])
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
    from bench.measure import Evaluator

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


@pytest.mark.slow
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


@pytest.mark.subprocess
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


@pytest.mark.subprocess
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
    assert "beyond float32's largest value" in row.reason
    assert "all elements of input should be between 0 and 1" in row.reason


_SIGNAL_AFTER = textwrap.dedent("""
    import os, signal, sys
    from bench import atomic, report, roofline
    from bench.cli import main

    roofline.measure_roofline = lambda *args, **kwargs: {}  # seconds of measuring, beside the point here

    target, signum = sys.argv[1], int(sys.argv[2])
    for mod, name in ((atomic, "write_json"), (report, "write_summary")):
        real = getattr(mod, name)
        def wrapped(*a, _real=real, **k):
            out = _real(*a, **k)
            if any(str(x).endswith(target) for x in a) and not os.environ.get("SENT"):
                os.environ["SENT"] = "1"
                os.kill(os.getpid(), signum)
            return out
        setattr(mod, name, wrapped)
    sys.exit(main(sys.argv[3:]))
""")


@pytest.mark.subprocess
@pytest.mark.parametrize("after, signum", [("env.json", signal.SIGTERM), ("summary.md", signal.SIGTERM),
                                           ("summary.md", signal.SIGINT)])
def test_a_signal_while_the_reports_are_written(tmp_path, after, signum):
    # a subprocess: the program signals its own process, and its exit status is the test's subject
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_AFTER, after, str(int(signum)), *NUMPY_RUN,
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=SLOW, cwd=ROOT, env=ENV)
    code = 128 + signum
    assert proc.returncode == code and "Traceback" not in proc.stderr, proc.stderr
    env = _env(tmp_path)
    assert env["status"] == "interrupted" and env["exit_code"] == code, env
    assert "while writing the reports" in env["reason"] and env["rows"] == 1
    for name in ("runs.csv", "losses.csv", "summary.md", "time_to_target.csv", "loss_vs_oracle.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert not (tmp_path / ".lock").exists() and not list(tmp_path.glob(".*.tmp"))


def test_a_failed_row_exits_1_and_env_json_says_1(tmp_path):
    code = main(["run", "--datasets", "synthetic-100x5-x1e39", "--iters", "20", "--backends", "numpy",
                 "--devices", "cpu", "--dtypes", "float32", "--formulations", "logits", "--repeats", "1",
                 "--budget", "1e-9", "--lr", "0.01", "--out", str(tmp_path)])
    env = _env(tmp_path)
    assert code == 1 and env["status"] == "complete" and env["exit_code"] == 1


def _wait_for_mapping(proc, needle, timeout=SLOW):
    """Poll until the process has ``needle`` among its mapped files (a library being imported)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if needle in Path(f"/proc/{proc.pid}/maps").read_text():
                return
        except OSError:
            pass
        time.sleep(0.005)
    pytest.fail(f"{needle} never loaded (exit {proc.poll()})")


@pytest.mark.subprocess
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
@pytest.mark.parametrize("command", [NUMPY_RUN + ["--out", "OUT"], ["grad", "--backends", "numpy", "--out", "OUT"]])
def test_ctrl_c_during_the_imports_is_one_line(tmp_path, command):
    command = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    # a subprocess: the test sends SIGINT to a fresh interpreter while it imports NumPy
    proc = subprocess.Popen([sys.executable, "-m", "bench", *command], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_mapping(proc, "_multiarray_umath")  # NumPy is being imported: well inside the imports
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=SLOW)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m bench") and lines[0].endswith(": interrupted"), err


@pytest.mark.subprocess
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_a_torch_ddp_rank_interrupted_while_starting_prints_no_keyboard_interrupt():
    from implementations import torch_ddp

    # a subprocess: SIGINT to a fresh rank program (python -c) while it imports torch
    # the rank's own program, with arguments it will refuse once started (so that it ends at once)
    proc = subprocess.Popen([sys.executable, "-c", torch_ddp._RANK_PROGRAM, "x"], cwd=ROOT, env=ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_mapping(proc, "_multiarray_umath")  # torch imports NumPy first: the rank is starting
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=SLOW)
    finally:
        proc.kill()
    assert "KeyboardInterrupt" not in err, err
