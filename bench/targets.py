"""Time to target, the one definition: behind ``Row.time_to_target_s`` (the judgement of a row),
``time_to_target.csv`` and the summary (the report).

A recorded point reaches ``target`` when its relative suboptimality ``(L − L*)/|L*|`` against
scikit-learn's optimum ``L*`` is ``<= target``; its time is the one the row measured for it, else
``step × time_per_iter_s``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

TARGETS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-6)
# optimizers whose rows are judged by the optimum they reach, not by a lockstep path against the
# float64 oracle: L-BFGS (each library's own line search) and a library's own solver (scikit-learn)
JUDGED_BY_OPTIMUM = ("lbfgs", "solver")


def point_times(steps, time_per_iter_s, measured=None) -> np.ndarray:
    """The wall time of each recorded point: ``measured`` (losses.csv ``time_s``) where the row
    recorded it — an L-BFGS iteration's end (line searches make iterations unequal), a scikit-learn
    fit with ``max_iter = 2^i`` (each fit timed on its own, as benchopt does) — else
    ``step × time_per_iter_s`` (equal steps)."""
    steps = np.asarray(steps, dtype=float)
    tpi = np.asarray(pd.to_numeric(pd.Series(np.atleast_1d(np.asarray(time_per_iter_s, dtype=object))),
                                   errors="coerce"), dtype=float)  # one per point, or one for all
    out = steps * (tpi if tpi.size != 1 else tpi[0])  # (empty curves: empty out)
    if measured is not None:
        m = np.asarray(pd.to_numeric(pd.Series(measured), errors="coerce"), dtype=float)
        out = np.where(np.isnan(m), out, m)
    return out


def relative_suboptimality(objective, optimum: float):
    """``(L − L*) / |L*|``: how far above scikit-learn's optimum ``L*`` a loss is, relative to it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.asarray(objective, dtype=float) - float(optimum)) / abs(float(optimum))


def first_step_to_target(steps, objective, optimum: float, target: float) -> float:
    """The first recorded step whose relative suboptimality ``(L − L*)/|L*|`` is ``<= target``;
    NaN when none is (a NaN loss compares False: a diverged curve never gets there). Its time is
    ``step × time_per_iter_s`` (the loss of step ``t`` is computed in step ``t``'s forward pass)."""
    hit = np.flatnonzero(relative_suboptimality(objective, optimum) <= target)
    return float(np.asarray(steps)[hit[0]]) if hit.size else math.nan
