"""Lockstep trajectories: two backends step by step from the same init, compared at every step.

Each backend follows its *own* trajectory in its own dtype: every step is one call of its
``run()`` (``n_iters=1``) from the parameters its previous step produced (float32 values survive
the float64 round trip exactly), so the path is the one its ``run()`` would take. After each
step the two parameter vectors are compared with the equivalence tolerance at that step count,
``u sqrt(k) (1 + d + log2 n)`` (see :mod:`implementations.reference`; ``+ K`` for a softmax dataset
with ``K >= 3`` classes, whose parameters ``(W, b)`` are compared over all ``(d + 1) K`` entries and
whose saturation count is the samples with ``log P[i, y_i] < -100``). The stepping itself is
:func:`implementations.testing.in_lockstep`, which the conformance checks use against the oracle.

:func:`run` is ``python -m bench trajectory``: every dataset, device, dtype, formulation and
penalty, one ``trajectory.csv`` and the per-step deviations in ``trajectory_steps.csv``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from implementations import BackendUnavailableError, TrainConfig, create_trainer
from implementations.reference import tolerance
from implementations.schedule import init_params
from implementations.testing import in_lockstep

from .. import atomic
from ..data import Dataset, load
from ..oracle import saturated_count
from ..results import NOTHING_RAN_EXIT
from . import print_table

OWNED = ("trajectory.csv", "trajectory_steps.csv", "env.json")  # what `bench trajectory` writes into its folder


@dataclass(frozen=True)
class Trajectory:
    a: str
    b: str
    dataset: str
    dtype: str
    formulation: str
    n_iters: int
    first_divergence: int | None  # first step (1-based) beyond tolerance, None = never
    max_rel_dev: float
    max_dev_step: int
    saturated: int  # saturated samples (backend a's parameters) at the first divergence, else at the largest deviation
    deviations: np.ndarray  # relative parameter deviation after each step (up to the divergence)
    diverged: str = ""  # "" or which backend's loss or parameters became non-finite, at which step

    def as_row(self) -> dict:
        return {
            "dataset": self.dataset, "dtype": self.dtype, "formulation": self.formulation, "backend_a": self.a,
            "backend_b": self.b, "n_iters": self.n_iters,
            "first_divergence_step": self.first_divergence if self.first_divergence is not None else "never",
            "max_rel_deviation": self.max_rel_dev, "max_deviation_step": self.max_dev_step,
            "saturated_at_step": self.saturated, "diverged": self.diverged,
        }


def lockstep(ds: Dataset, a: str, b: str, dtype: str, formulation: str, n_iters: int, lr: float = 0.01,
             seed: int = 0, device: str = "cpu", l2: float = 0.0) -> Trajectory:
    if a == b:
        raise ValueError(f"lockstep needs two different backends, got {a!r} twice")
    k = getattr(ds, "n_classes", 2)
    w0, b0 = init_params(ds.d, seed, ds.init_scale, k)
    cfg = TrainConfig(lr=lr, n_iters=1, dtype=dtype, formulation=formulation, device=device, l2=l2, n_classes=k)
    with create_trainer(a, cfg) as ta, create_trainer(b, cfg) as tb:
        return _compare_paths(ds, a, b, ta, tb, dtype, formulation, n_iters, w0, b0)


def _compare_paths(ds, a, b, ta, tb, dtype, formulation, n_iters, w0, b0) -> Trajectory:
    k_classes = getattr(ds, "n_classes", 2)
    devs = np.empty(n_iters)
    first, sat_first, sat_worst, why = None, None, 0, ""
    for k, (ra, rb) in in_lockstep([ta, tb], ds.X, ds.y, w0, b0, n_iters):
        diverged = [name for name, res in ((a, ra), (b, rb))
                    if res.diverged or not np.all(np.isfinite(np.append(res.w, res.b)))]
        if diverged:  # the step cannot go on from non-finite parameters: the lockstep ends here
            devs = devs[: k - 1] if k > 1 else np.array([np.inf])
            why = f"{' and '.join(diverged)} non-finite at step {k} (lr too large for this data?)"
            break
        pa, pb = np.append(ra.w, ra.b), np.append(rb.w, rb.b)
        scale = max(np.abs(pa).max(), np.finfo(float).tiny)
        devs[k - 1] = np.abs(pa - pb).max() / scale if np.all(np.isfinite(pa - pb)) else np.inf
        if first is None and devs[k - 1] > tolerance(dtype, k, ds.n, ds.d, k_classes):
            first, sat_first = k, saturated_count(ds.X, ra.w, ra.b, dtype, y=ds.y)
        if devs[k - 1] >= devs[: k - 1].max(initial=-1.0):
            sat_worst = saturated_count(ds.X, ra.w, ra.b, dtype, y=ds.y)
    worst = int(np.argmax(devs)) + 1
    sat = sat_first if first is not None else sat_worst
    return Trajectory(a, b, ds.name, dtype, formulation, n_iters, first, float(devs.max()), worst, sat, devs,
                      diverged=why)


def run(datasets, a: str, b: str, devices, dtypes, formulations, l2s=(0.0,), n_iters: int = 1000, lr: float = 0.01,
        seed: int = 0, out=None) -> int:
    """``python -m bench trajectory``: write ``<out>/trajectory.csv`` and ``trajectory_steps.csv``,
    print the cases that ran; exit 0, or ``NOTHING_RAN_EXIT`` when every case was skipped."""
    rows, curves, skipped = [], [], []
    for name in datasets:
        ds = load(name, seed)
        for device in devices:
            for dtype in dtypes:
                for form in formulations:
                    for l2 in l2s:
                        where = {"dataset": name, "device": device, "dtype": dtype, "formulation": form, "l2": l2}
                        try:
                            tr = lockstep(ds, a, b, dtype, form, n_iters, lr, seed, device, l2)
                        except BackendUnavailableError as exc:
                            skipped.append(f"{device}: {exc}")
                            rows.append({**where, "backend_a": a, "backend_b": b, "status": "skipped",
                                         "reason": str(exc)})
                            continue
                        rows.append({**tr.as_row(), "device": device, "l2": l2, "status": "ok", "reason": ""})
                        curves.append(pd.DataFrame({**where, "step": range(1, len(tr.deviations) + 1),
                                                    "rel_deviation": tr.deviations}))
    df = pd.DataFrame(rows)
    atomic.write_csv(df, out / "trajectory.csv")
    if curves:
        atomic.write_csv(pd.concat(curves, ignore_index=True), out / "trajectory_steps.csv")
    for line in dict.fromkeys(skipped):
        print(f"skipped: {line}", file=sys.stderr)
    ok = df[df.status == "ok"]
    if ok.empty:
        print(f"wrote {out / 'trajectory.csv'}: nothing ran (every case was skipped)", file=sys.stderr)
        return NOTHING_RAN_EXIT
    shown = [c for c in ok.columns if c not in ("status", "reason")]
    print_table(ok, f"lockstep {a} vs {b}", shown)
    print(f"wrote {out / 'trajectory.csv'} and trajectory_steps.csv")
    return 0
