"""The benchmark suite: ``pytest --benchmark-only`` (``make test`` runs each once, untimed).

Only ``run()`` is timed (``prepare()`` — validation, cast, host->device copy — happens before),
after a warm-up round, with torch and the BLAS under NumPy on the same thread count. Each
benchmark also checks its result against the float64 NumPy reference on the same data and init,
and fails when it is outside the dtype's tolerance: the equivalence promise.
"""

from __future__ import annotations

import pytest

from bench.equivalence import compare, saturated_count, tolerance
from bench.runner import bytes_per_step, default_iters
from bench.timing import thread_parity
from implementations import BACKENDS, DTYPES, BackendUnavailableError, TrainConfig, create_trainer

from .conftest import problem, reference_run


def _devices():
    import torch

    yield pytest.param("cpu", id="cpu")
    reason_cuda = None if torch.cuda.is_available() else "no CUDA device"
    reason_mps = None if torch.backends.mps.is_available() else "no MPS device"
    for dev, reason in (("cuda", reason_cuda), ("mps", reason_mps)):
        marks = [pytest.mark.gpu] + ([pytest.mark.skip(reason=reason)] if reason else [])
        yield pytest.param(dev, id=dev, marks=marks)


# The seed task in both formulations (where saturation is discussed); the synthetic sizes in
# the seed's probs formulation (timing does not depend on the formulation beyond a few %).
PROBLEMS = [("iris", "probs"), ("iris", "logits"), ("synthetic-10kx100", "probs"), ("synthetic-200kx100", "probs")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dataset, formulation", PROBLEMS, ids=[f"{d}-{f}" for d, f in PROBLEMS])
@pytest.mark.parametrize("device", list(_devices()))
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_train(benchmark, backend, device, dataset, formulation, dtype, host_bandwidth):
    ds, w0, b0 = problem(dataset)
    n_iters = default_iters(ds.n, ds.d)
    config = TrainConfig(lr=0.01, n_iters=n_iters, dtype=dtype, device=device, formulation=formulation)
    try:
        trainer = create_trainer(backend, config)
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    benchmark.group = f"{dataset} {dtype} {formulation}"
    with thread_parity(None) as threads:
        trainer.prepare(ds.X, ds.y, w0, b0)
        benchmark.pedantic(trainer.run, rounds=3 if n_iters > 100 else 5, warmup_rounds=1, iterations=1)
    res = trainer.result()
    ref = reference_run(dataset, dtype, formulation, n_iters, 0.01)
    tol = tolerance(dtype, n_iters, ds.n, ds.d)
    agreement = compare(res, ref, tol)
    info = benchmark.extra_info
    info.update(backend=backend, device=device, dataset=dataset, n=ds.n, d=ds.d, dtype=dtype,
                formulation=formulation, n_iters=n_iters, lr=0.01, threads=threads,
                final_loss=float(res.losses[-1]), saturated=saturated_count(ds.X, ref.w, ref.b, dtype),
                bytes_per_step=bytes_per_step(ds.n, ds.d, dtype), **agreement.as_dict())
    if benchmark.stats is not None and benchmark.stats.stats.rounds:
        per_step = benchmark.stats.stats.median / n_iters
        info["time_per_iter_s"] = per_step
        info["achieved_gbps"] = info["bytes_per_step"] / per_step / 1e9
        if host_bandwidth and device == "cpu":
            info["roofline_fraction"] = info["achieved_gbps"] / host_bandwidth
    assert not res.diverged, f"diverged at step {res.first_nonfinite_step}"
    assert agreement.ok, f"{backend} disagrees with the float64 reference: {agreement}"
