"""Conformance: every backend honours the trainer contract of implementations.base.Trainer."""

from __future__ import annotations

import numpy as np
import pytest

from implementations import DTYPES, FORMULATIONS, TrainConfig, TrainResult

from .conftest import TRAINERS, train


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", TRAINERS)
def test_result_is_host_float64(name, dtype, formulation, iris_data):
    X, y, w0, b0 = iris_data
    res = train(TRAINERS[name], TrainConfig(n_iters=7, dtype=dtype, formulation=formulation), X, y, w0, b0)
    assert isinstance(res, TrainResult)
    assert type(res.w) is np.ndarray and res.w.dtype == np.float64 and res.w.shape == (4,)
    assert type(res.b) is float
    assert type(res.losses) is np.ndarray and res.losses.dtype == np.float64 and res.losses.shape == (7,)
    assert np.all(np.isfinite(res.losses)) and not res.diverged
    assert not np.allclose(res.w, w0), "parameters did not move"


@pytest.mark.parametrize("name", TRAINERS)
def test_run_restarts_from_init(name, iris_data):
    X, y, w0, b0 = iris_data
    trainer = TRAINERS[name](TrainConfig(n_iters=25))
    trainer.prepare(X, y, w0, b0)
    trainer.run()
    first = trainer.result()
    trainer.run()
    second = trainer.result()
    np.testing.assert_array_equal(first.w, second.w)
    assert first.b == second.b
    np.testing.assert_array_equal(first.losses, second.losses)


@pytest.mark.parametrize("n_iters, record_every, expected", [(10, 3, 4), (9, 3, 3), (5, 10, 1), (6, 1, 6)])
@pytest.mark.parametrize("name", TRAINERS)
def test_record_every(name, n_iters, record_every, expected, iris_data):
    X, y, w0, b0 = iris_data
    every = train(TRAINERS[name], TrainConfig(n_iters=n_iters, record_every=1, dtype="float64"), X, y, w0, b0)
    sparse = train(TRAINERS[name], TrainConfig(n_iters=n_iters, record_every=record_every, dtype="float64"),
                   X, y, w0, b0)
    assert sparse.losses.shape == (expected,)
    # losses[i] is the loss of step i * record_every
    np.testing.assert_allclose(sparse.losses, every.losses[::record_every], rtol=1e-12)
    np.testing.assert_allclose(sparse.w, every.w, rtol=1e-12)


@pytest.mark.parametrize("name", TRAINERS)
def test_first_loss_is_loss_at_init(name, iris_data):
    X, y, w0, b0 = iris_data
    trainer = TRAINERS[name](TrainConfig(n_iters=1, dtype="float64"))
    trainer.prepare(X, y, w0, b0)
    trainer.run()
    loss0, gw, gb = trainer.loss_and_grad(w0, b0)
    assert trainer.result().losses[0] == pytest.approx(loss0, rel=1e-12)
    # one step of GD is exactly w0 - lr * grad
    np.testing.assert_allclose(trainer.result().w, w0 - 0.01 * gw, rtol=1e-12)
    assert trainer.result().b == pytest.approx(b0 - 0.01 * gb, rel=1e-12)


@pytest.mark.parametrize("name", TRAINERS)
def test_loss_and_grad_shapes(name, iris_data):
    X, y, w0, b0 = iris_data
    trainer = TRAINERS[name](TrainConfig(dtype="float32"))
    trainer.prepare(X, y, w0, b0)
    loss, gw, gb = trainer.loss_and_grad(w0, b0)
    assert type(loss) is float and type(gb) is float
    assert gw.dtype == np.float64 and gw.shape == (4,)


@pytest.mark.parametrize("name", TRAINERS)
def test_nonfinite_run_is_reported_not_raised(name, iris_data):
    """Unscaled data times a huge lr: parameters overflow float32, the loss turns NaN."""
    X, y, w0, b0 = iris_data
    res = train(TRAINERS[name], TrainConfig(lr=1e6, n_iters=50, dtype="float32", formulation="logits"),
                X * 1e15, y, w0, b0)
    assert res.diverged
    assert res.first_nonfinite_step is not None and 0 < res.first_nonfinite_step < 50
    assert np.isfinite(res.losses[0])
    assert not np.isfinite(res.losses[res.first_nonfinite_step])


def test_run_before_prepare_is_an_error():
    trainer = TRAINERS["numpy"](TrainConfig())
    with pytest.raises(RuntimeError, match="prepare"):
        trainer.run()
