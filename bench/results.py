"""What a run hands its sinks: each finished case's :class:`Outcome`, the run's :class:`RunResult`,
the :class:`Sink` interface, and how a run's ending becomes an exit code and ``env.json``'s status.

The run loop itself is :func:`bench.runner.run`; the sinks (:mod:`bench.output`, ``bench.scale``'s
view, ``bench check``'s checks) need only this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

from .records import Row, to_frame
from .timing import Threads

EXIT_CODES = {"complete": 0, "interrupted": 130, "terminated": 143, "failed": 1}
NOTHING_RAN_EXIT = 1  # as a failed row: every command exits non-zero when no case ran


@dataclass(frozen=True)
class Outcome:
    """A finished case: its row and its loss curve (``case_id, step, loss, ref_loss``)."""

    row: Row
    curve: pd.DataFrame | None = None


@dataclass
class RunResult:
    run_id: str
    rows: list[Row] = field(default_factory=list)
    curves: list[pd.DataFrame] = field(default_factory=list)
    status: str = "complete"  # complete / interrupted / failed
    reason: str = ""
    exit_code: int = 0
    notes: list[str] = field(default_factory=list)
    threads: Threads | None = None
    roofline: dict = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        return to_frame(self.rows)

    def losses(self) -> pd.DataFrame:
        cols = ["case_id", "step", "loss", "ref_loss", "full_loss", "time_s"]
        parts = [c for c in self.curves if c is not None and len(c)]
        return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


class Sink:
    """Receives a run's events; every method optional. ``finish`` runs on every ending."""

    def start(self, result: RunResult, n_cases: int) -> None: ...

    def case(self, case) -> None: ...

    def row(self, outcome: Outcome, result: RunResult) -> None: ...

    def finish(self, result: RunResult) -> None: ...

    def end(self, result: RunResult) -> None:
        """Called once after every sink's ``finish``, with the run's final ending (a signal that came
        while the sinks finished included): bring what ``finish`` recorded up to date, let go."""


def nothing_ran(rows) -> bool:
    """Rows there are, and every one was skipped (no device, no library): nothing was measured."""
    rows = list(rows)
    return bool(rows) and all(r.status == "skipped" for r in rows)


class NothingRan(Sink):
    """Put first among a run's sinks: a complete run whose every row was skipped ends with exit
    code ``NOTHING_RAN_EXIT`` and says so, before any other sink records the ending."""

    def finish(self, result: RunResult) -> None:
        if result.status == "complete" and nothing_ran(result.rows):
            result.exit_code = NOTHING_RAN_EXIT
            result.reason = f"nothing ran: every one of the {len(result.rows)} row(s) was skipped (see their reasons)"


def env_status(result: RunResult) -> dict:
    return {"status": result.status, "reason": result.reason, "rows": len(result.rows),
            "exit_code": result.exit_code, "pid": os.getpid()}
