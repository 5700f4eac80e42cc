"""A signal whose exception Python drops (raised inside a finalizer) is raised again (bench.interrupts)."""

from __future__ import annotations

import os
import signal
import sys
import time
import weakref

import pytest

from bench import interrupts


class _Owner:
    pass


def _signal_inside_a_finalizer(signum):
    def finalizer():
        os.kill(os.getpid(), signum)
        for _ in range(100_000):  # the handler runs here, inside the finalizer: Python drops its exception
            pass

    owner = _Owner()
    weakref.finalize(owner, finalizer)
    del owner


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("signum, exc", [(signal.SIGTERM, interrupts.Terminated),
                                         (signal.SIGINT, KeyboardInterrupt)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_dropped_by_a_finalizer_is_raised_again(signum, exc, monkeypatch):
    # Python's own hook prints the dropped exception and lets it go (pytest's would keep it until the test ends)
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)
    old = interrupts.install()
    assert signum in old, "installed in the main thread, SIGINT having Python's default handler"
    try:
        with pytest.raises(exc):
            _signal_inside_a_finalizer(signum)
            deadline = time.monotonic() + 10 * interrupts.RECHECK_S
            while time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        interrupts.restore(old)
    assert signal.getsignal(signal.SIGTERM) is old[signal.SIGTERM]


def test_a_caught_signal_is_not_raised_twice():
    old = interrupts.install()
    caught = []
    try:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        except interrupts.Terminated:
            caught.append(1)
            interrupts.restore(old)  # the catching code swaps the handlers before letting the exception go
        time.sleep(3 * interrupts.RECHECK_S)  # a second raise would land here
    finally:
        interrupts.restore(old)
    assert caught == [1]


def test_an_ignored_sigint_stays_ignored():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        old = interrupts.install()
        assert signal.SIGINT not in old and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        interrupts.restore(old)
    finally:
        signal.signal(signal.SIGINT, before)
