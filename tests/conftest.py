"""Shared fixtures: every backend in the registry (plus the NumPy code on array_api_strict), and
session-wide caches of datasets, backend runs and float64 reference runs, so that a trajectory
several tests look at is computed once per session."""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.data import iris, load
from implementations import (
    BACKENDS,
    BackendUnavailableError,
    DeviceUnavailableError,
    TrainConfig,
    TrainResult,
    create_trainer,
    get_backend,
)
from implementations.schedule import init_params

ROOT = Path(__file__).resolve().parents[1]  # the repository: the working directory of the commands tests start

# The smallest run a command test needs: Iris, 20 steps, one timed repeat, a short noise budget. A test
# adds what it is about (--backends, --dtypes, --formulations, --devices, --out); argparse keeps the last
# value of an option given twice, so a test can also override one of these.
RUN_ARGS = ("--datasets", "iris", "--iters", "20", "--repeats", "1", "--budget", "1e-9")

# Backends whose runs compile (Inductor, XLA, numba: seconds per new graph or kernel) and those that
# start worker processes; a test parametrized over one of them gets the `compile` or `distributed` marker
# (pytest_collection_modifyitems below), so that `make test-fast` can leave them out.
COMPILED_BACKENDS = ("torch-compiled", "jax", "numba")
DISTRIBUTED_BACKENDS = ("torch-ddp", "numpy-dask")

# The tests that send Ctrl-C to a child need the child to start with SIGINT's default action. A
# background job (`make test &`, some CI runners) starts with SIGINT ignored, and an ignored signal
# stays ignored across exec. Resetting it in the child with `preexec_fn` runs Python's at-fork
# handlers in this process, and once JAX has started, JAX's handler warns "os.fork() was called ...
# JAX is multithreaded, so this will likely lead to a deadlock" (pyproject turns that into an
# error). Instead this process never ignores SIGINT: a signal with a handler is reset to its
# default action by exec, so every child started without `preexec_fn` gets what it needs.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The hardware floor (bench.roofline.measure_roofline: a parallel read of at least 256 MiB and an in-cache matrix
# product) takes 4-15 s on this kind of machine, on every command a test starts, in this process and
# in its subprocesses (they inherit the environment). The tests of the floor itself call its parts
# directly (test_performance_backends.py) or delete the variable (the `floor` fixture below).
os.environ.setdefault("LOGREG_BENCH_FLOOR", "skip")


@pytest.fixture
def floor(monkeypatch):
    """The real floor measurement for a test that is about it."""
    monkeypatch.delenv("LOGREG_BENCH_FLOOR", raising=False)


# torch on one intra-op thread in this process, once it is imported. The tests' data are tiny (Iris, a few
# thousand rows), where a second thread cannot help, and on a loaded 2-core machine torch's threads
# wait for each other: 800 autograd steps on Iris took 12-21 s with 2 threads and 1-3 s with 1. The
# harness sets its own count around every row it times, and the tests of the threaded paths set theirs
# (test_performance_backends.py); subprocesses are left alone.
_TORCH_THREADS_SET = False


def pytest_runtest_setup(item):
    global _TORCH_THREADS_SET
    if not _TORCH_THREADS_SET and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
        _TORCH_THREADS_SET = True


def make_trainer(name: str, config: TrainConfig):
    """``create_trainer(name, config)``; a backend that cannot be imported or built here (an
    optional library not installed, no C++ compiler, a file still being written) skips the test
    with the reason. An unavailable *device* is left to raise: tests check that error."""
    try:
        return create_trainer(name, config)
    except DeviceUnavailableError:
        raise
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))


def _array_api_strict(config: TrainConfig):
    from implementations.numpy_backend import NumpyTrainer

    xp = pytest.importorskip("array_api_strict")
    return NumpyTrainer(config, xp=xp)


# name -> factory(config). A backend added to BACKENDS gets every test parametrized over this.
TRAINERS = {name: functools.partial(make_trainer, name) for name in BACKENDS}
TRAINERS["numpy[array_api_strict]"] = _array_api_strict


def backend_class(name: str):
    """The registered class, or None where it cannot be imported here (its tests skip)."""
    if name not in BACKENDS:
        return None
    try:
        return get_backend(name)
    except BackendUnavailableError:
        return None


def backends(where=None) -> list:
    """``pytest.param(name, id=name)`` for each registered backend, or those whose class satisfies
    ``where(cls)``; a backend that cannot be imported here is kept, skipped with the reason."""
    out = []
    for name in BACKENDS:
        try:
            cls = get_backend(name)
        except BackendUnavailableError as exc:
            out.append(pytest.param(name, id=name, marks=pytest.mark.skip(reason=str(exc))))
            continue
        if where is None or where(cls):
            out.append(pytest.param(name, id=name))
    return out


# -- session caches: data, backend runs and reference runs are computed once per session --------

def _frozen(*arrays):
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return arrays


@functools.lru_cache(maxsize=None)
def dataset(name: str = "iris"):
    """``(X, y, w0, b0)`` of a named dataset with its shared init (shared by the tests: do not write to them)."""
    ds = iris() if name == "iris" else load(name)
    w0, b0 = init_params(ds.d, seed=0, scale=ds.init_scale)
    return ds.X, ds.y, w0, b0


def train(factory, config, X, y, w0, b0) -> TrainResult:
    """``factory(config)`` prepared on ``(X, y, w0, b0)`` and run: its result. ``factory`` is a
    ``TRAINERS`` entry, a trainer class, or a backend name (``make_trainer``: skipped where unavailable)."""
    return run_trainer(make_trainer(factory, config) if isinstance(factory, str) else factory(config), X, y, w0, b0)


def run_trainer(trainer, X, y, w0, b0) -> TrainResult:
    """An already built trainer prepared on ``(X, y, w0, b0)`` and run once: its result."""
    trainer.prepare(X, y, w0, b0)
    trainer.run()
    return trainer.result()


_RUNS: dict = {}


def trained(name: str, config: TrainConfig, data: str = "iris") -> TrainResult:
    """Backend ``name``'s result on dataset ``data`` under ``config``, run once per session."""
    key = name, config, data
    if key not in _RUNS:
        res = train(TRAINERS[name], config, *dataset(data))
        _frozen(res.w, res.losses)
        _RUNS[key] = res
    return _RUNS[key]


@functools.lru_cache(maxsize=None)
def reference(config: TrainConfig, data: str = "iris") -> TrainResult:
    """The float64 oracle's run (``bench.oracle.reference_run``) on ``data``, once per session."""
    from implementations.reference import reference_run

    res = reference_run(*dataset(data), config)
    _frozen(res.w, res.losses)
    return res


@pytest.fixture(scope="session")
def iris_data():
    return dataset("iris")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _marks_of(value) -> tuple:
    if not isinstance(value, str):
        return ()
    return (("compile",) if value in COMPILED_BACKENDS else ()) + (("distributed",) if value in DISTRIBUTED_BACKENDS
                                                                   else ())


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    """A test parametrized over a compiling or a data-parallel backend (a parameter whose value is
    its name) gets the ``compile`` or ``distributed`` marker: the same rule for every file."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        for value in callspec.params.values():
            for mark in _marks_of(getattr(value, "name", value) if isinstance(value, type) else value):
                item.add_marker(mark)


def pytest_addoption(parser):
    parser.addoption("--bench-out", default="results/benchmarks",
                     help="folder for the benchmark CSV (<run-id>.csv, latest.csv, <run-id>.env.json)")
    parser.addoption("--bench-matrix", choices=("auto", "small", "full"), default="auto",
                     help="the benchmark suite's problems: small (the seed task, 200 steps) or full (the "
                          "synthetic sizes too); auto: small with --benchmark-disable, else full")
