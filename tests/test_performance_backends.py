"""The "at its best" backends (numpy-fused, torch-fused, numba) and the roofline figures: same bits
whatever the threads, the harness's thread count honoured, and every execution path
(serial/parallel, blocked/unblocked) on the same math. Their mini-batch and L2 runs against the
float64 oracle are in test_minibatch.py with every backend; torch-compiled's in test_torch_compiled.py."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data import synthetic
from implementations import TrainConfig, create_trainer
from implementations.reference import compare, config_tolerance, reference_run
from implementations.schedule import init_params

from .conftest import run_trainer


@pytest.fixture(scope="module")
def mid_data():
    """Large enough for the parallel paths (m d >= 2^18), small enough for a quick oracle run."""
    ds = synthetic(30_000, 12, seed=3)
    w0, b0 = init_params(ds.d, seed=3)
    return ds.X, ds.y, w0, b0


# -- numpy-fused: threads ------------------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [None, 25_000])
def test_numpy_fused_same_bits_whatever_the_threads(batch_size, mid_data):
    from implementations.numpy_fused import NumpyFusedTrainer

    X, y, w0, b0 = mid_data
    config = TrainConfig(n_iters=6, dtype="float32", batch_size=batch_size, l2=0.01, record_every=2)
    results = []
    for threads in (1, 2, 3, 2, 3):
        trainer = NumpyFusedTrainer(config, block_bytes=16 * 1024, threads=threads)
        res = run_trainer(trainer, X, y, w0, b0)
        assert trainer.nblocks > 3
        results.append(res)
    for res in results[1:]:
        assert np.array_equal(res.w, results[0].w) and res.b == results[0].b
        assert np.array_equal(res.losses, results[0].losses)


def test_numpy_fused_takes_the_harness_thread_count():
    from threadpoolctl import threadpool_limits

    from implementations.numpy_fused import harness_threads

    with threadpool_limits(limits=1, user_api="blas"):
        assert harness_threads() == 1
    with threadpool_limits(limits=2, user_api="blas"):
        assert harness_threads() in (1, 2)  # a 1-thread BLAS build cannot go higher


def test_numpy_fused_runs_blas_on_one_thread_and_restores_it(mid_data, monkeypatch):
    from threadpoolctl import threadpool_limits

    import implementations.numpy_fused as nf

    X, y, w0, b0 = mid_data
    seen = []
    original = nf.NumpyFusedTrainer._grad

    def spy(self, *args, **kwargs):
        seen.append(nf.harness_threads())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(nf.NumpyFusedTrainer, "_grad", spy)
    with threadpool_limits(limits=2, user_api="blas"):
        before = nf.harness_threads()
        trainer = nf.NumpyFusedTrainer(TrainConfig(n_iters=3), block_bytes=16 * 1024)
        run_trainer(trainer, X, y, w0, b0)
        assert nf.harness_threads() == before
    assert seen and set(seen) == {1}


# -- numba: serial and parallel whole-run kernels ---------------------------------------------------

@pytest.mark.compile
def test_numba_parallel_kernel_same_bits_whatever_the_threads(mid_data, monkeypatch):
    numba = pytest.importorskip("numba")
    import implementations.numba_backend as nb

    monkeypatch.setattr(nb, "PARALLEL_MIN_ELEMENTS", 0)
    X, y, w0, b0 = mid_data
    config = TrainConfig(n_iters=5, dtype="float64", l2=0.01, record_every=2)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            trainer = create_trainer("numba", config)
            results.append(run_trainer(trainer, X, y, w0, b0))
            assert trainer.parallel
    finally:
        numba.set_num_threads(before)
    for res in results[1:]:
        assert np.array_equal(res.w, results[0].w) and np.array_equal(res.losses, results[0].losses)


@pytest.mark.compile
@pytest.mark.parametrize("batch_size", [None, 5_000])
def test_numba_serial_and_parallel_kernels_agree(batch_size, mid_data, monkeypatch):
    pytest.importorskip("numba")
    import implementations.numba_backend as nb

    X, y, w0, b0 = mid_data
    config = TrainConfig(n_iters=5, dtype="float64", batch_size=batch_size, l2=0.1, formulation="logits")
    out = {}
    for parallel in (False, True):
        monkeypatch.setattr(nb, "PARALLEL_MIN_ELEMENTS", 0 if parallel else 2**62)
        trainer = create_trainer("numba", config)
        out[parallel] = run_trainer(trainer, X, y, w0, b0)
        assert trainer.parallel is parallel
    agreement = compare(out[True], out[False], 1e-13)
    assert agreement.ok, agreement


# -- torch-fused: the blocked one-pass step ---------------------------------------------------------

@pytest.mark.parametrize("batch_size", [None, 20_000])
@pytest.mark.parametrize("threads", [1, 2], ids=["one-thread", "threaded"])
def test_torch_blocked_step_matches_the_oracle_and_repeats(batch_size, threads, mid_data):
    torch = pytest.importorskip("torch")
    from implementations.torch_fused import TorchFusedTrainer

    X, y, w0, b0 = mid_data
    config = TrainConfig(n_iters=6, dtype="float64", batch_size=batch_size, l2=0.1, record_every=2)
    trainer = TorchFusedTrainer(config, block_bytes=32 * 1024)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # the step's thread count is torch's intra-op count when run() starts
    try:
        first = run_trainer(trainer, X, y, w0, b0)
        assert trainer.blocked
        trainer.run()
        again = trainer.result()
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(first.w, again.w) and np.array_equal(first.losses, again.losses)
    agreement = compare(first, reference_run(X, y, w0, b0, config), config_tolerance(config, *X.shape))
    assert agreement.ok, agreement


def test_torch_fused_computes_only_the_configured_loss_on_recorded_steps(iris_data, monkeypatch):
    pytest.importorskip("torch")
    import implementations._torch_common as common
    import implementations.torch_fused as tc

    calls = []
    original = common.binary_loss
    counted = lambda z, p, y, form: calls.append(form) or original(z, p, y, form)  # noqa: E731
    for module in (common, tc):  # the blocked step (torch_fused) and the plain one (_torch_common)
        monkeypatch.setattr(module, "binary_loss", counted)
    X, y, w0, b0 = iris_data
    config = TrainConfig(n_iters=20, record_every=7, formulation="logits", batch_size=16)
    run_trainer(create_trainer("torch-fused", config), X, y, w0, b0)
    assert calls == ["logits"] * config.n_records


# -- the roofline figures -----------------------------------------------------------------------

def test_roofline_figures():
    from bench import roofline

    bw = roofline.host_bandwidth(threads=2, size_bytes=32 * 2**20)
    methods = ("host_read_torch_sum", "host_read_numpy_threads", "host_read_gemv")
    assert all(bw[k] > 0 for k in methods)
    assert bw["host_read"] == max(bw[k] for k in methods)
    assert bw["threads"] == 2 and bw["array_mib"] == 32
    flops = roofline.host_gflops(threads=1, n=64)
    assert flops["host_gflops_float32"] > 0 and flops["host_gflops_float64"] > 0
    # the documented size (bench.roofline's docstring): at least 256 MiB and 4 x the last-level cache
    # (streamed from DRAM, not cache), capped to a quarter of the available memory
    want = max(2**28, 4 * roofline.last_level_cache_bytes())
    assert roofline.array_bytes() >= min(want, (roofline.available_memory_bytes() or 2**40) // 4)
    figures = {**bw, **flops}
    frac = roofline.compute_fraction(1e-6, 100, 4, "float32", figures)
    assert frac == pytest.approx(1600 / 1e-6 / (figures["host_gflops_float32"] * 1e9))
    assert roofline.compute_fraction(1e-6, 100, 4, "float16", figures) is None
    assert roofline.fits_in_cache(1600, {"llc_mib": 32}) and not roofline.fits_in_cache(2**30, {"llc_mib": 32})


def test_floor_is_measured_unless_skipped(floor, monkeypatch):
    """``measure_roofline`` measures the host floor and roof; ``LOGREG_BENCH_FLOOR=skip`` (what the
    test suite sets for the commands it starts) measures nothing."""
    from bench import roofline

    figures = roofline.measure_roofline(("cpu",), threads=1, host_bytes=64 * 2**20)
    assert figures["host_read"] > 0 and figures["host_gflops_float32"] > 0
    monkeypatch.setenv("LOGREG_BENCH_FLOOR", "skip")
    assert roofline.measure_roofline(("cpu",), threads=1) == {}


@pytest.mark.compile
def test_numba_times_its_compilation_apart_and_once(mid_data):
    """The first run of a kernel specialisation in a process compiles it (or loads it from numba's disk
    cache), timed into ``compile_s`` as torch-compiled's and jax's compilations are; a second trainer
    of the same types reuses it: 0 s, the same one kernel."""
    pytest.importorskip("numba")
    from implementations import _numba_kernels as k

    X, y, w0, b0 = mid_data
    config = TrainConfig(n_iters=3, dtype="float32", formulation="probs", record_every=3, l2=0.25)
    first = create_trainer("numba", config)
    assert first.compiled_graphs == 0
    before = {f: len(getattr(k, f).overloads) for f in ("run_serial", "run_parallel")}
    run_trainer(first, X, y, w0, b0)
    added = sum(len(getattr(k, f).overloads) - n for f, n in before.items())
    assert added <= 1, "the call compiled other types than the ones _call compiled (twice the compile time)"
    second = create_trainer("numba", config)
    run_trainer(second, X, y, w0, b0)
    assert first.compiled_graphs == second.compiled_graphs == 1
    assert first.compile_s >= 0 and second.compile_s == 0  # first: 0 when an earlier test of this process compiled them
