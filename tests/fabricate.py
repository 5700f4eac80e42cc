"""Fabricated run tables for the report and compare tests (made here, never committed as data).

Starts from a frozen copy of an old reference run (``tests/data/reference-v1/runs.csv``: 72 full-batch rows on
Iris, 10k×100 and 100k×100) and adds the columns the new pipeline writes (``case_id``, ``loop``,
``batch_size``, ``l2``, ``times_s``, threads, ``compute_fraction``, and the backend's declared
attributes ``library``, ``gradient``, ``engine``, ``compiled``, ``style`` as today's classes declare
them), plus a few rows whose answer the tests know in advance:

- Iris full batch: ``numba`` float64 logits is the fastest correct row (``FASTEST_IRIS`` s/step);
  ``torch-compiled`` float32 probs is faster still (``WRONG_FAST`` s/step) but does not agree with
  the oracle (reason ``WRONG_REASON``);
- 10k×100 float32 probs: every backend fails equivalence (the sweep's saturation reason);
- Iris mini-batch (batch 20): numpy and torch, float32 and float64, probs — a noisy loss;
- one ``jax`` row skipped, one ``torch-manual`` row on 100k×100 float64 diverged.

Loss curves: ``L_t = L* + (L_0 − L*)·exp(−t/τ)`` per dataset, the same for every backend (same
data, init and math), float32 rows off the float64 oracle by ~3e-7 relative. Iris: τ = 300 over
5000 steps (reaches 1e-1 .. 1e-4); 10k×100: τ = 10 over 50 steps (reaches 1e-1, 1e-2 only);
100k×100: τ = 100 over 10 steps (reaches none).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import ROOT

REFERENCE = ROOT / "tests" / "data" / "reference-v1"  # a frozen old-schema run: see its README.md
FASTEST_IRIS = 20e-6
WRONG_FAST = 10e-6
WRONG_REASON = "fabricated: the compiled graph drops the clamp at log(0)"
SATURATION_REASON = (
    "differs from the float64 reference: rel Δparam 8.62e-08, rel Δloss 4.51e-01 (tolerance 1.91e-04); "
    "44 samples saturate (p(1-p) < 1e-12): where p rounds to 0 or 1 in float32 the probs loss clamps log "
    "at -100 while the reference still computes the exact log")
TAU = {"iris": 300.0, "synthetic-10kx100": 10.0, "synthetic-100kx100": 100.0}
L0 = {"iris": 1.40, "synthetic-10kx100": 0.80, "synthetic-100kx100": 0.80}
ROUNDS = 5
# what today's backend classes declare (implementations/*.py), written here so that the report's
# tests need no backend import: (library, gradient, engine, compiled, style)
ATTRIBUTES = {
    "numpy": ("numpy", "hand-derived", "eager", False, "the seed's loop"),
    "numpy-fused": ("numpy", "hand-derived", "eager", False, "hand-blocked, threaded"),
    "torch": ("torch", "autograd", "eager", False, "the seed's loop"),
    "torch-manual": ("torch", "hand-derived", "eager", False, "the seed's loop, no autograd"),
    "torch-compiled": ("torch", "hand-derived", "inductor", True, "torch.compile"),
    "torch-nn": ("torch", "autograd", "eager", False, "nn.Module + optim + DataLoader"),
    "numba": ("numba", "hand-derived", "numba", True, "whole run in one compiled call"),
    "jax": ("jax", "autograd", "xla", True, "whole loop in one jit"),
}


def case_id(r) -> str:
    """``bench.records.Case.case_id``'s format."""
    bs = r["batch_size"]
    loop = "full" if bs is None or pd.isna(bs) else f"b{int(bs)}"
    return (f"{r['dataset']}|{r['dtype']}|{r['formulation']}|{loop}|l2={float(r['l2']):g}|w1|"
            f"{r['backend']}@{r['device']}")


def set_attributes(df: pd.DataFrame, attributes: dict = ATTRIBUTES) -> pd.DataFrame:
    """Fill the attribute columns from each row's backend, as the harness does from its class."""
    df = df.copy()
    for j, col in enumerate(("library", "gradient", "engine", "compiled", "style")):
        df[col] = df["backend"].map(lambda b, j=j: attributes[b][j])
    return df


def _set_time(df: pd.DataFrame, i, per_step: float, rng, spread: float = 0.02) -> None:
    n_iters = int(df.at[i, "n_iters"])
    t = per_step * n_iters * (1 + spread * rng.standard_normal(ROUNDS))
    df.at[i, "times_s"] = " ".join(repr(float(x)) for x in t)
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    df.at[i, "rounds"] = ROUNDS
    df.at[i, "time_median_s"] = med
    df.at[i, "time_iqr_s"] = q3 - q1
    df.at[i, "time_per_iter_s"] = med / n_iters
    df.at[i, "iqr_per_iter_s"] = (q3 - q1) / n_iters
    df.at[i, "noisy"] = bool((q3 - q1) > 0.1 * med)


def fabricate_rows(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.read_csv(REFERENCE / "runs.csv")
    df["batch_size"] = pd.Series([pd.NA] * len(df), dtype="Int64")
    df["loop"] = "full-batch"
    df["l2"] = 0.0
    df["epochs"] = df["n_iters"].astype(float)
    df["workers"] = 1
    df["threads_torch"] = df["threads_blas"] = df["threads_numba"] = 2
    df["oversubscribed"] = False
    df["compute_fraction"] = np.where(df["dataset"] == "iris", 0.05, np.nan)
    df["times_s"] = ""
    df = df.astype({"times_s": "object", "noisy": "object", "rounds": "float64", "verdict": "object",
                    "reason": "object", "status": "object"})
    for i in df.index:
        _set_time(df, i, float(df.at[i, "time_per_iter_s"]), rng)
    iris = df["dataset"] == "iris"
    # the known answers
    i = df.index[iris & (df.backend == "numba") & (df.dtype == "float64") & (df.formulation == "logits")][0]
    _set_time(df, i, FASTEST_IRIS, rng)
    i = df.index[iris & (df.backend == "torch-compiled") & (df.dtype == "float32") & (df.formulation == "probs")][0]
    _set_time(df, i, WRONG_FAST, rng)
    df.at[i, "verdict"], df.at[i, "reason"], df.at[i, "rel_dparam"] = "fail", WRONG_REASON, 3e-3
    sat = (df["dataset"] == "synthetic-10kx100") & (df.dtype == "float32") & (df.formulation == "probs")
    df.loc[sat, "verdict"] = "fail"
    df.loc[sat, "reason"] = SATURATION_REASON
    df.loc[sat, "rel_dloss"] = 0.451
    i = df.index[(df["dataset"] == "synthetic-100kx100") & (df.backend == "torch-manual")
                 & (df.dtype == "float64") & (df.formulation == "logits")][0]
    df.at[i, "status"], df.at[i, "verdict"] = "diverged", "fail"
    df.at[i, "reason"], df.at[i, "first_nonfinite_step"] = "non-finite from step 4", 4
    # mini-batch rows
    mb = df[iris & df.backend.isin(["numpy", "torch"]) & (df.formulation == "probs")].copy()
    mb["batch_size"] = 20
    mb["loop"] = "mini-batch"
    mb["epochs"] = mb["n_iters"] * 20 / 100
    mb = mb.reset_index(drop=True)
    for j in mb.index:
        _set_time(mb, j, float(mb.at[j, "time_per_iter_s"]) * 0.6, rng)
    # a skipped backend
    skip = df.iloc[[0]].copy()
    skip["backend"], skip["status"], skip["reason"] = "jax", "skipped", "jax is not installed"
    for c in ("time_median_s", "time_per_iter_s", "iqr_per_iter_s", "times_s", "verdict", "rel_dparam", "rel_dloss",
              "roofline_fraction", "compute_fraction", "final_loss", "achieved_gbps"):
        skip[c] = None
    df = pd.concat([df, mb, skip], ignore_index=True)
    df = set_attributes(df)
    df["case_id"] = df.apply(case_id, axis=1)
    assert df["case_id"].is_unique
    return df


def fabricate_losses(rows: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for _, r in rows[rows["status"].isin(["ok", "diverged"])].iterrows():
        n = int(r["n_iters"])
        step = np.unique(np.linspace(0, n - 1, min(n, 500)).astype(int))
        opt, ds = float(r["optimum_loss"]), r["dataset"]
        ref = opt + (L0[ds] - opt) * np.exp(-step / TAU[ds])
        if r["loop"] == "mini-batch":
            ref = ref * (1 + 0.05 * rng.standard_normal(len(step)))  # the mini-batch loss
        eps = 3e-7 if r["dtype"] == "float32" else 1e-16
        loss = ref * (1 + eps * rng.standard_normal(len(step)))
        if r["verdict"] == "fail" and r["status"] == "ok":
            loss = ref * 1.45  # what a 0.45 relative loss difference looks like
        if r["status"] == "diverged":
            loss = np.where(step >= 4, np.nan, loss)
        parts.append(pd.DataFrame({"case_id": r["case_id"], "step": step, "loss": loss, "ref_loss": ref}))
    return pd.concat(parts, ignore_index=True)


def expected_step(dataset: str, optimum: float, target: float, n_iters: int) -> float:
    """The first recorded step of the fabricated full-batch curve within ``target`` (NaN if none)."""
    step = np.unique(np.linspace(0, n_iters - 1, min(n_iters, 500)).astype(int))
    rel = (L0[dataset] - optimum) * np.exp(-step / TAU[dataset]) / abs(optimum)
    hit = np.flatnonzero(rel <= target)
    return float(step[hit[0]]) if len(hit) else math.nan


def environment(run_id: str = "20261124T021514Z-8581cc", **changes) -> dict:
    env = json.loads((REFERENCE / "env.json").read_text())
    env["run_id"] = run_id
    for key, value in changes.items():
        node = env
        *path, last = key.split("__")
        for p in path:
            node = node[p]
        node[last] = value
    return env


def write_run(folder: Path, rows: pd.DataFrame, env: dict, losses: pd.DataFrame | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows.to_csv(folder / "runs.csv", index=False)
    (folder / "env.json").write_text(json.dumps(env, indent=2))
    if losses is not None:
        losses.to_csv(folder / "losses.csv", index=False)
    return folder
