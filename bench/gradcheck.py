"""Are the hand-derived gradients right? Every backend's ``loss_and_grad`` against the others and
against central finite differences, at points chosen to exercise the easy and the hard cases.

Oracles from outside the code under test: torch autograd (the ``torch`` backend) and central
finite differences of the formulation's loss in float64 (five-point stencil, a step per
coordinate; see :func:`finite_difference`), computed on the point and data exactly as the
backend's dtype sees them.

Errors are normwise: ``max_j |gA_j - gB_j|`` (abs) and that divided by ``max_j |gB_j|`` (rel),
over the ``d + 1`` coordinates ``(dL/dw, dL/db)``.

Tolerances (relative):

* float64, backend vs backend: ``1e-12``; backend vs finite differences: ``1e-8``.
* float32: twice the a-priori rounding bound of :func:`rounding_bound` (both sides of a pair
  round), divided by the gradient's size. Near an optimum the gradient is a small difference of
  large terms, so this tolerance grows there, as the error itself does.

Saturation: where ``p = sigmoid(z)`` rounds to exactly 1 (``z > 16.6`` in float32, ``36.7`` in
float64) or 0, the ``probs`` formulation's ``log1p(-p)`` (or ``log p``) hits its -100 clamp. Autograd
and finite differences both differentiate that clamped function and see 0 for the sample; the
hand-derived ``p - y`` is the derivative of the exact loss and does not. Those rows fail their
tolerance *and say why* in ``note``; the ``logits`` rows at the same point agree.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from implementations import BACKENDS, DTYPES, FORMULATIONS, BackendUnavailableError, TrainConfig, create_trainer
from implementations.base import LOG_CLAMP

from .data import Dataset, init_params, rounded
from .equivalence import reference, saturated_count

COLUMNS = ["dataset", "point", "formulation", "dtype", "method_a", "method_b", "max_abs_err", "max_rel_err",
           "tolerance", "passed", "saturated", "note"]


def loss64(X, y, w, b, formulation) -> float:
    """The formulation's loss, exactly as the backends define it, in float64."""
    z = X @ w + b
    if formulation == "logits":
        return float(np.mean(np.logaddexp(0.0, z) - y * z))
    with np.errstate(over="ignore", divide="ignore"):
        p = 1 / (1 + np.exp(-z))
        return float(-np.mean(y * np.maximum(np.log(p), LOG_CLAMP) + (1 - y) * np.maximum(np.log1p(-p), LOG_CLAMP)))


def finite_difference(X, y, w, b, formulation) -> np.ndarray:
    """Central differences of ``loss64`` over ``θ = (w, b)`` in float64, the five-point stencil
    ``(8 (L(θ+h) - L(θ-h)) - (L(θ+2h) - L(θ-2h))) / 12h`` (truncation O(h^4)), one step per
    coordinate: ``h_j = eps^(1/5) max(1, |θ_j|) / max(1, rms(x_j))``, so that ``h_j x_j`` — the
    change it makes to ``z`` — is the same size for every feature whatever its units."""
    theta = np.append(np.asarray(w, dtype=np.float64), b)
    scale = np.append(np.sqrt(np.mean(np.asarray(X, dtype=np.float64) ** 2, axis=0)), 1.0)
    grad = np.empty_like(theta)

    def at(j, step):
        t = theta.copy()
        t[j] += step
        return loss64(X, y, t[:-1], t[-1], formulation)

    for j in range(theta.size):
        h = np.finfo(np.float64).eps ** 0.2 * max(1.0, abs(theta[j])) / max(1.0, scale[j])
        h = (theta[j] + h) - theta[j]  # a step that is exact in binary
        grad[j] = (8 * (at(j, h) - at(j, -h)) - (at(j, 2 * h) - at(j, -2 * h))) / (12 * h)
    return grad


def rounding_bound(X, y, w, b, dtype: str) -> np.ndarray:
    """A-priori bound on the rounding error of ``(X^T (p - y) / n, mean(p - y))`` computed in
    ``dtype`` (standard forward error analysis, first order in the unit roundoff ``u``):

    * ``z_i = x_i . w + b`` has error <= ``(d + 1) u (|x_i| . |w| + |b|)``, which moves
      ``p_i`` by ``p_i (1 - p_i)`` times that; ``exp``, the division and ``p - y`` add <= 4 u;
    * the reduction over ``n`` terms adds <= ``(log2 n + 1) u`` of ``mean |x_ij r_i|``.
    """
    u = float(np.finfo(dtype).eps) / 2
    n, d = X.shape
    z = X @ w + b
    p = 1 / (1 + np.exp(-np.clip(z, -700, 700)))
    r = p - y
    dr = u * (p * (1 - p) * (d + 1) * (np.abs(X) @ np.abs(w) + abs(b)) + 4)
    Xa = np.abs(np.hstack([X, np.ones((n, 1))]))
    return (Xa.T @ dr + (math.log2(max(n, 2)) + 1) * u * (Xa.T @ np.abs(r))) / n


def tolerance(dtype: str, pair_has_fd: bool, bound: np.ndarray, grad: np.ndarray) -> float:
    """float64: 1e-12 between backends, 1e-8 against finite differences (relative). float32:
    twice the rounding bound (both sides of a pair round), relative to the gradient."""
    if dtype == "float64":
        return 1e-8 if pair_has_fd else 1e-12
    return float(2 * bound.max() / max(np.abs(grad).max(), np.finfo(float).tiny))


@dataclass(frozen=True)
class Point:
    name: str
    w: np.ndarray
    b: float


def points(ds: Dataset, seed: int = 0, lr: float = 0.01, n_random: int = 2) -> list[Point]:
    """Seed init; random points; the end of a 5000-step float64 run; a saturated point (the
    trained direction reversed and scaled so that max |z| = 60: misclassified, saturated samples)."""
    w0, b0 = init_params(ds.d, seed, ds.init_scale)
    out = [Point("init", w0, b0)]
    rng = np.random.default_rng(seed + 1)
    scale = 0.5 * ds.init_scale / max(1.0, float(np.abs(ds.X).mean()))
    for k in range(n_random):
        out.append(Point(f"random-{k}", scale * rng.standard_normal(ds.d), float(scale * rng.standard_normal())))
    trained = reference(ds.X, ds.y, w0, b0, TrainConfig(lr=lr, n_iters=5000, dtype="float64", formulation="logits"))
    out.append(Point("trained", trained.w, trained.b))
    z = ds.X @ trained.w + trained.b
    c = -60.0 / np.abs(z).max()
    out.append(Point("saturated", c * trained.w, c * trained.b))
    return out


def _note(formulation, dtype, sat, passed, a, b) -> str:
    if not sat:
        return "" if passed else "outside tolerance with no saturated sample: investigate"
    if formulation == "logits":
        return f"{sat} saturated sample(s): harmless with logits, whose gradient sigmoid(z) - y is exact"
    methods = {a, b}
    why = []
    if "torch" in methods:
        why.append("autograd through sigmoid->BCE computes (p - y) / max(p(1-p), 1e-12) * p(1-p), which shrinks the "
                   "gradient of samples with p(1-p) < 1e-12 (|z| > 27.6) and zeroes it once p rounds to exactly 0 or "
                   f"1 ({'z > 16.6' if dtype == 'float32' else 'z > 36.7'} in {dtype})")
    if "finite-diff" in methods:
        why.append("finite differences see the probs loss flat where log(p) or log1p(-p) is clamped at -100 "
                   "(p rounded to 0 or 1)")
    if not why or passed:
        return f"{sat} saturated sample(s); these two methods treat them alike"
    return (f"known probs difference, {sat} saturated sample(s): " + "; ".join(why)
            + "; the hand-derived p - y is the exact loss's derivative; use logits")


def compare_gradients(ds: Dataset, backends=tuple(BACKENDS), dtypes=DTYPES, formulations=FORMULATIONS,
                      device: str = "cpu", seed: int = 0, pts: list[Point] | None = None) -> list[dict]:
    """One row per (point, formulation, dtype, pair of methods)."""
    rows = []
    pts = pts or points(ds, seed)
    for dtype, form in itertools.product(dtypes, formulations):
        trainers = {}
        for name in backends:
            try:
                trainers[name] = create_trainer(name, TrainConfig(dtype=dtype, formulation=form, device=device))
            except BackendUnavailableError:
                continue
            trainers[name].prepare(ds.X, ds.y, *init_params(ds.d, seed, ds.init_scale))
        Xr = rounded(ds.X, dtype)
        for pt in pts:
            w, b = rounded(pt.w, dtype), float(rounded(pt.b, dtype))  # the point a dtype backend sees
            grads = {name: np.append(*tr.loss_and_grad(w, b)[1:]) for name, tr in trainers.items()}
            grads["finite-diff"] = finite_difference(Xr, ds.y, w, b, form)
            sat = saturated_count(ds.X, w, b, dtype)
            bound = rounding_bound(Xr, ds.y, w, b, dtype)
            names = list(grads)
            pairs = [(a, "finite-diff") for a in names[:-1]] + list(itertools.combinations(names[:-1], 2))
            for a, bname in pairs:
                diff = np.abs(grads[a] - grads[bname])
                abs_err = float(diff.max())
                rel_err = abs_err / max(float(np.abs(grads[bname]).max()), np.finfo(float).tiny)
                tol = tolerance(dtype, bname == "finite-diff", bound, grads["finite-diff"])
                passed = bool(rel_err <= tol)
                rows.append({
                    "dataset": ds.name, "point": pt.name, "formulation": form, "dtype": dtype, "method_a": a,
                    "method_b": bname, "max_abs_err": abs_err, "max_rel_err": rel_err, "tolerance": tol,
                    "passed": passed, "saturated": sat,
                    "note": _note(form, dtype, sat, passed, a, bname),
                })
    return rows
