"""Small text helpers shared by the verdict, the tables and the plots: numbers, times, markdown
cells, a row's setting, the groups of a run, and what a backend is — read from the row's declared
attributes (``library``, ``gradient``, ``engine``, ``compiled``, ``style``), never from its name."""

from __future__ import annotations

import math

import pandas as pd

# how the report writes a library's name; any other library is written as it is recorded
LIBRARY_LABELS: dict[str, str] = {"numpy": "NumPy", "torch": "PyTorch", "jax": "JAX", "numba": "Numba"}
# the product's question is "NumPy or PyTorch?": their backends come first in every table and legend
LIBRARY_ORDER = ("numpy", "torch")


def as_float(x) -> float:
    """``x`` as a float; NaN for None, NA and anything that is not a number."""
    try:
        return math.nan if x is None or pd.isna(x) else float(x)
    except (TypeError, ValueError):
        return math.nan


def format_time(s) -> str:
    """Seconds in the largest unit that keeps the number >= 1 (``s``, ``ms``, ``µs``, ``ns``), three
    significant digits: ``12.3 µs``; ``—`` where there is no time."""
    s = as_float(s)
    if math.isnan(s):
        return "—"
    for unit, k in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if s >= k:
            return f"{s / k:.3g} {unit}"
    return f"{s:.3g} s"


def format_number(x, fmt) -> str:
    """``fmt.format(x)``; ``—`` where ``x`` is missing, not a number or infinite."""
    x = as_float(x)
    return "—" if math.isnan(x) or math.isinf(x) else fmt.format(x)


def md_cell(text) -> str:
    """Text for one markdown table cell: pipes escaped, newlines flattened, ``—`` for nothing."""
    return "—" if text is None or pd.isna(text) else str(text).replace("|", "\\|").replace("\n", " ")


def _text(x) -> str:
    return "" if x is None or pd.isna(x) else str(x)


def agrees(r) -> bool:
    """Whether a row agrees with the float64 oracle (its ``verdict`` is ``pass``)."""
    return str(r["verdict"]) == "pass" if pd.notna(r["verdict"]) else False


def library_label(library) -> str:
    lib = _text(library)
    return LIBRARY_LABELS.get(lib, lib or "unknown library")


def what(r) -> str:
    """What a backend is, from its row: engine, gradient, how the loop is written — e.g.
    ``eager, hand-derived, hand-blocked, threaded``; empty when the row records no attributes."""
    parts = [_text(r.get("engine")), _text(r.get("gradient")), _text(r.get("style"))]
    return ", ".join(p for p in parts if p)


def named(r) -> str:
    """``\\`backend\\` (what it is)`` for the verdict."""
    desc = what(r)
    return f"`{r['backend']}`" + (f" ({desc})" if desc else "")


def backend_order(df: pd.DataFrame) -> list[str]:
    """The backends of ``df``: NumPy's first, then PyTorch's, then the other libraries' (by library
    name), each in the order they appear in the rows (the registry's order in a run)."""
    names = list(dict.fromkeys(df["backend"].dropna().astype(str)))
    lib = {}
    if "library" in df:
        for b, library in zip(df["backend"], df["library"], strict=True):
            if pd.notna(b) and pd.notna(library):
                lib.setdefault(str(b), str(library))

    def rank(b):
        lb = lib.get(b, "")
        if lb in LIBRARY_ORDER:
            return LIBRARY_ORDER.index(lb), ""
        return len(LIBRARY_ORDER), lb or "\uffff"  # a row without attributes last

    return sorted(names, key=rank)  # stable: appearance order within a library


def backend_at(r, with_device: bool = False) -> str:
    """``backend`` or ``backend@device``."""
    dev = f"@{r['device']}" if with_device else ""
    return f"{r['backend']}{dev}"


def row_setting(r) -> str:
    """dtype, formulation (and l2, batch size where they vary) of one row."""
    parts = [str(r["dtype"]), str(r["formulation"])]
    if as_float(r["l2"]) not in (0.0,) and not math.isnan(as_float(r["l2"])):
        parts.append(f"l2={as_float(r['l2']):g}")
    if pd.notna(r["batch_size"]):
        parts.append(f"batch {int(r['batch_size'])}")
    opt = r.get("optimizer") if hasattr(r, "get") else None
    if opt is not None and pd.notna(opt) and str(opt) != "gd":  # the seed's optimizer goes unsaid
        parts.append(str(opt))
    return ", ".join(parts)


def failing_metric(r) -> str:
    """Why a row fails, in numbers: the metric over tolerance, the first non-finite step, or an exception."""
    parts = []
    tol = as_float(r["tolerance"])
    for name, col in (("rel Δparam", "rel_dparam"), ("rel Δloss", "rel_dloss")):
        v = as_float(r[col])
        if not math.isnan(v) and not math.isnan(tol) and v > tol:
            parts.append(f"{name} {v:.2e} > tolerance {tol:.1e}")
    if str(r["status"]) == "diverged":
        step = as_float(r["first_nonfinite_step"])
        parts.append("non-finite loss" + ("" if math.isnan(step) else f" from step {int(step)}"))
    elif str(r["status"]) == "failed":
        parts.append("raised an exception")
    return "; ".join(parts) or "verdict fail"


def cause_of(reason) -> str:
    """The explanatory part of a reason: what follows the first '; ' (the numbers are elsewhere)."""
    if reason is None or pd.isna(reason):
        return "no reason recorded"
    text = str(reason)
    head, sep, tail = text.partition("; ")
    return tail if sep and head.startswith("differs from") else text


def dataset_title(g: pd.DataFrame) -> str:
    """``dataset (n=…, d=…)`` of a group's first row."""
    r = g.iloc[0]
    n, d = as_float(r["n"]), as_float(r["d"])
    shape = f" (n={int(n)}, d={int(d)})" if not (math.isnan(n) or math.isnan(d)) else ""
    return f"{r['dataset']}{shape}"


def loop_title(g: pd.DataFrame) -> str:
    """``full batch`` or ``mini-batch SGD (batch …)`` of a group."""
    if (g["loop"] == "mini-batch").any():
        sizes = sorted({int(b) for b in g["batch_size"].dropna()})
        return "mini-batch SGD" + (f" (batch {', '.join(map(str, sizes))})" if sizes else "")
    return "full batch"


def groups(df: pd.DataFrame):
    """(dataset, loop) groups in the order they appear, full batch before mini-batch."""
    for ds in dict.fromkeys(df["dataset"]):
        for loop in ("full-batch", "mini-batch"):
            g = df[(df["dataset"] == ds) & (df["loop"] == loop)]
            if len(g):
                yield ds, loop, g
        other = df[(df["dataset"] == ds) & ~df["loop"].isin(["full-batch", "mini-batch"])]
        if len(other):
            yield ds, "other", other
