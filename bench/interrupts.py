"""SIGINT and SIGTERM while a command works: raised in the main thread, so that the command ends
through its ``finally`` — and raised again when Python drops the first.

A signal's handler runs between two bytecodes of whatever the main thread is doing. When that is a
finalizer (``weakref.finalize``, a ``__del__``, a garbage-collector callback), Python prints the
exception as "Exception ignored in ..." and drops it: the command would go on as if no signal had
come (seen: a SIGTERM into ``bench trajectory`` at 100 000 steps was swallowed by a finalizer and
the run went on). So each handler keeps a weak reference to the exception it raised and, a moment
later, looks again: if that exception object is gone while the handler is still installed (the
code that catches it swaps the handlers before the exception is let go), it was dropped, and the
signal is sent to the main thread again.
"""

from __future__ import annotations

import signal
import threading
import weakref

RECHECK_S = 0.5  # how long after raising a handler looks whether its exception was dropped


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that the run ends through its ``finally``."""


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C): a ``KeyboardInterrupt`` (caught as one) that the handler can follow."""


class Raising:
    """A signal handler raising ``exc_type()``, and raising it again if that exception was dropped."""

    def __init__(self, exc_type: type[BaseException]):
        self.exc_type = exc_type
        self._raised: weakref.ref | None = None

    def __call__(self, signum, frame):
        raise self._armed(signum)  # no local name for the exception: its traceback holds this frame

    def _armed(self, signum: int) -> BaseException:
        exc = self.exc_type()
        self._raised = weakref.ref(exc)
        timer = threading.Timer(RECHECK_S, self._recheck, (signum, self._raised))
        timer.daemon = True
        timer.start()
        return exc

    def _recheck(self, signum: int, raised: weakref.ref) -> None:
        if raised is self._raised and raised() is None and signal.getsignal(signum) is self:
            signal.pthread_kill(threading.main_thread().ident, signum)


def install() -> dict:
    """Raising handlers in the main thread: SIGTERM's (:class:`Terminated`), and SIGINT's
    (:class:`Interrupted`) where SIGINT has Python's default handler (an ignored SIGINT, as in a
    background job, stays ignored). Returns the handlers replaced, to give back with :func:`restore`
    (``{}`` outside the main thread, where none can be set)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    old = {signal.SIGTERM: signal.signal(signal.SIGTERM, Raising(Terminated))}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        old[signal.SIGINT] = signal.signal(signal.SIGINT, Raising(Interrupted))
    return old


def restore(old: dict) -> None:
    """Give back the handlers :func:`install` replaced (one not set from Python: the default action)."""
    for s, h in old.items():
        signal.signal(s, signal.SIG_DFL if h is None else h)
