"""One case to one row: build the trainer, ``prepare`` it (timed apart: the transfer), warm it up,
time its rounds, and build the row once, from what was measured and how :mod:`bench.judge` judges
the result.

A row's fields come from four places, gathered by :meth:`Evaluator.evaluate` into one ``Row``: the
case's sizes and the backend's declared attributes, the timing (with the roofline figures: how close
a step is to the memory or compute floor), the compile time a compiling trainer reports, the
judgement (agreement with the float64 oracle or the optimum reached), and for a data-parallel
trainer its scale-out figures against baselines timed earlier in the run (:class:`ScaleBaselines`).
Every way a case can fail becomes its row's status: ``skipped`` (a backend or device not available
here), ``failed`` (an exception, a row past its time limit), ``diverged`` (the divergence rule, or a
library's exception where the float64 math itself blows up).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass, replace

import numpy as np

from implementations import BackendUnavailableError, create_trainer, get_backend, reference

from . import data as datasets, judge, roofline
from .cases import DEFAULT_OPTIONS, RunOptions, bytes_per_step
from .inputs import Inputs, Problem
from .memory import PeakMemory
from .records import Case, Row
from .results import Outcome
from .targets import JUDGED_BY_OPTIMUM
from .timing import CpuSample, Measurement, Threads, available_cores, measure, timed

WARMUP_STEPS = 10  # warm-up run length (same backend, shapes, dtype, device; >= 2 compiled chunks)


class RowTimeout(BaseException):
    """A row ran past ``RunOptions.row_timeout``. A BaseException, so that a backend's own ``except
    Exception`` cannot swallow it; :meth:`Evaluator.execute` turns it into a ``failed`` row."""


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def row_timer(seconds: float | None):
    """Raise :class:`RowTimeout` in the main thread once ``seconds`` have passed (SIGALRM, POSIX).

    The limit: the signal is handled between Python bytecodes, so a backend stuck inside one long
    C call (a huge BLAS product, a compiled kernel) is interrupted only when that call returns; a
    backend that blocks signals or runs in another thread is not interrupted at all. Outside the
    main thread, or where SIGALRM does not exist, no limit is set."""
    if not seconds or not hasattr(signal, "SIGALRM") or not in_main_thread():
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
class Sizes:
    """A case's sizes: ``n`` rows, ``d`` features, ``m`` rows a step reads, the bytes a step must move."""

    n: int
    d: int
    m: int
    bytes_per_step: int
    nnz: int | None = None  # sparse X: the stored values a step reads (its m rows'), None for dense


def k_class_floor(sizes, case: Case, figs: dict, time_per_iter_s: float) -> dict:
    """A K-class row out of cache: its step reads X once but does ``4 m d K`` flops, so its floor is
    ``max(bytes / bandwidth, flops / compute roof)`` (:func:`bench.roofline.step_floor`);
    ``roofline_fraction`` = that floor / the measured step, ``compute_fraction`` = the flops against
    the compute roof (the same figure when compute-bound), ``bound`` = which floor it is. ``sizes``:
    anything with ``n``, ``d`` and ``bytes_per_step`` (:class:`Sizes`, a ``Row``)."""
    m = min(case.config.batch_size or sizes.n, sizes.n)
    floor = roofline.step_floor(sizes.bytes_per_step, m, sizes.d, case.config.dtype, figs, case.config.n_classes,
                                "cpu" if case.device == "cpu" else case.device)
    out: dict = {}
    if floor.seconds is not None and time_per_iter_s and time_per_iter_s > 0:
        out.update(roofline_fraction=floor.seconds / time_per_iter_s, bound=floor.bound)
    if floor.compute_s is not None and time_per_iter_s and time_per_iter_s > 0:
        out["compute_fraction"] = floor.compute_s / time_per_iter_s
    return out


def timing_fields(case: Case, m: Measurement, load: tuple | None, sizes: Sizes, figs: dict) -> dict:
    """The timed figures of a row: the rounds, the other load while they ran, the bandwidth achieved,
    and against the hardware's floor and roof (``figs``, bench.roofline's) how close the step came."""
    fields = dict(m.as_dict())
    if load and load[0] is not None:
        fields["other_load"] = load[0] + (load[1] or 0.0)
    t = fields["time_per_iter_s"]
    fields["achieved_gbps"] = sizes.bytes_per_step / t / 1e9
    if sizes.nnz is not None:  # sparse: memory-bound at every size, against the CSR floor (bench.roofline)
        fields.update(roofline.sparse_floor_fields(sizes.bytes_per_step, sizes.nnz, case.config.dtype, figs, t,
                                                   case.config.n_classes, case.device.split(":")[0]))
    elif case.device == "cpu" and figs and roofline.fits_in_cache(sizes.bytes_per_step, figs):
        fields["compute_fraction"] = roofline.compute_fraction(t, sizes.m, sizes.d, case.config.dtype, figs,
                                                               case.config.n_classes)
        fields["bound"] = "compute"
    elif case.config.n_classes >= 3 and figs:  # softmax: the larger of the memory and compute floors
        fields.update(k_class_floor(sizes, case, figs, t))
    else:
        bw = figs.get("host_read") if case.device == "cpu" else (figs.get("device_read") or figs.get("device_copy"))
        if bw:
            fields["roofline_fraction"] = fields["achieved_gbps"] / bw
            fields["bound"] = "memory"
    return fields


def sparse_nnz(ds, name: str) -> int | None:
    """The stored values of a dataset kept sparse: the loaded data's, else from its name; None for dense."""
    if ds is not None:
        return ds.nnz if ds.storage == "csr" else None
    try:
        return datasets.nnz(name)
    except ValueError:  # a file that cannot be read: its row says why
        return None


def data_storage(ds, name: str) -> dict:
    """A row's ``storage`` (``csr`` or ``dense``) and ``nnz`` (stored non-zeros; dense: the non-zero
    entries of the loaded array), from the loaded data, else from the name; empty where unknown."""
    if ds is not None:
        return {"storage": ds.storage, "nnz": ds.nnz}
    nnz = sparse_nnz(None, name)
    return {"storage": "csr", "nnz": nnz} if nnz is not None else {}


def compile_seconds(trainer) -> float:
    return float(getattr(trainer, "compile_s", 0.0) or 0.0)


def compile_fields(trainer, warm, warm_aot: float = 0.0) -> dict:
    """What a compiling trainer offers (``compiled_graphs``, ``compile_s``): the graphs or programs its
    calls went through, and the seconds spent compiling them. torch-compiled compiles at its first
    calls, in the warm-up twin (or the timed trainer's own untimed warm-up round when the run is too
    short for a twin), and the timed trainer reuses those graphs; jax compiles ahead of time in
    ``prepare`` (taken out of ``transfer_s``), each trainer its own program, so it gets no twin, and a
    twin's ``prepare``-time compile (``warm_aot``), where one is made, is not this row's."""
    if not hasattr(trainer, "compiled_graphs"):
        return {}
    seconds = compile_seconds(trainer) + (compile_seconds(warm) - warm_aot if warm is not None else 0.0)
    return {"compiled_graphs": int(trainer.compiled_graphs), "compile_s": seconds}


class ScaleBaselines:
    """The times per step a run's scale-out rows are related to: workers = 1 of each data-parallel
    backend, and the fastest single-process backend of each declared ``library``, per problem."""

    def __init__(self):
        self._per_step: dict = {}

    def fields(self, case: Case, trainer, t: float, threads: Threads | None, notes: list[str]) -> dict:
        """A timed ``ok`` row's scale-out figures, from what the trainer declares and offers (never
        its name): a data-parallel trainer's start-up, collective and task costs; its speed-up
        against workers=1 of the same backend, and against the fastest single-process backend of the
        same declared ``library`` run earlier on the same problem; ``oversubscribed`` when workers ×
        threads exceed the cores. Every timed row of a single-process backend is remembered as that
        baseline (and gets no field)."""
        w = case.config.workers
        same = (case.dataset, replace(case.config, workers=1))
        if not trainer.data_parallel:
            best = self._per_step.get(("single", trainer.library, same))
            if best is None or t < best[1]:
                self._per_step[("single", trainer.library, same)] = (case.backend, t)
            return {}

        def probe(method):  # an optional measurement the trainer offers; its failure leaves the cell empty
            try:
                return float(getattr(trainer, method)()) if hasattr(trainer, method) else None
            except Exception as exc:
                notes.append(f"{case.case_id}: {method}() failed ({type(exc).__name__}: {exc})")
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
        if threads is not None:
            fields["oversubscribed"] = w * threads.asked > available_cores()
        return fields


def _kept(trainer):
    """The trainer's result now, its arrays copied: a later run may write into the same buffers."""
    res = trainer.result()
    b = np.array(res.b) if isinstance(res.b, np.ndarray) else res.b
    return replace(res, w=np.array(res.w), b=b, losses=np.array(res.losses))


def _close(trainer) -> None:
    """Release what a data-parallel trainer holds (process group, cluster); a no-op for the others."""
    if trainer is not None:
        trainer.close()


class Evaluator:
    """Turns cases into rows for one run, on the thread counts ``threads`` (``thread_parity``'s)
    and against the hardware figures ``roofline`` (bench.roofline.measure_roofline's). The shared
    inputs (``inputs``) and scale-out baselines (``baselines``) may be handed in, to be shared with
    another evaluator (:meth:`with_threads`)."""

    def __init__(self, run_id: str, options: RunOptions = DEFAULT_OPTIONS, threads: Threads | None = None,
                 roofline: dict | None = None, max_problems: int = 1, inputs: Inputs | None = None,
                 baselines: ScaleBaselines | None = None):
        self.run_id, self.options, self.threads = run_id, options, threads
        self.roofline = roofline or {}
        self.inputs = inputs or Inputs(options.seed, options.optimum, max_problems)
        self.baselines = baselines or ScaleBaselines()
        self.notes = self.inputs.notes  # why an optimum or a probe is missing, for the run's notes

    def with_threads(self, threads: Threads | None) -> Evaluator:
        """The same evaluator (inputs, baselines, figures shared) on other thread counts."""
        return Evaluator(self.run_id, self.options, threads, self.roofline, inputs=self.inputs,
                         baselines=self.baselines)

    # -- the row, built in one place ----------------------------------------------------------------
    def sizes(self, case: Case) -> Sizes | None:
        """``n``, ``d``, the rows of a step and its bytes: from the data the row trained on once it is
        loaded (a file rewritten or deleted during the run changes nothing), else from the name."""
        ds = self.inputs.loaded(case.dataset)
        try:
            n, d = (ds.n, ds.d) if ds is not None else datasets.shape(case.dataset)
        except ValueError:  # a data file that cannot be read (its reason is the row's): no sizes
            return None
        if not n:
            return None
        m = min(case.config.batch_size or n, n)
        nnz = sparse_nnz(ds, case.dataset)
        if nnz is not None:  # a step reads its m rows' share of the stored values, never n x d
            step_nnz = round(nnz * m / n)
            return Sizes(n, d, m, roofline.sparse_bytes_per_step(m, step_nnz, d, case.config.dtype,
                                                                 case.config.n_classes), step_nnz)
        return Sizes(n, d, m, bytes_per_step(m, d, case.config.dtype, case.config.n_classes))

    def row(self, case: Case, **fields) -> Row:
        """The row of ``case``: its sizes, the thread counts, what the data is and what the backend
        declares, then ``fields`` (which win)."""
        base = self.threads.as_dict() if self.threads else {}
        ds = self.inputs.loaded(case.dataset)
        if ds is not None:  # what the data is: so that compare never matches two files sharing a name
            base.update(dataset_origin=ds.origin, dataset_sha256=ds.sha256, density=ds.density)
        base.update(data_storage(ds, case.dataset))
        sizes = self.sizes(case)
        if sizes is not None:
            try:  # what the backend declares it is; a backend that cannot be imported leaves them empty
                base.update(get_backend(case.backend).attributes())
            except ValueError:
                pass
            base.update(n=sizes.n, d=sizes.d, epochs=case.config.n_iters * sizes.m / sizes.n,
                        bytes_per_step=sizes.bytes_per_step,
                        tolerance=reference.config_tolerance(case.config, sizes.m, sizes.d))
        return Row.for_case(self.run_id, case, **{**base, **fields})

    def evaluate(self, case: Case, trainer, m: Measurement | None, transfer_s: float | None = None,
                 peak_mem_mb: float | None = None, load: tuple | None = None,
                 compiled: dict | None = None, res=None) -> Outcome:
        """The row of a trained ``trainer``: timing figures from ``m`` (None: untimed), agreement
        with the oracle or the optimum reached, the divergence rule, ``compiled`` (the compile
        fields), and the scale-out figures. ``load`` is ``(cores busy with other processes, cores
        stolen by the hypervisor)`` while ``m`` was timed. ``res``: the result judged (default: the
        trainer's last run, ``trainer.result()``)."""
        compiled = compiled or {}
        ds = self.inputs.problem(case.dataset).dataset
        res = trainer.result() if res is None else res
        cfg = case.config
        w_shape = (ds.d, cfg.n_classes) if cfg.n_classes >= 3 else (ds.d,)  # softmax: W (d, K)
        if res.w.shape != w_shape or res.losses.shape != (cfg.n_records,):
            return Outcome(self.row(case, status="failed", **compiled, reason=(
                f"result() returned w of shape {res.w.shape} and losses of shape {res.losses.shape}, expected "
                f"{w_shape} and ({cfg.n_records},)")))
        sizes = self.sizes(case)
        fields: dict = {"transfer_s": transfer_s, "peak_mem_mb": peak_mem_mb}
        if m is not None:
            fields.update(timing_fields(case, m, load, sizes, self.roofline))
        # L(θ_T): the row's loss (its formulation, its penalty) on all rows at the final parameters, in
        # float64 -- the point suboptimality is measured at, not the last recorded (pre-update) loss
        with np.errstate(all="ignore"):  # a diverged run's parameters give inf or NaN, which the row keeps
            fields["final_loss"] = reference.loss(ds.X, ds.y, res.w, res.b, cfg.formulation, cfg.l2)
        t = fields.get("time_per_iter_s") if m is not None else None
        noise = judge.noise_reason(m, load) if m is not None and m.noisy else None
        optimum = lambda: self.inputs.optimum(case.dataset, cfg.l2)  # noqa: E731  (asked only where needed)
        if cfg.optimizer in JUDGED_BY_OPTIMUM:  # no lockstep path: judged by the optimum it reaches
            judged, curve = judge.by_optimum(case, trainer, res, ds.X, ds.y, m.median if m is not None else None, t,
                                             optimum, self.options.target, noise)
        else:
            ref = self.inputs.reference(case)
            judged, curve = judge.by_oracle(case, res, ref, ds.X, ds.y,
                                            reference.config_tolerance(cfg, sizes.m, sizes.d), t, optimum,
                                            lambda steps: self.inputs.full_losses(case, steps),
                                            self.options.target, noise)
        fields.update(judged)
        fields.update(compiled)
        if fields.get("status", "ok") == "ok" and t:
            fields.update(self.baselines.fields(case, trainer, t, self.threads, self.notes))
        return Outcome(self.row(case, **fields), curve)

    # -- one case, end to end -----------------------------------------------------------------------
    def execute(self, case: Case) -> Outcome:
        """Run one case end to end; every exception becomes the row's status, never the run's."""
        if case.refused:
            return Outcome(self.row(case, status="failed", reason=case.refused))
        try:
            problem = self.inputs.problem(case.dataset)
        except (ValueError, MemoryError) as exc:
            return Outcome(self.row(case, status="failed", reason=f"dataset {case.dataset!r} cannot be built: "
                                                                 f"{type(exc).__name__}: {exc}"))
        if judge.declared(case.backend, "engine") == "numba" and self.threads and self.threads.numba_error:
            return Outcome(self.row(case, status="skipped", reason=self.threads.numba_error))
        trainer = None
        try:
            with row_timer(self.options.row_timeout):
                try:
                    trainer = create_trainer(case.backend, case.config)
                except BackendUnavailableError as exc:  # incl. a case outside what the backend declares
                    return Outcome(self.row(case, status="skipped", reason=str(exc)))
                except ValueError as exc:  # e.g. workers > 1 for a single-process backend
                    return Outcome(self.row(case, status="skipped", reason=str(exc)))
                return self._train(case, trainer, problem)
        except RowTimeout as exc:
            return Outcome(self.row(case, status="failed", reason=str(exc)))
        except Exception as exc:  # a (user) backend failing outside the timed rounds: its row, not the run
            return Outcome(self.row(case, status="failed", reason=f"{type(exc).__name__}: {exc}"))
        finally:
            _close(trainer)

    def _train(self, case: Case, trainer, problem: Problem) -> Outcome:
        """prepare (timed apart) -> warm-up -> timed rounds -> the row.

        Every full-length run is timed or judged, none is paid for only to warm up or only to judge:
        the warm-up is a short twin of :data:`WARMUP_STEPS` steps where the run is longer (then the
        last timed round is the one judged), else the trainer's own full-length run, which is then
        the one judged."""
        o, ds = self.options, problem.dataset
        try:
            _, transfer_s = timed(trainer.prepare, ds.X, ds.y, problem.w0, problem.b0)
            transfer_s -= compile_seconds(trainer)  # an ahead-of-time compile in prepare (jax) is not the transfer
        except BackendUnavailableError as exc:
            return Outcome(self.row(case, status="skipped", reason=str(exc)))
        except Exception as exc:  # input this backend cannot take (e.g. values beyond its dtype)
            return Outcome(self.row(case, status="failed", reason=f"{type(exc).__name__}: {exc}"))
        warm, warm_aot = None, 0.0
        try:
            # a short twin for the warm-up, except on data-parallel backends (a second process group / cluster)
            # and on a trainer that compiled its whole run ahead of time in prepare (jax): a twin would compile
            # a program of its own, warming nothing of this one, where one full-length run costs less
            if case.config.n_iters > WARMUP_STEPS and o.warmup and not trainer.data_parallel \
                    and not compile_seconds(trainer):
                warm = create_trainer(case.backend, replace(case.config, n_iters=WARMUP_STEPS))
                warm.prepare(ds.X, ds.y, problem.w0, problem.b0)
                warm_aot = compile_seconds(warm)  # the twin's own program (jax: its shorter scan), not this row's
            judged = []  # the full-length warm-up's result, where the warm-up is the trainer's own run
            keep = None if warm is not None or not o.warmup else lambda: judged.append(_kept(trainer))
            before = CpuSample.now()
            with PeakMemory(case.device) as peak:
                m = measure(trainer, o.repeats, o.warmup, o.budget_s, warm=warm, after_warmup=keep)
            load = CpuSample.now().others_since(before)
        except BackendUnavailableError as exc:  # e.g. a compiler found missing at first call
            return Outcome(self.row(case, status="skipped", reason=str(exc)))
        except Exception as exc:  # a backend's failure must not cost the other rows
            return Outcome(self._failure(case, exc))
        finally:
            _close(warm)
        return self.evaluate(case, trainer, m, transfer_s=transfer_s, peak_mem_mb=peak.mb, load=load,
                             compiled=compile_fields(trainer, warm, warm_aot), res=judged[0] if judged else None)

    def _failure(self, case: Case, exc: BaseException) -> Row:
        """A library's exception is a divergence when the math diverges there (e.g. torch's BCE
        refusing NaN probabilities), else a failure."""
        what = f"{type(exc).__name__}: {exc}".strip()
        try:
            ref = self.inputs.reference(case)
            ref_step = judge.divergence(ref)
            top = judge.largest_logit(self.inputs.problem(case.dataset).dataset.X, ref, case.config.dtype)
        except Exception:
            ref_step, top = None, 0.0
        if ref_step is not None:
            return self.row(case, status="diverged", verdict="fail", first_nonfinite_step=ref_step,
                            reason=f"the float64 oracle's loss or parameters blow up from step "
                                   f"{ref_step}, and {case.backend} stopped with {what}")
        big = float(np.finfo(case.config.dtype).max)
        if top > big:
            return self.row(case, status="diverged", verdict="fail",
                            reason=f"the oracle's parameters or logits reach {top:.3g}, beyond "
                                   f"{case.config.dtype}'s largest value {big:.3g}: in {case.config.dtype} "
                                   f"they overflow, and {case.backend} stopped with {what}")
        return self.row(case, status="failed", reason=what)
