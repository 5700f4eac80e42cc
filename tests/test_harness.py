"""The harness itself: CSV schema and dtypes, summary, statuses, CLI errors, interruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from bench import records
from bench.cli import main
from bench.report import summary_markdown
from bench.timing import Measurement
from tests.cli import run_cli

from .conftest import ROOT, RUN_ARGS


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    # 30 steps, exactly 3 timed rounds (the schema test checks rounds >= 3; no time budget adds more)
    code = main(["run", *RUN_ARGS, "--iters", "30", "--repeats", "3", "--budget", "1e-9", "--backends", "numpy",
                 "torch", "--devices", "cpu", "cuda:9",
                 "--formulations", "probs", "--out", str(out)])
    return code, out


@pytest.mark.slow
def test_run_writes_every_file(small_run):
    code, out = small_run
    assert code == 0
    umask = os.umask(0)
    os.umask(umask)
    for name in ("runs.csv", "env.json", "summary.md", "losses.csv", "time_to_target.csv", "speed_vs_numpy.png",
                 "suboptimality_iris.png", "loss_vs_oracle.png"):
        st = (out / name).stat()
        assert st.st_size > 0, name
        assert st.st_mode & 0o777 == 0o666 & ~umask, f"{name}: not the usual permissions"


def test_csv_schema_and_dtypes(small_run):
    _, out = small_run
    df = records.read_runs(out / "runs.csv")
    assert list(df.columns) == list(records.SCHEMA)
    for col, dtype in records.SCHEMA.items():
        assert str(df[col].dtype) == dtype, col
    ok = df[df.status == "ok"]
    assert len(ok) == 4  # numpy, torch x float32, float64 on cpu
    assert set(ok.verdict) == {"pass"}
    assert (ok.n == 100).all() and (ok.d == 4).all() and (ok.n_iters == 30).all() and (ok.lr == 0.01).all()
    assert (ok.time_per_iter_s > 0).all() and (ok.time_iqr_s >= 0).all() and (ok.rounds >= 3).all()
    assert (ok.time_per_iter_s == ok.time_median_s / ok.n_iters).all()
    assert (ok.transfer_s > 0).all() and (ok.threads >= 1).all() and (ok.achieved_gbps > 0).all()
    assert ok.run_id.nunique() == 1
    assert (ok.suboptimality > 0).all(), "30 steps cannot reach the optimum"
    assert ok.optimum_loss.round(3).eq(0.059).all()
    env = pd.read_json(out / "env.json", typ="series")
    assert env["run_id"] == ok.run_id.iloc[0]
    assert {"numpy", "torch", "sklearn", "pandas", "cupy"} <= set(env["versions"])
    assert env["cpu"]["model"] and env["git_sha"] and env["blas"]


def test_unavailable_device_is_a_skipped_row(small_run):
    _, out = small_run
    df = records.read_runs(out / "runs.csv")
    skipped = df[df.device == "cuda:9"]
    assert len(skipped) == 4 and set(skipped.status) == {"skipped"}
    assert skipped.reason.str.contains("cuda:9").all()
    assert skipped.time_median_s.isna().all()


def test_summary_table(small_run):
    _, out = small_run
    run = records.read_run(out)
    md = (out / "summary.md").read_text()
    assert md.startswith(summary_markdown(run.rows, run.losses, run.env))
    assert md.index("## Verdict") < md.index("| backend |")
    assert "GPU/CPU crossover" in md
    assert "iris (n=100, d=4), full batch, float32, 30 steps" in md
    numpy_row = next(line for line in md.splitlines() if line.startswith("| numpy | cpu | probs |"))
    assert "| 1.00× |" in numpy_row and "| yes |" in numpy_row
    assert "skipped" in md and "cuda:9" in md


def test_one_divergence_rule_and_the_run_goes_on(tmp_path):
    """Non-finite values and a loss grown past 1e5x its first value are both `diverged`, with the
    step; the run goes on to the next case."""
    code = main(["run", "--datasets", "synthetic-200x4-x1e20", "iris", "--iters", "20", "--repeats", "3",
                 "--budget", "1e-9", "--backends", "numpy", "torch", "--devices", "cpu", "--dtypes", "float32",
                 "--formulations", "logits", "--lr", "1e6", "--out", str(tmp_path)])
    df = records.read_runs(tmp_path / "runs.csv")
    assert code == 0
    assert len(df) == 4 and set(df.status) == {"diverged"} and set(df.verdict) == {"fail"}
    inf = df[df.dataset == "synthetic-200x4-x1e20"]
    assert inf.reason.str.contains("non-finite from step").all()
    grown = df[df.dataset == "iris"]
    assert grown.reason.str.contains("above 1e[+]05x its first value from step 1").all()


def test_noisy_flag():
    assert Measurement((1.0, 1.0, 1.0, 1.0), 10).noisy is False
    assert Measurement((1.0, 1.5, 2.0, 2.5), 10).noisy is True


@pytest.mark.parametrize("args, message", [
    (["--backends", "tensorflow"], "--backends: backend must be one of ["),
    (["--devices", "tpu"], "--devices must be among cpu, cuda, cuda:N, mps, got 'tpu'"),
    (["--datasets", "mnist"], "--datasets: dataset must be 'iris', 'breast-cancer'"),
    (["--dtypes", "float16"], "--dtypes must be among ['float32', 'float64'], got 'float16'"),
    (["--iters", "0"], "argument --iters: expected a positive integer, got '0'"),
    (["--out", "/proc/version/x"], "--out must be a folder that can be written"),
])
def test_cli_errors_are_one_line_exit_2(args, message):
    proc = run_cli("run", *args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.slow
def test_unwritable_out_is_refused_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_cli("run", "--out", str(blocker / "sub"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--out must be a folder that can be written" in proc.stderr
    assert proc.stdout == ""  # no summary table: no row was run
    assert blocker.read_text() == "not a folder"


@pytest.mark.subprocess
def test_interrupt_keeps_finished_rows(tmp_path):
    # a subprocess: the test sends SIGINT to the process
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--datasets", "iris", "--iters", "2000", "--repeats", "3",
         "--backends", "numpy", "torch", "torch-manual", "--devices", "cpu", "--out", str(tmp_path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # SIGINT not ignored: conftest
    csv = tmp_path / "runs.csv"
    deadline = time.time() + 120
    while not csv.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert csv.exists(), "no row was written"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    df = records.read_runs(csv)
    assert 1 <= len(df) < 12
    assert df.status.iloc[0] == "ok"
    assert (tmp_path / "env.json").exists()
    assert not list(tmp_path.glob(".*.tmp")), "a temp file was left behind"


def test_grad_command_writes_the_report(tmp_path):
    from bench.diagnostics.grad import COLUMNS

    assert main(["grad", "--backends", "numpy", "torch", "--random-points", "1", "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "gradients.csv")
    assert list(df.columns) == COLUMNS
    sat = df[(df.point == "saturated") & (df.formulation == "probs") & (df.method_a == "numpy")
             & (df.method_b == "torch")]
    assert len(sat) == 2 and not sat.passed.any() and sat.note.str.contains("known probs difference").all()


def test_trajectory_command(tmp_path):
    assert main(["trajectory", "--iters", "20", "--dtypes", "float32", "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "trajectory.csv").set_index("formulation")
    assert df.loc["probs", "first_divergence_step"] != "never"
    assert df.loc["logits", "first_divergence_step"] == "never"
    steps = pd.read_csv(tmp_path / "trajectory_steps.csv")
    assert len(steps) == 40 and {"step", "rel_deviation"} <= set(steps.columns)


def test_trajectory_unknown_backend_is_exit_2():
    proc = run_cli("trajectory", "--a", "tensorflow")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "got 'tensorflow'" in proc.stderr


def test_a_noisy_row_says_why():
    from bench.judge import noise_reason
    from bench.timing import CpuSample

    m = Measurement((1.0, 1.5, 2.0, 2.5), 10)
    busy, stolen, idle = noise_reason(m, (1.3, 0.0)), noise_reason(m, (0.0, 0.4)), noise_reason(m, (0.02, 0.0))
    assert busy.startswith("noisy: IQR 43% of the median over 4 rounds") and "other processes kept 1.30 cores" in busy
    assert "the hypervisor took 0.40 cores (steal time)" in stolen
    assert "no other load on the machine" in idle and "--repeats" in idle
    a = CpuSample(wall=0.0, own=0.0, busy=10.0, steal=1.0)
    b = CpuSample(wall=2.0, own=1.0, busy=13.0, steal=1.2)  # 3 s busy in 2 s, 1 s of it ours
    assert b.others_since(a) == (1.0, pytest.approx(0.1))
