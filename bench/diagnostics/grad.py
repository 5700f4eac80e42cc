"""Are the hand-derived gradients right? Every backend's ``loss_and_grad`` against the others and
against central finite differences, at points chosen to exercise the easy and the hard cases.

Oracles from outside the code under test: torch autograd (the ``torch`` backend) and central
finite differences of the formulation's loss in float64 (five-point stencil, a step per
coordinate; see :func:`implementations.reference.finite_difference`), computed on the point and data
exactly as the backend's dtype sees them.

Errors are normwise: ``max_j |gA_j - gB_j|`` (abs) and that divided by ``max_j |gB_j|`` (rel),
over the ``d + 1`` coordinates ``(dL/dw, dL/db)``.

Tolerances (relative):

* float64, backend vs backend: ``1e-12``; backend vs finite differences: ``1e-8``.
* float32: twice the a-priori rounding bound of :func:`rounding_bound` (both sides of a pair
  round), divided by the gradient's size. Near an optimum the gradient is a small difference of
  large terms, so this tolerance grows there, as the error itself does.

Softmax (a dataset with ``K >= 3`` classes: ``iris-3class``, ``digits``, ``synthetic-<n>x<d>-k<K>``): the
same comparisons over the ``(d + 1) K`` coordinates ``(vec dL/dW, dL/db)``, the backends trained as
``TrainConfig(n_classes=K)``; the saturated point is scaled to ``max |Z| = 150`` so that some labels'
``log P`` fall below the ``probs`` clamp (-100), where autograd and finite differences see the clamped,
flat loss and ``P - Y`` does not (:func:`bench.oracle.saturated_count` counts those samples).

Saturation: where ``p = sigmoid(z)`` rounds to exactly 1 (``z > 16.6`` in float32, ``36.7`` in
float64) or 0, the ``probs`` formulation's ``log1p(-p)`` (or ``log p``) hits its -100 clamp. Autograd
and finite differences both differentiate that clamped function and see 0 for the sample; the
hand-derived ``p - y`` is the derivative of the exact loss and does not. Those rows fail their
tolerance *and say why* in ``note``; the ``logits`` rows at the same point agree.

:func:`run` is ``python -m bench grad``: every dataset, device and penalty, one ``gradients.csv``.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from implementations import (
    BACKENDS,
    DTYPES,
    FORMULATIONS,
    BackendUnavailableError,
    TrainConfig,
    create_trainer,
    get_backend,
)
from implementations.reference import finite_difference, reference_run, rounded
from implementations.schedule import init_params

from .. import atomic
from ..data import Dataset, load
from ..oracle import rounding_bound, saturated_count
from ..results import NOTHING_RAN_EXIT
from . import print_table

OWNED = ("gradients.csv", "env.json")  # what `bench grad` writes into its folder
COLUMNS = ["dataset", "device", "l2", "point", "formulation", "dtype", "method_a", "method_b", "max_abs_err",
           "max_rel_err", "tolerance", "passed", "saturated", "status", "note"]


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
    K = getattr(ds, "n_classes", 2)
    w0, b0 = init_params(ds.d, seed, ds.init_scale, K)
    out = [Point("init", w0, b0)]
    rng = np.random.default_rng(seed + 1)
    scale = 0.5 * ds.init_scale / max(1.0, float(np.abs(ds.X).mean()))
    for k in range(n_random):
        if K >= 3:
            out.append(Point(f"random-{k}", scale * rng.standard_normal((ds.d, K)), scale * rng.standard_normal(K)))
        else:
            out.append(Point(f"random-{k}", scale * rng.standard_normal(ds.d), float(scale * rng.standard_normal())))
    trained = reference_run(ds.X, ds.y, w0, b0, TrainConfig(lr=lr, n_iters=5000, dtype="float64", formulation="logits",
                                                            n_classes=K))
    out.append(Point("trained", trained.w, trained.b))
    z = ds.X @ trained.w + trained.b
    c = (-150.0 if K >= 3 else -60.0) / np.abs(z).max()  # softmax: label log-probabilities below the -100 clamp
    out.append(Point("saturated", c * trained.w, c * trained.b))
    return out


def _autograd_library(method: str) -> str | None:
    """The declared library of a backend whose gradient is autograd, else None (finite differences,
    hand-derived backends, one that cannot be imported)."""
    try:
        cls = get_backend(method)
    except ValueError:  # "finite-diff" and names that are not backends
        return None
    return cls.library if cls.gradient == "autograd" else None


def _note(formulation, dtype, sat, passed, a, b, k: int = 2) -> str:
    if not sat:
        return "" if passed else "outside tolerance with no saturated sample: investigate"
    if k >= 3:
        if formulation == "logits":
            return f"{sat} sample(s) with log P[y] < -100: harmless with logits, whose gradient P - Y is exact"
        if passed or not ({a, b} & ({"finite-diff"} | {m for m in (a, b) if _autograd_library(m)})):
            return f"{sat} sample(s) with log P[y] < -100; these two methods treat them alike"
        return (f"known probs difference, {sat} sample(s) whose label probability underflows (log P[i, y_i] < -100 in "
                f"{dtype}): autograd and finite differences differentiate the clamped log(softmax), flat there, so "
                "those samples contribute nothing; the hand-derived P - Y is the exact loss's derivative; use logits")
    if formulation == "logits":
        return f"{sat} saturated sample(s): harmless with logits, whose gradient sigmoid(z) - y is exact"
    methods = {a, b}
    why = []
    autograd = {m: lib for m in sorted(methods) if (lib := _autograd_library(m))}
    for m, lib in autograd.items():
        if lib == "torch":
            why.append(f"autograd through sigmoid->BCE ({m}) computes (p - y) / max(p(1-p), 1e-12) * p(1-p), "
                       "which shrinks the gradient of samples with p(1-p) < 1e-12 (|z| > 27.6) and zeroes it once p "
                       f"rounds to exactly 0 or 1 ({'z > 16.6' if dtype == 'float32' else 'z > 36.7'} in {dtype})")
        else:
            why.append(f"autograd ({m}, {lib}) differentiates the clamped probs loss, flat for samples whose p rounds "
                       "to exactly 0 or 1")
    if "finite-diff" in methods:
        why.append("finite differences see the probs loss flat where log(p) or log1p(-p) is clamped at -100 "
                   "(p rounded to 0 or 1)")
    if not why or passed:
        return f"{sat} saturated sample(s); these two methods treat them alike"
    return (f"known probs difference, {sat} saturated sample(s): " + "; ".join(why)
            + "; the hand-derived p - y is the exact loss's derivative; use logits")


def _has_gradient(name: str) -> bool:
    try:
        return get_backend(name).gradient != "solver"
    except ValueError:  # cannot be imported here: keep it, its rows say why it is skipped
        return True


def compare_gradients(ds: Dataset, backends=None, dtypes=DTYPES, formulations=FORMULATIONS,
                      device: str = "cpu", seed: int = 0, pts: list[Point] | None = None,
                      l2: float = 0.0) -> list[dict]:
    """One row per (point, formulation, dtype, pair of methods); a backend that cannot run on
    ``device`` gets one ``skipped`` row per dtype and formulation, with the reason in ``note``.
    ``backends``: registered names (default: every one registered now that computes a gradient —
    the scikit-learn solvers, declared ``gradient = "solver"``, expose none). Every trainer is closed."""
    rows = []
    pts = pts or points(ds, seed)
    if backends is None:
        backends = [name for name in BACKENDS if _has_gradient(name)]
    for dtype, form in itertools.product(dtypes, formulations):
        with contextlib.ExitStack() as stack:
            trainers = {}
            for name in backends:
                try:
                    K = getattr(ds, "n_classes", 2)
                    trainer = stack.enter_context(create_trainer(
                        name, TrainConfig(dtype=dtype, formulation=form, device=device, l2=l2, n_classes=K)))
                    trainer.prepare(ds.X, ds.y, *init_params(ds.d, seed, ds.init_scale, K))
                    trainers[name] = trainer
                except BackendUnavailableError as exc:
                    rows.append({"dataset": ds.name, "device": device, "l2": l2, "point": "", "formulation": form,
                                 "dtype": dtype, "method_a": name, "method_b": "", "passed": False, "status": "skipped",
                                 "note": str(exc)})
            rows += _compare_at_points(ds, trainers, dtype, form, device, l2, pts)
    return rows


def _compare_at_points(ds, trainers, dtype, form, device, l2, pts) -> list[dict]:
    """Every pair of methods (the prepared ``trainers`` and finite differences) at every point."""
    rows = []
    Xr = rounded(ds.X, dtype)
    for pt in pts:
        K = np.ndim(pt.w) == 2 and np.shape(pt.w)[1]
        w, b = rounded(pt.w, dtype), (rounded(pt.b, dtype) if K else float(rounded(pt.b, dtype)))  # as dtype sees it
        grads = {name: np.append(*tr.loss_and_grad(w, b)[1:]) for name, tr in trainers.items()}  # (vec dW, db)
        grads["finite-diff"] = finite_difference(Xr, ds.y, w, b, form, l2)
        sat = saturated_count(ds.X, w, b, dtype, y=ds.y)
        bound = rounding_bound(Xr, ds.y, w, b, dtype, l2)
        names = list(grads)
        pairs = [(a, "finite-diff") for a in names[:-1]] + list(itertools.combinations(names[:-1], 2))
        for a, bname in pairs:
            diff = np.abs(grads[a] - grads[bname])
            abs_err = float(diff.max())
            rel_err = abs_err / max(float(np.abs(grads[bname]).max()), np.finfo(float).tiny)
            tol = tolerance(dtype, bname == "finite-diff", bound, grads["finite-diff"])
            passed = bool(rel_err <= tol)
            rows.append({
                "dataset": ds.name, "device": device, "l2": l2, "point": pt.name, "formulation": form, "dtype": dtype,
                "method_a": a, "method_b": bname, "max_abs_err": abs_err, "max_rel_err": rel_err, "tolerance": tol,
                "passed": passed, "saturated": sat, "status": "ok",
                "note": _note(form, dtype, sat, passed, a, bname, K or 2),
            })
    return rows


def run(datasets, backends, devices, dtypes, formulations, l2s=(0.0,), seed: int = 0, lr: float = 0.01,
        random_points: int = 2, out=None) -> int:
    """``python -m bench grad``: write ``<out>/gradients.csv``, print the comparisons that ran;
    exit 0, 1 when a comparison is outside tolerance with no saturation to explain it, or
    ``NOTHING_RAN_EXIT`` when every backend was skipped."""
    frames = []
    for name in datasets:
        ds = load(name, seed)
        pts = points(ds, seed, lr=lr, n_random=random_points)
        for device in devices:
            for l2 in l2s:
                rows = compare_gradients(ds, backends, dtypes, formulations, device, seed, pts, l2)
                frames.append(pd.DataFrame(rows, columns=COLUMNS))
    df = pd.concat(frames, ignore_index=True)
    csv = out / "gradients.csv"
    atomic.write_csv(df, csv)
    ran = df[df.status == "ok"]
    for _, r in df[df.status == "skipped"].drop_duplicates(["method_a", "device"]).iterrows():
        print(f"skipped: {r.method_a} on {r.device}: {r.note}", file=sys.stderr)
    if ran.empty:
        print(f"wrote {csv}: no comparison ran (every backend was skipped)", file=sys.stderr)
        return NOTHING_RAN_EXIT
    print_table(ran, "gradient comparison (relative errors are normwise)",
                ["dataset", "device", "l2", "point", "formulation", "dtype", "method_a", "method_b", "max_rel_err",
                 "tolerance", "passed", "saturated"])
    unexplained = ran[~ran.passed.astype(bool) & (ran.saturated == 0)]
    print(f"wrote {csv}: {len(ran)} comparisons, {int((~ran.passed.astype(bool)).sum())} outside "
          f"tolerance ({len(unexplained)} without saturation to explain them; see the note column)")
    return 1 if len(unexplained) else 0
