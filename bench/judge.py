"""Is a finished row right: the divergence rule, agreement with the float64 oracle step by step, the
optimum an L-BFGS or solver row reaches, and the prose that explains a verdict or a noisy timing.

Every function here takes what the run already has (the trainer's result, the oracle's path, the
optimum, the timing) and returns the row's judgement as fields and a loss curve; nothing is run or
cached here (:mod:`bench.inputs` holds the references, :mod:`bench.measure` builds the row).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from implementations import get_backend, reference

from . import oracle
from .records import Case
from .targets import first_step_to_target, point_times
from .timing import Measurement

LOSS_POINTS = 500  # loss-curve points kept per row for losses.csv and the plots
DIVERGENCE_GROWTH = 1e5  # a loss above 1e5 x its first value has diverged (benchopt's rule)
# lbfgs / solver rows: verdict "pass" at or below this relative suboptimality (L − L*)/|L*| at the end
OPTIMUM_RTOL = {"float64": 1e-6, "float32": 1e-4}


def _first_growth(losses: np.ndarray) -> int | None:
    """Index of the first loss above ``DIVERGENCE_GROWTH`` times the first one, else None."""
    if losses.size == 0 or not math.isfinite(losses[0]):
        return None
    grown = np.flatnonzero(losses > DIVERGENCE_GROWTH * max(abs(losses[0]), np.finfo(float).tiny))
    return int(grown[0]) if grown.size else None


def divergence(res) -> int | None:
    """The step at which a run diverged by the one rule every backend is judged by, else None."""
    grown = _first_growth(res.losses)
    steps = [s for s in (res.first_nonfinite_step, None if grown is None else grown * res.record_every)
             if s is not None]
    return min(steps) if steps else None


def largest_logit(X, ref, dtype: str) -> float:
    """The largest |parameter| or |logit| of the oracle's final point, on the data as ``dtype`` sees it."""
    with np.errstate(over="ignore", invalid="ignore"):
        z = reference.rounded(X, dtype) @ ref.w + ref.b
        return float(np.nanmax(np.abs(np.append(z, np.append(ref.w, ref.b)))))


def declared(backend: str, attribute: str) -> str | None:
    """What a backend's class declares (``engine``, ``gradient``), None if it cannot be imported here."""
    try:
        return getattr(get_backend(backend), attribute)
    except ValueError:
        return None


def _steps(res, record_every: int) -> tuple[int, np.ndarray]:
    stride = max(1, len(res.losses) // LOSS_POINTS)
    return stride, np.arange(0, len(res.losses), stride) * record_every


def by_oracle(case: Case, res, ref, X, y, tolerance: float, time_per_iter_s: float | None, optimum, full_losses,
              target: float, noise: str | None = None) -> tuple[dict, pd.DataFrame | None]:
    """A gradient-descent row against the float64 oracle's lockstep path ``ref``: the divergence rule,
    the agreement figures and verdict, the optimum figures and time to ``target`` (``optimum()`` and
    ``full_losses(steps)`` are asked only where needed). Fields and the loss curve."""
    step = divergence(res)
    if step is not None:
        why = ("non-finite" if res.first_nonfinite_step == step else
               f"above {DIVERGENCE_GROWTH:.0e}x its first value")
        return {"first_nonfinite_step": res.first_nonfinite_step, "verdict": "fail", "status": "diverged",
                "reason": f"loss or parameters {why} from step {step}"}, None
    agreement = reference.compare(res, ref, tolerance)
    fields = dict(max_abs_dw=agreement.max_abs_dw, abs_db=agreement.abs_db, max_abs_dloss=agreement.max_abs_dloss,
                  rel_dparam=agreement.rel_dparam, rel_dloss=agreement.rel_dloss, verdict=agreement.verdict,
                  saturated=oracle.saturated_count(X, ref.w, ref.b, case.config.dtype, y=y))
    stride, steps = _steps(res, case.config.record_every)
    curve = pd.DataFrame({"case_id": case.case_id, "step": steps, "loss": res.losses[::stride],
                          "ref_loss": ref.losses[::stride], "full_loss": full_losses(steps),
                          "time_s": np.nan})  # equal steps: time = step × time_per_iter_s
    opt = optimum()
    if opt is not None:
        fields.update(optimum_loss=opt.loss, suboptimality=opt.suboptimality(X, y, res.w, res.b),
                      rel_dist_opt=opt.rel_distance(res.w, res.b))
        if time_per_iter_s is not None:  # on the full-data objective (a mini-batch row's own losses are its batches')
            objective = curve.full_loss.fillna(curve.loss).to_numpy()
            hit = first_step_to_target(steps, objective, opt.loss, target)
            fields["time_to_target_s"] = None if math.isnan(hit) else hit * time_per_iter_s
    reasons = [explain(agreement, fields["saturated"], case)] if not agreement.ok else []
    if noise:
        reasons.append(noise)
    fields["reason"] = "; ".join(reasons)
    return fields, curve


def by_optimum(case: Case, trainer, res, X, y, median_s: float | None, time_per_iter_s: float | None, optimum,
               target: float, noise: str | None = None) -> tuple[dict, pd.DataFrame | None]:
    """An ``lbfgs`` or ``solver`` row: its line search (each library's own) or solver follows no path
    the float64 oracle can reproduce step by step, so there is **no lockstep comparison**. It is judged
    by the optimum it reaches: verdict ``pass`` when its final relative suboptimality (L − L*)/|L*|,
    on the full data in float64, is at most :data:`OPTIMUM_RTOL` of its dtype (1e-6 in float64), else
    ``n/a (line search)`` — not converged in ``n_iters``, which is not a fault; ``fail`` only when it
    diverged. Its points' times are the ones it measured (``point_times_s``: an L-BFGS iteration's
    end, a scikit-learn fit's own time), scaled so that its run takes the median round's time
    (``median_s``; None: untimed)."""
    cfg = case.config
    fields: dict = {"evaluations": getattr(trainer, "evaluations", None)}
    step = divergence(res)
    if step is not None:
        fields.update(first_nonfinite_step=res.first_nonfinite_step, verdict="fail", status="diverged",
                      reason=f"loss or parameters non-finite or grown from iteration {step}")
        return fields, None
    stride, steps = _steps(res, cfg.record_every)
    measured = getattr(trainer, "point_times_s", None)
    time_s = np.full(len(steps), np.nan)
    if measured is not None and median_s is not None:
        run_s = getattr(trainer, "run_s", None) or float(np.nanmax(measured))
        time_s = np.asarray(measured, dtype=float)[::stride] * (median_s / run_s if run_s > 0 else 1.0)
    curve = pd.DataFrame({"case_id": case.case_id, "step": steps, "loss": res.losses[::stride],
                          "ref_loss": np.nan, "full_loss": np.nan, "time_s": time_s})
    what = {"lbfgs": "L-BFGS (each library's own line search)",
            "solver": "a library's own solver (fits with growing max_iter)"}[cfg.optimizer]
    reasons = [f"{what}: no lockstep comparison with the float64 oracle; judged by the optimum it reaches"]
    verdict = "n/a (line search)"
    opt = optimum()
    if opt is not None:
        sub = opt.suboptimality(X, y, res.w, res.b)
        rel = sub / abs(opt.loss) if opt.loss else math.inf
        tol = OPTIMUM_RTOL[cfg.dtype]
        fields.update(optimum_loss=opt.loss, suboptimality=sub, rel_dist_opt=opt.rel_distance(res.w, res.b))
        verdict = "pass" if rel <= tol else "n/a (line search)"
        reasons[0] += (f" (relative suboptimality {rel:.1e} {'<=' if rel <= tol else '>'} {tol:.0e}"
                       + ("" if rel <= tol else f": not converged in {cfg.n_iters} iterations") + ")")
        if time_per_iter_s is not None:
            times = point_times(steps, time_per_iter_s, time_s)
            hit = first_step_to_target(steps, curve.loss.to_numpy(), opt.loss, target)
            if not math.isnan(hit):
                fields["time_to_target_s"] = float(times[np.flatnonzero(steps == hit)[0]])
    iterations = getattr(trainer, "solver_iterations", None)
    if iterations:
        reasons.append(f"scikit-learn iterations per fit: {' '.join(map(str, iterations))}")
    if noise:
        reasons.append(noise)
    fields.update(verdict=verdict, reason="; ".join(reasons))
    return fields, curve


def noise_reason(m: Measurement, load: tuple | None) -> str:
    """Why a row's rounds disagree by more than 10 %, as far as the run can tell: other processes or
    the hypervisor taking CPU while it was timed (measured from /proc/stat), or neither."""
    text = f"noisy: IQR {m.iqr / m.median:.0%} of the median over {len(m.times)} rounds"
    others, steal = load if load else (None, None)
    if others is None:
        return text + ": the machine's load could not be read; rerun with more --repeats"
    causes = []
    if others >= 0.1:
        causes.append(f"other processes kept {others:.2f} cores busy")
    if steal and steal >= 0.05:
        causes.append(f"the hypervisor took {steal:.2f} cores (steal time)")
    if causes:
        return text + "; while it was timed " + " and ".join(causes) + ", so the rounds shared the CPU"
    return text + (f" with no other load on the machine (other processes {others:.2f} cores, steal "
                   f"{steal or 0:.2f}): this backend's own run-to-run variation (thread-pool wake-ups, "
                   "allocator, frequency); rerun with more --repeats")


def explain(agreement, saturated: int, case: Case) -> str:
    """Why a row is outside tolerance, as far as the run can tell."""
    parts = [f"differs from the float64 oracle: rel Δparam {agreement.rel_dparam:.2e}, "
             f"rel Δloss {agreement.rel_dloss:.2e} (tolerance {agreement.tolerance:.2e})"]
    if saturated and case.config.formulation == "probs":
        softmax = case.config.n_classes >= 3
        if agreement.rel_dloss > agreement.tolerance:
            parts.append(f"{saturated} samples' label probability underflows (log P[i, y_i] < -100 in "
                         f"{case.config.dtype}): the probs loss clamps that log at -100 while the oracle computes it "
                         "in float64" if softmax else
                         f"{saturated} samples saturate (p(1-p) < 1e-12): where p rounds to 0 or 1 in "
                         f"{case.config.dtype} the probs loss clamps log at -100 while the oracle still computes "
                         "the exact log")
        if agreement.rel_dparam > agreement.tolerance:
            if declared(case.backend, "gradient") == "autograd":
                parts.append("autograd through the clamped log(softmax) gives those samples a zero gradient while "
                             "P - Y does not" if softmax else
                             "autograd through sigmoid->BCE shrinks or zeroes those samples' gradient while p - y "
                             "does not")
            else:
                parts.append("those samples also move the parameters apart" if softmax else
                             "saturated samples also move the parameters apart")
        parts.append("the logits formulation (log-softmax) has neither problem" if softmax else
                     "the logits formulation has neither problem")
    elif saturated:
        parts.append(f"{saturated} saturated samples")
    else:
        parts.append("no saturated sample explains it: investigate")
    return "; ".join(parts)
