"""Backends from users: ``python -m bench backends`` and ``python -m bench check SPEC``.

``backends`` lists every backend — the built-ins, ``register()``-ed ones, entry-point plugins of the
group ``logreg_bench.backends`` and any spec named on the command line — with what it declares it
is (library, gradient, engine, compiled, style), what it supports (mini-batches, L2, devices,
dtypes) and where it came from.

``check SPEC`` answers a practitioner's two questions about one loop (SPEC: a registered name,
``package.module:Class`` or ``path/file.py:Class``):

1. *Is it right?* :mod:`implementations.testing`'s checks, the ones the built-ins pass — the
   contract and call order, restart from ``w0``, result shapes, bad input raising ValueError,
   ``loss_and_grad`` against the float64 oracle and finite differences, agreement with the float64
   oracle in both formulations and dtypes (plus mini-batches and L2 where supported) — and, for a
   loop that disagrees, the first step at which it leaves the oracle's path and by how much.
2. *How fast?* The same backend beside ``numpy`` and ``torch`` on Iris and one larger set, through
   :func:`bench.runner.run` (the same rows, the same run folder as ``bench run``: ``runs.csv``,
   ``losses.csv``, ``summary.md``, plots, ``env.json``), plus ``check.csv`` with every check's outcome.

It ends with a one-screen verdict. Exit 0 right, 1 wrong (a check failed, or one of its rows
failed, diverged or disagrees with the oracle), 2 the spec cannot be loaded (or a bad argument),
130 / 143 interrupted. The checks run under ``--row-timeout`` too: a check still running after it
is a failed check, and the command goes on.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import textwrap

import pandas as pd

from implementations import backend_spec, get_backend, origin
from implementations.testing import checks, run_checks

from .atomic import write_csv
from .measure import RowTimeout, row_timer
from .report.format import format_time
from .results import NothingRan, Sink
from .runner import run as run_cases

OWNED = ("check.csv",)  # what `check` writes beside a run's files
ALONGSIDE = ("numpy", "torch")  # the backends it is timed beside


# -- bench backends ------------------------------------------------------------------------------------

def supports(cls) -> str:
    """What a class declares it supports, in a few words."""
    parts = ["full batch" + (" + mini-batch" if cls.supports_minibatch else " only")]
    parts.append("l2" if cls.supports_l2 else "no l2")
    parts.append("multiclass (softmax, K >= 3)" if cls.supports_multiclass else "binary only (no multiclass)")
    parts.append("optimizers: " + "/".join(cls.optimizers))
    parts.append("/".join(cls.dtypes))
    parts.append("devices: " + ("any it can reach (it checks)" if cls.devices is None else "/".join(cls.devices)))
    return ", ".join(parts)


def backend_table(names) -> list[dict]:
    """One dict per backend: name, origin, the declared attributes and supports, or why it cannot load."""
    rows = []
    for name in names:
        row = {"backend": name, "origin": origin(name), "spec": backend_spec(name)}
        try:
            cls = get_backend(name)
        except Exception as exc:  # not importable here (an optional library): listed with the reason
            row["unavailable"] = f"{type(exc).__name__}: {exc}"
        else:
            row.update(cls.attributes(), data_parallel=cls.data_parallel, supports=supports(cls), cls=cls)
        rows.append(row)
    return rows


def print_backends(names) -> None:
    """``python -m bench backends``: the table of ``names`` on stdout."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(names)} backends; any 'package.module:Class', 'path/file.py:Class' or entry point of "
                    "group logreg_bench.backends is one too", title_justify="left")
    for col in ("backend", "origin", "library", "gradient", "engine", "style", "mini-batch", "l2", "multiclass",
                "optimizers", "dtypes", "devices"):
        t.add_column(col, overflow="fold")
    for r in backend_table(names):
        if "unavailable" in r:
            t.add_row(r["backend"], r["origin"], "[yellow]unavailable[/yellow]", "", "", r["unavailable"])
            continue
        cls = r["cls"]
        t.add_row(r["backend"], r["origin"], r["library"], r["gradient"],
                  r["engine"] + (" (compiled)" if r["compiled"] else ""),
                  r["style"] + (" (data-parallel)" if r["data_parallel"] else ""),
                  "yes" if cls.supports_minibatch else "no", "yes" if cls.supports_l2 else "no",
                  "yes" if cls.supports_multiclass else "no", " ".join(cls.optimizers),
                  " ".join(dt.replace("float", "f") for dt in cls.dtypes),
                  "any" if cls.devices is None else " ".join(cls.devices))
    # a terminal's own width, or $COLUMNS when set (rich reads it); 200 columns into a pipe otherwise
    wide = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
    Console(width=None if wide else 200).print(t)


# -- bench check -----------------------------------------------------------------------------------------

def _guard(seconds):
    """Each check under the row timeout: past it, the check fails with the reason (TimeoutError)."""
    @contextlib.contextmanager
    def guard():
        try:
            with row_timer(seconds):
                yield
        except RowTimeout as exc:
            raise TimeoutError(str(exc)) from None
    return guard


class Checks(Sink):
    """The first sink of the check's run: its ``start`` runs the checks (inside the run, so that an
    interruption ends the command as it ends a run, and under the run's thread count), prints each
    as it ends, writes ``check.csv`` and puts a summary into ``env.json``."""

    def __init__(self, cls, folder, timeout):
        self.cls, self.folder, self.timeout = cls, folder, timeout
        self.results = []

    def start(self, result, n_cases):
        print(f"{len(checks(self.cls))} checks (Iris as the seed takes it, lr 0.01, against the float64 oracle):",
              flush=True)
        self.results = run_checks(self.cls, on_result=self._said, guard=_guard(self.timeout))
        print(f"timing {n_cases} rows through the pipeline ...", flush=True)
        write_csv(pd.DataFrame([r.as_dict() for r in self.results]), self.folder.folder / "check.csv")
        self.folder.written.append("check.csv")
        self.folder.extra_env["check"] = {"passed": sum(r.status == "pass" for r in self.results),
                                          "failed": [r.check for r in self.results if r.status == "fail"],
                                          "skipped": [r.check for r in self.results if r.status == "skip"]}

    @staticmethod
    def _said(r):
        mark = {"pass": "ok  ", "fail": "FAIL", "skip": "skip"}[r.status]
        print(f"  {mark} {r.check}" + (f"  ({r.seconds:.1f} s)" if r.seconds >= 5 else ""), flush=True)
        if r.message:
            for line in textwrap.wrap(r.message, 110, initial_indent="         ", subsequent_indent="         "):
                print(line)


def timing_lines(rows, name: str) -> tuple[list[str], list[str], dict]:
    """Per dataset: the time per step of ``name``, numpy and torch, and the ratios; what went wrong in
    ``name``'s rows; the ratios as {dataset: {other: ratio}}."""
    lines, wrong, ratios = [], [], {}
    by_ds: dict = {}
    for r in rows:
        by_ds.setdefault(r.dataset, {})[r.backend] = r
    for ds, got in by_ds.items():
        mine = got.get(name)
        head = (f"  {ds} ({mine.n}×{mine.d}, {mine.n_iters} steps, {mine.dtype} {mine.formulation}):" if mine
                else f"  {ds}:")
        parts, ratio = [], {}
        for b in (name, *[a for a in ALONGSIDE if a != name]):
            r = got.get(b)
            label = "yours" if b == name else b
            if r is None:
                continue
            if r.status == "ok" and r.time_per_iter_s:
                parts.append(f"{label} {format_time(r.time_per_iter_s)}/step")
            else:
                parts.append(f"{label} {r.status}")
        if mine is not None and mine.status == "ok" and mine.time_per_iter_s:
            for other in ALONGSIDE:
                r = got.get(other)
                if other != name and r is not None and r.status == "ok" and r.time_per_iter_s:
                    ratio[other] = mine.time_per_iter_s / r.time_per_iter_s
        ratios[ds] = ratio
        tail = ("  →  " + ", ".join(f"{v:.2f}× {k}'s time" for k, v in ratio.items())) if ratio else ""
        lines.append(head + " " + " · ".join(parts) + tail)
        if mine is not None and mine.status in ("failed", "diverged"):
            wrong.append(f"its {ds} row {mine.status}" + (f": {mine.reason}" if mine.reason else ""))
        elif mine is not None and mine.verdict == "fail":
            wrong.append(f"its {ds} row is outside the oracle's tolerance (rel Δparam {mine.rel_dparam:.2e})")
        elif mine is not None and mine.status == "skipped":
            lines.append(f"    yours skipped: {mine.reason}")
    return lines, wrong, ratios


def unusable(cls) -> str:
    """Why ``cls`` cannot be checked at all (an abstract class: its loop is not written), or ''."""
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        return (f"{cls.__name__} is abstract (it does not implement {missing}); name a subclass that implements "
                "_prepare, _run, _result and _loss_and_grad")
    return ""


def run(spec: str, name: str, cls, cases, folder, options, run_id: str) -> int:
    """``python -m bench check``: the checks (first sink of the run), then ``cases`` (the backend beside
    numpy and torch) through :func:`bench.runner.run` into ``folder``; print the verdict; 0 right, 1 wrong."""
    why = unusable(cls)
    if why:  # nothing to check: let the folder go (and remove it when the claim left it empty)
        folder.close()
        with contextlib.suppress(OSError):
            folder.folder.rmdir()
        print(f"python -m bench check: error: {spec!r} cannot be used: {why}", file=sys.stderr)
        return 2
    print(f"check {spec} — {cls.__name__} from {origin(name)}: {cls.library}, {cls.describe()}")
    print(f"  supports: {supports(cls)}")
    checks = Checks(cls, folder, options.row_timeout)
    result = run_cases(cases, [NothingRan(), checks, folder], options, run_id=run_id)
    if result.status != "complete":
        print(f"python -m bench check: {result.reason}", file=sys.stderr)
        return result.exit_code
    print(f"timing beside {' and '.join(a for a in ALONGSIDE if a != name)} (time per step, median of the rounds):")
    lines, wrong_rows, ratios = timing_lines(result.rows, name)
    for line in lines:
        print(line)
    return verdict(cls.__name__, checks.results, wrong_rows, ratios, folder.folder)


def verdict(label, results, wrong_rows, ratios, where) -> int:
    """Print the one-line verdict; 0 right, 1 wrong."""
    failed = [r for r in results if r.status == "fail"]
    speed = "; ".join(f"{ds} " + ", ".join(f"{v:.2f}× {k}'s" for k, v in rr.items()) for ds, rr in ratios.items() if rr)
    if failed or wrong_rows:
        located = [r for r in failed if r.divergence is not None]
        first = min(located, key=lambda r: r.divergence.step) if located else None  # the earliest step any check saw
        what = (f"wrong from step {first.divergence.step} by {first.divergence.rel:.2e} "
                f"({first.check.partition('[')[2].rstrip(']') or first.check}, most in {first.divergence.worst})"
                if first and first.divergence.worst else
                f"wrong from step {first.divergence.step} by {first.divergence.rel:.2e}" if first else "wrong")
        print(f"verdict: {label} is {what}; {len(failed)} of {len(results)} checks failed"
              + (f" (first: {failed[0].check})" if failed else "")
              + (f"; {'; '.join(wrong_rows)}" if wrong_rows else "")
              + (f"; time per step {speed}" if speed else "") + f". Wrote {where}/")
        return 1
    skipped = sum(r.status == "skip" for r in results)
    print(f"verdict: {label} is right: {len(results) - skipped} checks passed"
          + (f", {skipped} skipped (unsupported)" if skipped else "")
          + (f"; time per step {speed}" if speed else "") + f". Wrote {where}/")
    return 0
