"""``python -m bench ...`` for the tests: in this process by default, in a fresh one when asked.

Starting ``python -m bench`` costs 3-10 s of imports (torch, JAX, numba) on every call, paid again
by every test that does it. Most tests only look at what the command prints, its exit code and the
files it writes, and for those calling ``bench.cli.main`` here is the same thing, done the way
``bench/__main__.py`` does it. ``isolated=True`` starts the real process, for a test that needs one:
it signals the process, relies on a signal's default action or on how the process exits, sets
environment variables read at import time or by child processes, discovers freshly installed entry
points, or looks at what a fresh interpreter imports.

In this process, what a command could leave behind is put back and checked: the working directory
and ``os.environ`` are restored (the caller's overrides, and anything the command set), the backend
registry is restored (a file spec the command registered would otherwise stay registered for later
tests), and a SIGINT/SIGTERM/SIGALRM handler, a running ITIMER_REAL, a changed signal mask or torch
thread count left by the command are put back and fail the call with an AssertionError naming them:
those are the command's leaks, not the test's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import traceback
import warnings

from tests.conftest import ROOT

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)

# the warning filters of a fresh interpreter (no -W, no PYTHONWARNINGS): in this process pytest's own
# filters and its recorder would keep a warning off the command's stderr, where a real run prints it
_FRESH_FILTERS = (("default", DeprecationWarning, "__main__"), ("ignore", DeprecationWarning, None),
                  ("ignore", PendingDeprecationWarning, None), ("ignore", ImportWarning, None),
                  ("ignore", ResourceWarning, None))


def run_cli(*args, cwd=ROOT, env=None, timeout=300, isolated=False) -> subprocess.CompletedProcess:
    """``python -m bench *args`` run from ``cwd`` with ``env`` overriding ``os.environ``: a
    ``CompletedProcess`` (``args``, ``returncode``, ``stdout``, ``stderr``). ``timeout`` bounds the
    subprocess of ``isolated=True`` only."""
    args = [str(a) for a in args]
    command = [sys.executable, "-m", "bench", *args]
    if isolated:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    code, out, err = _in_process(args, cwd, env or {})
    return subprocess.CompletedProcess(command, code, out, err)


def _in_process(args, cwd, env):
    import implementations
    from bench.cli import main

    registry = {name: dict(getattr(implementations, name)) for name in ("_SPECS", "_LOADED", "_ORIGIN")}
    plugins_read = implementations._PLUGINS_READ
    before = _global_state()
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    # logging's last resort (no handler configured) prints WARNING and above to stderr in a fresh process
    last_resort = logging.StreamHandler(err)
    last_resort.setLevel(logging.WARNING)
    try:
        os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        logging.getLogger().addHandler(last_resort)
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.resetwarnings()
            for action, category, module in reversed(_FRESH_FILTERS):
                warnings.filterwarnings(action, category=category, module=module or "")
            warnings.showwarning = _show_on_stderr
            code = _call(main, args)
    finally:
        logging.getLogger().removeHandler(last_resort)
        os.chdir(old_cwd)
        for key in set(os.environ) - set(old_env):
            del os.environ[key]
        for key, value in old_env.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        for name, saved in registry.items():
            live = getattr(implementations, name)
            live.clear()
            live.update(saved)
        implementations._PLUGINS_READ = plugins_read
        leaked = _restore(before)
    assert not leaked, f"`python -m bench {' '.join(args)}` run in this process left behind: {'; '.join(leaked)}"
    return code, out.getvalue(), err.getvalue()


def _show_on_stderr(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _call(main, args) -> int:
    """``bench/__main__.py``'s ``_main`` and the interpreter's ending around it: the exit code."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse: its message is already on stderr
        code = exc.code
    except KeyboardInterrupt:
        print("python -m bench: interrupted", file=sys.stderr, flush=True)
        return 130
    except BaseException:  # the interpreter prints the traceback and exits 1
        traceback.print_exc(file=sys.stderr)
        return 1
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message")
    return 1


def _global_state() -> dict:
    state = {f"handler of {signal.Signals(s).name}": signal.getsignal(s) for s in _SIGNALS}
    state["ITIMER_REAL"] = signal.getitimer(signal.ITIMER_REAL)
    state["signal mask"] = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if "torch" in sys.modules:
        state["torch threads"] = sys.modules["torch"].get_num_threads()
    return state


def _restore(before: dict) -> list[str]:
    """Put back what the command changed of ``before``; one line for each thing it had left changed."""
    after = _global_state()
    leaked = [f"{key} {before[key]!r} -> {after[key]!r}" for key in before
              if after[key] != before[key] and not (key == "ITIMER_REAL" and before[key] != (0.0, 0.0))]
    for s in _SIGNALS:
        old = before[f"handler of {signal.Signals(s).name}"]
        if old is not None and signal.getsignal(s) != old:
            signal.signal(s, old)
    if before["ITIMER_REAL"] == (0.0, 0.0):
        signal.setitimer(signal.ITIMER_REAL, 0)
    signal.pthread_sigmask(signal.SIG_SETMASK, before["signal mask"])
    if "torch threads" in before:
        sys.modules["torch"].set_num_threads(before["torch threads"])
    return leaked
