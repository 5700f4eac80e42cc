"""The diagnostics: ``grad`` (hand-derived gradients against autograd and finite differences) and
``trajectory`` (two backends in lockstep, the first step where they part).

Neither times anything, so they do not go through :func:`bench.runner.run`; they end as it does:
the output folder is a :class:`bench.output.RunFolder` (locked, refused when it holds a run unless
``--overwrite``, ``env.json`` with the ending written on every ending), SIGINT and SIGTERM end with
130 and 143 and one line, any other exception with 1 and one ``error:`` line, and a diagnostic in
which nothing ran exits ``NOTHING_RAN_EXIT``, as a run does. Every trainer is closed on every path.
"""

from __future__ import annotations

import signal
import sys
import threading

from .. import interrupts
from ..interrupts import Terminated
from ..results import NOTHING_RAN_EXIT, RunResult


def run_owned(command: str, folder, run_id: str, body) -> int:
    """Run ``body(result) -> exit code`` with ``folder`` (an opened ``RunFolder``) as its sink, ending
    as :func:`bench.runner.run` does; returns the exit code, which ``env.json`` records."""
    result = RunResult(run_id)
    main = threading.current_thread() is threading.main_thread()
    old_handlers = interrupts.install()  # SIGINT, SIGTERM raise here, and again if a finalizer drops them
    try:
        folder.start(result, 0)
        result.exit_code = int(body(result))
        if result.exit_code == NOTHING_RAN_EXIT and not result.reason:
            result.reason = "nothing ran"
    except KeyboardInterrupt:
        result.status, result.reason, result.exit_code = "interrupted", "interrupted by SIGINT (Ctrl-C)", 130
    except Terminated:
        result.status, result.reason, result.exit_code = "interrupted", "terminated by SIGTERM", 143
    except Exception as exc:  # a bug or a library's failure outside any one comparison
        result.status, result.reason, result.exit_code = "failed", f"{type(exc).__name__}: {exc}", 1
    finally:
        def noted(signum, frame):  # while the folder records the ending: noted, and the ending says so
            if result.status == "complete":
                result.status, result.exit_code = "interrupted", 128 + signum
                result.reason = f"signal {signum} while writing the reports (they were finished first)"

        old = {s: signal.signal(s, noted) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        old.update(old_handlers)
        try:
            folder.finish(result)
        finally:
            try:
                folder.end(result)  # rewrites env.json if the ending changed meanwhile; lets go of the lock
            finally:
                interrupts.restore(old)
    if result.status == "failed":
        print(f"python -m bench {command}: error: {result.reason}", file=sys.stderr)
    elif result.status == "interrupted":
        print(f"python -m bench {command}: {result.reason or 'interrupted'}", file=sys.stderr)
    return result.exit_code


def print_table(df, title, columns) -> None:
    """``df[columns]`` as a rich table on stdout (numbers in 3 significant digits)."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        t.add_column(c, overflow="fold")
    for _, r in df[columns].iterrows():
        t.add_row(*[f"{v:.2e}" if isinstance(v, float) else str(v) for v in r])
    Console(width=None if sys.stdout.isatty() else 160).print(t)
