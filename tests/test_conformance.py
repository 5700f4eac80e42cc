"""Conformance: every registered backend honours the trainer contract of ``implementations.base.Trainer``.

Parametrized over the registry (``implementations.BACKENDS``, plus the NumPy code on
``array_api_strict``), so a backend registered with ``implementations.register(...)`` gets every
check below for free; one whose module cannot be imported here is skipped with the reason, and a
device this machine lacks is skipped with the backend's own reason. Each check is a plain function
``check_*`` whose docstring says what it checks, taking a trainer factory ``make(config)`` and the
data ``(X, y, w0, b0)`` (or the backend class, or a run's result), so that another test suite can
run the same checks on its own trainer. Whether a backend computes the *right* run, and where it
leaves the float64 oracle, is judged in ``test_equivalence.py`` and ``test_minibatch.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from implementations import (
    DTYPES,
    FORMULATIONS,
    BackendUnavailableError,
    DeviceUnavailableError,
    TrainConfig,
    TrainResult,
)

from .conftest import TRAINERS, backend_class, dataset, train, trained

NAMES = list(TRAINERS)
GRADIENTS = ("hand-derived", "autograd", "solver")  # solver: scikit-learn's rows


def _cls(name):
    """The class behind a TRAINERS name (the array_api_strict entry is the NumPy class)."""
    cls = backend_class("numpy" if name == "numpy[array_api_strict]" else name)
    if cls is None:
        TRAINERS[name](TrainConfig())  # skips with the import error's reason
    return cls


# -- the checks --------------------------------------------------------------------------------

def check_declared_attributes(cls):
    """The class says what it is: ``library`` a non-empty str, ``gradient`` hand-derived or autograd,
    ``engine`` a non-empty str, ``compiled`` and ``data_parallel`` bools, ``style`` a str; the
    harness writes ``attributes()`` into every row and the verdict prints ``describe()``."""
    assert isinstance(cls.library, str) and cls.library.strip() and cls.library != "?", cls.library
    assert cls.gradient in GRADIENTS, cls.gradient
    assert isinstance(cls.engine, str) and cls.engine.strip(), cls.engine
    assert isinstance(cls.compiled, bool), type(cls.compiled)
    assert isinstance(cls.data_parallel, bool), type(cls.data_parallel)
    assert isinstance(cls.style, str)
    assert cls.attributes() == {"library": cls.library, "gradient": cls.gradient, "engine": cls.engine,
                                "compiled": cls.compiled, "style": cls.style}
    assert cls.engine in cls.describe() and cls.gradient in cls.describe()


def check_call_order(make, data):
    """``run`` before ``prepare``, ``loss_and_grad`` before ``prepare`` and ``result`` before ``run``
    raise RuntimeError naming the missing call (not AttributeError from a half-built trainer)."""
    X, y, w0, b0 = data
    with make(TrainConfig(n_iters=10)) as trainer:
        with pytest.raises(RuntimeError, match=r"prepare\(X, y, w0, b0\) before run"):
            trainer.run()
        with pytest.raises(RuntimeError, match=r"prepare\(X, y, w0, b0\) before loss_and_grad"):
            trainer.loss_and_grad(w0, b0)
        with pytest.raises(RuntimeError, match=r"run\(\) before result"):
            trainer.result()
        trainer.prepare(X, y, w0, b0)
        with pytest.raises(RuntimeError, match=r"run\(\) before result"):
            trainer.result()
        trainer.run()
        assert trainer.result().losses.shape == (10,)


def check_result_types(res, data, config):
    """``res = result()`` of a run on ``data`` under ``config`` is a TrainResult on the host: ``w`` a
    (d,) float64 ndarray, ``b`` a Python float, ``losses`` a (ceil(n_iters / record_every),) float64
    ndarray, all finite, parameters moved."""
    X, y, w0, b0 = data
    assert isinstance(res, TrainResult)
    assert type(res.w) is np.ndarray and res.w.dtype == np.float64 and res.w.shape == (X.shape[1],)
    assert type(res.b) is float
    assert type(res.losses) is np.ndarray and res.losses.dtype == np.float64
    assert res.losses.shape == (config.n_records,)
    assert np.all(np.isfinite(res.losses)) and not res.diverged
    assert not np.allclose(res.w, w0), "parameters did not move"


def check_restarts_from_init(make, data, config):
    """Two ``run()`` calls on one prepared trainer give the same bits: every run starts again from
    ``(w0, b0)`` (a benchmark calls ``run`` round after round)."""
    X, y, w0, b0 = data
    trainer = make(config)
    trainer.prepare(X, y, w0, b0)
    trainer.run()
    first = trainer.result()
    trainer.run()
    second = trainer.result()
    assert first.losses[0] == second.losses[0], "the second run did not start from w0"
    np.testing.assert_array_equal(first.w, second.w)
    assert first.b == second.b
    np.testing.assert_array_equal(first.losses, second.losses)


def check_one_step_is_w0_minus_lr_grad(make, data):
    """float64, one step: ``losses[0]`` is ``loss_and_grad(w0, b0)``'s loss, and the result is
    ``w0 - lr grad_w``, ``b0 - lr grad_b`` (the update the contract describes, nothing else)."""
    X, y, w0, b0 = data
    trainer = make(TrainConfig(n_iters=1, dtype="float64"))
    trainer.prepare(X, y, w0, b0)
    trainer.run()
    loss0, gw, gb = trainer.loss_and_grad(w0, b0)
    res = trainer.result()
    assert res.losses[0] == pytest.approx(loss0, rel=1e-12)
    np.testing.assert_allclose(res.w, w0 - 0.01 * gw, rtol=1e-12)
    assert res.b == pytest.approx(b0 - 0.01 * gb, rel=1e-12)


def check_loss_and_grad_types(make, data):
    """``loss_and_grad`` returns ``(float, (d,) float64 ndarray, float)`` whatever the dtype."""
    X, y, w0, b0 = data
    trainer = make(TrainConfig(dtype="float32"))
    trainer.prepare(X, y, w0, b0)
    loss, gw, gb = trainer.loss_and_grad(w0, b0)
    assert type(loss) is float and type(gb) is float
    assert type(gw) is np.ndarray and gw.dtype == np.float64 and gw.shape == (X.shape[1],)
    assert np.isfinite(loss) and np.all(np.isfinite(gw))


def check_nonfinite_run_is_reported(make, data):
    """Unscaled data times a huge lr overflows float32: the run is *reported* as diverged (the first
    non-finite step recorded), not raised, and the loss before it is finite."""
    X, y, w0, b0 = data
    res = train(make, TrainConfig(lr=1e6, n_iters=50, dtype="float32", formulation="logits"), X * 1e15, y, w0, b0)
    assert res.diverged
    assert res.first_nonfinite_step is not None and 0 < res.first_nonfinite_step < 50
    assert np.isfinite(res.losses[0])
    assert not np.isfinite(res.losses[res.first_nonfinite_step])


def check_bad_input(make, args, message):
    """``prepare`` refuses bad input with one ValueError whose message names the argument, what was
    expected and what came (sklearn style)."""
    trainer = make(TrainConfig(n_iters=2))
    with pytest.raises(ValueError, match=message):
        trainer.prepare(*args)


def check_close(make, data):
    """``close()`` is idempotent (also on a trainer never prepared), and the trainer is a context
    manager that returns itself and closes on exit, also when the block raises."""
    X, y, w0, b0 = data
    make(TrainConfig(n_iters=2)).close()
    trainer = make(TrainConfig(n_iters=2))
    calls = []
    close = trainer.close
    trainer.close = lambda: (calls.append(1), close())[1]
    with pytest.raises(KeyError):
        with trainer as entered:
            assert entered is trainer
            trainer.prepare(X, y, w0, b0)
            trainer.run()
            assert trainer.result().losses.shape == (2,)
            raise KeyError("inside the block")
    assert calls == [1], "__exit__ did not call close()"
    trainer.close()
    trainer.close()


# -- the tests, one per check and backend -------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_declared_attributes(name):
    check_declared_attributes(_cls(name))


@pytest.mark.parametrize("name", NAMES)
def test_call_order(name, iris_data):
    check_call_order(TRAINERS[name], iris_data)


def _device_param(device):
    if device == "cpu":
        return pytest.param("cpu", id="cpu")
    return pytest.param(device, id=device, marks=pytest.mark.gpu)


def _make_on(name, device):
    """The trainer factory for ``device``; a device this machine lacks skips with the backend's reason."""
    def make(config):
        try:
            return TRAINERS[name](dataclasses.replace(config, device=device))
        except DeviceUnavailableError as exc:
            if device == "cpu":
                raise
            pytest.skip(str(exc))
    return make


@pytest.mark.parametrize("device", [_device_param(d) for d in ("cpu", "cuda")])
@pytest.mark.parametrize("name, dtype, form", [pytest.param(n, dt, f, id=f"{n}/{dt}/{f}")
                                               for n in NAMES for dt in DTYPES for f in FORMULATIONS])
def test_result_types(name, dtype, form, device, iris_data):
    config = TrainConfig(n_iters=10, dtype=dtype, formulation=form)
    res = trained(name, config) if device == "cpu" else train(_make_on(name, device), config, *iris_data)
    check_result_types(res, iris_data, config)


@pytest.mark.parametrize("batch_size", [pytest.param(None, id="full"), pytest.param(16, id="b16")])
@pytest.mark.parametrize("name", NAMES)
def test_run_restarts_from_w0(name, batch_size, iris_data):
    check_restarts_from_init(TRAINERS[name], iris_data, TrainConfig(n_iters=10, batch_size=batch_size))


@pytest.mark.parametrize("n_iters, record_every, expected", [(10, 3, 4), (9, 3, 3), (5, 10, 1)],
                         ids=["10-every-3", "9-every-3", "5-every-10"])
@pytest.mark.parametrize("name", NAMES)
def test_losses_i_is_the_loss_of_step_i_times_record_every(name, n_iters, record_every, expected):
    every = trained(name, TrainConfig(n_iters=10, dtype="float64"))  # shared by the three cases
    sparse = trained(name, TrainConfig(n_iters=n_iters, record_every=record_every, dtype="float64"))
    assert sparse.losses.shape == (expected,)
    np.testing.assert_allclose(sparse.losses, every.losses[:n_iters:record_every], rtol=1e-12)
    if n_iters == 10:
        np.testing.assert_allclose(sparse.w, every.w, rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_one_step_is_w0_minus_lr_grad(name, iris_data):
    check_one_step_is_w0_minus_lr_grad(TRAINERS[name], iris_data)


@pytest.mark.parametrize("name", NAMES)
def test_loss_and_grad_types(name, iris_data):
    check_loss_and_grad_types(TRAINERS[name], iris_data)


@pytest.mark.parametrize("name", NAMES)
def test_nonfinite_run_is_reported_not_raised(name, iris_data):
    check_nonfinite_run_is_reported(TRAINERS[name], iris_data)


@pytest.mark.parametrize("name", NAMES)
def test_close_is_idempotent_and_the_context_manager_closes(name, iris_data):
    check_close(TRAINERS[name], iris_data)


# -- bad input ------------------------------------------------------------------------------------

X6 = np.arange(12.0).reshape(6, 2)
Y6 = np.array([0, 1, 0, 1, 1, 0])
W6 = np.zeros(2)


def _with(X=X6, y=Y6, w0=W6, b0=0.0):
    return X, y, w0, b0


def _X_with(index, value):
    a = X6.copy()
    a[index] = value
    return a


BAD_INPUTS = {
    "nan-in-X": (_with(_X_with((2, 1), np.nan)), r"X must contain only finite values, got nan at index \(2, 1\)"),
    "inf-in-X": (_with(_X_with((0, 0), np.inf)), r"X must contain only finite values, got inf"),
    "X-1d": (_with(np.arange(6.0)), r"X must be a 2-D array .* got an array with 1 dimension"),
    "X-3d": (_with(np.zeros((2, 3, 1))), r"X must be a 2-D array .* got an array with 3 dimension"),
    "X-strings": (_with(np.array([["a", "b"]] * 6)), r"X must hold real numbers, got dtype <U1"),
    "y-length": (_with(y=Y6[:4]), r"y must have shape \(6,\) to match X's 6 rows, got shape \(4,\)"),
    "y-values": (_with(y=np.array([0, 1, 2, 1, 1, 0])), r"y must contain only 0 and 1, got values \{2\}"),
    "y-labels-1-2": (_with(y=np.array([1, 2, 1, 2, 1, 2])), r"y must contain only 0 and 1, got values \{2\}"),
    "w0-length": (_with(w0=np.zeros(3)), r"w0 must have shape \(2,\) to match X's 2 columns, got shape \(3,\)"),
    "b0-vector": (_with(b0=np.zeros(2)), r"b0 must be a scalar, got an array of shape \(2,\)"),
    "X-beyond-float32": (_with(_X_with((1, 0), 1e39)), r"X must fit in float32 .* got a value of magnitude 1e\+39"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_a_valueerror_naming_the_argument(name, case):
    check_bad_input(TRAINERS[name], *BAD_INPUTS[case])


@pytest.mark.parametrize("name", NAMES)
def test_batch_size_larger_than_n_is_refused_at_prepare(name):
    """Refused, not clamped (every backend alike): the message names the value and n; B = n is allowed."""
    trainer = TRAINERS[name](TrainConfig(n_iters=2, batch_size=7))
    with pytest.raises(ValueError, match=r"batch_size must be at most n = 6 \(the rows of X\), got 7"):
        trainer.prepare(*_with())
    trainer = TRAINERS[name](TrainConfig(n_iters=2, batch_size=6))
    trainer.prepare(*_with())  # one batch per epoch, reshuffled


@pytest.mark.parametrize("name", NAMES)
def test_workers_are_refused_unless_data_parallel(name):
    """A single-process backend refuses ``workers > 1`` when built; a data-parallel one accepts it
    (its group starts in ``prepare``)."""
    cls = _cls(name)
    if cls.data_parallel:
        TRAINERS[name](TrainConfig(workers=2)).close()
    else:
        with pytest.raises(ValueError, match=rf"workers must be 1 for the single-process backend '{cls.name}', got 2"):
            TRAINERS[name](TrainConfig(workers=2))


@pytest.mark.parametrize("name", NAMES)
def test_shuffle_seed_changes_the_batch_order(name):
    runs = [trained(name, TrainConfig(n_iters=20, dtype="float64", batch_size=16, shuffle_seed=s)) for s in (0, 1)]
    assert not np.allclose(runs[0].w, runs[1].w, rtol=1e-6, atol=0)


def test_an_unimportable_backend_is_a_skip_not_an_error():
    """What a backend whose optional library is missing looks like to the suite."""
    from implementations import create_trainer, register, unregister

    register("conformance-missing", "no_such_module_anywhere:Trainer")
    try:
        with pytest.raises(BackendUnavailableError, match="no_such_module_anywhere"):
            create_trainer("conformance-missing", TrainConfig())
    finally:
        unregister("conformance-missing")


def test_dataset_cache_is_the_seed_task():
    """The shared data really is the seed's: 50 versicolor (0) then 50 virginica (1), 4 features."""
    X, y, w0, b0 = dataset("iris")
    assert X.shape == (100, 4) and y.tolist() == [0] * 50 + [1] * 50 and w0.shape == (4,)
