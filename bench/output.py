"""The sinks of a run: its output folder (owned, locked, written as rows finish) and the console.

:func:`claim_folder` is the one set of rules for every command that writes a folder: it creates the
folder, takes its ``.lock`` (created exclusively, never through a symbolic link; a lock that is a
link, a directory or a file with other hard links is refused, its target untouched), keeps a second
process out (naming the holder's pid), refuses a folder that already holds this command's output
unless told to overwrite it, and then removes that output, and only it: the files the command
itself writes (its ``owned`` names and patterns), never a file of the user's beside them. A folder
holding only other files is not a run; the command writes beside them.

:class:`RunFolder` is ``run``'s sink on top of it: it rewrites ``runs.csv`` atomically after every
row, and on every ending writes ``losses.csv``, ``summary.md``, the plots for the rows that finished
and, last, ``env.json`` with the run's ``status``, reason and exit code (rewritten if a signal
deferred while the reports were written changed the ending).
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import fnmatch
import os
import re
import shutil
import stat
import sys
from pathlib import Path

from rich.console import Console as RichConsole
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from . import atomic, report
from .env import environment
from .records import as_run
from .results import Outcome, RunResult, Sink, env_status

# what `run` (and `sweep`) write into --out: only these are "a run", only these may be removed
RUN_FILES = ("runs.csv", "env.json", "summary.md", "losses.csv", "time_to_target.csv")
RUN_PLOTS = ("time_vs_n.png", "speed_vs_numpy.png", "loss_vs_oracle.png", "suboptimality_*.png")
RUN_OWNED = RUN_FILES + RUN_PLOTS
LOCK = ".lock"


class FolderError(ValueError):
    """The output folder cannot be used (held by another run, holding one already, a bad lock)."""


def folder_arg(text: str) -> Path:
    """An argparse ``type`` for ``--out``: an empty (or blank) path is refused, never taken as the
    current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a folder, got {text!r} (say '.' for the current folder)")
    return Path(text)


def _owned(name: str, owned) -> bool:
    return any(fnmatch.fnmatchcase(name, pat.rstrip("/")) for pat in owned)


class FolderClaim:
    """One command's hold on one output folder; see :func:`claim_folder` (the way to get one).

    ``owned``: the names / glob patterns of the files this command writes (a pattern ending in
    ``/`` names a sub-folder it writes). ``option`` is how messages name the folder (``--out``).
    Use as a context manager, or ``open()`` / ``close()``. After ``open()``, ``removed`` lists what
    an overwrite removed and ``foreign`` what else the folder holds (left alone)."""

    def __init__(self, folder, owned=RUN_OWNED, overwrite: bool = False, option: str = "--out",
                 what: str = "a run"):
        if folder is None or not str(folder).strip():
            raise FolderError(f"{option} must name a folder, got {str(folder or '')!r}")
        self.folder = Path(folder)
        self.owned, self.overwrite, self.option, self.what = tuple(owned), overwrite, option, what
        self.removed: list[str] = []
        self.foreign: list[str] = []
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _refuse(self, why: str):
        return FolderError(f"{self.option} {str(self.folder)!r} {why}")

    # -- the lock ---------------------------------------------------------------------------------
    def _lock(self) -> int:
        path = self.folder / LOCK
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        for _ in range(20):  # a holder may be letting go while we look: look again
            try:
                fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    self._check_lock(os.lstat(path))
                    fd = os.open(path, flags)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    if exc.errno == errno.ELOOP:  # turned into a link between lstat and open
                        raise self._refuse(f"has a lock file {str(path)!r} that is a symbolic link; remove it "
                                           "or choose another folder") from None
                    raise
            try:
                self._check_lock(os.fstat(fd))
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                        raise self._refuse(f"is in use by another run (pid {holder}); wait for it or choose "
                                           "another folder") from None
                    raise
                try:  # the file we locked must still be the one at .lock (not unlinked by its last holder)
                    same = os.path.samestat(os.fstat(fd), os.lstat(path))
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                return fd
            except BaseException:
                try:
                    os.close(fd)
                except OSError:
                    pass
                raise
        raise self._refuse(f"has a lock file {str(path)!r} that keeps changing; try again")

    def _check_lock(self, st) -> None:
        path = self.folder / LOCK
        if stat.S_ISLNK(st.st_mode):
            raise self._refuse(f"has a lock file {str(path)!r} that is a symbolic link (to "
                               f"{os.readlink(path)!r}); it was not made by this program: remove it or "
                               "choose another folder")
        if stat.S_ISDIR(st.st_mode):
            raise self._refuse(f"has a lock file {str(path)!r} that is a directory; it was not made by this "
                               "program: remove it or choose another folder")
        if not stat.S_ISREG(st.st_mode):
            raise self._refuse(f"has a lock file {str(path)!r} that is not a regular file; remove it or "
                               "choose another folder")
        if st.st_nlink > 1:
            raise self._refuse(f"has a lock file {str(path)!r} with other hard links ({st.st_nlink - 1}); it "
                               "was not made by this program: remove it or choose another folder")

    # -- claiming -----------------------------------------------------------------------------------
    def entries(self) -> list[Path]:
        """This command's own files (and sub-folders) in the folder, sorted."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return [self.folder / n for n in sorted(names) if n != LOCK and _owned(n, self.owned)]

    def open(self) -> "FolderClaim":
        """Create and claim the folder before any work; FolderError (a ValueError) with one sentence if not."""
        if self._fd is not None:
            return self
        try:
            atomic.check_writable(self.folder)
        except ValueError as exc:
            raise FolderError(str(exc).replace("--out", self.option, 1)) from None
        self._fd = self._lock()
        try:
            self._claim()
        except BaseException:
            self.close()
            raise
        return self

    def _claim(self) -> None:
        for name in os.listdir(self.folder):  # what a kill -9 left behind: our own temporary files only
            if name.startswith(".") and name.endswith(atomic.TMP_SUFFIX) and \
                    _owned(name[1:-len(atomic.TMP_SUFFIX)].rsplit(".", 1)[0], self.owned):
                try:
                    if not stat.S_ISDIR(os.lstat(self.folder / name).st_mode):
                        os.unlink(self.folder / name)
                except FileNotFoundError:
                    pass
        old = self.entries()
        dirs_expected = {p.rstrip("/") for p in self.owned if p.endswith("/")}
        for p in old:  # a name of ours that is not what we write: never remove it, never write into it
            is_dir = p.is_dir() and not p.is_symlink()
            if is_dir != any(fnmatch.fnmatchcase(p.name, d) for d in dirs_expected):
                raise self._refuse(f"holds {p.name!r}, {'a folder' if is_dir else 'a file'} where this command "
                                   f"writes {'a file' if is_dir else 'a folder'}; move it or choose another folder")
        if old and not self.overwrite:
            shown = ", ".join(p.name for p in old[:3]) + (f" and {len(old) - 3} more" if len(old) > 3 else "")
            raise self._refuse(f"already holds {self.what} ({shown}); pass --overwrite to replace it, "
                               "or choose another folder")
        for p in old:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
            self.removed.append(p.name)
        self.foreign = [n for n in sorted(os.listdir(self.folder))
                        if n != LOCK and not _owned(n, self.owned) and not n.startswith(".probe-")]

    def close(self) -> None:
        """Let go of the folder: remove the lock file (if it is still ours) and close it."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            path = self.folder / LOCK
            try:
                if os.path.samestat(os.fstat(fd), os.lstat(path)):
                    os.unlink(path)
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)

    def __enter__(self) -> "FolderClaim":
        return self.open()

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


def claim_folder(folder, owned=RUN_OWNED, overwrite: bool = False, option: str = "--out",
                 what: str = "a run") -> FolderClaim:
    """Claim ``folder`` for one command, by the rules every command that writes a folder follows.

    ``owned`` names the files this command writes (names or glob patterns; ``sub/`` for a
    sub-folder): only those make the folder "hold a run" and only those are removed by
    ``overwrite``. Returns the claim, already open; use it as ``with claim_folder(out, ("scale.csv",
    "scale.png"), overwrite=args.overwrite) as claim: ...`` (or call ``claim.close()``). Raises
    :class:`FolderError` (a ValueError: the CLI's one ``error:`` line, exit 2) naming the folder."""
    return FolderClaim(folder, owned, overwrite, option, what).open()


class RunFolder(Sink):
    def __init__(self, folder: Path, overwrite: bool = False, report: bool = True, extra_env: dict | None = None):
        self.claim = FolderClaim(folder, RUN_OWNED, overwrite)  # refuses an empty path at once
        self.folder = self.claim.folder
        self.overwrite, self.report = overwrite, report
        self.extra_env = extra_env or {}
        self.written: list[str] = []
        self._recorded = None

    # -- ownership ------------------------------------------------------------------------------
    @property
    def _lock_fd(self):
        return self.claim._fd

    def open(self) -> "RunFolder":
        """Claim the folder before any work; FolderError / ValueError with one clear sentence if not."""
        self.claim.open()
        return self

    def _run_files(self):
        return self.claim.entries()

    def close(self):
        self.claim.close()

    # -- the sink -------------------------------------------------------------------------------
    def start(self, result: RunResult, n_cases: int) -> None:
        if self._lock_fd is None:
            self.open()
        self.env = {**environment(result.run_id), **self.extra_env}

    def row(self, outcome: Outcome, result: RunResult) -> None:
        atomic.write_csv(result.frame(), self.folder / "runs.csv")  # every finished row on disk at once

    def _update_env(self, result: RunResult) -> dict:
        """The run's facts into ``self.env`` (before the report reads it, and again at the end)."""
        status = env_status(result)
        self.env.update(status, roofline=result.roofline, notes=list(result.notes),
                        threads=result.threads.asked if result.threads else None,
                        threads_used=result.threads.as_dict() if result.threads else None)
        return status

    def _write_env(self, result: RunResult) -> None:
        env, status = self.env, self._update_env(result)
        self._recorded = None  # unknown until the file is on disk: end() rewrites it then
        atomic.write_json(env, self.folder / "env.json")
        self._recorded = status  # what the file says (a signal may change the ending while it is written)
        if "env.json" not in self.written:
            self.written.append("env.json")

    def finish(self, result: RunResult) -> None:
        """Write what the finished rows hold, ``env.json`` last (so that it states the ending as it
        stands once everything else is on disk). The folder stays claimed until :meth:`end` (or
        :meth:`close`): ``bench.runner.run`` calls ``end`` after every sink has finished."""
        if getattr(self, "env", None) is None:
            self.env = {**environment(result.run_id), **self.extra_env}
        try:
            self._update_env(result)  # the report quotes threads and the floor from env
            if result.rows:
                df = result.frame()
                atomic.write_csv(df, self.folder / "runs.csv")
                atomic.write_csv(result.losses(), self.folder / "losses.csv")
                self.written += ["runs.csv", "losses.csv"]
                if self.report:
                    self.written += [Path(f).name for f in report.write_report(df, result.losses(), self.env,
                                                                               self.folder)]
        finally:
            self._write_env(result)

    def end(self, result: RunResult) -> None:
        """The final ending: rewrite ``env.json`` if it changed since :meth:`finish`, then let go."""
        try:
            if env_status(result) != self._recorded:
                self._write_env(result)
        finally:
            self.close()


def _markup(text: str) -> str:
    """The verdict's markdown (``**bold**``, backticks) as rich markup, as the console's summary shows it."""
    text = text.replace("[", "\\[")
    text = re.sub(r"\*\*(.+?)\*\*", r"[bold]\1[/bold]", text)
    return re.sub(r"`([^`]+)`", r"[cyan]\1[/cyan]", text)


class Console(Sink):
    """A progress bar while rows run; the summary, notes and one closing line on every ending."""

    def __init__(self, folder: RunFolder | None = None, table: bool = True):
        self.err = RichConsole(stderr=True)
        self.folder, self.table = folder, table
        self._progress = None

    def start(self, result, n_cases):
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=self.err, transient=True)
        self._progress.start()
        self._task = self._progress.add_task("starting", total=n_cases)
        for note in result.notes:
            self.err.print(f"[yellow]warning: {note}[/yellow]")

    def case(self, case):
        self._progress.update(self._task, description=f"{case.dataset} {case.config.dtype} {case.config.formulation} "
                                                      f"{case.loop} {case.backend}@{case.device}")

    def row(self, outcome, result):
        self._progress.advance(self._task)

    def finish(self, result):
        if self._progress is not None:
            self._progress.stop()
        for note in result.notes:
            self.err.print(f"[yellow]note: {note}[/yellow]")
        where = self.folder.folder if self.folder else None
        if result.rows and self.table:
            report.print_summary(result.frame(), RichConsole(width=None if sys.stdout.isatty() else 140),
                                 result.losses(), getattr(self.folder, "env", None))
        df = result.frame() if result.rows else None
        counts = df.status.value_counts().to_dict() if df is not None else {}
        fails = int((df.verdict == "fail").sum()) if df is not None else 0
        head = {"complete": "", "interrupted": f"[yellow]{result.reason}[/yellow]: ",
                "failed": f"[red]run failed: {result.reason}[/red]: "}[result.status]
        self.err.print(f"{head}{len(result.rows)} row(s) {counts}, {fails} outside tolerance"
                       + (f"; wrote {where}/ ({', '.join(self.folder.written)})" if where else ""))
        self._said = (result.status, result.exit_code)
        if df is not None and self.table:
            self.answer(df, where / "summary.md" if where and "summary.md" in self.folder.written else None)

    def answer(self, df, summary=None, console=None) -> None:
        """The run's last lines: the verdict's answer (:func:`bench.report.headlines`, the same sentences
        as ``summary.md``'s verdict) and where the full summary is. One line per sentence, never wrapped."""
        console = console or RichConsole(width=None if sys.stdout.isatty() else 140)
        rows, _, _ = as_run(df, None)
        console.print("\n[bold]The answer[/bold] (from the verdict)", soft_wrap=True)
        for title, sentences in report.headlines(rows):
            console.print(f"[bold]{_markup(title)}[/bold]", soft_wrap=True)
            for text in sentences:
                console.print(f"  • {_markup(text)}", soft_wrap=True)
        if summary is not None:
            console.print(f"Full summary: {summary}", soft_wrap=True, markup=False, highlight=False)

    def end(self, result):
        if getattr(self, "_said", None) not in (None, (result.status, result.exit_code)):
            self.err.print(f"[yellow]{result.reason}[/yellow] (exit code {result.exit_code})")
