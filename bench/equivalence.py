"""Do two runs compute the same thing? Tolerances per dtype, and the float64 reference.

Tolerance model (used for final parameters and for whole loss histories). Two correct
implementations differ only by rounding. Per gradient step each of them rounds

* the update ``w - lr * g``                     ~ 1 unit roundoff ``u`` of ``|w|``,
* the ``d``-term dot products ``z = X w``        ~ ``d u`` (error bound of a d-term sum),
* the ``n``-term reduction ``X^T (p - y)``       ~ ``log2(n) u`` (pairwise / blocked BLAS sums),

relative to the parameters' scale. Full-batch GD on this convex loss with ``lr < 2/L`` is
non-expansive, so an error made at one step is not amplified by later steps: the errors add.
Rounding errors of different steps are uncorrelated to first order, so they add like a random
walk, ``sqrt(K)`` for ``K`` steps::

    rtol(dtype, K, n, d) = u * sqrt(K) * (1 + d + log2 n)

float32 (``u = 2^-24 = 6.0e-8``) on the seed task (K = 5000, n = 100, d = 4):
``6.0e-8 * 70.7 * 11.6 = 4.9e-5``; measured numpy vs torch: 3.6e-7 to 9.5e-7 absolute in ``w``
(|w| ~ 2.7), i.e. ~3.5e-7 relative — 100x inside. float64 (``u = 2^-53``): the same formula gives
9.1e-14, and the foundation issue's bound 1e-10 is kept as a floor, whichever is larger
(measured 1.8e-15). Differences are relative to the reference's largest magnitude
(``max|Δθ| / max|θ_ref|``), so the verdict does not depend on the units of the features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from implementations import TrainConfig, TrainResult
from implementations.numpy_backend import NumpyTrainer

from .data import rounded

UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}
FLOAT64_FLOOR = 1e-10


def tolerance(dtype: str, n_iters: int, n: int, d: int) -> float:
    """Relative tolerance for a ``dtype`` run of ``n_iters`` steps on ``(n, d)`` data (see module doc)."""
    tol = UNIT_ROUNDOFF[dtype] * math.sqrt(n_iters) * (1 + d + math.log2(max(n, 2)))
    return max(tol, FLOAT64_FLOOR) if dtype == "float64" else tol


@dataclass(frozen=True)
class Agreement:
    max_abs_dw: float
    abs_db: float
    max_abs_dloss: float
    rel_dparam: float
    rel_dloss: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return bool(self.rel_dparam <= self.tolerance and self.rel_dloss <= self.tolerance)

    @property
    def verdict(self) -> str:
        return "pass" if self.ok else "fail"

    def as_dict(self) -> dict:
        return {
            "max_abs_dw": self.max_abs_dw, "abs_db": self.abs_db, "max_abs_dloss": self.max_abs_dloss,
            "rel_dparam": self.rel_dparam, "rel_dloss": self.rel_dloss, "tolerance": self.tolerance,
            "verdict": self.verdict,
        }


def compare(res: TrainResult, ref: TrainResult, tol: float) -> Agreement:
    """Largest differences of ``res`` against ``ref`` (absolute, and relative to ``ref``'s scale)."""
    dw = np.abs(res.w - ref.w)
    db = abs(res.b - ref.b)
    if res.losses.shape != ref.losses.shape:
        raise ValueError(f"loss histories differ in length: {res.losses.shape} vs {ref.losses.shape}")
    dloss = np.abs(res.losses - ref.losses)
    scale_p = max(np.max(np.abs(ref.w)), abs(ref.b), np.finfo(float).tiny)
    scale_l = max(np.max(np.abs(ref.losses)), np.finfo(float).tiny)
    max_dw = float(np.max(dw)) if dw.size else 0.0
    max_dl = float(np.max(dloss)) if dloss.size else 0.0
    nan = float("nan")
    return Agreement(
        max_abs_dw=max_dw if np.all(np.isfinite(dw)) else nan,
        abs_db=float(db),
        max_abs_dloss=max_dl if np.all(np.isfinite(dloss)) else nan,
        rel_dparam=max(max_dw, db) / scale_p if np.all(np.isfinite(dw)) and math.isfinite(db) else math.inf,
        rel_dloss=max_dl / scale_l if np.all(np.isfinite(dloss)) else math.inf,
        tolerance=tol,
    )


def reference(X, y, w0, b0, config: TrainConfig) -> TrainResult:
    """The float64 NumPy run on the data and init exactly as a ``config.dtype`` backend sees them."""
    ref_cfg = TrainConfig(lr=config.lr, n_iters=config.n_iters, dtype="float64", device="cpu",
                          formulation=config.formulation, record_every=config.record_every)
    trainer = NumpyTrainer(ref_cfg)
    trainer.prepare(rounded(X, config.dtype), y, rounded(w0, config.dtype), float(rounded(b0, config.dtype)))
    trainer.run()
    return trainer.result()


BCE_BACKWARD_EPS = 1e-12  # torch's binary_cross_entropy backward divides by max(p (1 - p), 1e-12)


def saturated_count(X, w, b, dtype: str) -> int:
    """Samples where sigmoid saturates for the ``probs`` formulation, computed in ``dtype``:
    ``p (1 - p) < 1e-12`` (``|z| > 27.6``), which includes ``p`` rounded to exactly 0 or 1
    (``z > 16.6`` in float32, ``36.7`` in float64). There autograd through sigmoid->BCE returns
    ``(p - y) p (1 - p) / 1e-12`` (0 once ``p`` is 0 or 1) instead of the hand-derived ``p - y``."""
    dt = np.dtype(dtype)
    z = np.asarray(X, dtype=dt) @ np.asarray(w, dtype=dt) + dt.type(b)
    with np.errstate(over="ignore"):
        p = 1 / (1 + np.exp(-z))
    return int(np.count_nonzero(p * (1 - p) < BCE_BACKWARD_EPS))
