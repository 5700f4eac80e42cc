"""The sinks of a run: its output folder (owned, locked, written as rows finish) and the console.

:class:`RunFolder` owns ``--out``: it refuses a folder that already holds a run unless told to
overwrite it (then it removes that run's files first), keeps a second process out with a lock
naming the holder's pid, removes the temporary files a ``kill -9`` left behind, rewrites
``runs.csv`` atomically after every row, and on every ending writes ``env.json`` (with the run's
``status`` and reason), ``losses.csv``, ``summary.md`` and the plots for the rows that finished.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from pathlib import Path

from . import records
from .pipeline import Outcome, RunResult, Sink, env_status

RUN_FILES = ("runs.csv", "env.json", "summary.md", "losses.csv", "time_to_target.csv")
LOCK = ".lock"


class FolderError(ValueError):
    """The output folder cannot be used (held by another run, or holding one already)."""


class RunFolder(Sink):
    def __init__(self, folder: Path, overwrite: bool = False, report: bool = True, extra_env: dict | None = None):
        self.folder = Path(folder)
        self.overwrite, self.report = overwrite, report
        self.extra_env = extra_env or {}
        self._lock_fd = None
        self.written: list[str] = []

    # -- ownership ------------------------------------------------------------------------------
    def open(self) -> "RunFolder":
        """Claim the folder before any work; FolderError / ValueError with one clear sentence if not."""
        records.check_writable(self.folder)
        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                holder = (self.folder / LOCK).read_text().strip() or "unknown"
                raise FolderError(f"--out {str(self.folder)!r} is in use by another run (pid {holder}); "
                                  "wait for it or choose another folder") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        for tmp in self.folder.glob(f".*{records.TMP_SUFFIX}"):  # what a kill -9 left behind
            tmp.unlink(missing_ok=True)
        old = [p for p in self._run_files() if p.exists()]
        if old and not self.overwrite:
            self.close()
            raise FolderError(f"--out {str(self.folder)!r} already holds a run ({', '.join(p.name for p in old[:3])}); "
                              "pass --overwrite to replace it, or choose another folder")
        for p in old:
            p.unlink()
        return self

    def _run_files(self):
        return [self.folder / n for n in RUN_FILES] + sorted(self.folder.glob("*.png"))

    def close(self):
        if self._lock_fd is not None:
            try:
                (self.folder / LOCK).unlink(missing_ok=True)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- the sink -------------------------------------------------------------------------------
    def start(self, result: RunResult, n_cases: int) -> None:
        if self._lock_fd is None:
            self.open()
        self.env = {**records.environment(result.run_id), **self.extra_env}

    def row(self, outcome: Outcome, result: RunResult) -> None:
        records.write_csv(result.frame(), self.folder / "runs.csv")  # every finished row on disk at once

    def finish(self, result: RunResult) -> None:
        try:
            env = getattr(self, "env", None) or {**records.environment(result.run_id), **self.extra_env}
            env.update(env_status(result), roofline=result.roofline, notes=result.notes,
                       threads=result.threads.asked if result.threads else None,
                       threads_used=result.threads.as_dict() if result.threads else None)
            records.write_json(env, self.folder / "env.json")
            self.written.append("env.json")
            if not result.rows:
                return
            df = result.frame()
            records.write_csv(df, self.folder / "runs.csv")
            records.write_csv(result.losses(), self.folder / "losses.csv")
            self.written += ["runs.csv", "losses.csv"]
            if self.report:
                from . import report

                self.written += [Path(f).name for f in report.write_report(df, result.losses(), env, self.folder)]
        finally:
            self.close()


class Console(Sink):
    """A progress bar while rows run; the summary, notes and one closing line on every ending."""

    def __init__(self, folder: RunFolder | None = None, table: bool = True):
        from rich.console import Console as RichConsole

        self.err = RichConsole(stderr=True)
        self.folder, self.table = folder, table
        self._progress = None

    def start(self, result, n_cases):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
            from rich.console import Console as RichConsole

            from . import report

            report.print_summary(result.frame(), RichConsole(width=None if sys.stdout.isatty() else 140),
                                 result.losses(), getattr(self.folder, "env", None))
        df = result.frame() if result.rows else None
        counts = df.status.value_counts().to_dict() if df is not None else {}
        fails = int((df.verdict == "fail").sum()) if df is not None else 0
        head = {"complete": "", "interrupted": f"[yellow]{result.reason}[/yellow]: ",
                "failed": f"[red]run failed: {result.reason}[/red]: "}[result.status]
        self.err.print(f"{head}{len(result.rows)} row(s) {counts}, {fails} outside tolerance"
                       + (f"; wrote {where}/ ({', '.join(self.folder.written)})" if where else ""))
