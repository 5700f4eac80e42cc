"""``torch-compiled`` goes through Inductor on every row it produces: full batch at 20k x 100 (where
it used to run an eager step) and mini-batches (short last batch included); it agrees with the
``numpy`` backend within float32 tolerance; the graphs are built before the timed rounds (a warm
trainer of the same case, as the harness makes, compiles them; the longer trainer then compiles
nothing); and without a C++ compiler it is unavailable, not silently eager."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.data import synthetic
from implementations import BackendUnavailableError, TrainConfig, create_trainer
from implementations.reference import compare, config_tolerance
from implementations.schedule import init_params

from .conftest import make_trainer, run_trainer, train

torch = pytest.importorskip("torch")
tc = pytest.importorskip("implementations.torch_compiled")

pytestmark = pytest.mark.compile  # Inductor compiles: seconds a graph


def _train(name, config, X, y, w0, b0):
    """The trainer (its compile counters are the subject) and its result."""
    trainer = make_trainer(name, config)
    return trainer, run_trainer(trainer, X, y, w0, b0)


def _agrees_with_numpy(res, config, X, y, w0, b0):
    ref = train("numpy", config, X, y, w0, b0)
    agreement = compare(res, ref, config_tolerance(config, *X.shape))
    assert agreement.ok, agreement


def test_full_batch_20k_x_100_goes_through_inductor():
    ds = synthetic(20_000, 100, seed=5)
    w0, b0 = init_params(ds.d, seed=5)
    config = TrainConfig(n_iters=3, dtype="float32", formulation="logits")  # < K steps: one 1-step graph
    trainer, res = _train("torch-compiled", config, ds.X, ds.y, w0, b0)
    assert trainer.compiled_graphs >= 1
    _agrees_with_numpy(res, config, ds.X, ds.y, w0, b0)


def test_mini_batches_go_through_inductor_and_the_timed_run_compiles_nothing():
    ds = synthetic(600, 8, seed=6)  # 600 = 9 x 64 + 24: a short last batch every epoch
    w0, b0 = init_params(ds.d, seed=6)
    config = TrainConfig(n_iters=25, dtype="float32", batch_size=64, record_every=2, l2=0.1)
    # the harness's warm-up: a short trainer of the same case, run first (it does not reach the short batch)
    warm, _ = _train("torch-compiled", replace(config, n_iters=3), ds.X, ds.y, w0, b0)
    # dynamic shapes: one graph with the loss and one without serve the 64- and the 24-row batches
    families = {warm._family(v) for v in warm._variants()}
    assert len(families) == 2 and all(tc._GRAPHS[f] >= 1 for f in families)
    before = tc.unique_graphs()
    trainer, res = _train("torch-compiled", config, ds.X, ds.y, w0, b0)
    assert tc.unique_graphs() == before and trainer.compile_s == 0
    assert trainer.compiled_graphs == warm.compiled_graphs
    _agrees_with_numpy(res, config, ds.X, ds.y, w0, b0)


def test_full_batch_with_sparse_records_compiles_every_call(iris_data):
    X, y, w0, b0 = iris_data
    # records at 0, 7, 14, 21; float64: the sparse-record graphs of test_trainer_contract's record_every
    # case, compiled once for both
    config = TrainConfig(n_iters=23, dtype="float64", record_every=7)
    trainer, res = _train("torch-compiled", config, X, y, w0, b0)
    # three compiled functions: the recorded step, K unrecorded steps, 1 unrecorded step
    assert len({trainer._family(v) for v in trainer._variants()}) == 3 and trainer.compiled_graphs >= 3
    before = tc.unique_graphs()
    trainer.run()  # a second round: no trace, no compile
    assert tc.unique_graphs() == before
    _agrees_with_numpy(res, config, X, y, w0, b0)


def test_without_a_cxx_compiler_it_is_unavailable(monkeypatch):
    monkeypatch.setattr(tc, "_has_cxx", lambda: False)
    with pytest.raises(BackendUnavailableError, match="C\\+\\+ compiler"):
        create_trainer("torch-compiled", TrainConfig())
