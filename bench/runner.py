"""The one owner of a run: case -> problem -> prepare -> measure -> judge -> row -> sinks.

Data path, one straight line::

    Case (backend, dataset, TrainConfig)                                  bench.cases
      -> Problem: the dataset and one (w0, b0) draw, loaded once and shared by every backend
         (with the float64 oracle's path and scikit-learn's optimum)       bench.inputs
      -> trainer.prepare (timed apart: the transfer) -> warm-up + timed trainer.run rounds
      -> trainer.result -> judged against the oracle or the optimum        bench.measure, bench.judge
      -> Row (bench.records) -> sinks (CSV written as rows finish, losses, summary, plots, console)

:func:`run` owns the whole of it, including every way a run can end: a row's exception becomes a
``failed`` row; a divergence (non-finite loss or parameters, or a loss grown past 1e5× its first
value, benchopt's rule) a ``diverged`` row whichever library noticed it first; SIGINT, SIGTERM or
an exception outside a row end the run with status ``interrupted`` / ``failed``, and the sinks
still write what the finished rows hold. The CLI and the pytest-benchmark suite build cases and
consume rows; they do not run this loop themselves (the benchmark suite times ``run()`` with its
own fixture and hands the timings to :meth:`bench.measure.Evaluator.evaluate`).
"""

from __future__ import annotations

import contextlib
import signal

from . import interrupts
from .cases import DEFAULT_OPTIONS, RunOptions
from .interrupts import Terminated
from .measure import Evaluator, in_main_thread
from .records import Case, new_run_id
from .results import RunResult, Sink
from .timing import available_cores, thread_parity

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Deferred:
    """While the sinks finish, SIGINT/SIGTERM are noted, not raised: the files get written.

    ``on_signal(signum)`` is called for each until :meth:`freeze`; ``restore`` maps a signal to the
    handler it gets on exit (default: the one it had on entry). Handlers are swapped with both
    signals blocked, so none slips between the old handler and the new."""

    def __init__(self, on_signal=None, restore: dict | None = None):
        self.got, self.frozen = [], False
        self._on_signal, self._restore = on_signal, restore or {}

    def _note(self, signum, frame):
        self.got.append(signum)
        if self._on_signal is not None and not self.frozen:
            self._on_signal(signum)

    def freeze(self):
        """From now on signals are only noted: the ending has been decided and recorded."""
        self.frozen = True

    def _swap(self, handlers: dict) -> dict:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            return {s: signal.signal(s, h) for s, h in handlers.items()}
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def __enter__(self):
        self._old = self._swap({s: self._note for s in _SIGNALS})
        return self

    def __exit__(self, *exc):
        def back(s, h):  # None: a handler not set from Python, which cannot be put back
            h = self._restore.get(s) if self._restore.get(s) is not None else h
            return signal.SIG_DFL if h is None else h

        self._swap({s: back(s, h) for s, h in self._old.items()})
        return False


class _NoDefer:
    """Outside the main thread no handler can be set: nothing is deferred."""

    def __init__(self, *args, **kwargs):
        self.got = []

    def freeze(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _settle(result: RunResult) -> None:
    """A complete run with a failed row exits 1; set before anything records the exit code."""
    if result.status == "complete":
        result.exit_code = 1 if any(r.status == "failed" for r in result.rows) else 0


def _deferred_signal(result: RunResult, signum: int) -> None:
    """A signal that came while the sinks finished: the reports are completed, the ending says so."""
    if result.status == "complete":
        name = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}.get(signum, f"signal {signum}")
        result.status, result.exit_code = "interrupted", 128 + signum
        result.reason = f"{name} while writing the reports (they were finished first)"


def run(cases: list[Case], sinks: list[Sink] = (), options: RunOptions = DEFAULT_OPTIONS,
        run_id: str | None = None, figures=None, executor=None) -> RunResult:
    """Run every case in order; hand each finished row to the sinks; end the same way whatever ends it.

    ``figures`` is the hardware's measured floor and roof (``bench.roofline.measure_roofline``'s
    dict) or a callable ``f(threads)`` measuring them, called inside the run on the run's thread
    count, so that an interruption there ends the run like any other. ``executor(evaluator, result)``
    is a context manager yielding ``execute(item) -> Outcome`` for items that are not plain cases
    (:mod:`bench.scale_hosts`: rows across hosts; an item's ``case`` is what the sinks see); what it
    set up is torn down on every ending, before the sinks finish."""
    result = RunResult(run_id or new_run_id())
    main_thread = in_main_thread()
    old_handlers = interrupts.install()  # SIGINT, SIGTERM raise here, and again if a finalizer drops them
    try:
        with thread_parity(options.threads) as threads:
            result.threads = threads
            result.roofline = dict((figures(threads.asked) if callable(figures) else figures) or {})
            if threads.numba_error:
                result.notes.append(threads.numba_error + ": numba rows are skipped")
            if threads.oversubscribed:
                result.notes.append(f"oversubscribed: {max(threads.torch, threads.blas or 0, threads.numba or 0)} "
                                    f"threads on {available_cores()} available cores; timings include the contention")
            ev = Evaluator(result.run_id, options, threads, roofline=result.roofline)
            with executor(ev, result) if executor else contextlib.nullcontext(ev.execute) as execute:
                for sink in sinks:
                    sink.start(result, len(cases))
                for item in cases:
                    for sink in sinks:
                        sink.case(getattr(item, "case", item))
                    outcome = execute(item)
                    result.rows.append(outcome.row)
                    result.curves.append(outcome.curve)
                    for sink in sinks:
                        sink.row(outcome, result)
            result.notes += ev.notes
    except KeyboardInterrupt:
        result.status, result.reason, result.exit_code = "interrupted", "interrupted by SIGINT (Ctrl-C)", 130
    except Terminated:
        result.status, result.reason, result.exit_code = "interrupted", "terminated by SIGTERM", 143
    except BaseException as exc:  # MemoryError, a bug outside a row: the finished rows are still written
        result.status, result.reason, result.exit_code = "failed", f"{type(exc).__name__}: {exc}", 1
    finally:
        # SIGINT/SIGTERM from here on are deferred until every sink has finished (the old SIGTERM
        # handler comes back only on leaving the block); one that comes meanwhile turns the ending
        # into `interrupted` at once, so that what the sinks record (env.json) matches the exit
        defer = _Deferred(on_signal=lambda signum: _deferred_signal(result, signum),
                          restore=old_handlers) if main_thread else _NoDefer()
        with defer as deferred:
            _settle(result)
            for sink in sinks:
                try:
                    sink.finish(result)
                except Exception as exc:  # one sink's failure must not stop the others
                    result.notes.append(f"{type(sink).__name__} could not finish: {type(exc).__name__}: {exc}")
            deferred.freeze()  # the ending is decided: a later signal changes nothing recorded
            for sink in sinks:
                try:
                    sink.end(result)
                except Exception as exc:
                    result.notes.append(f"{type(sink).__name__} could not end: {type(exc).__name__}: {exc}")
    return result
