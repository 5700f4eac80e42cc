"""The folder a run writes (bench.output): nothing of a user's lost beside a run, a folder holding a
run refused unless --overwrite, the lock (another process, a hostile ``.lock``, a kill -9's leftovers),
an empty ``--out``."""

from __future__ import annotations

import fnmatch
import json
import os
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


def _no_temp_files(folder):
    return not list(Path(folder).glob(".*.tmp")) and not (Path(folder) / ".lock").exists()


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


@pytest.mark.slow
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


# -- endings: Ctrl-C while starting --------------------------------------------------------------


@pytest.mark.slow
def test_a_folder_holding_a_run_is_refused_then_overwritten(tmp_path):
    args = [*TINY, "--out", str(tmp_path)]
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


@pytest.mark.subprocess
def test_a_second_process_is_kept_out_by_the_lock(tmp_path):
    holder = RunFolder(tmp_path).open()  # this process holds the folder, as a running `bench run` would
    try:
        # a subprocess: the lock must keep out another process (this one holds it)
        proc = run_cli(*TINY, "--out", str(tmp_path), isolated=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert f"in use by another run (pid {os.getpid()})" in proc.stderr and "Traceback" not in proc.stderr
        assert not (tmp_path / "runs.csv").exists()
    finally:
        holder.close()
    assert _no_temp_files(tmp_path)


def test_leftovers_of_a_kill_9_are_removed_by_the_next_run(tmp_path):
    (tmp_path / ".runs.csv.x1y2.tmp").write_text("half a file")
    assert main([*TINY, "--out", str(tmp_path)]) == 0
    assert _no_temp_files(tmp_path)
