"""The time-to-a-trained-model block of the main job: how long until each library's loop
has a model within 1e-4 and 1e-6 relative suboptimality ``(L − L*)/|L*|`` of scikit-learn's optimum.

One problem of realistic conditioning, small enough for the ``make bench`` budget (≈ 20 s for the
block on a 2-core machine): ``breast-cancer`` standardized (569 × 30), float64, ``logits``, with the
L2 penalty ``λ = 1e-3`` (scikit-learn's ``C = 1/(n λ) ≈ 1.76``, close to its default ``C = 1``).
Without a penalty this data is almost separable (the optimum's weights run into the thousands and
``L*`` ≈ 6e-6), so a *relative* suboptimality would measure nothing useful.

The loops, each as its library's users write it (the same ``(w0, b0)``, the same objective), with
their learning rates and steps declared in :data:`bench.suites.TIME_TO_MODEL_LOOPS`:

* ``gd``    — fixed-step gradient descent at ``lr = 1/L`` (the largest safe step), 1000 steps;
* ``adam``  — Adam at ``lr = 0.1`` (on this problem 1e-3, torch's default, gets nowhere in the
  budget, 0.03 is slower), 1000 steps;
* ``lbfgs`` — each library's own L-BFGS (scipy's L-BFGS-B for NumPy, ``torch.optim.LBFGS`` strong-Wolfe,
  optax for JAX), 100 iterations;

for ``numpy``, ``torch``, ``torch-nn`` and ``jax``, plus scikit-learn's ``LogisticRegression`` (``lbfgs``
and ``newton-cholesky``, optimizer ``solver``: fits with ``max_iter`` = 1, 2, 4, ... 512, each timed).
A backend or loop that is not available here (JAX or optax missing, an optimizer a backend does not
implement yet) is a ``skipped`` row with the reason, as everywhere.

``synthetic-100kx100`` is not in the block: on 2 cores one full-batch pass over it costs about as much
as the whole block on breast-cancer, and the 1e-6 target would need hundreds of them per loop.
"""

from __future__ import annotations

from dataclasses import replace

from implementations import TrainConfig

from .cases import default_lr
from .records import Case
from .suites import (
    TIME_TO_MODEL_BACKENDS as BACKENDS,
    TIME_TO_MODEL_DATASET as DATASET,
    TIME_TO_MODEL_DTYPE as DTYPE,
    TIME_TO_MODEL_FORMULATION as FORMULATION,
    TIME_TO_MODEL_L2 as L2,
    TIME_TO_MODEL_LOOPS as LOOPS,
    TIME_TO_MODEL_SOLVER_FITS as SOLVER_FITS,
    TIME_TO_MODEL_SOLVERS as SOLVERS,
)


def loops(lr_gd: float) -> dict[str, TrainConfig]:
    """optimizer -> its config in this block (``lr_gd`` = 1/L of the problem, for the loops whose lr
    :data:`bench.suites.TIME_TO_MODEL_LOOPS` leaves to the problem)."""
    base = TrainConfig(dtype=DTYPE, formulation=FORMULATION, l2=L2, lr=lr_gd)
    return {opt: replace(base, optimizer=opt, lr=lr_gd if lr is None else lr, n_iters=steps)
            for opt, (lr, steps) in LOOPS.items()}


def cases(devices=("cpu",), seed: int = 0, backends=BACKENDS, solvers=SOLVERS, dataset: str = DATASET,
          lr=default_lr) -> list[Case]:
    """The block's cases: every loop of every backend, then the scikit-learn rows (cpu only). ``lr``
    is :func:`bench.cases.default_lr` or a stand-in with its signature ``lr(dataset, l2, seed)``."""
    out = []
    for _opt, cfg in loops(lr(dataset, L2, seed)).items():
        for backend in backends:
            for device in devices:
                out.append(Case(backend, dataset, replace(cfg, device=device)))
    solver = TrainConfig(dtype=DTYPE, formulation=FORMULATION, l2=L2, optimizer="solver", n_iters=SOLVER_FITS)
    out += [Case(s, dataset, solver) for s in solvers]
    return out
