"""What ``python -m bench`` runs, as plain values: the blocks of ``bench run``, the sweep, the
time-to-a-trained-model block, the scale study and ``bench check``'s timing rows.

Nothing here runs anything. ``bench.cli`` turns these values into cases (``bench.cases.matrix``),
``bench.time_to_model`` builds its block's loops from them and ``bench.scale`` its study, so that
"what does ``make bench`` measure?" is answered by this one file. ``None`` for steps means the
default for the dataset's size (``bench.cases.default_iters``); backends left out mean every
registered backend the block accepts (``bench.cases.default_backends``).
"""

from __future__ import annotations

# -- bench run: its blocks (--blocks); `make bench` runs DEFAULT_BLOCKS, `--blocks all` is the reference run
BLOCKS = ("main", "minibatch", "softmax", "time-to-model")
DEFAULT_BLOCKS = ("main", "minibatch")

# main: every single-process backend, full batch, binary, both dtypes and formulations (the run's own
# --dtypes / --formulations), on these datasets
DEFAULT_DATASETS = ("iris", "synthetic-10kx100", "synthetic-100kx100")

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
