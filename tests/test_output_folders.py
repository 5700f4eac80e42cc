"""Nothing lost: a user's files beside a run, a hostile ``.lock``, an empty ``--out``, and the
endings that used to misreport themselves (a signal while the reports are written, a Ctrl-C during
the imports, a torch-ddp rank interrupted while it starts)."""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.output import RUN_OWNED, FolderError, RunFolder, claim_folder
from tests.cli import run_cli

from .conftest import ROOT, RUN_ARGS

TINY = ["run", *RUN_ARGS, "--devices", "cpu", "--backends", "numpy", "--dtypes", "float64", "--formulations", "logits"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SLOW = 240  # seconds: a bound for a loaded machine, not an expectation


@pytest.fixture(autouse=True)
def _no_roofline(monkeypatch):
    """The hardware's floor and roof take seconds to measure and play no part here."""
    from bench import roofline

    monkeypatch.setattr(roofline, "measure_roofline", lambda *args, **kwargs: {})


def _one_error_line(proc, *needles):
    err = proc.stderr.strip()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in err and len(err.splitlines()) == 1 and "error:" in err, err
    for n in needles:
        assert n in err, err


def _env(folder):
    return json.loads((Path(folder) / "env.json").read_text())


def _user_files(folder):
    (folder / "holiday.png").write_bytes(b"\x89PNG my holiday")
    (folder / "notes.txt").write_text("my notes\n")


def _user_files_intact(folder):
    return ((folder / "holiday.png").read_bytes() == b"\x89PNG my holiday"
            and (folder / "notes.txt").read_text() == "my notes\n")


# -- data loss ----------------------------------------------------------------------------------

def test_overwrite_beside_a_users_files_deletes_none_of_them(tmp_path):
    _user_files(tmp_path)
    assert main([*TINY, "--out", str(tmp_path), "--overwrite"]) == 0
    assert _user_files_intact(tmp_path) and _env(tmp_path)["status"] == "complete"


def test_a_folder_of_foreign_files_is_not_a_run(tmp_path):
    _user_files(tmp_path)
    assert main([*TINY, "--out", str(tmp_path)]) == 0  # written beside them, no --overwrite needed
    assert _user_files_intact(tmp_path) and (tmp_path / "runs.csv").exists()
    proc = run_cli(*TINY, "--out", str(tmp_path))  # now it holds a run: named by the run's own files
    _one_error_line(proc, "already holds a run (", "env.json", "--overwrite")
    assert "holiday.png" not in proc.stderr and "notes.txt" not in proc.stderr
    assert main([*TINY, "--out", str(tmp_path), "--overwrite"]) == 0
    assert _user_files_intact(tmp_path)


def test_only_the_runs_own_leftovers_are_cleaned(tmp_path):
    (tmp_path / ".runs.csv.k2j4x9ab.tmp").write_text("half a file")  # ours, left by a kill -9
    (tmp_path / ".draft.tmp").write_text("the user's")  # not ours
    (tmp_path / "plot.png.tmp").write_text("the user's")
    assert main([*TINY, "--out", str(tmp_path)]) == 0
    assert not (tmp_path / ".runs.csv.k2j4x9ab.tmp").exists()
    assert (tmp_path / ".draft.tmp").read_text() == "the user's" and (tmp_path / "plot.png.tmp").exists()


def test_a_folder_where_a_run_file_should_be_is_refused_not_removed(tmp_path):
    (tmp_path / "runs.csv").mkdir()
    (tmp_path / "runs.csv" / "precious.txt").write_text("keep")
    proc = run_cli(*TINY, "--out", str(tmp_path), "--overwrite")
    _one_error_line(proc, "'runs.csv', a folder where this command writes a file")
    assert (tmp_path / "runs.csv" / "precious.txt").read_text() == "keep"


def test_the_owned_names_cover_everything_a_run_writes(tmp_path):
    folder = RunFolder(tmp_path)
    assert main([*TINY, "--datasets", "iris", "synthetic-200x4", "--out", str(tmp_path)]) == 0
    written = [p.name for p in tmp_path.iterdir()]
    assert {"runs.csv", "env.json", "summary.md", "losses.csv"} <= set(written)
    foreign = [n for n in written if not any(fnmatch.fnmatchcase(n, pat) for pat in RUN_OWNED)]
    assert foreign == [], f"the run wrote files that --overwrite would not remove: {foreign}"
    assert sorted(p.name for p in folder._run_files()) == sorted(written)


# -- the lock -----------------------------------------------------------------------------------

def test_a_lock_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("the victim's text\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").symlink_to(victim)
    proc = run_cli(*TINY, "--out", str(out))
    _one_error_line(proc, ".lock", "symbolic link")
    assert victim.read_text() == "the victim's text\n" and (out / ".lock").is_symlink()
    assert not (out / "runs.csv").exists()


def test_a_dangling_lock_symlink_creates_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").symlink_to(tmp_path / "would-be-created")
    with pytest.raises(FolderError, match="symbolic link"):
        claim_folder(out)
    assert not (tmp_path / "would-be-created").exists()


def test_a_lock_that_is_a_directory_is_refused(tmp_path):
    (tmp_path / ".lock").mkdir()
    proc = run_cli(*TINY, "--out", str(tmp_path))
    _one_error_line(proc, ".lock", "is a directory")
    assert (tmp_path / ".lock").is_dir() and not (tmp_path / "runs.csv").exists()


def test_a_hard_linked_lock_is_refused_and_its_other_name_untouched(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("the victim's text\n")
    out = tmp_path / "out"
    out.mkdir()
    os.link(victim, out / ".lock")
    proc = run_cli(*TINY, "--out", str(out))
    _one_error_line(proc, ".lock", "hard links")
    assert victim.read_text() == "the victim's text\n"


def test_a_stale_lock_of_a_killed_run_is_taken_over(tmp_path):
    (tmp_path / ".lock").write_text("999999\n")  # a kill -9 left it; nobody holds it
    with claim_folder(tmp_path) as claim:
        assert claim.held and (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
    assert not (tmp_path / ".lock").exists()


def test_claim_folder_is_one_set_of_rules_for_every_command(tmp_path):
    owned = ("scale.csv", "scale.png")
    _user_files(tmp_path)
    with claim_folder(tmp_path, owned) as claim:
        assert claim.foreign == ["holiday.png", "notes.txt"] and claim.removed == []
        with pytest.raises(FolderError, match=f"in use by another run \\(pid {os.getpid()}\\)"):
            claim_folder(tmp_path, ("gradients.csv",))  # another command, same folder: kept out
        (tmp_path / "scale.csv").write_text("a,b\n")
    with pytest.raises(FolderError, match=r"already holds a run \(scale.csv\); pass --overwrite"):
        claim_folder(tmp_path, owned)
    with claim_folder(tmp_path, owned, overwrite=True) as claim:
        assert claim.removed == ["scale.csv"]
    assert _user_files_intact(tmp_path) and not (tmp_path / ".lock").exists()


# -- --out '' -----------------------------------------------------------------------------------

@pytest.mark.parametrize("out", ["", "   "])
def test_an_empty_out_is_refused(tmp_path, out):
    proc = run_cli(*TINY, "--out", out, cwd=tmp_path)
    _one_error_line(proc, "argument --out: expected a folder")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_out_is_refused_by_every_command_and_the_api(tmp_path):
    proc = run_cli("grad", "--backends", "numpy", "--out", "", cwd=tmp_path)
    _one_error_line(proc, "argument --out: expected a folder")
    assert list(tmp_path.iterdir()) == []
    for bad in ("", None):
        with pytest.raises(FolderError, match="must name a folder"):
            claim_folder(bad)
    with pytest.raises(FolderError, match="must name a folder"):
        RunFolder("")


# -- endings: env.json always matches the exit -----------------------------------------------------

# SIGTERM to itself right after a given report file is written, as a `kill` from outside would land
_SIGNAL_AFTER = textwrap.dedent("""
    import os, signal, sys
    from bench import records, report, roofline
    from bench.cli import main

    roofline.measure_roofline = lambda *args, **kwargs: {}  # seconds of measuring, beside the point here

    target, signum = sys.argv[1], int(sys.argv[2])
    for mod, name in ((records, "write_json"), (report, "write_summary")):
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


@pytest.mark.parametrize("after, signum", [("env.json", signal.SIGTERM), ("summary.md", signal.SIGTERM),
                                           ("summary.md", signal.SIGINT)])
def test_a_signal_while_the_reports_are_written(tmp_path, after, signum):
    # a subprocess: the program signals its own process, and its exit status is the test's subject
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_AFTER, after, str(int(signum)), *TINY,
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
                 "--devices", "cpu", "--dtypes", "float32", "--formulations", "logits", "--repeats", "1", "--lr", "0.01",
                 "--out", str(tmp_path)])
    env = _env(tmp_path)
    assert code == 1 and env["status"] == "complete" and env["exit_code"] == 1


# -- endings: Ctrl-C while starting --------------------------------------------------------------

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


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
@pytest.mark.parametrize("command", [TINY + ["--out", "OUT"], ["grad", "--backends", "numpy", "--out", "OUT"]])
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
