"""Every command of ``python -m bench``: one that writes a folder follows `run`'s rules; what cannot
work is refused before any work with one `error:` line and exit 2; nothing ran is non-zero everywhere;
backends are read from the registry when the command runs; one run owner, no import circle."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import build_parser, main
from bench.data import parse_name
from bench.output import claim_folder
from tests.cli import run_cli

from .conftest import ROOT

QUICK_GRAD = ["--backends", "numpy", "--random-points", "1", "--dtypes", "float64", "--formulations", "logits"]
QUICK_TRAJ = ["--datasets", "iris", "--iters", "3", "--dtypes", "float64", "--formulations", "logits",
              "--a", "numpy", "--b", "torch-manual"]


def _one_error_line(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0], proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


# -- every command that writes a folder: the lock, and no silent replacement ----------------------

def test_scale_over_an_earlier_scale_run_is_refused(tmp_path):
    (tmp_path / "scale.csv").write_text("library,world_size\ntorch-ddp,1\n")  # what an earlier scale run left
    proc = run_cli("scale", "--datasets", "iris", "--iters", "2", "--rounds", "1", "--out", str(tmp_path))
    _one_error_line(proc, "already holds a run", "scale.csv", "--overwrite")
    assert (tmp_path / "scale.csv").read_text() == "library,world_size\ntorch-ddp,1\n"


@pytest.mark.parametrize("command, args, owned", [
    ("grad", QUICK_GRAD, "gradients.csv"),
    ("trajectory", QUICK_TRAJ, "trajectory.csv"),
], ids=["grad", "trajectory"])
def test_diagnostics_respect_a_lock_and_refuse_their_earlier_output(command, args, owned, tmp_path):
    with claim_folder(tmp_path):  # as `run` holds it while it runs
        held = run_cli(command, *args, "--out", str(tmp_path))
    _one_error_line(held, "is in use by another run")
    assert not (tmp_path / owned).exists()
    (tmp_path / owned).write_text("an earlier result\n")
    again = run_cli(command, *args, "--out", str(tmp_path))
    _one_error_line(again, "already holds a run", owned)
    assert (tmp_path / owned).read_text() == "an earlier result\n"
    assert main([command, *args, "--out", str(tmp_path), "--overwrite"]) == 0
    assert (tmp_path / owned).read_text() != "an earlier result\n"
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["status"] == "complete" and env["exit_code"] == 0
    assert not (tmp_path / ".lock").exists()


# -- refused before any work: one line, exit 2 -----------------------------------------------------

@pytest.mark.parametrize("where", ["file", "under-a-file", "proc"])
def test_scale_out_that_cannot_be_a_folder_is_one_line(where, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = {"file": blocker, "under-a-file": blocker / "sub", "proc": Path("/proc/x")}[where]
    _one_error_line(run_cli("scale", "--datasets", "iris", "--out", str(out)),
                    "--out must be a folder that can be written")
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("command", ["scale", "grad", "trajectory"])
def test_a_default_results_that_is_a_file_is_one_line(command, tmp_path):
    (tmp_path / "results").write_text("not a folder")
    _one_error_line(run_cli(command, "--datasets", "iris", cwd=tmp_path),
                    "--out must be a folder that can be written")


@pytest.mark.parametrize("args, fragment", [
    (["run", "--datasets", "iris", "--batch-sizes", "1_000", "--backends", "numpy"],
     "batch size 1000 is larger than iris (100 rows)"),
    (["run", "--datasets", "synthetic-50x3", "--batch-sizes", "full", "64", "--backends", "numpy"],
     "batch size 64 is larger than synthetic-50x3"),
    (["scale", "--datasets", "iris", "--workers", "1", "101", "--backends", "torch-ddp"],
     "101 workers are more than the 100 rows of iris"),
], ids=["batch-1_000-on-iris", "batch-64-on-50-rows", "workers-beyond-rows"])
def test_sizes_beyond_the_dataset_are_refused_before_any_work(args, fragment, tmp_path):
    out = tmp_path / "out"
    proc = run_cli(*args, "--out", str(out))
    _one_error_line(proc, fragment)
    assert not out.exists(), "refused before any work: no folder, no bandwidth measurement, no row"


@pytest.mark.parametrize("name, fragment", [
    ("synthetic-100x5-x1e400", "the scale after -x must be a positive finite number, got '1e400'"),
    ("synthetic-100x5-x0", "the scale after -x must be a positive finite number, got '0'"),
    ("synthetic-" + "1" * 5000 + "x5", "n must have at most 12 digits, got 5000"),
    ("synthetic-100x" + "9" * 4400, "d must have at most 12 digits, got 4400"),
], ids=["scale-inf", "scale-zero", "n-5000-digits", "d-4400-digits"])
def test_dataset_names_that_cannot_be_built_are_refused_by_the_parser(name, fragment):
    with pytest.raises(ValueError, match="must"):
        parse_name(name)
    proc = run_cli("run", "--datasets", name)
    _one_error_line(proc, fragment)
    assert "Exceeds the limit" not in proc.stderr
    assert len(proc.stderr) < 400, "the name is shortened, not echoed in full"


# -- nothing ran: non-zero everywhere --------------------------------------------------------------

def test_run_where_nothing_ran_exits_1_and_says_so(tmp_path):
    proc = run_cli("run", "--datasets", "iris", "--iters", "5", "--repeats", "1", "--budget", "1e-9",
                   "--backends", "numpy", "--dtypes", "float64", "--formulations", "logits", "--devices", "cuda:7",
                   "--out", str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "nothing ran" in proc.stderr
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["exit_code"] == 1 and "nothing ran" in env["reason"]


def test_grad_where_nothing_ran_exits_the_same(tmp_path):
    proc = run_cli("grad", *QUICK_GRAD, "--devices", "mps", "--out", str(tmp_path))
    assert proc.returncode == 1 and "no comparison ran" in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads((tmp_path / "env.json").read_text())["exit_code"] == 1


def test_exit_codes_are_in_the_help():
    text = build_parser().format_help()
    assert "nothing ran" in text and "exit codes" in text


# -- backends: whatever is registered when the command runs ----------------------------------------

def test_a_backend_registered_after_import_is_accepted(tmp_path, capsys):
    from bench.cases import default_backends
    from implementations import register, unregister
    from implementations.numpy_backend import NumpyTrainer

    class TrialTrainer(NumpyTrainer):
        name = "trial-numpy"

    register("trial-numpy", TrialTrainer)
    try:
        assert "trial-numpy" in default_backends()
        with pytest.raises(SystemExit):
            main(["run", "--help"])
        assert "trial-numpy" in capsys.readouterr().out  # the help lists the names registered now
        assert main(["grad", "--backends", "numpy", "trial-numpy", "--random-points", "1", "--dtypes", "float64",
                     "--formulations", "logits", "--out", str(tmp_path)]) == 0
        import pandas as pd

        df = pd.read_csv(tmp_path / "gradients.csv")
        assert ("trial-numpy", "finite-diff") in set(zip(df.method_a, df.method_b, strict=True))
    finally:
        unregister("trial-numpy")


# -- one run owner, no import circle, no private names ---------------------------------------------

@pytest.mark.subprocess
def test_scale_imports_no_cli_and_no_module_imports_a_private_name():
    # a subprocess: what a fresh interpreter imports (sys.modules) is the subject
    code = "import sys, bench.scale, bench.diagnostics.grad; assert 'bench.cli' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    for rel in ("bench/scale.py", "bench/cli.py", "bench/diagnostics/__init__.py", "bench/diagnostics/grad.py",
                "bench/diagnostics/trajectory.py"):
        tree = ast.parse((ROOT / rel).read_text())
        private = [f"{node.module}.{a.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   for a in node.names if a.name.startswith("_") and node.module != "__future__"]
        assert not private, f"{rel} imports private names: {private}"


def test_grad_and_trajectory_close_every_trainer(monkeypatch):
    """`with trainer:` on every path, including a comparison that raises."""
    import implementations
    from bench.data import iris
    from bench.diagnostics import grad, trajectory

    closed, made = [], []
    real = implementations.create_trainer

    def tracking(name, config):
        t = real(name, config)
        made.append(t)
        orig = t.close
        t.close = lambda: (closed.append(t), orig())
        return t

    monkeypatch.setattr(grad, "create_trainer", tracking)
    monkeypatch.setattr(trajectory, "create_trainer", tracking)
    ds = iris()
    grad.compare_gradients(ds, ["numpy", "torch-manual"], ("float64",), ("logits",), pts=grad.points(ds, n_random=0))
    trajectory.lockstep(ds, "numpy", "torch-manual", "float64", "logits", 2)
    monkeypatch.setattr(grad, "finite_difference", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        grad.compare_gradients(ds, ["numpy"], ("float64",), ("logits",), pts=grad.points(ds, n_random=0))
    assert made and all(t in closed for t in made)


@pytest.mark.subprocess
@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_diagnostic_interrupted_ends_like_a_run(sig, code, tmp_path):
    """One line, the pipeline's exit code, env.json saying so, the lock let go."""
    # a subprocess: the test sends the signal to the process
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "bench", "trajectory", "--datasets", "synthetic-2kx20",
                             "--iters", "100000", "--dtypes", "float64", "--formulations", "logits",
                             "--a", "numpy", "--b", "torch-manual", "--out", str(tmp_path)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # SIGINT not ignored: conftest (no preexec_fn: no fork after JAX)
    deadline = time.time() + 120
    while not (tmp_path / ".lock").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["status"] == "interrupted" and env["exit_code"] == code
    assert not (tmp_path / ".lock").exists()
