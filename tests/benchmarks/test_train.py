"""The benchmark suite: ``pytest --benchmark-only`` (``make test`` runs each once, untimed).

Only ``run()`` is timed (``prepare()`` — validation, cast, host->device copy — happens before),
after a warm-up round, with torch, the BLAS under NumPy and numba on the same thread count. The
case and its row come from the harness (``bench.cases.matrix`` and ``bench.measure.Evaluator.evaluate``),
so a benchmark's row has every ``runs.csv`` column; it fails when the result is outside the
dtype's tolerance against the float64 oracle, or diverged.
"""

from __future__ import annotations

import pytest

from bench.cases import matrix
from bench.timing import Measurement, thread_parity
from implementations import DTYPES, BackendUnavailableError, create_trainer

from ..conftest import backends


def _devices():
    import torch

    yield pytest.param("cpu", id="cpu")
    reason_cuda = None if torch.cuda.is_available() else "no CUDA device"
    reason_mps = None if torch.backends.mps.is_available() else "no MPS device"
    for dev, reason in (("cuda", reason_cuda), ("mps", reason_mps)):
        marks = [pytest.mark.gpu] + ([pytest.mark.skip(reason=reason)] if reason else [])
        yield pytest.param(dev, id=dev, marks=marks)


# The full matrix (timed with `pytest --benchmark-only`): the seed task in both formulations (where
# saturation is discussed); the synthetic sizes in the seed's probs formulation; and the mini-batch
# loop (batch 64) on a 100k-row set. (dataset, formulation, batch size, iters; None: the harness's default)
FULL = [("iris", "probs", None, None), ("iris", "logits", None, None), ("synthetic-10kx100", "probs", None, None),
        ("synthetic-200kx100", "probs", None, None), ("synthetic-100kx100", "probs", 64, 2000)]
# The small matrix (the default with --benchmark-disable, as `make test` runs each benchmark once): every
# code path of a benchmark (full batch in both formulations, the mini-batch loop, the row and its
# verdict against the oracle) on the seed task, 200 steps each.
SMALL = [("iris", "probs", None, 200), ("iris", "logits", None, 200), ("iris", "probs", 16, 200)]
# torch-ddp and numpy-dask are timed over world sizes by `python -m bench scale` (tests/test_distributed.py)
BACKEND_PARAMS = backends(lambda cls: not cls.data_parallel)


def _problem_id(dataset, formulation, batch_size, iters):
    return f"{dataset}-{formulation}" + ("" if batch_size is None else f"-b{batch_size}")


def pytest_generate_tests(metafunc):
    """``--bench-matrix full`` or ``small``; by default full when timing, small when timing is disabled."""
    if "problem" not in metafunc.fixturenames:
        return
    choice = metafunc.config.getoption("bench_matrix")
    if choice == "auto":
        choice = "small" if metafunc.config.getoption("benchmark_disable", False) else "full"
    problems = FULL if choice == "full" else SMALL
    metafunc.parametrize("problem", problems, ids=[_problem_id(*p) for p in problems])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", list(_devices()))
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_train(benchmark, evaluator, backend, device, problem, dtype):
    dataset, formulation, batch_size, iters = problem
    (case,) = matrix([backend], [device], [dataset], [dtype], [formulation], batch_sizes=(batch_size,), iters=iters)
    try:
        trainer = create_trainer(backend, case.config)
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    p = evaluator.inputs.problem(dataset)
    benchmark.group = f"{dataset} {dtype} {formulation} {case.loop}"
    with thread_parity(None) as threads:
        evaluator = evaluator.with_threads(threads)  # the row records the thread counts it was timed on
        trainer.prepare(p.dataset.X, p.dataset.y, p.w0, p.b0)
        benchmark.pedantic(trainer.run, rounds=3 if case.config.n_iters > 100 else 5, warmup_rounds=1, iterations=1)
    timed = benchmark.stats is not None and benchmark.stats.stats.rounds
    m = Measurement(tuple(benchmark.stats.stats.data), case.config.n_iters) if timed else None
    outcome = evaluator.evaluate(case, trainer, m)
    trainer.close()
    row = outcome.row
    benchmark.extra_info["row"] = row.to_record()
    assert row.status == "ok", f"{row.status}: {row.reason}"
    assert row.verdict == "pass", f"{backend} disagrees with the float64 oracle: {row.reason}"
