"""``sklearn-lbfgs``, ``sklearn-newton-cholesky``: what a user would pick instead of writing a loop —
scikit-learn's ``LogisticRegression`` — as reference rows on the same objective.

The objective. scikit-learn minimises ``C sum_i l_i(w, b) + (1/2) ||w||^2`` (the intercept not
penalised); divided by ``C n`` that is the contract's ``mean_i l_i + (λ/2) ||w||^2`` with::

    C = 1 / (n λ)          when λ = config.l2 > 0
    penalty=None           when λ = 0

so the minimiser is the same point (the losses ``l_i`` are the logistic loss; ``probs`` and ``logits``
are the same function, computed here as ``config.formulation`` says, in float64).

The measurement, benchopt's way for a solver without a per-iteration hook. ``n_iters`` is the number of
*fits*: ``run()`` fits ``LogisticRegression(solver=..., max_iter=2^i, tol=0, warm_start=True)`` for
``i = 0 .. n_iters - 1``, each from ``(w0, b0)`` (the start every other loop uses: ``coef_`` and
``intercept_`` set before ``fit``, which ``warm_start`` starts from) and each timed on its own. Hence::

    losses[i]         = the loss at the parameters of the fit with max_iter = 2^i
    point_times_s[i]  = that fit's wall time (from its own start: the time a user waits for that model)

``record_every`` must be 1 (every fit is a point). ``tol=0`` makes ``max_iter`` the only stopping rule
(scikit-learn may still stop earlier when its line search can make no progress: converged as far as
float64 allows); the ``ConvergenceWarning`` each capped fit raises is expected and silenced.
``result()`` is the last (largest ``max_iter``) fit. Float64 only; binary only (``n_classes = 2``);
full batch only (it is a full-batch solver). A sparse ``X`` goes to ``fit`` as the CSR array ``prepare``
hands over (both solvers take sparse input as it is; ``newton-cholesky`` forms the ``d x d`` Hessian, so
it suits a narrow ``X`` only). The row's ``n_iters`` therefore counts fits, and its
"time per step" is a fit's average: the report reads these rows by their suboptimality against time,
never by time per step.

``optimizer``: these rows use the config value ``"solver"`` (a library's own solver, run to growing
``max_iter``), not ``"lbfgs"``: ``newton-cholesky`` is not L-BFGS, and ``sklearn-lbfgs`` runs scipy's
L-BFGS-B under scikit-learn's own stopping rules, so neither is an ``lbfgs`` loop of this project.
``gradient`` is declared ``"solver"``: the library computes its own gradient (and Hessian) inside.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ._sparse import is_csr
from .base import BackendUnavailableError, Trainer
from .numpy_backend import forward_loss

SOLVER_POINTS = 10  # the default number of fits: max_iter = 1, 2, 4, ..., 512


class SklearnTrainer(Trainer):
    name = "sklearn-lbfgs"
    library = "sklearn"
    gradient = "solver"
    engine = "scipy"
    compiled = False
    solver = "lbfgs"
    style = "LogisticRegression(solver='lbfgs'), growing max_iter"
    supports_minibatch = False
    supports_multiclass = False
    supports_sparse = True  # LogisticRegression.fit takes the CSR array as it is
    optimizers = ("solver",)
    devices = ("cpu",)
    dtypes = ("float64",)

    def __init__(self, config):
        super().__init__(config)
        if config.record_every != 1:
            raise ValueError(f"record_every must be 1 for backend {self.name!r} (every fit is one point), "
                             f"got {config.record_every}")
        try:
            import sklearn  # noqa: F401
        except ImportError:  # pragma: no cover - a core dependency
            raise BackendUnavailableError(f"backend {self.name!r} needs scikit-learn") from None

    def _prepare(self, X, y, w0, b0):
        self.X = X.astype(np.float64, copy=False) if is_csr(X) else np.ascontiguousarray(X, dtype=np.float64)
        self.y = y.astype(np.float64)
        self.w0, self.b0 = np.asarray(w0, dtype=np.float64), float(b0)

    def _estimator(self, max_iter: int):
        from sklearn.linear_model import LogisticRegression

        l2 = self.config.l2
        kw = dict(C=1.0 / (self.n * l2)) if l2 else dict(penalty=None)
        est = LogisticRegression(solver=self.solver, max_iter=max_iter, tol=0.0, warm_start=True, **kw)
        est.coef_ = self.w0.reshape(1, -1).copy()  # warm_start: the fit starts from (w0, b0)
        est.intercept_ = np.array([self.b0])
        return est

    def _fit(self, max_iter: int):
        from sklearn.exceptions import ConvergenceWarning

        est = self._estimator(max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", message=".*[Ll]ine [Ss]earch.*")
            est.fit(self.X, self.y)
        return est

    def _run(self):
        t_run = time.perf_counter()
        losses, times, iters = [], [], []
        est = None
        for i in range(self.config.n_iters):
            t0 = time.perf_counter()
            est = self._fit(2 ** i)
            times.append(time.perf_counter() - t0)  # the fit alone; its loss is computed outside the clock
            losses.append(self._loss(est.coef_.reshape(-1), float(est.intercept_[0])))
            iters.append(int(np.max(est.n_iter_)))
        self.run_s = time.perf_counter() - t_run
        self._w, self._b = est.coef_.reshape(-1).copy(), float(est.intercept_[0])
        self._losses = np.array(losses, dtype=np.float64)
        self.point_times_s = np.array(times, dtype=np.float64)
        self.solver_iterations = iters  # n_iter_ of each fit (it stops early once no progress is possible)

    def _loss(self, w, b) -> float:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            loss, _ = forward_loss(np, self.X, self.y, w, b, self.config.formulation)
        return float(loss) + (0.5 * self.config.l2 * float(w @ w) if self.config.l2 else 0.0)

    def _result(self):
        return self._w, self._b, self._losses

    def _loss_and_grad(self, w, b):
        """The objective scikit-learn minimises, divided by ``C n`` (see the module docstring), and its
        gradient ``X^T (p - y) / n + λ w``, ``mean(p - y)``, in float64 NumPy."""
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            loss, p = forward_loss(np, self.X, self.y, w, b, self.config.formulation)
        r = p - self.y
        gw = self.X.T @ r / self.n + self.config.l2 * w
        return float(loss) + 0.5 * self.config.l2 * float(w @ w), gw, float(np.mean(r))


class SklearnNewtonCholeskyTrainer(SklearnTrainer):
    name = "sklearn-newton-cholesky"
    solver = "newton-cholesky"
    engine = "sklearn"
    style = "LogisticRegression(solver='newton-cholesky'), growing max_iter"

