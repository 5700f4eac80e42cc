"""The hard deadline of ``python -m bench gpu``, and the SIGINT gate that lets packing finish.

:class:`Watchdog` fires once, from a timer thread: it marks the clock and sends SIGINT to the main
thread with ``signal.pthread_kill``. A real signal, unlike ``_thread.interrupt_main``, interrupts a
blocking system call (a ``time.sleep``, a ``multiprocessing.connection.wait`` on a stalled rank) at
once: the call returns EINTR, the handler raises, the run ends the way it ends on Ctrl-C (finished
rows kept). A thread, not SIGALRM: the pipeline's per-row timeout owns that signal.

:class:`SigintGate` is the command's SIGINT handler: open while the stages run (it raises
``KeyboardInterrupt``, re-raised if a finalizer drops it, see ``bench.interrupts``), closed from then
on (it only counts), so that a watchdog signal still in flight, or a user's Ctrl-C, cannot stop the
packing: the files are written and a user's interrupt then gives exit code 130.
"""

from __future__ import annotations

import _thread
import signal
import threading
import time
from dataclasses import dataclass, field

from ..interrupts import Interrupted, Raising


class Deadline(BaseException):
    """The hard deadline was reached: no further chunk or stage starts."""


@dataclass
class Clock:
    start: float = field(default_factory=time.monotonic)
    hit: bool = False

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def interrupt_main_thread() -> None:
    """SIGINT to the main thread (a blocked system call returns at once); where SIGINT has no
    Python handler (ignored, or the default action, which would kill the process),
    ``_thread.interrupt_main``, seen when the main thread next runs Python."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    else:
        _thread.interrupt_main()


class Watchdog:
    """After ``seconds``, mark ``clock.hit`` and interrupt the main thread (:func:`interrupt_main_thread`).
    ``stop()`` before packing; after it the watchdog never fires."""

    def __init__(self, clock: Clock, seconds: float):
        self.clock, self._lock, self._stopped = clock, threading.Lock(), False
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def _fire(self):
        with self._lock:
            if self._stopped:
                return
            self.clock.hit = True
            interrupt_main_thread()

    def start(self) -> Watchdog:
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self._timer.cancel()


class SigintGate(Raising):
    """``with SigintGate() as gate:`` SIGINT raises ``KeyboardInterrupt`` while ``gate.open``
    (re-raised if a finalizer drops it: :class:`bench.interrupts.Raising`); closed, it is counted in
    ``gate.held``. Outside the main thread (no handler can be set) it does nothing."""

    def __init__(self):
        super().__init__(Interrupted)
        self.open, self.held = False, 0
        self._installed, self._old = False, None

    def __call__(self, signum, frame):
        if self.open:
            super().__call__(signum, frame)
        self.held += 1

    def __enter__(self) -> SigintGate:
        if threading.current_thread() is threading.main_thread():
            self._old, self._installed = signal.signal(signal.SIGINT, self), True
        return self

    def __exit__(self, *exc):
        self.open = False
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler if self._old is None else self._old)
        return False
