"""What every row of a run shares, built once and cached: the problem (a dataset and one (w0, b0)
draw), the float64 oracle's path for a configuration, and scikit-learn's optimum per penalty."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from implementations import reference
from implementations.schedule import init_params

from . import data as datasets, oracle
from .records import Case

# K-class data whose multinomial Newton step (n ((d+1) K)^2 flops) is above this gets no optimum: on
# synthetic-100kx100-k10 (1e11) the fit alone takes many minutes on 2 cores (digits: 8e8, iris-3class: 3e4)
OPTIMUM_MAX_NEWTON_FLOPS = 1e10


@dataclass(frozen=True)
class Problem:
    dataset: datasets.Dataset
    w0: np.ndarray
    b0: float


class Inputs:
    """The problems, float64 references and optima of one run. ``max_problems`` datasets are kept in
    memory (a run's cases come grouped by dataset: 1); ``optimum=False`` fits none. Why an optimum
    could not be had is appended to ``notes``."""

    def __init__(self, seed: int = 0, optimum: bool = True, max_problems: int = 1):
        self.seed, self.fit_optima, self.max_problems = seed, optimum, max_problems
        self._problems: dict[str, Problem] = {}
        self._references: dict = {}
        self._optima: dict = {}
        self.notes: list[str] = []

    def problem(self, name: str) -> Problem:
        if name not in self._problems:
            if len(self._problems) >= self.max_problems:
                self._problems.clear()
                self._references.clear()
            ds = datasets.load(name, self.seed)
            w0, b0 = init_params(ds.d, self.seed, ds.init_scale, ds.n_classes)
            self._problems[name] = Problem(ds, w0, b0)
        return self._problems[name]

    def loaded(self, name: str) -> datasets.Dataset | None:
        """The dataset if it is in memory now (never loads it)."""
        p = self._problems.get(name)
        return None if p is None else p.dataset

    def reference(self, case: Case):
        key = (case.dataset, replace(case.config, device="cpu", workers=1))
        if key not in self._references:
            p = self.problem(case.dataset)
            self._references[key] = reference.reference_run(p.dataset.X, p.dataset.y, p.w0, p.b0, key[1])
        return self._references[key]

    def full_losses(self, case: Case, steps: np.ndarray) -> np.ndarray:
        """Mini-batch rows: the full-data objective along the oracle's path (the row agrees with it
        within tolerance), for time-to-accuracy; full-batch rows: NaN (their own loss is the full one)."""
        if case.config.batch_size is None:
            return np.full(len(steps), np.nan)
        key = ("full", case.dataset, replace(case.config, device="cpu", workers=1), len(steps))
        if key not in self._references:
            p = self.problem(case.dataset)
            self._references[key] = reference.full_losses_along(p.dataset.X, p.dataset.y, p.w0, p.b0, key[2], steps)
        return self._references[key]

    def optimum(self, name: str, l2: float):
        if not self.fit_optima:
            return None
        key = (name, l2)
        if key not in self._optima:
            ds = self.problem(name).dataset
            # one multinomial Newton step's flops
            newton = ds.X.shape[0] * ((ds.X.shape[1] + 1) * ds.n_classes) ** 2
            if ds.n_classes >= 3 and newton > OPTIMUM_MAX_NEWTON_FLOPS:
                self.notes.append(f"{name} (l2={l2:g}): no optimum — scikit-learn's multinomial Newton-Cholesky "
                                  f"costs n((d+1)K)^2 = {newton:.1e} flops per iteration here, beyond the run's "
                                  f"budget ({OPTIMUM_MAX_NEWTON_FLOPS:.0e}); the rows still agree with the float64 "
                                  "oracle's path")
                self._optima[key] = None
                return None
            try:
                self._optima[key] = oracle.fit_optimum(ds.X, ds.y, l2, n_classes=ds.n_classes)
            except Exception as exc:  # e.g. absurdly scaled data: the rows still run, without the optimum
                self.notes.append(f"{name} (l2={l2:g}): no optimum ({type(exc).__name__}: {exc})")
                self._optima[key] = None
        return self._optima[key]
