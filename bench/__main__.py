"""``python -m bench``: a Ctrl-C at any moment ends in one line and exit code 130, never a traceback.

The handling is in place before the heavy imports (NumPy, pandas, torch take a second or more):
a KeyboardInterrupt raised while they load is caught here like one raised later outside a run."""

import signal
import sys


def _interrupted() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the goodbye
    try:
        print("python -m bench: interrupted", file=sys.stderr, flush=True)
    except Exception:
        pass
    return 130


_SIGINT_SEEN: list[int] = []


def _note_sigint(signum, frame):
    _SIGINT_SEEN.append(signum)
    raise KeyboardInterrupt


def _main() -> int:
    # While the imports run, a Ctrl-C is remembered as well as raised: one that lands inside a C
    # extension's initialisation surfaces as that module's ImportError (NumPy's "PyCapsule_Import could
    # not import module 'datetime'"), not as a KeyboardInterrupt.
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.default_int_handler:
        signal.signal(signal.SIGINT, _note_sigint)
    try:
        from .cli import main
    except KeyboardInterrupt:
        return _interrupted()
    except Exception:
        if _SIGINT_SEEN:
            return _interrupted()
        raise
    finally:
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous)
    try:
        code = main()
    except KeyboardInterrupt:
        return _interrupted()
    # from here the process only shuts down: a Ctrl-C now ends it by the signal (exit 130 in a
    # shell) instead of a KeyboardInterrupt traceback from an exit handler
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return code


if __name__ == "__main__":
    sys.exit(_main())
