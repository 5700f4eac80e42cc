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


def _strip_text(path: str, s: pd.Series, what: str) -> pd.Series:
    """Text labels with the whitespace at both ends removed; refused when two of them differ only by
    that whitespace or by case (``'yes'`` and ``'yes '``, ``'Yes'`` and ``'yes'``): one class or two
    is the user's to say, not ours to guess."""
    text = s.map(lambda v: isinstance(v, str))
    if not text.any():
        return s
    groups: dict = {}
    for v in s[text].unique():
        groups.setdefault(v.strip().casefold(), []).append(v)
    clashes = [sorted(vs) for vs in groups.values() if len(vs) > 1]
    if clashes:
        shown = "; ".join(" and ".join(repr(v) for v in vs) for vs in clashes[:3])
        more = f" (and {len(clashes) - 3} more such groups)" if len(clashes) > 3 else ""
        raise DataFileError(f"{path}: labels in {what} that differ only by whitespace or case: {shown}{more}; "
                            "write each class one way (or give them distinct names)")
    return s.where(~text, s[text].str.strip())


def _many_classes(path: str, values, n: int, what: str) -> None:
    """Refuse labels that look like a continuous quantity, or that make nearly every row its own class
    (more classes than half the rows): a softmax over them learns nothing one would want."""
    k = len(values)
    if k < 3:
        return
    numbers = [python_scalar(v) for v in values if isinstance(python_scalar(v), (int, float))
               and not isinstance(python_scalar(v), bool)]
    fractional = sum(isinstance(v, float) and not v.is_integer() for v in numbers)
    if k > n / 2:
        why = f"{k} distinct values over {n} rows: nearly every row would be its own class"
    elif fractional and k > 10:
        why = f"{k} distinct values, {fractional} of them fractional: it looks continuous, not a class"
    else:
        return
    shown = ", ".join(_show(v) for v in values[:5]) + (", ..." if k > 5 else "")
    raise DataFileError(f"{path}: {what} has {why} (values {shown}); name the class column with --label, "
                        "or pass --allow-many-classes to train a softmax over them anyway")


def binary_labels(path: str, raw, what: str, positive: str | None = None,
                  allow_many_classes: bool = False) -> tuple[np.ndarray, dict]:
    """Labels of any kind -> float64 class indices and the mapping (value shown -> index). Two
    distinct values map to 0/1 in sorted order (the sigmoid model); ``K >= 3`` values to ``0 .. K-1``
    in sorted order (the softmax model, ``info["n_classes"] = K``); ``positive`` maps that value to 1
    and every other to 0 (one-vs-rest, binary). Text labels lose the whitespace at both ends; two that
    differ only by it or by case are refused. ``K >= 3`` labels that look continuous (more than 10
    values, some fractional) or give more classes than half the rows are refused unless
    ``allow_many_classes``."""
    s = pd.Series(np.asarray(raw).ravel() if not isinstance(raw, pd.Series) else raw)
    if s.isna().any() or (pd.api.types.is_float_dtype(s) and not np.isfinite(s.to_numpy(float)).all()):
        bad = int(s.isna().sum()) if s.isna().any() else int((~np.isfinite(s.to_numpy(float))).sum())
        raise DataFileError(f"{path}: {bad} missing or non-finite values in {what}")
    s = _strip_text(path, s, what)
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
    if not allow_many_classes:
        _many_classes(path, values, len(s), what)
    if len(values) > 2:  # K classes: softmax regression (or --positive VALUE for one-vs-rest)
        index = {v: i for i, v in enumerate(values)}
        y = s.map(index).to_numpy(np.float64)
        return y, {"mapping": {_text(v): i for i, v in enumerate(values)}, "n_classes": len(values),
                   "class_counts": {_text(v): c for v, c in zip(values, cnt, strict=True)}}
    y = (s == values[1]).to_numpy(np.float64)
    return y, {"mapping": {_text(values[0]): 0, _text(values[1]): 1}}
