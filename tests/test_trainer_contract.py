"""The trainer contract (``implementations.base.Trainer``), for every backend of the registry.

The public checks of ``implementations.testing`` — the ones a user runs on their own trainer — run on
every built-in backend (plus the NumPy code on ``array_api_strict``): declared attributes, call order,
result shapes, restart from ``w0``, bad input, ``loss_and_grad`` against the float64 oracle and finite
differences, and each run against the float64 oracle (both dtypes and formulations, mini-batches, L2),
naming the first divergent step when one leaves it. A case outside what a backend declares it
supports (scikit-learn's solvers: float64, full batch, their own solver) is skipped by the checks
themselves (``CheckSkipped``) with the backend's reason; a backend whose module cannot be imported here
is skipped with the import error.

Below them, what the public checks do not look at: the built-ins name their library, one step is
``w0 - lr grad``, the recorded losses are those of steps ``i * record_every``, a mini-batch run restarts
its batch order, a non-finite run is reported and not raised, ``close()``, the messages of refused
input (validated once, in ``Trainer.prepare``, for every backend), workers, the batch order's seed,
and each backend on a CUDA device where there is one.
"""

from __future__ import annotations

import numpy as np
import pytest

from implementations import (
    BACKENDS,
    BackendUnavailableError,
    DeviceUnavailableError,
    TrainConfig,
    create_trainer,
    get_backend,
    register,
    unregister,
)
from implementations.numpy_backend import NumpyTrainer
from implementations.testing import parametrize_with_checks

from .conftest import TRAINERS, backend_class, dataset, train, trained

NAMES = list(TRAINERS)


class NumpyOnArrayApiStrict(NumpyTrainer):
    """The NumPy backend's code on ``array_api_strict`` (the array API, nothing NumPy-only)."""

    def __init__(self, config):
        xp = pytest.importorskip("array_api_strict")
        super().__init__(config, xp=xp)


def _cls(name):
    """The class behind a TRAINERS name (the array_api_strict entry is the NumPy class)."""
    cls = backend_class("numpy" if name == "numpy[array_api_strict]" else name)
    if cls is None:
        TRAINERS[name](TrainConfig())  # skips with the import error's reason
    return cls


# -- the public checks, on every built-in backend ---------------------------------------------------

AVAILABLE = [cls for name in BACKENDS if (cls := backend_class(name)) is not None] + [NumpyOnArrayApiStrict]


@parametrize_with_checks(AVAILABLE)
def test_builtin_backend_passes_the_public_checks(trainer, check):
    check(trainer)


@pytest.mark.parametrize("name", [n for n in BACKENDS if backend_class(n) is None])
def test_a_backend_that_cannot_be_imported_here_is_a_skip(name):
    """The public checks run on the backends this machine can import; each of the others is this skip,
    with the import error (no parameters at all where every backend imports)."""
    with pytest.raises(BackendUnavailableError) as exc:
        get_backend(name)
    pytest.skip(f"{name}: {exc.value}")


# -- what the public checks do not look at --------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in NAMES if n != "numpy[array_api_strict]"])
def test_builtin_backends_name_their_library_and_describe_themselves(name):
    """A built-in names whose arrays its step runs on (a user's class may leave the default "?"), and
    ``attributes()`` (written into every row) and ``describe()`` (printed by the verdict) say the same."""
    cls = _cls(name)
    assert cls.library != "?", cls.library
    assert cls.attributes() == {"library": cls.library, "gradient": cls.gradient, "engine": cls.engine,
                                "compiled": cls.compiled, "style": cls.style}
    assert cls.engine in cls.describe() and cls.gradient in cls.describe()


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
    """float64, one step: ``losses[0]`` is ``loss_and_grad(w0, b0)``'s loss, and the result is
    ``w0 - lr grad_w``, ``b0 - lr grad_b`` (the update the contract describes, nothing else); in
    float32 too ``loss_and_grad`` returns ``(float, (d,) float64 ndarray, float)``."""
    X, y, w0, b0 = iris_data
    trainer = TRAINERS[name](TrainConfig(n_iters=1, dtype="float64"))
    trainer.prepare(X, y, w0, b0)
    trainer.run()
    loss0, gw, gb = trainer.loss_and_grad(w0, b0)
    res = trainer.result()
    assert res.losses[0] == pytest.approx(loss0, rel=1e-12)
    np.testing.assert_allclose(res.w, w0 - 0.01 * gw, rtol=1e-12)
    assert res.b == pytest.approx(b0 - 0.01 * gb, rel=1e-12)
    trainer = TRAINERS[name](TrainConfig(dtype="float32"))
    trainer.prepare(X, y, w0, b0)
    loss, gw, gb = trainer.loss_and_grad(w0, b0)
    assert type(loss) is float and type(gb) is float
    assert type(gw) is np.ndarray and gw.dtype == np.float64 and gw.shape == (X.shape[1],)
    assert np.isfinite(loss) and np.all(np.isfinite(gw))


@pytest.mark.parametrize("name", NAMES)
def test_a_mini_batch_run_restarts_its_batch_order(name, iris_data):
    """Two ``run()`` calls with mini-batches give the same bits: the second starts from ``(w0, b0)`` and
    from the first batch again (the public check restarts a full-batch run)."""
    X, y, w0, b0 = iris_data
    trainer = TRAINERS[name](TrainConfig(n_iters=10, batch_size=16))
    trainer.prepare(X, y, w0, b0)
    trainer.run()
    first = trainer.result()
    trainer.run()
    second = trainer.result()
    np.testing.assert_array_equal(first.w, second.w)
    assert first.b == second.b
    np.testing.assert_array_equal(first.losses, second.losses)


@pytest.mark.parametrize("name", NAMES)
def test_nonfinite_run_is_reported_not_raised(name, iris_data):
    """Unscaled data times a huge lr overflows float32: the run is *reported* as diverged (the first
    non-finite step recorded), not raised, and the loss before it is finite."""
    X, y, w0, b0 = iris_data
    res = train(TRAINERS[name], TrainConfig(lr=1e6, n_iters=50, dtype="float32", formulation="logits"),
                X * 1e15, y, w0, b0)
    assert res.diverged
    assert res.first_nonfinite_step is not None and 0 < res.first_nonfinite_step < 50
    assert np.isfinite(res.losses[0])
    assert not np.isfinite(res.losses[res.first_nonfinite_step])


@pytest.mark.parametrize("name", NAMES)
def test_close_is_idempotent_and_the_context_manager_closes(name, iris_data):
    """``close()`` is idempotent (also on a trainer never prepared), and the trainer is a context
    manager that returns itself and closes on exit, also when the block raises."""
    X, y, w0, b0 = iris_data
    make = TRAINERS[name]
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


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_a_run_on_cuda_is_a_host_result(name, iris_data):
    """On a CUDA device the result is still float64 NumPy on the host; a backend or machine without
    CUDA skips with the backend's reason."""
    config = TrainConfig(n_iters=10, device="cuda")
    try:
        trainer = TRAINERS[name](config)
    except DeviceUnavailableError as exc:
        pytest.skip(str(exc))
    X, y, w0, b0 = iris_data
    trainer.prepare(X, y, w0, b0)
    trainer.run()
    res = trainer.result()
    assert type(res.w) is np.ndarray and res.w.dtype == np.float64 and res.w.shape == (X.shape[1],)
    assert type(res.b) is float and res.losses.dtype == np.float64 and res.losses.shape == (10,)
    assert np.all(np.isfinite(res.losses)) and not np.allclose(res.w, w0)


# -- refused input: one ValueError naming the argument (Trainer.prepare, the same for every backend) --

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


def test_no_backend_overrides_prepare():
    """Input is validated in ``Trainer.prepare`` and nowhere else, so its messages are tested once
    (below, on numpy) and each backend's ValueError by the public ``check_bad_input``."""
    overriding = [cls.__name__ for cls in AVAILABLE if "prepare" in vars(cls)]
    assert not overriding, overriding


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises_a_valueerror_naming_the_argument(case):
    """``prepare`` refuses bad input with one ValueError whose message names the argument, what was
    expected and what came (sklearn style)."""
    args, message = BAD_INPUTS[case]
    trainer = TRAINERS["numpy"](TrainConfig(n_iters=2))
    with pytest.raises(ValueError, match=message):
        trainer.prepare(*args)


def test_batch_size_larger_than_n_is_refused_at_prepare():
    """Refused, not clamped (``Trainer.prepare``, every backend alike): the message names the value and
    n; B = n is allowed."""
    trainer = TRAINERS["numpy"](TrainConfig(n_iters=2, batch_size=7))
    with pytest.raises(ValueError, match=r"batch_size must be at most n = 6 \(the rows of X\), got 7"):
        trainer.prepare(*_with())
    trainer = TRAINERS["numpy"](TrainConfig(n_iters=2, batch_size=6))
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


def test_public_checks_cover_every_builtin_backend():
    """The list the public checks run over is the registry (those importable here), plus the
    array_api_strict variant."""
    assert {cls.name for cls in AVAILABLE[:-1]} == {n for n in BACKENDS if backend_class(n) is not None}
