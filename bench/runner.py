"""The main comparison: every backend x device x dtype x formulation x dataset, one tidy row each.

Data path: dataset -> one init draw shared by every backend -> ``prepare`` (timed apart as the
transfer) -> warm-up + timed ``run`` rounds -> ``result`` -> compared with the float64 NumPy
reference on the same (rounded) data and init -> row -> CSV, written as each row finishes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np

from implementations import BACKENDS, DTYPES, FORMULATIONS, BackendUnavailableError, TrainConfig, create_trainer

from . import data as datasets
from .equivalence import compare, reference, saturated_count, tolerance
from .memory import PeakMemory
from .optimum import dataset_optimum, time_to_target
from .timing import measure, thread_parity, timed

DEFAULT_DATASETS = ("iris", "synthetic-10kx100", "synthetic-100kx100")
WARMUP_STEPS = 10  # warm-up run length (same backend, shapes, dtype, device; >= 2 compiled chunks)
LOSS_POINTS = 500  # loss-curve points kept per run for losses.csv and the plot


def default_devices() -> tuple[str, ...]:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if torch.backends.mps.is_available():
        devices.append("mps")
    return tuple(devices)


def default_iters(n: int, d: int) -> int:
    """The seed's 5000 steps where a step is cheap; fewer on big data (about 5e7 multiply-adds
    per run, at least 10 steps) so the default run stays within its time budget."""
    return int(max(10, min(5000, 5e7 // (n * d))))


@dataclass(frozen=True)
class RunOptions:
    backends: tuple[str, ...] = tuple(BACKENDS)
    devices: tuple[str, ...] = field(default_factory=default_devices)
    datasets: tuple[str, ...] = DEFAULT_DATASETS
    dtypes: tuple[str, ...] = DTYPES
    formulations: tuple[str, ...] = FORMULATIONS
    iters: int | None = None
    repeats: int = 3
    warmup: int = 1
    threads: int | None = None
    lr: float = 0.01
    record_every: int = 1
    seed: int = 0
    target: float = 1e-3  # suboptimality defining time-to-target
    budget_s: float = 1.0  # per row: stop repeating (after 3 rounds) past this many seconds
    optimum: bool = True  # fit scikit-learn's optimum per dataset (suboptimality, time-to-target)

    def n_cases(self) -> int:
        return (len(self.backends) * len(self.devices) * len(self.datasets) * len(self.dtypes)
                * len(self.formulations))


def bytes_per_step(n: int, d: int, dtype: str) -> int:
    """The least a step must move: read X once, plus y, z-sized work is fused away, and w, b."""
    itemsize = np.dtype(dtype).itemsize
    return itemsize * (n * d + n + 2 * (d + 1))


class Comparison:
    """Runs the matrix: ``rows()`` yields each row as it finishes; ``loss_curves`` and ``notes``
    (datasets that got no optimum, and why) fill up along the way."""

    def __init__(self, opts: RunOptions, run_id: str, bandwidth_gbps: dict | None = None):
        self.opts, self.run_id = opts, run_id
        self.bandwidth = bandwidth_gbps or {}
        self.loss_curves: list[dict] = []
        self.notes: list[str] = []

    def rows(self, progress=None):
        o = self.opts
        with thread_parity(o.threads) as threads:
            self.threads = threads
            for ds_name in o.datasets:
                ds = datasets.load(ds_name, o.seed)
                w0, b0 = datasets.init_params(ds.d, o.seed, ds.init_scale)
                n_iters = o.iters or default_iters(ds.n, ds.d)
                opt = self._optimum(ds_name)
                for dtype, form in itertools.product(o.dtypes, o.formulations):
                    cfg = dict(lr=o.lr, n_iters=n_iters, dtype=dtype, formulation=form, record_every=o.record_every)
                    ref = None
                    for backend, device in itertools.product(o.backends, o.devices):
                        if progress:
                            progress(f"{ds_name} {dtype} {form} {backend}@{device}")
                        if ref is None:
                            ref = reference(ds.X, ds.y, w0, b0, TrainConfig(**cfg))
                        yield self._one(ds, w0, b0, TrainConfig(device=device, **cfg), backend, ref, opt)

    def _optimum(self, name):
        if not self.opts.optimum:
            return None
        try:
            return dataset_optimum(name, self.opts.seed)
        except Exception as exc:  # e.g. absurdly scaled data: the rows still run, without the oracle
            self.notes.append(f"{name}: no optimum ({type(exc).__name__}: {exc})")
            return None

    def _one(self, ds, w0, b0, config, backend, ref, opt) -> dict:
        o = self.opts
        row = {
            "run_id": self.run_id, "backend": backend, "device": config.device, "dtype": config.dtype,
            "formulation": config.formulation, "dataset": ds.name, "n": ds.n, "d": ds.d,
            "n_iters": config.n_iters, "lr": config.lr, "threads": self.threads,
            "bytes_per_step": bytes_per_step(ds.n, ds.d, config.dtype),
            "optimum_loss": opt.loss if opt else None,
            "tolerance": tolerance(config.dtype, config.n_iters, ds.n, ds.d),
        }
        try:
            trainer = create_trainer(backend, config)
        except BackendUnavailableError as exc:
            return {**row, "status": "skipped", "reason": str(exc)}
        try:
            _, row["transfer_s"] = timed(trainer.prepare, ds.X, ds.y, w0, b0)
            warm = None
            if config.n_iters > WARMUP_STEPS:
                warm = create_trainer(backend, replace(config, n_iters=WARMUP_STEPS))
                warm.prepare(ds.X, ds.y, w0, b0)
            with PeakMemory(config.device) as peak:
                m = measure(trainer, o.repeats, o.warmup, o.budget_s, warm=warm)
            del warm
            row["peak_mem_mb"] = peak.mb
            res = trainer.result()
        except BackendUnavailableError as exc:  # e.g. a compiler found missing at first call
            return {**row, "status": "skipped", "reason": str(exc)}
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # a backend bug must not cost the other rows
            return {**row, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        row.update(m.as_dict())
        row["achieved_gbps"] = row["bytes_per_step"] / row["time_per_iter_s"] / 1e9
        bandwidth = self.bandwidth.get("device" if config.device != "cpu" else "host")
        if bandwidth:
            row["roofline_fraction"] = row["achieved_gbps"] / bandwidth
        row["final_loss"] = float(res.losses[-1])
        row["first_nonfinite_step"] = res.first_nonfinite_step
        if res.diverged:
            return {**row, "verdict": "fail", "status": "diverged",
                    "reason": f"loss or parameters non-finite from step {res.first_nonfinite_step}"}
        agreement = compare(res, ref, row["tolerance"])
        row.update(agreement.as_dict())
        row["saturated"] = saturated_count(ds.X, ref.w, ref.b, config.dtype)
        if opt is not None:
            row["suboptimality"] = opt.suboptimality(ds.X, ds.y, res.w, res.b)
            row["rel_dist_opt"] = opt.rel_distance(res.w, res.b)
            row["time_to_target_s"] = time_to_target(res.losses, opt.loss, o.target, config.record_every,
                                                     row["time_per_iter_s"])
        row["status"], row["reason"] = "ok", ""
        if not agreement.ok:
            row["reason"] = explain(agreement, row["saturated"], config, backend)
        stride = max(1, len(res.losses) // LOSS_POINTS)
        self.loss_curves.append({
            "backend": backend, "device": config.device, "dtype": config.dtype,
            "formulation": config.formulation, "dataset": ds.name,
            "step": np.arange(0, len(res.losses), stride) * config.record_every, "loss": res.losses[::stride],
        })
        return row


def explain(agreement, saturated: int, config: TrainConfig, backend: str) -> str:
    """Why a row is outside tolerance, as far as the run can tell."""
    parts = [f"differs from the float64 reference: rel Δparam {agreement.rel_dparam:.2e}, "
             f"rel Δloss {agreement.rel_dloss:.2e} (tolerance {agreement.tolerance:.2e})"]
    if saturated and config.formulation == "probs":
        if agreement.rel_dloss > agreement.tolerance:
            parts.append(f"{saturated} samples saturate (p(1-p) < 1e-12): where p rounds to 0 or 1 in {config.dtype} "
                         "the probs loss clamps log at -100 while the reference still computes the exact log")
        if agreement.rel_dparam > agreement.tolerance:
            parts.append("autograd through sigmoid->BCE shrinks or zeroes those samples' gradient while p - y does not"
                         if backend == "torch" else "saturated samples also move the parameters apart")
        parts.append("the logits formulation has neither problem")
    elif saturated:
        parts.append(f"{saturated} saturated samples")
    else:
        parts.append("no saturated sample explains it: investigate")
    return "; ".join(parts)
