"""What ``python -m bench`` runs, as plain values: the blocks of ``bench run``, the sweep, the
time-to-a-trained-model block, the scale study, ``bench check``'s timing rows and the stages of
``bench gpu``.

Nothing here runs anything. ``bench.cli`` turns these values into cases (``bench.cases.matrix``),
``bench.time_to_model`` builds its block's loops from them and ``bench.scale`` its study, so that
"what does ``make bench`` measure?" is answered by this one file. ``None`` for steps means the
default for the dataset's size (``bench.cases.default_iters``); backends left out mean every
registered backend the block accepts (``bench.cases.default_backends``).
"""

from __future__ import annotations

# -- bench run: its blocks (--blocks); `make bench` runs DEFAULT_BLOCKS, `--blocks all` is the reference run
BLOCKS = ("main", "minibatch", "softmax", "time-to-model", "sparse")
DEFAULT_BLOCKS = ("main", "minibatch")

# main: every single-process backend, full batch, binary, both formulations (the run's own --dtypes /
# --formulations), on these datasets; float32 in the default run, float64 too in the reference run
# (--blocks all): float64 is proven in the tests and there, and the default run stays short
DEFAULT_DATASETS = ("iris", "synthetic-10kx100", "synthetic-100kx100")
DEFAULT_DTYPES = ("float32",)
REFERENCE_DTYPES = ("float32", "float64")

# minibatch: every backend at batch 64 on a 100k-row set, float32, probs
MINIBATCH_DATASET, MINIBATCH_SIZE, MINIBATCH_ITERS = "synthetic-100kx100", 64, 2000
MINIBATCH_DTYPES, MINIBATCH_FORMULATIONS = ("float32",), ("probs",)

# softmax: every backend, full batch, float32, probs and logits, on the seed's data with its 3 classes
# (the seed's lr 0.01 and 5000 steps) and on a 100k x 100 set with K = 10 (1/L and the default steps):
# its verdict compares the K = 10 answer with the binary 100k x 100 rows'
SOFTMAX_DATASETS, SOFTMAX_DTYPES = ("iris-3class", "synthetic-100kx100-k10"), ("float32",)

# time-to-model: how long until each library's loop is within TIME_TO_MODEL_TARGETS relative
# suboptimality of scikit-learn's optimum (bench.time_to_model says why these values)
TIME_TO_MODEL_DATASET = "breast-cancer[standardize]"
TIME_TO_MODEL_L2 = 1e-3
TIME_TO_MODEL_DTYPE, TIME_TO_MODEL_FORMULATION = "float64", "logits"
TIME_TO_MODEL_TARGETS = (1e-4, 1e-6)
TIME_TO_MODEL_BACKENDS = ("numpy", "torch", "torch-nn", "jax")
TIME_TO_MODEL_SOLVERS = ("sklearn-lbfgs", "sklearn-newton-cholesky")
TIME_TO_MODEL_DEVICES = ("cpu",)
# optimizer -> (lr, steps); lr None: 1/L of the problem (the largest safe fixed step)
TIME_TO_MODEL_LOOPS = {"gd": (None, 1000), "adam": (0.1, 1000), "lbfgs": (1.0, 100)}
TIME_TO_MODEL_SOLVER_FITS = 10  # scikit-learn fits with max_iter = 1, 2, 4, ... 2^(fits - 1)

# sparse (bench.sparse_sweep): an rcv1-shaped set (20,242 x 47,236 at density 0.16 %, 1.5 M non-zeros), both
# formulations, float32 and float64, every single-process backend (those without sparse support: skipped with
# the reason); one with ten times its rows (15 M non-zeros) in float32, logits, a few steps: autograd through
# torch's sparse product takes seconds a step there (docs/performance.md), and the reference run must end;
# then the density sweep at one shape, each density kept sparse and densified, for each library's best
# loops, its answer in sparse_vs_dense.csv / .png and the verdict
SPARSE_DATASETS = ("sparse-20kx47k-d0.0016",)
SPARSE_DTYPES, SPARSE_FORMULATIONS = ("float32", "float64"), ("probs", "logits")
SPARSE_ITERS = 10
SPARSE_LARGE_DATASETS = ("sparse-200kx47k-d0.0016",)
SPARSE_LARGE_DTYPES, SPARSE_LARGE_FORMULATIONS = ("float32",), ("logits",)
SPARSE_LARGE_ITERS = 5
SPARSE_SWEEP_SHAPE = (10_000, 2_000)  # dense float32: 80 MB, beyond the cache as the sparse sets are
SPARSE_SWEEP_DENSITIES = (1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5)
SPARSE_SWEEP_BACKENDS = ("numpy", "numpy-fused", "numba", "torch-manual", "torch-fused")  # each library's best
SPARSE_SWEEP_DTYPE, SPARSE_SWEEP_FORMULATION = "float32", "logits"
SPARSE_SWEEP_ITERS = 10

# -- every timed row (run, sweep, check): its rounds are budgeted as pytest-benchmark and timeit.autorange do
# it: at least ROUNDS_MIN timed rounds (--repeats), more while the rounds so far took less than ROUND_BUDGET_S
# seconds (--budget; timeit.autorange's 0.2 s), at most ROUNDS_MAX (past it the quartiles barely move)
ROUNDS_MIN, ROUND_BUDGET_S, ROUNDS_MAX = 3, 0.2, 100

# -- bench sweep: n from 1e2 to 1e6 at d = 100, and d = 10 and 1000 at n = 1e4; float32, probs
SWEEP_DATASETS = ("synthetic-100x100", "synthetic-1kx100", "synthetic-10kx100", "synthetic-100kx100",
                  "synthetic-1Mx100", "synthetic-10kx10", "synthetic-10kx1000")
SWEEP_DTYPES, SWEEP_FORMULATIONS = ("float32",), ("probs",)

# -- bench scale: every data-parallel backend at each world size, float32, probs
SCALE_DATASETS = ("synthetic-1Mx100",)
SCALE_WORKERS = (1, 2)
SCALE_DTYPE, SCALE_FORMULATION = "float32", "probs"
SCALE_ITERS, SCALE_ROUNDS, SCALE_THREADS = 20, 5, 1

# -- bench check: the timing rows of a user's backend, beside these registered ones
CHECK_DATASETS = ("iris", "synthetic-10kx100")

# -- what the built-in backends declare (their classes' `data_parallel` and `optimizers`), so that the
# default backends are picked without importing torch, JAX or numba; tests check it against the classes
DATA_PARALLEL_BACKENDS = ("torch-ddp", "numpy-dask")
SOLVER_BACKENDS = ("sklearn-lbfgs", "sklearn-newton-cholesky")

# -- bench gpu: its stages in order (after "env"), the backends and sizes of each, and two plans that share
# every stage and backend: GPU_FULL (the measurement, < 8 minutes on a GPU) and GPU_SMOKE (--smoke: tiny sizes)

GPU_STAGES = ("floors", "default", "ddp", "sweep")  # after "env"; in this order
GPU_SWEEP_BACKENDS = ("numpy", "torch", "torch-manual", "torch-compiled", "jax")  # numpy is CuPy on cuda
GPU_COMPILED = "torch-compiled"  # its own pass after the others (see sweep_chunks)
GPU_HOST_ONLY_BACKENDS = ("numpy-fused",)  # the host at its best, beside the GPU rows (cpu rows only)
GPU_DDP_BACKENDS = ("torch", "torch-ddp")  # torch-ddp: one spawned rank (NCCL on cuda, gloo on cpu)
# sparse chunks of the default stage: torch's CSR loops on every device; numpy on cuda (CuPy) refuses a sparse X
# (a skipped row saying why), numpy on cpu is SciPy's CSR beside them
GPU_SPARSE_BACKENDS = ("numpy", "torch", "torch-manual", "torch-fused")
GPU_FORMULATION = "probs"  # the seed's
GPU_DEFAULT_DTYPE = "float32"
GPU_SWEEP_DTYPES = ("float32", "float64")

GPU_FULL = {
    "default_backends": None,  # None: every single-process backend (bench.cases.default_backends)
    "default_datasets": ("iris", "synthetic-10kx100", "synthetic-100kx100"),
    "sparse_datasets": ("sparse-20kx47k-d0.0016",),  # the rcv1-shaped set, CSR (after the dense ones)
    "ddp_dataset": "synthetic-1Mx100",
    "sweep_n": (100, 1_000, 10_000, 100_000, 1_000_000),  # at d = 100
    "d_at": (100_000, (10, 1000)),  # d = 10 and 1000 at n = 1e5
    "largest": (10_000_000, 100),  # last
    "iters": None,  # None: sweep_iters(n, d) in the sweep, the pipeline's default elsewhere
    "ddp_iters": 20,
    "host_bytes": None,  # the floor's host read array: bench.roofline's default
    "optimum": True,  # scikit-learn's optimum for the default comparison
    "reports": True,  # the default comparison's and the sweep's report folders (plots)
    # seconds per stage, cumulative (a stage may use what the earlier ones left)
    "plan": {"floors": 45, "default": 110, "ddp": 35, "sweep": 220},
    "hard_limit": 430,  # the Watchdog: whatever still runs is ended; packing follows (< 8 minutes)
    "estimate": True,  # a chunk whose estimate ends past its stage's end is not started
}

GPU_SMOKE = {
    "default_backends": None,
    "default_datasets": ("iris",),
    "sparse_datasets": ("sparse-1kx2k-d0.01",),
    "ddp_dataset": "synthetic-1kx10",
    "sweep_n": (100, 1_000),
    "d_at": (1_000, (10,)),
    "largest": (3_000, 100),
    "iters": 20,  # a multiple of torch-compiled's 5 steps per call: one graph per dtype
    "ddp_iters": 20,
    "host_bytes": 64 * 2**20,
    "optimum": True,
    "reports": True,
    "plan": {"floors": 15, "default": 60, "ddp": 30, "sweep": 75},
    "hard_limit": 170,
    "estimate": False,  # every chunk runs: the smoke is about reaching every stage, not the budget
}
