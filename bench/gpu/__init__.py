"""``python -m bench gpu``: the GPU half in one prepared command, within a fixed time.

    PYTHONPATH=. python -m bench gpu --out results/gpu --smoke    # first: every stage, tiny sizes, ~1 minute
    PYTHONPATH=. python -m bench gpu --out results/gpu            # then: the measurement, < 8 minutes
    python -m bench gpu --out /tmp/gpu-smoke --devices cpu --smoke # the same smoke on the CPU (`make test`)

Stages, in order, each with a time budget (the plan's data: :mod:`bench.gpu.plan`):

1. **env**: versions, driver, device (``nvidia-smi``), CPU, BLAS, git sha (:mod:`bench.env`).
2. **floors**: the host's read bandwidth and FMA rate, and on CUDA the device's (``bench.roofline``).
3. **default**: every single-process backend on every device, float32, the seed's ``probs``.
4. **ddp**: ``torch-ddp`` with one spawned rank (NCCL on CUDA, gloo on the CPU), beside ``torch``.
5. **sweep**: ``numpy`` (CuPy on CUDA), ``torch``, ``torch-manual``, ``jax`` on every device plus
   ``numpy-fused`` on the CPU over n and d, float32 then float64; ``torch-compiled`` in a second pass.

Chunks, budget estimates and the stages: :mod:`bench.gpu.stages`; the hard deadline that interrupts
even a blocked call: :mod:`bench.gpu.deadline`; the files (at most 8: ``summary.md``, ``env.json``,
``runs.csv``, ``crossover.csv``, ``crossover.png``, ``gpu-run.tar.gz``): :mod:`bench.gpu.pack`.
Exit code: 0 done (a budget cut is planned, not a failure); 1 a row or a stage failed, a stage did
not run at all, or the smoke did not reach a stage or backend; 2 a bad argument or ``--out``;
130 interrupted (the files are written first).
"""

from .command import add_arguments, cmd_gpu

__all__ = ["add_arguments", "cmd_gpu"]
