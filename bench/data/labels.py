"""A file's labels mapped to class indices: two values to 0/1 in sorted order (the sigmoid model),
``K >= 3`` values to ``0 .. K-1`` (softmax), or one value against the rest (``positive``); every
refusal names the file, the column and the values it holds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .dataset import DataFileError


def python_scalar(v):
    """A NumPy scalar as the Python value it holds (``np.float64(1.0)`` -> ``1.0``); others as they are."""
    return v.item() if isinstance(v, np.generic) else v


def _text(v) -> str:
    """A label value as text (env.json's keys, --positive's match): 1.0 -> '1', 'yes' -> 'yes'."""
    v = python_scalar(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _show(v) -> str:
    """A label value in a message: text quoted, numbers and booleans bare."""
    return repr(python_scalar(v)) if isinstance(python_scalar(v), str) else _text(v)


def _counts(values, counts) -> str:
    parts = [f"{_show(v)}: {c}" for v, c in zip(values, counts, strict=True)]
    return ", ".join(parts[:10]) + (f", ... ({len(parts) - 10} more)" if len(parts) > 10 else "")


def _matches(v, positive: str) -> bool:
    v = python_scalar(v)
    if _text(v) == positive or str(v) == positive or (isinstance(v, bool) and str(v).lower() == positive.lower()):
        return True
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        try:
            return float(positive) == float(v)
        except ValueError:
            return False
    return False


def binary_labels(path: str, raw, what: str, positive: str | None = None) -> tuple[np.ndarray, dict]:
    """Labels of any kind -> float64 class indices and the mapping (value shown -> index). Two
    distinct values map to 0/1 in sorted order (the sigmoid model); ``K >= 3`` values to ``0 .. K-1``
    in sorted order (the softmax model, ``info["n_classes"] = K``); ``positive`` maps that value to 1
    and every other to 0 (one-vs-rest, binary)."""
    s = pd.Series(np.asarray(raw).ravel() if not isinstance(raw, pd.Series) else raw)
    if s.isna().any() or (pd.api.types.is_float_dtype(s) and not np.isfinite(s.to_numpy(float)).all()):
        bad = int(s.isna().sum()) if s.isna().any() else int((~np.isfinite(s.to_numpy(float))).sum())
        raise DataFileError(f"{path}: {bad} missing or non-finite values in {what}")
    counts = s.value_counts(sort=False)
    values = list(counts.index)
    try:
        order = sorted(range(len(values)), key=lambda i: values[i])
    except TypeError:  # mixed kinds: by their text
        order = sorted(range(len(values)), key=lambda i: str(values[i]))
    values, cnt = [values[i] for i in order], [int(counts.iloc[i]) for i in order]
    if positive is not None:
        hit = [v for v in values if _matches(v, positive)]
        if not hit:
            raise DataFileError(f"{path}: --positive {positive!r} is not a value of {what} (values: "
                                f"{_counts(values, cnt)})")
        if len(values) == 1:
            raise DataFileError(f"{path}: one class only: all {len(s)} rows have {_show(values[0])} in {what}")
        pos = hit[0]
        y = (s == pos).to_numpy(np.float64)
        rest = [_text(v) for v in values if not (v == pos)]
        return y, {"positive": _text(pos), "mapping": {**{r: 0 for r in rest}, _text(pos): 1}}
    if len(values) == 1:
        raise DataFileError(f"{path}: one class only: all {len(s)} rows have {_show(values[0])} in {what}")
    if len(values) > 2:  # K classes: softmax regression (or --positive VALUE for one-vs-rest)
        index = {v: i for i, v in enumerate(values)}
        y = s.map(index).to_numpy(np.float64)
        return y, {"mapping": {_text(v): i for i, v in enumerate(values)}, "n_classes": len(values),
                   "class_counts": {_text(v): c for v, c in zip(values, cnt, strict=True)}}
    y = (s == values[1]).to_numpy(np.float64)
    return y, {"mapping": {_text(values[0]): 0, _text(values[1]): 1}}
