"""The sparse block of ``bench run --blocks all`` (or ``--blocks sparse``): its cases, and the density
sweep's answer: ``sparse_vs_dense.csv``, ``sparse_vs_dense.png`` and the verdict's lines.

The block (values in :mod:`bench.suites`): an rcv1-shaped set and one ten times larger, both
formulations, float32 and float64, every single-process backend (one that does not declare sparse
support gives a ``skipped`` row saying why); and the density sweep, part of the same block: at one
shape (``SPARSE_SWEEP_SHAPE``), for each density from 1e-4 to 0.5, the same matrix twice, kept
sparse (``sparse-<n>x<d>-d<density>``, CSR) and densified (``...[dense]``), every sweep backend on
both.

For each declared ``library`` and dtype, the sweep sets the best (fastest correct) row of that
library on the CSR matrix beside its best on the dense one, at each density: ``sparse_vs_dense.csv``
(:data:`COLUMNS`). The crossover density is where the dense loop becomes faster and stays faster,
interpolated in log-log between the two measured densities that bracket it
(:func:`bench.crossover.crossing`, the GPU/CPU crossover's rule with "dense" for the GPU): below it
sparse wins, above it densify. The verdict says it per library, then NumPy or PyTorch on sparse
data, and whether that answer differs from the dense one on the same shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import suites
from .atomic import write_csv
from .crossover import crossing
from .data import short_count

COLUMNS = ["library", "dtype", "formulation", "n", "d", "density", "nnz", "sparse_backend", "sparse_s_per_step",
           "dense_backend", "dense_s_per_step", "dense_over_sparse"]
TITLE = "Sparse data: CSR against dense, and NumPy or PyTorch"
LIBRARY_NAMES = {"numpy": "NumPy/SciPy", "torch": "PyTorch"}


def sweep_datasets(shape=suites.SPARSE_SWEEP_SHAPE, densities=suites.SPARSE_SWEEP_DENSITIES) -> tuple[str, ...]:
    """The sweep's names: each density kept sparse, then the same set densified."""
    n, d = shape
    names = []
    for rho in densities:
        base = f"sparse-{short_count(n)}x{short_count(d)}-d{rho:g}"
        names += [base, f"{base}[dense]"]
    return tuple(names)


def block_cases(matrix, common: dict) -> list:
    """The sparse block's cases: ``matrix`` is :func:`bench.cases.matrix`, ``common`` the run's
    arguments to it (backends, devices, penalties, learning rate, ...)."""
    cases = matrix(datasets_=suites.SPARSE_DATASETS, **{**common, "dtypes": suites.SPARSE_DTYPES,
                                                         "formulations": suites.SPARSE_FORMULATIONS,
                                                         "iters": common.get("iters") or suites.SPARSE_ITERS})
    cases += matrix(datasets_=suites.SPARSE_LARGE_DATASETS,
                    **{**common, "dtypes": suites.SPARSE_LARGE_DTYPES,
                       "formulations": suites.SPARSE_LARGE_FORMULATIONS,
                       "iters": common.get("iters") or suites.SPARSE_LARGE_ITERS})
    backends = tuple(b for b in common["backends"] if b in suites.SPARSE_SWEEP_BACKENDS) or common["backends"]
    cases += matrix(datasets_=sweep_datasets(), **{**common, "backends": backends,
                                                   "dtypes": (suites.SPARSE_SWEEP_DTYPE,),
                                                   "formulations": (suites.SPARSE_SWEEP_FORMULATION,),
                                                   "iters": common.get("iters") or suites.SPARSE_SWEEP_ITERS})
    return cases


def _sweep_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Correct, timed full-batch rows of sparse-set names (either storage), with their density parsed."""
    if "storage" not in rows or rows.empty:
        return rows.iloc[:0]
    df = rows[(rows["status"] == "ok") & rows["time_per_iter_s"].notna()
              & (rows["verdict"].fillna("pass") == "pass")].copy()
    base = df["dataset"].astype(str).str.replace(r"\[.*\]$", "", regex=True)
    m = base.str.extract(r"^sparse-.+-d([0-9.eE+-]+)$")
    df["rho"] = pd.to_numeric(m[0], errors="coerce")
    df = df[df["rho"].notna() & df["storage"].notna() & df["library"].notna()]
    if "loop" in df:
        df = df[df["loop"].astype(str) == "full-batch"]
    return df


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """``sparse_vs_dense.csv``: per library, dtype, formulation, shape and density, its best CSR row
    beside its best dense row (only where both ran)."""
    df = _sweep_rows(rows)
    out = []
    for (lib, dtype, form, n, d, rho), g in df.groupby(["library", "dtype", "formulation", "n", "d", "rho"]):
        sp, de = g[g["storage"] == "csr"], g[g["storage"] == "dense"]
        if sp.empty or de.empty:
            continue
        a = sp.loc[sp["time_per_iter_s"].idxmin()]
        b = de.loc[de["time_per_iter_s"].idxmin()]
        out.append({"library": lib, "dtype": dtype, "formulation": form, "n": int(n), "d": int(d), "density": rho,
                    "nnz": a.get("nnz"), "sparse_backend": a["backend"], "sparse_s_per_step": a["time_per_iter_s"],
                    "dense_backend": b["backend"], "dense_s_per_step": b["time_per_iter_s"],
                    "dense_over_sparse": b["time_per_iter_s"] / a["time_per_iter_s"]})
    return pd.DataFrame(out, columns=COLUMNS)


def crossovers(t: pd.DataFrame) -> pd.DataFrame:
    """Per library, dtype, formulation and shape: the density above which the dense loop wins."""
    out = []
    for (lib, dtype, form, n, d), g in t.groupby(["library", "dtype", "formulation", "n", "d"]):
        g = g.sort_values("density")
        if g["density"].nunique() < 2:
            continue
        res = crossing(g["density"], g["dense_s_per_step"], g["sparse_s_per_step"])  # "faster" = dense faster
        out.append({"library": lib, "dtype": dtype, "formulation": form, "n": n, "d": d, **res,
                    "rho_min": g["density"].min(), "rho_max": g["density"].max()})
    return pd.DataFrame(out)


def _pct(x: float) -> str:
    return f"{100 * x:.3g} %"


def crossover_lines(t: pd.DataFrame) -> list[str]:
    """One line per library: "below X % density sparse wins; above it, densify"."""
    lines = []
    for _, c in crossovers(t).iterrows():
        who = f"`{c['library']}` ({c['dtype']}, {c['formulation']}, {c['n']} x {c['d']})"
        if c["status"] == "crosses":
            lines.append(f"{who}: below {_pct(c['n_cross'])} density sparse wins; above it, densify (measured "
                         f"between {_pct(c['n_below'])} and {_pct(c['n_above'])}).")
        elif c["status"] == "gpu-faster-throughout":
            lines.append(f"{who}: the dense loop wins at every density measured (from {_pct(c['rho_min'])}): "
                         "densify whenever it fits.")
        elif c["status"] == "not-within-range":
            lines.append(f"{who}: sparse wins at every density measured up to {_pct(c['rho_max'])} (or the dense "
                         "loop leads only below it): keep it sparse.")
    return lines


def _answer(t: pd.DataFrame, column: str) -> tuple[str, float, float] | None:
    """NumPy or PyTorch on ``column`` (``sparse_s_per_step`` or ``dense_s_per_step``): the winner at
    most densities, and the range of torch/numpy time ratios over the densities both ran."""
    a = t[t["library"] == "numpy"].set_index(["dtype", "formulation", "n", "d", "density"])[column]
    b = t[t["library"] == "torch"].set_index(["dtype", "formulation", "n", "d", "density"])[column]
    common = a.index.intersection(b.index)
    if not len(common):
        return None
    r = (b[common] / a[common]).to_numpy(dtype=float)  # > 1: NumPy faster
    return ("NumPy" if np.sum(r > 1) >= np.sum(r < 1) else "PyTorch"), float(r.min()), float(r.max())


def paragraph(rows: pd.DataFrame) -> list[str]:
    """The verdict's sparse block: the crossover per library, then NumPy or PyTorch on sparse data
    and on the same shape dense. Empty where the run has no sweep (both storages at >= 2 densities)."""
    t = table(rows)
    if t.empty:
        return []
    lines = crossover_lines(t)
    sp, de = _answer(t, "sparse_s_per_step"), _answer(t, "dense_s_per_step")
    if sp is not None:
        text = (f"NumPy or PyTorch for sparse data: **{sp[0]}** — PyTorch's best CSR loop takes "
                f"{sp[1]:.2f}–{sp[2]:.2f}× NumPy's best over the densities measured")
        if de is not None:
            same = "the same answer" if de[0] == sp[0] else "**the answer differs**"
            text += (f"; on the same shape held dense, **{de[0]}** (PyTorch {de[1]:.2f}–{de[2]:.2f}× NumPy's time): "
                     f"{same}")
        lines.append(text + ".")
    return lines


def verdict_block(rows: pd.DataFrame) -> list[tuple[str, list[str]]]:
    lines = paragraph(rows)
    return [(TITLE, lines)] if lines else []


def plot(t: pd.DataFrame, path) -> bool:
    """Time per step against density, CSR and dense per library (log-log); False where nothing to draw."""
    if t.empty:
        return False
    import matplotlib  # deferred on purpose: a run without a sweep never loads it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, ((lib, dtype, form), g) in enumerate(t.groupby(["library", "dtype", "formulation"])):
        g = g.sort_values("density")
        color = f"C{i}"
        ax.plot(g["density"], g["sparse_s_per_step"], "o-", color=color, label=f"{lib} CSR ({dtype}, {form})")
        ax.plot(g["density"], g["dense_s_per_step"], "s--", color=color, label=f"{lib} dense")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("density (fraction of non-zero entries)")
    ax.set_ylabel("time per step (s), best loop of the library")
    n, d = int(t["n"].iloc[0]), int(t["d"].iloc[0])
    ax.set_title(f"Sparse (CSR) against dense, {n} x {d}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write(rows: pd.DataFrame, folder) -> list[Path]:
    """``sparse_vs_dense.csv`` and ``sparse_vs_dense.png`` where the rows hold a sweep; the paths written."""
    t = table(rows)
    if t.empty:
        return []
    folder = Path(folder)
    write_csv(t, folder / "sparse_vs_dense.csv")
    written = [folder / "sparse_vs_dense.csv"]
    if plot(t, folder / "sparse_vs_dense.png"):
        written.append(folder / "sparse_vs_dense.png")
    return written

