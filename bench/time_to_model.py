"""The time-to-a-trained-model block of the main job (issue 20): how long until each library's loop
has a model within 1e-4 and 1e-6 relative suboptimality ``(L − L*)/|L*|`` of scikit-learn's optimum.

One problem of realistic conditioning, small enough for the ``make bench`` budget (≈ 20 s for the
block on a 2-core machine): ``breast-cancer`` standardized (569 × 30), float64, ``logits``, with the
L2 penalty ``λ = 1e-3`` (scikit-learn's ``C = 1/(n λ) ≈ 1.76``, close to its default ``C = 1``).
Without a penalty this data is almost separable (the optimum's weights run into the thousands and
``L*`` ≈ 6e-6), so a *relative* suboptimality would measure nothing useful.

The loops, each as its library's users write it (the same ``(w0, b0)``, the same objective):

* ``gd``    — fixed-step gradient descent at ``lr = 1/L`` (the largest safe step), ``GD_ITERS`` steps;
* ``adam``  — Adam at ``lr = ADAM_LR`` (0.1: on this problem 1e-3, torch's default, gets nowhere in the
  budget, 0.03 is slower), ``ADAM_ITERS`` steps;
* ``lbfgs`` — each library's own L-BFGS (scipy's L-BFGS-B for NumPy, ``torch.optim.LBFGS`` strong-Wolfe,
  optax for JAX), ``LBFGS_ITERS`` iterations;

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

from .records import Case

DATASET = "breast-cancer[standardize]"
L2 = 1e-3
DTYPE, FORMULATION = "float64", "logits"
TARGETS = (1e-4, 1e-6)
BACKENDS = ("numpy", "torch", "torch-nn", "jax")
SOLVERS = ("sklearn-lbfgs", "sklearn-newton-cholesky")
GD_ITERS, ADAM_ITERS, ADAM_LR, LBFGS_ITERS, SOLVER_FITS = 1000, 1000, 0.1, 100, 10


def loops(lr_gd: float) -> dict[str, TrainConfig]:
    """optimizer -> its config in this block (``lr_gd`` = 1/L of the problem)."""
    base = TrainConfig(dtype=DTYPE, formulation=FORMULATION, l2=L2, lr=lr_gd)
    return {"gd": replace(base, n_iters=GD_ITERS),
            "adam": replace(base, optimizer="adam", lr=ADAM_LR, n_iters=ADAM_ITERS),
            "lbfgs": replace(base, optimizer="lbfgs", lr=1.0, n_iters=LBFGS_ITERS)}


def cases(devices=("cpu",), seed: int = 0, backends=BACKENDS, solvers=SOLVERS, dataset: str = DATASET) -> list[Case]:
    """The block's cases: every loop of every backend, then the scikit-learn rows (cpu only)."""
    from .pipeline import default_lr

    out = []
    for opt, cfg in loops(default_lr(dataset, L2, seed)).items():
        for backend in backends:
            for device in devices:
                out.append(Case(backend, dataset, replace(cfg, device=device)))
    solver = TrainConfig(dtype=DTYPE, formulation=FORMULATION, l2=L2, optimizer="solver", n_iters=SOLVER_FITS)
    out += [Case(s, dataset, solver) for s in solvers]
    return out
