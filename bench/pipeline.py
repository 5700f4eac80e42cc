"""The one owner of a run: case -> problem -> prepare -> measure -> evaluate -> row -> sinks.

Data path, one straight line::

    Case (backend, dataset, TrainConfig)
      -> Problem: the dataset and one (w0, b0) draw, loaded once and shared by every backend
      -> trainer.prepare (timed apart: the transfer) -> warm-up + timed trainer.run rounds
      -> trainer.result -> the float64 oracle (bench.oracle) and scikit-learn's optimum
      -> Row (bench.records) -> sinks (CSV written as rows finish, losses, summary, plots, console)

:func:`run` owns the whole of it, including every way a run can end: a row's exception becomes a
``failed`` row; a divergence (non-finite loss or parameters, or a loss grown past 1e5× its first
value, benchopt's rule) a ``diverged`` row whichever library noticed it first; SIGINT, SIGTERM or
an exception outside a row end the run with status ``interrupted`` / ``failed``, and the sinks
still write what the finished rows hold. The CLI and the pytest-benchmark suite build cases and
consume rows; they do not run this pipeline themselves (the benchmark suite times ``run()`` with
its own fixture and hands the timings to :meth:`Evaluator.evaluate`).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import signal
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from implementations import BACKENDS, BackendUnavailableError, TrainConfig, create_trainer, get_backend
from implementations import reference
from implementations.schedule import init_params

from . import data as datasets
from . import interrupts, oracle, roofline
from .interrupts import Terminated  # noqa: F401  (re-exported: the run's SIGTERM)
from .memory import PeakMemory
from .records import Case, Row
from .targets import JUDGED_BY_OPTIMUM
from .timing import CpuSample, Measurement, Threads, measure, thread_parity, timed

WARMUP_STEPS = 10  # warm-up run length (same backend, shapes, dtype, device; >= 2 compiled chunks)
LOSS_POINTS = 500  # loss-curve points kept per row for losses.csv and the plots
DIVERGENCE_GROWTH = 1e5  # a loss above 1e5 x its first value has diverged (benchopt's rule)
# K-class data whose multinomial Newton step (n ((d+1) K)^2 flops) is above this gets no optimum: on
# synthetic-100kx100-k10 (1e11) the fit alone takes many minutes on 2 cores (digits: 8e8, iris-3class: 3e4)
OPTIMUM_MAX_NEWTON_FLOPS = 1e10
# lbfgs / solver rows: verdict "pass" at or below this relative suboptimality (L − L*)/|L*| at the end
OPTIMUM_RTOL = {"float64": 1e-6, "float32": 1e-4}


def default_devices() -> tuple[str, ...]:
    """``cpu``, plus ``cuda`` and ``mps`` where torch sees them."""
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if torch.backends.mps.is_available():
        devices.append("mps")
    return tuple(devices)


def default_backends() -> tuple[str, ...]:
    """Every registered backend that does not declare ``data_parallel`` (those have ``bench scale``),
    read from the registry when called. One that cannot be imported here is kept: its rows are
    ``skipped`` with the reason."""
    def single_process(name):
        try:
            cls = get_backend(name)
        except Exception:  # not importable here: its rows say why
            return True
        # a backend without gradient descent (scikit-learn's solvers: optimizer "solver") has its own block
        return not cls.data_parallel and "gd" in tuple(cls.optimizers)

    return tuple(name for name in BACKENDS if single_process(name))


def default_iters(n: int, d: int) -> int:
    """The seed's 5000 steps where a step is cheap; fewer on big data (about 5e7 multiply-adds
    per run, at least 10 steps) so the default run stays within its time budget."""
    return int(max(10, min(5000, 5e7 // (n * d))))


SEED_LR = 0.01  # the seed article's learning rate
SEED_K_CLASS = "iris-3class"  # the seed's data with its three classes: the seed's settings too (issue 19)


def default_lr(dataset: str, l2: float = 0.0, seed: int = 0) -> float:
    """The seed's 0.01 on ``iris`` (the article's recipe, unchanged) and on ``iris-3class`` (the same
    data with its three classes, issue 19's softmax seed; 5000 steps there too, from :func:`default_iters`);
    ``1/L`` elsewhere, ``L`` the
    smoothness bound of :func:`bench.oracle.smoothness`: the largest step plain gradient descent
    takes safely, so that a run gets somewhere in its few steps and time-to-accuracy means something
    (at 0.01 no default synthetic run comes within 10 % of the optimum). A dataset that cannot be
    built keeps 0.01; its rows then fail with the reason."""
    if datasets.is_seed(dataset) or datasets.source(dataset).base == SEED_K_CLASS:
        return SEED_LR
    try:
        return 1.0 / oracle.smoothness(datasets.load(dataset, seed).X, l2, datasets.n_classes(dataset))
    except (ValueError, MemoryError, np.linalg.LinAlgError):
        return SEED_LR


def bytes_per_step(m: int, d: int, dtype: str, n_classes: int = 2) -> int:
    """The least a step must move: read its ``m`` rows of X once, plus y and the parameters (read
    and written: ``d + 1`` of them, ``(d + 1) K`` with ``n_classes = K >= 3``)."""
    return np.dtype(dtype).itemsize * (m * d + m + 2 * (d + 1) * (n_classes if n_classes >= 3 else 1))


def matrix(backends, devices, datasets_, dtypes, formulations, batch_sizes=(None,), l2s=(0.0,), iters=None,
           lr=0.01, record_every=1, workers=1, shuffle_seed=0) -> list[Case]:
    """Every combination as a case, grouped by dataset (each is loaded once). ``iters=None``: the
    default for the dataset's size, counted in full-batch steps' work (a mini-batch run does as
    many epochs' worth of steps as fit the same budget, at most 5000 steps). ``lr`` is a number or
    a function ``lr(dataset, l2)`` (see :func:`default_lr`)."""
    cases = []
    for ds in datasets_:
        n, d = datasets.shape(ds)
        for dtype, form, bs, l2 in itertools.product(dtypes, formulations, batch_sizes, l2s):
            k = iters or (default_iters(n, d) if bs is None else default_iters(min(bs, n), d))
            cfg = TrainConfig(n_classes=datasets.n_classes(ds), lr=lr(ds, l2) if callable(lr) else lr, n_iters=k, dtype=dtype, formulation=form, record_every=record_every,
                              batch_size=bs, l2=l2, workers=workers, shuffle_seed=shuffle_seed)
            for backend, device in itertools.product(backends, devices):
                cases.append(Case(backend, ds, replace(cfg, device=device)))
    return cases


@dataclass(frozen=True)
class RunOptions:
    repeats: int = 5
    warmup: int = 1
    budget_s: float | None = 1.0  # per row: stop repeating (after 3 rounds) past this many seconds
    threads: int | None = None
    seed: int = 0
    target: float = 1e-3  # relative suboptimality (L - L*)/|L*| defining time_to_target_s
    optimum: bool = True  # fit scikit-learn's optimum per dataset and penalty
    row_timeout: float | None = None  # seconds per row (construction to result) before it is a `failed` row


class RowTimeout(BaseException):
    """A row ran past ``RunOptions.row_timeout``. A BaseException, so that a backend's own ``except
    Exception`` cannot swallow it; :meth:`Evaluator.execute` turns it into a ``failed`` row."""


@contextlib.contextmanager
def row_timer(seconds: float | None):
    """Raise :class:`RowTimeout` in the main thread once ``seconds`` have passed (SIGALRM, POSIX).

    The limit: the signal is handled between Python bytecodes, so a backend stuck inside one long
    C call (a huge BLAS product, a compiled kernel) is interrupted only when that call returns; a
    backend that blocks signals or runs in another thread is not interrupted at all. Outside the
    main thread, or where SIGALRM does not exist, no limit is set."""
    if not seconds or not hasattr(signal, "SIGALRM") or not _in_main_thread():
        yield
        return

    def expired(signum, frame):
        raise RowTimeout(f"ran past --row-timeout {seconds:g} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass(frozen=True)
class Problem:
    dataset: datasets.Dataset
    w0: np.ndarray
    b0: float


@dataclass(frozen=True)
class Outcome:
    """A finished case: its row and its loss curve (``case_id, step, loss, ref_loss``)."""

    row: Row
    curve: pd.DataFrame | None = None


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


class Evaluator:
    """Turns cases into rows for one run; caches problems, float64 references and optima."""

    def __init__(self, run_id: str, options: RunOptions = RunOptions(), threads: Threads | None = None,
                 roofline: dict | None = None, max_problems: int = 1):
        self.run_id, self.options, self.threads = run_id, options, threads
        self.max_problems = max_problems  # datasets kept in memory (a run's cases come grouped: 1)
        self.roofline = roofline or {}  # bench.roofline.measure_roofline's figures
        self._problems: dict[str, Problem] = {}
        self._references: dict = {}
        self._optima: dict = {}
        self._per_step: dict = {}  # scale rows: time per step at workers=1, and of single-process backends
        self.notes: list[str] = []

    # -- shared inputs --------------------------------------------------------------------------
    def problem(self, name: str) -> Problem:
        if name not in self._problems:
            if len(self._problems) >= self.max_problems:
                self._problems.clear()
                self._references.clear()
            ds = datasets.load(name, self.options.seed)
            w0, b0 = init_params(ds.d, self.options.seed, ds.init_scale, ds.n_classes)
            self._problems[name] = Problem(ds, w0, b0)
        return self._problems[name]

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
        if not self.options.optimum:
            return None
        key = (name, l2)
        if key not in self._optima:
            ds = self.problem(name).dataset
            newton = ds.X.shape[0] * ((ds.X.shape[1] + 1) * ds.n_classes) ** 2  # one multinomial Newton step's flops
            if ds.n_classes >= 3 and newton > OPTIMUM_MAX_NEWTON_FLOPS:
                self.notes.append(f"{name} (l2={l2:g}): no optimum — scikit-learn's multinomial Newton-Cholesky costs "
                                  f"n((d+1)K)^2 = {newton:.1e} flops per iteration here, beyond the run's budget "
                                  f"({OPTIMUM_MAX_NEWTON_FLOPS:.0e}); the rows still agree with the float64 oracle's path")
                self._optima[key] = None
                return None
            try:
                self._optima[key] = oracle.fit_optimum(ds.X, ds.y, l2, n_classes=ds.n_classes)
            except Exception as exc:  # e.g. absurdly scaled data: the rows still run, without the optimum
                self.notes.append(f"{name} (l2={l2:g}): no optimum ({type(exc).__name__}: {exc})")
                self._optima[key] = None
        return self._optima[key]

    # -- one case -------------------------------------------------------------------------------
    def base_row(self, case: Case, **fields) -> Row:
        try:
            n, d = datasets.shape(case.dataset)
        except ValueError:  # a data file that cannot be read (its reason is the row's): no sizes
            n, d = 0, 0
        m = min(case.config.batch_size or n, n)
        extra = self.threads.as_dict() if self.threads else {}
        loaded = self._problems.get(case.dataset)
        if loaded is not None:  # what the data is: so that compare never matches two files sharing a name
            ds = loaded.dataset
            extra.update(dataset_origin=ds.origin, dataset_sha256=ds.sha256, density=ds.density)
        if not n:
            return Row.for_case(self.run_id, case, **extra, **fields)
        try:  # what the backend declares it is; a backend that cannot be imported leaves them empty
            extra.update(get_backend(case.backend).attributes())
        except ValueError:
            pass
        return Row.for_case(self.run_id, case, n=n, d=d, epochs=case.config.n_iters * m / n,
                            bytes_per_step=bytes_per_step(m, d, case.config.dtype, case.config.n_classes),
                            tolerance=reference.config_tolerance(case.config, m, d), **extra, **fields)

    def execute(self, case: Case) -> Outcome:
        """Run one case end to end; every exception becomes the row's status, never the run's."""
        try:
            problem = self.problem(case.dataset)
        except (ValueError, MemoryError) as exc:
            return Outcome(self.base_row(case, status="failed", reason=f"dataset {case.dataset!r} cannot be built: "
                                                                     f"{type(exc).__name__}: {exc}"))
        if _declared(case.backend, "engine") == "numba" and self.threads and self.threads.numba_error:
            return Outcome(self.base_row(case, status="skipped", reason=self.threads.numba_error))
        trainer = None
        try:
            with row_timer(self.options.row_timeout):
                try:
                    trainer = create_trainer(case.backend, case.config)
                except BackendUnavailableError as exc:  # incl. a case outside what the backend declares
                    return Outcome(self.base_row(case, status="skipped", reason=str(exc)))
                except ValueError as exc:  # e.g. workers > 1 for a single-process backend
                    return Outcome(self.base_row(case, status="skipped", reason=str(exc)))
                return self._train(case, trainer, problem)
        except RowTimeout as exc:
            return Outcome(self.base_row(case, status="failed", reason=str(exc)))
        except Exception as exc:  # a (user) backend failing outside the timed rounds: its row, not the run
            return Outcome(self.base_row(case, status="failed", reason=f"{type(exc).__name__}: {exc}"))
        finally:
            _close(trainer)

    def _train(self, case: Case, trainer, problem: Problem) -> Outcome:
        """prepare (timed apart) -> warm-up -> timed rounds -> the row."""
        o, ds = self.options, problem.dataset
        try:
            _, transfer_s = timed(trainer.prepare, ds.X, ds.y, problem.w0, problem.b0)
            transfer_s -= _compile_s(trainer)  # an ahead-of-time compile in prepare (jax) is not the transfer
        except BackendUnavailableError as exc:
            return Outcome(self.base_row(case, status="skipped", reason=str(exc)))
        except Exception as exc:  # input this backend cannot take (e.g. values beyond its dtype)
            return Outcome(self.base_row(case, status="failed", reason=f"{type(exc).__name__}: {exc}"))
        warm, warm_aot = None, 0.0
        try:
            # a short twin for the warm-up, except on data-parallel backends (a second process group / cluster)
            if case.config.n_iters > WARMUP_STEPS and o.warmup and not trainer.data_parallel:
                warm = create_trainer(case.backend, replace(case.config, n_iters=WARMUP_STEPS))
                warm.prepare(ds.X, ds.y, problem.w0, problem.b0)
                warm_aot = _compile_s(warm)  # the twin's own program (jax: its shorter scan), not this row's
            before = CpuSample.now()
            with PeakMemory(case.device) as peak:
                m = measure(trainer, o.repeats, o.warmup, o.budget_s, warm=warm)
            load = CpuSample.now().others_since(before)
        except BackendUnavailableError as exc:  # e.g. a compiler found missing at first call
            return Outcome(self.base_row(case, status="skipped", reason=str(exc)))
        except Exception as exc:  # a backend's failure must not cost the other rows
            return self._failure(case, exc)
        finally:
            _close(warm)
        outcome = self.evaluate(case, trainer, m, transfer_s=transfer_s, peak_mem_mb=peak.mb, load=load)
        return self.scale_fields(case, trainer, _compile_fields(outcome, trainer, warm, warm_aot))

    def scale_fields(self, case: Case, trainer, outcome: Outcome) -> Outcome:
        """A timed ``ok`` row's scale-out figures, from what the trainer declares and offers (never
        its name): a data-parallel trainer's start-up, collective and task costs; its speed-up
        against workers=1 of the same backend, and against the fastest single-process backend of the
        same declared ``library`` run earlier on the same problem; ``oversubscribed`` when workers ×
        threads exceed the cores. Every timed row of a single-process backend is remembered as that
        baseline."""
        row = outcome.row
        if row.status != "ok" or not row.time_per_iter_s:
            return outcome
        t, w = row.time_per_iter_s, case.config.workers
        same = (case.dataset, replace(case.config, workers=1))
        if not trainer.data_parallel:
            best = self._per_step.get(("single", trainer.library, same))
            if best is None or t < best[1]:
                self._per_step[("single", trainer.library, same)] = (case.backend, t)
            return outcome
        def probe(method):  # an optional measurement the trainer offers; its failure leaves the cell empty
            try:
                return float(getattr(trainer, method)()) if hasattr(trainer, method) else None
            except Exception as exc:
                self.notes.append(f"{case.case_id}: {method}() failed ({type(exc).__name__}: {exc})")
                return None

        fields = {"startup_s": getattr(getattr(trainer, "group", None), "startup_s", None),
                  "collective_s": probe("collective_time"), "task_overhead_s": probe("task_overhead")}
        if w == 1:
            self._per_step.setdefault(("ws1", case.backend, same), t)
        one = self._per_step.get(("ws1", case.backend, same))
        if one is not None:
            fields.update(speedup_vs_ws1=one / t, efficiency_vs_ws1=one / (t * w))
        single = self._per_step.get(("single", trainer.library, same))
        if single is not None:
            fields.update(baseline=single[0], speedup_vs_single=single[1] / t, efficiency_vs_single=single[1] / (t * w))
        if self.threads is not None:
            fields["oversubscribed"] = w * self.threads.asked > available()
        return Outcome(row.replace(**fields), outcome.curve)

    def _failure(self, case: Case, exc: BaseException) -> Outcome:
        """A library's exception is a divergence when the math diverges there (e.g. torch's BCE
        refusing NaN probabilities), else a failure."""
        what = f"{type(exc).__name__}: {exc}".strip()
        try:
            ref = self.reference(case)
            ref_step = divergence(ref)
            top = _largest_logit(self.problem(case.dataset).dataset.X, ref, case.config.dtype)
        except Exception:
            ref_step, top = None, 0.0
        if ref_step is not None:
            return Outcome(self.base_row(case, status="diverged", verdict="fail", first_nonfinite_step=ref_step,
                                         reason=f"the float64 oracle's loss or parameters blow up from step "
                                                f"{ref_step}, and {case.backend} stopped with {what}"))
        big = float(np.finfo(case.config.dtype).max)
        if top > big:
            return Outcome(self.base_row(case, status="diverged", verdict="fail",
                                         reason=f"the oracle's parameters or logits reach {top:.3g}, beyond "
                                                f"{case.config.dtype}'s largest value {big:.3g}: in {case.config.dtype} "
                                                f"they overflow, and {case.backend} stopped with {what}"))
        return Outcome(self.base_row(case, status="failed", reason=what))

    def evaluate(self, case: Case, trainer, m: Measurement | None, transfer_s: float | None = None,
                 peak_mem_mb: float | None = None, load: tuple | None = None) -> Outcome:
        """The row of a trained ``trainer``: timing figures from ``m`` (None: untimed), agreement
        with the oracle, the optimum figures, and the divergence rule. ``load`` is ``(cores busy
        with other processes, cores stolen by the hypervisor)`` while ``m`` was timed."""
        ds = self.problem(case.dataset).dataset
        res = trainer.result()
        w_shape = (ds.d, case.config.n_classes) if case.config.n_classes >= 3 else (ds.d,)  # softmax: W (d, K)
        if res.w.shape != w_shape or res.losses.shape != (case.config.n_records,):
            return Outcome(self.base_row(case, status="failed", reason=(
                f"result() returned w of shape {res.w.shape} and losses of shape {res.losses.shape}, expected "
                f"{w_shape} and ({case.config.n_records},)")))
        row = self.base_row(case, transfer_s=transfer_s, peak_mem_mb=peak_mem_mb)
        fields: dict = {}
        if m is not None:
            fields.update(m.as_dict())
            if load and load[0] is not None:
                fields["other_load"] = load[0] + (load[1] or 0.0)
            fields["achieved_gbps"] = row.bytes_per_step / fields["time_per_iter_s"] / 1e9
            figs = self.roofline
            if case.device == "cpu" and figs and roofline.fits_in_cache(row.bytes_per_step, figs):
                fields["compute_fraction"] = roofline.compute_fraction(
                    fields["time_per_iter_s"], min(case.config.batch_size or row.n, row.n), row.d, case.config.dtype,
                    figs, case.config.n_classes)
                fields["bound"] = "compute"
            elif case.config.n_classes >= 3 and figs:  # softmax: the larger of the memory and compute floors
                fields.update(_k_class_floor(row, case, figs, fields["time_per_iter_s"]))
            else:
                bw = figs.get("host_read") if case.device == "cpu" else (figs.get("device_read") or figs.get("device_copy"))
                if bw:
                    fields["roofline_fraction"] = fields["achieved_gbps"] / bw
                    fields["bound"] = "memory"
        fields["final_loss"] = float(res.losses[-1])
        if case.config.optimizer in JUDGED_BY_OPTIMUM:  # no lockstep path: judged by the optimum it reaches
            return self._evaluate_by_optimum(case, trainer, res, m, row, fields, load)
        ref = self.reference(case)
        step = divergence(res)
        if step is not None:
            fields["first_nonfinite_step"] = res.first_nonfinite_step
            why = ("non-finite" if res.first_nonfinite_step == step else
                   f"above {DIVERGENCE_GROWTH:.0e}x its first value")
            return Outcome(row.replace(**fields, verdict="fail", status="diverged",
                                       reason=f"loss or parameters {why} from step {step}"))
        agreement = reference.compare(res, ref, row.tolerance)
        fields.update(max_abs_dw=agreement.max_abs_dw, abs_db=agreement.abs_db, max_abs_dloss=agreement.max_abs_dloss,
                      rel_dparam=agreement.rel_dparam, rel_dloss=agreement.rel_dloss, verdict=agreement.verdict,
                      saturated=oracle.saturated_count(ds.X, ref.w, ref.b, case.config.dtype, y=ds.y))
        stride = max(1, len(res.losses) // LOSS_POINTS)
        steps = np.arange(0, len(res.losses), stride) * case.config.record_every
        curve = pd.DataFrame({"case_id": case.case_id, "step": steps, "loss": res.losses[::stride],
                              "ref_loss": ref.losses[::stride], "full_loss": self.full_losses(case, steps),
                              "time_s": np.nan})  # equal steps: time = step × time_per_iter_s
        opt = self.optimum(case.dataset, case.config.l2)
        if opt is not None:
            fields.update(optimum_loss=opt.loss, suboptimality=opt.suboptimality(ds.X, ds.y, res.w, res.b),
                          rel_dist_opt=opt.rel_distance(res.w, res.b))
            if m is not None:  # on the full-data objective (a mini-batch row's own losses are its batches')
                from .targets import first_step_to_target  # relative: (L − L*)/|L*| <= target, as the report

                objective = curve.full_loss.fillna(curve.loss).to_numpy()
                step_hit = first_step_to_target(steps, objective, opt.loss, self.options.target)
                fields["time_to_target_s"] = None if math.isnan(step_hit) else step_hit * fields["time_per_iter_s"]
        reasons = [explain(agreement, fields["saturated"], case)] if not agreement.ok else []
        if m is not None and m.noisy:
            reasons.append(noise_reason(m, load))
        fields["reason"] = "; ".join(reasons)
        return Outcome(row.replace(**fields), curve)

    def _evaluate_by_optimum(self, case: Case, trainer, res, m, row: Row, fields: dict, load) -> Outcome:
        """An ``lbfgs`` or ``solver`` row: its line search (each library's own) or solver follows no path
        the float64 oracle can reproduce step by step, so there is **no lockstep comparison**. It is judged
        by the optimum it reaches: verdict ``pass`` when its final relative suboptimality (L − L*)/|L*|,
        on the full data in float64, is at most :data:`OPTIMUM_RTOL` of its dtype (1e-6 in float64), else
        ``n/a (line search)`` — not converged in ``n_iters``, which is not a fault; ``fail`` only when it
        diverged. Its points' times are the ones it measured (``point_times_s``: an L-BFGS iteration's
        end, a scikit-learn fit's own time), scaled so that its run takes the median round's time."""
        from .targets import first_step_to_target, point_times

        ds = self.problem(case.dataset).dataset
        cfg = case.config
        step = divergence(res)
        fields["evaluations"] = getattr(trainer, "evaluations", None)
        if step is not None:
            fields["first_nonfinite_step"] = res.first_nonfinite_step
            return Outcome(row.replace(**fields, verdict="fail", status="diverged",
                                       reason=f"loss or parameters non-finite or grown from iteration {step}"))
        stride = max(1, len(res.losses) // LOSS_POINTS)
        steps = np.arange(0, len(res.losses), stride) * cfg.record_every
        measured = getattr(trainer, "point_times_s", None)
        time_s = np.full(len(steps), np.nan)
        if measured is not None and m is not None:
            run_s = getattr(trainer, "run_s", None) or float(np.nanmax(measured))
            time_s = np.asarray(measured, dtype=float)[::stride] * (m.median / run_s if run_s > 0 else 1.0)
        curve = pd.DataFrame({"case_id": case.case_id, "step": steps, "loss": res.losses[::stride],
                              "ref_loss": np.nan, "full_loss": np.nan, "time_s": time_s})
        what = {"lbfgs": "L-BFGS (each library's own line search)",
                "solver": "a library's own solver (fits with growing max_iter)"}[cfg.optimizer]
        reasons = [f"{what}: no lockstep comparison with the float64 oracle; judged by the optimum it reaches"]
        verdict = "n/a (line search)"
        opt = self.optimum(case.dataset, cfg.l2)
        if opt is not None:
            sub = opt.suboptimality(ds.X, ds.y, res.w, res.b)
            rel = sub / abs(opt.loss) if opt.loss else math.inf
            tol = OPTIMUM_RTOL[cfg.dtype]
            fields.update(optimum_loss=opt.loss, suboptimality=sub, rel_dist_opt=opt.rel_distance(res.w, res.b))
            verdict = "pass" if rel <= tol else "n/a (line search)"
            reasons[0] += (f" (relative suboptimality {rel:.1e} {'<=' if rel <= tol else '>'} {tol:.0e}"
                           + ("" if rel <= tol else f": not converged in {cfg.n_iters} iterations") + ")")
            if m is not None:
                objective = curve.loss.to_numpy()
                times = point_times(steps, fields["time_per_iter_s"], time_s)
                hit = first_step_to_target(steps, objective, opt.loss, self.options.target)
                if not math.isnan(hit):
                    fields["time_to_target_s"] = float(times[np.flatnonzero(steps == hit)[0]])
        iterations = getattr(trainer, "solver_iterations", None)
        if iterations:
            reasons.append(f"scikit-learn iterations per fit: {' '.join(map(str, iterations))}")
        if m is not None and m.noisy:
            reasons.append(noise_reason(m, load))
        fields.update(verdict=verdict, reason="; ".join(reasons))
        return Outcome(row.replace(**fields), curve)


def _k_class_floor(row: Row, case: Case, figs: dict, time_per_iter_s: float) -> dict:
    """A K-class row out of cache (issue 19): its step reads X once but does ``4 m d K`` flops, so its
    floor is ``max(bytes / bandwidth, flops / compute roof)`` (:func:`bench.roofline.step_floor`);
    ``roofline_fraction`` = that floor / the measured step, ``compute_fraction`` = the flops against
    the compute roof (the same figure when compute-bound), ``bound`` = which floor it is."""
    m = min(case.config.batch_size or row.n, row.n)
    floor = roofline.step_floor(row.bytes_per_step, m, row.d, case.config.dtype, figs, case.config.n_classes,
                                "cpu" if case.device == "cpu" else case.device)
    out: dict = {}
    if floor.seconds is not None and time_per_iter_s and time_per_iter_s > 0:
        out.update(roofline_fraction=floor.seconds / time_per_iter_s, bound=floor.bound)
    if floor.compute_s is not None and time_per_iter_s and time_per_iter_s > 0:
        out["compute_fraction"] = floor.compute_s / time_per_iter_s
    return out


def _compile_s(trainer) -> float:
    return float(getattr(trainer, "compile_s", 0.0) or 0.0)


def _compile_fields(outcome: Outcome, trainer, warm, warm_aot: float = 0.0) -> Outcome:
    """What a compiling trainer offers (``compiled_graphs``, ``compile_s``) into the row: the graphs or
    programs its calls went through, and the seconds spent compiling them. torch-compiled compiles
    at its first calls, in the warm-up twin (or the timed trainer's own untimed warm-up round when
    the run is too short for a twin), and the timed trainer reuses those graphs; jax compiles ahead
    of time in ``prepare`` (taken out of ``transfer_s``), each trainer its own program, so the
    twin's ``prepare``-time compile (``warm_aot``) is not this row's."""
    if not hasattr(trainer, "compiled_graphs"):
        return outcome
    seconds = _compile_s(trainer) + (_compile_s(warm) - warm_aot if warm is not None else 0.0)
    return Outcome(outcome.row.replace(compiled_graphs=int(trainer.compiled_graphs), compile_s=seconds),
                   outcome.curve)


def _declared(backend: str, attribute: str) -> str | None:
    """What a backend's class declares (``engine``, ``gradient``), None if it cannot be imported here."""
    try:
        return getattr(get_backend(backend), attribute)
    except ValueError:
        return None


def _largest_logit(X, ref, dtype: str) -> float:
    """The largest |parameter| or |logit| of the oracle's final point, on the data as ``dtype`` sees it."""
    with np.errstate(over="ignore", invalid="ignore"):
        z = reference.rounded(X, dtype) @ ref.w + ref.b
        return float(np.nanmax(np.abs(np.append(z, np.append(ref.w, ref.b)))))


def _close(trainer) -> None:
    """Release what a data-parallel trainer holds (process group, cluster); a no-op for the others."""
    if trainer is not None:
        trainer.close()


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
            if _declared(case.backend, "gradient") == "autograd":
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


# -- the run ------------------------------------------------------------------------------------

EXIT_CODES = {"complete": 0, "interrupted": 130, "terminated": 143, "failed": 1}


@dataclass
class RunResult:
    run_id: str
    rows: list[Row] = field(default_factory=list)
    curves: list[pd.DataFrame] = field(default_factory=list)
    status: str = "complete"  # complete / interrupted / failed
    reason: str = ""
    exit_code: int = 0
    notes: list[str] = field(default_factory=list)
    threads: Threads | None = None
    roofline: dict = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        from .records import to_frame

        return to_frame(self.rows)

    def losses(self) -> pd.DataFrame:
        cols = ["case_id", "step", "loss", "ref_loss", "full_loss", "time_s"]
        parts = [c for c in self.curves if c is not None and len(c)]
        return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


class Sink:
    """Receives a run's events; every method optional. ``finish`` runs on every ending."""

    def start(self, result: RunResult, n_cases: int) -> None: ...

    def case(self, case: Case) -> None: ...

    def row(self, outcome: Outcome, result: RunResult) -> None: ...

    def finish(self, result: RunResult) -> None: ...

    def end(self, result: RunResult) -> None:
        """Called once after every sink's ``finish``, with the run's final ending (a signal that came
        while the sinks finished included): bring what ``finish`` recorded up to date, let go."""


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Deferred:
    """While the sinks finish, SIGINT/SIGTERM are noted, not raised: the files get written.

    ``on_signal(signum)`` is called for each until :meth:`freeze`; ``restore`` maps a signal to the
    handler it gets on exit (default: the one it had on entry). Handlers are swapped with both
    signals blocked, so none slips between the old handler and the new."""

    def __init__(self, on_signal=None, restore: dict | None = None):
        self.got, self.frozen = [], False
        self._on_signal, self._restore = on_signal, restore or {}

    def _note(self, signum, frame):
        self.got.append(signum)
        if self._on_signal is not None and not self.frozen:
            self._on_signal(signum)

    def freeze(self):
        """From now on signals are only noted: the ending has been decided and recorded."""
        self.frozen = True

    def _swap(self, handlers: dict) -> dict:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            return {s: signal.signal(s, h) for s, h in handlers.items()}
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def __enter__(self):
        self._old = self._swap({s: self._note for s in _SIGNALS})
        return self

    def __exit__(self, *exc):
        def back(s, h):  # None: a handler not set from Python, which cannot be put back
            h = self._restore.get(s) if self._restore.get(s) is not None else h
            return signal.SIG_DFL if h is None else h

        self._swap({s: back(s, h) for s, h in self._old.items()})
        return False


class _NoDefer:
    """Outside the main thread no handler can be set: nothing is deferred."""

    def __init__(self, *args, **kwargs):
        self.got = []

    def freeze(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _settle(result: RunResult) -> None:
    """A complete run with a failed row exits 1; set before anything records the exit code."""
    if result.status == "complete":
        result.exit_code = 1 if any(r.status == "failed" for r in result.rows) else 0


def _deferred_signal(result: RunResult, signum: int) -> None:
    """A signal that came while the sinks finished: the reports are completed, the ending says so."""
    if result.status == "complete":
        name = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}.get(signum, f"signal {signum}")
        result.status, result.exit_code = "interrupted", 128 + signum
        result.reason = f"{name} while writing the reports (they were finished first)"


def run(cases: list[Case], sinks: list[Sink] = (), options: RunOptions = RunOptions(), run_id: str | None = None,
        figures=None) -> RunResult:
    """Run every case in order; hand each finished row to the sinks; end the same way whatever ends it.

    ``figures`` is the hardware's measured floor and roof (``bench.roofline.measure_roofline``'s
    dict) or a callable ``f(threads)`` measuring them, called inside the run on the run's thread
    count, so that an interruption there ends the run like any other."""
    from .records import new_run_id

    result = RunResult(run_id or new_run_id())
    main_thread = _in_main_thread()
    old_handlers = interrupts.install()  # SIGINT, SIGTERM raise here, and again if a finalizer drops them
    try:
        with thread_parity(options.threads) as threads:
            result.threads = threads
            result.roofline = dict((figures(threads.asked) if callable(figures) else figures) or {})
            if threads.numba_error:
                result.notes.append(threads.numba_error + ": numba rows are skipped")
            if threads.oversubscribed:
                result.notes.append(f"oversubscribed: {max(threads.torch, threads.blas or 0, threads.numba or 0)} "
                                    f"threads on {available()} available cores; timings include the contention")
            ev = Evaluator(result.run_id, options, threads, roofline=result.roofline)
            for sink in sinks:
                sink.start(result, len(cases))
            for case in cases:
                for sink in sinks:
                    sink.case(case)
                outcome = ev.execute(case)
                result.rows.append(outcome.row)
                result.curves.append(outcome.curve)
                for sink in sinks:
                    sink.row(outcome, result)
            result.notes += ev.notes
    except KeyboardInterrupt:
        result.status, result.reason, result.exit_code = "interrupted", "interrupted by SIGINT (Ctrl-C)", 130
    except Terminated:
        result.status, result.reason, result.exit_code = "interrupted", "terminated by SIGTERM", 143
    except BaseException as exc:  # MemoryError, a bug outside a row: the finished rows are still written
        result.status, result.reason, result.exit_code = "failed", f"{type(exc).__name__}: {exc}", 1
    finally:
        # SIGINT/SIGTERM from here on are deferred until every sink has finished (the old SIGTERM
        # handler comes back only on leaving the block); one that comes meanwhile turns the ending
        # into `interrupted` at once, so that what the sinks record (env.json) matches the exit
        defer = _Deferred(on_signal=lambda signum: _deferred_signal(result, signum),
                          restore=old_handlers) if main_thread else _NoDefer()
        with defer as deferred:
            _settle(result)
            for sink in sinks:
                try:
                    sink.finish(result)
                except Exception as exc:  # one sink's failure must not stop the others
                    result.notes.append(f"{type(sink).__name__} could not finish: {type(exc).__name__}: {exc}")
            deferred.freeze()  # the ending is decided: a later signal changes nothing recorded
            for sink in sinks:
                try:
                    sink.end(result)
                except Exception as exc:
                    result.notes.append(f"{type(sink).__name__} could not end: {type(exc).__name__}: {exc}")
    return result


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def available() -> int:
    from .timing import available_cores

    return available_cores()


def memory_needed(case: Case) -> int:
    """Bytes a case needs at its peak, roughly: the float64 dataset, its copy in the run's dtype
    (and the oracle's rounded float64 copy), the loss buffers of backend and oracle, the schedule."""
    n, d = datasets.shape(case.dataset)
    c = case.config
    item = np.dtype(c.dtype).itemsize
    data = 8 * n * (d + 1) * 2 + item * n * (d + 1) * 2
    losses = 8 * c.n_records * 4
    schedule = 0 if c.batch_size is None else 8 * (c.n_iters * c.batch_size + c.n_iters) * 2
    return int(data + losses + schedule)


def preflight(cases: list[Case]) -> None:
    """Refuse, before any work, a run that cannot work or fit: a batch size or a world size larger
    than the dataset's rows, a dataset beyond the memory; ValueError naming the case, the figure
    and the limit."""
    for case in cases:
        n = datasets.shape(case.dataset)[0]
        c = case.config
        if c.batch_size is not None and c.batch_size > n:
            raise ValueError(f"batch size {c.batch_size} is larger than {case.dataset} ({n} rows): "
                             f"choose at most {n}, or 'full'")
        if c.workers > n:
            raise ValueError(f"{c.workers} workers are more than the {n} rows of {case.dataset}: choose at most {n}")
    limit = roofline.available_memory_bytes()
    if limit is None:
        return
    worst = max(cases, key=memory_needed, default=None)
    if worst is not None and memory_needed(worst) > limit:
        need = memory_needed(worst)
        raise ValueError(f"{worst.dataset} with {worst.config.n_iters} steps ({worst.config.dtype}) needs about "
                         f"{need / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB of memory available")


NOTHING_RAN_EXIT = 1  # as a failed row: every command exits non-zero when no case ran


def nothing_ran(rows) -> bool:
    """Rows there are, and every one was skipped (no device, no library): nothing was measured."""
    rows = list(rows)
    return bool(rows) and all(r.status == "skipped" for r in rows)


class NothingRan(Sink):
    """Put first among a run's sinks: a complete run whose every row was skipped ends with exit
    code ``NOTHING_RAN_EXIT`` and says so, before any other sink records the ending."""

    def finish(self, result: RunResult) -> None:
        if result.status == "complete" and nothing_ran(result.rows):
            result.exit_code = NOTHING_RAN_EXIT
            result.reason = f"nothing ran: every one of the {len(result.rows)} row(s) was skipped (see their reasons)"


def env_status(result: RunResult) -> dict:
    return {"status": result.status, "reason": result.reason, "rows": len(result.rows),
            "exit_code": result.exit_code, "pid": os.getpid()}


__all__ = ["BACKENDS", "Case", "Evaluator", "Outcome", "Problem", "Row", "RowTimeout", "RunOptions", "RunResult", "Sink",
           "bytes_per_step", "default_iters", "divergence", "matrix", "preflight", "run"]
