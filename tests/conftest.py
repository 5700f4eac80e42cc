"""Shared fixtures: every backend in the registry (plus the NumPy code on array_api_strict)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from bench.data import init_params, iris
from implementations import BACKENDS, TrainConfig, create_trainer
from implementations.numpy_backend import NumpyTrainer


def _array_api_strict(config: TrainConfig):
    xp = pytest.importorskip("array_api_strict")
    return NumpyTrainer(config, xp=xp)


# name -> factory(config). A backend added to BACKENDS gets every test parametrized over this.
TRAINERS = {name: functools.partial(create_trainer, name) for name in BACKENDS}
TRAINERS["numpy[array_api_strict]"] = _array_api_strict


@pytest.fixture(scope="session")
def iris_data():
    ds = iris()
    w0, b0 = init_params(ds.d, seed=0)
    return ds.X, ds.y, w0, b0


def train(factory, config, X, y, w0, b0):
    trainer = factory(config)
    trainer.prepare(X, y, w0, b0)
    trainer.run()
    return trainer.result()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def pytest_addoption(parser):
    parser.addoption("--bench-out", default="results/benchmarks",
                     help="folder for the benchmark CSV (<run-id>.csv, latest.csv, <run-id>.env.json)")
