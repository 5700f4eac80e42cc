"""Input validation every backend shares, once, at the boundary (:meth:`Trainer.prepare` and
:meth:`Trainer.loss_and_grad` call it before a backend sees anything).

Each refusal is one ``ValueError`` that names the argument, what was expected and what came:
``check_inputs`` for ``(X, y, w0, b0)``, ``check_params`` for a ``loss_and_grad`` point, and the
pieces they are made of (``check_weights``/``check_bias`` for the binary model,
``check_class_weights``/``check_class_bias``/``check_labels`` for softmax). With a ``dtype``, values
beyond its largest finite number are refused too.

Sparse ``X``: a SciPy sparse matrix or array (:func:`is_sparse`) is accepted by ``check_inputs`` and
returned as a canonical ``scipy.sparse.csr_array`` (other formats converted; sorted indices, duplicates
summed; int32 indices where they fit), float64 or the given ``dtype``; its shape is checked as a dense
``X``'s, its stored values (``.data``) for finiteness and range. Whether a backend takes it is the
contract's business (:attr:`implementations.base.Trainer.supports_sparse`), not this module's.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import scipy.sparse


def is_sparse(X) -> bool:
    """True for a SciPy sparse matrix or array (any format), the one sparse type the contract takes."""
    return scipy.sparse.issparse(X)


def _check_matrix(X, kind: str, dtype_word: str) -> None:
    """``X`` (dense or sparse) is 2-D, real and has at least one row and one column; ValueError otherwise."""
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array of shape (n, d), got {kind} with {X.ndim} dimension(s), "
                         f"shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise ValueError(f"X must hold real numbers, got {dtype_word} {X.dtype}")
    n, d = X.shape
    if n < 1 or d < 1:
        raise ValueError(f"X must have at least one row and one column, got shape {X.shape}")


def _sparse_X(X):
    """A SciPy sparse ``X`` as a canonical ``csr_array`` (a copy: the caller's matrix is never touched)."""
    _check_matrix(X, "a sparse array", "sparse dtype")
    out = scipy.sparse.csr_array(X, dtype=np.float64, copy=True)
    if out.data.size and not np.all(np.isfinite(out.data)):
        bad = int(np.flatnonzero(~np.isfinite(out.data))[0])
        row = int(np.searchsorted(out.indptr, bad, side="right")) - 1
        raise ValueError(f"X must contain only finite values, got {out.data[bad]} at index "
                         f"({row}, {int(out.indices[bad])})")
    out.sum_duplicates()  # sorts the indices too: canonical CSR
    # int32 indices where they fit (scipy's default index type): half the bytes a step reads
    if max(out.nnz, X.shape[1]) < 2**31 - 1 and out.indices.dtype != np.int32:
        out.indices, out.indptr = out.indices.astype(np.int32), out.indptr.astype(np.int32)
    return out


def _shown(value) -> str:
    """``repr(value)``, cut short: a message quotes what came, not a whole array."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _real_array(name: str, value, expected: str) -> np.ndarray:
    """``value`` as a float64 NumPy array, or a ValueError naming ``name``: real numbers only (not
    strings, complex numbers, booleans, ``None`` or ragged nested lists)."""
    try:
        a = np.asarray(value)
    except (TypeError, ValueError):  # ragged nested sequences
        raise ValueError(f"{name} must be {expected}, got {_shown(value)}") from None
    if a.dtype == object and all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in a.flat):
        try:  # e.g. Fraction, Decimal, or Python ints too large for int64
            a = a.astype(np.float64)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{name} must be {expected} that fit in float64, got {_shown(value)}") from None
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        got = _shown(value) if a.ndim == 0 else f"dtype {a.dtype} ({_shown(value)})"
        raise ValueError(f"{name} must be {expected}, got {got}")
    return a.astype(np.float64)


def _check_finite(name: str, a: np.ndarray, dtype: str | None) -> None:
    if not np.all(np.isfinite(a)):
        if a.ndim == 0:
            raise ValueError(f"{name} must be finite, got {float(a)}")
        bad = np.argwhere(~np.isfinite(a))[0]
        where = int(bad[0]) if a.ndim == 1 else tuple(int(i) for i in bad)
        raise ValueError(f"{name} must contain only finite values, got {a[tuple(bad)]} at index {where}")
    if dtype is not None and a.size:
        big = float(np.finfo(dtype).max)
        top = float(np.max(np.abs(a)))
        if top > big:
            raise ValueError(f"{name} must fit in {dtype} (largest finite value {big:.4g}), got a value of "
                             f"magnitude {top:.4g}")


def check_weights(name: str, value, d: int, dtype: str | None = None) -> np.ndarray:
    """A weight vector (``w0`` for ``prepare``, ``w`` for ``loss_and_grad``) as float64 ``(d,)``.

    Shape ``(d,)``, or the seed's ``(1, d)`` row (``w ~ randn(1, 4)``) or a ``(d, 1)`` column; any
    other shape with ``d`` values, ``(2, 2)`` for ``d = 4`` say, is refused, not flattened."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be an array of shape ({d},) of real numbers, got {_shown(value)}")
    a = _real_array(name, value, f"an array of shape ({d},) of real numbers")
    if a.shape not in ((d,), (1, d), (d, 1)):
        raise ValueError(f"{name} must have shape ({d},) to match X's {d} columns, got shape {a.shape} "
                         f"(a (1, {d}) row or a ({d}, 1) column is taken as ({d},) too)")
    a = a.reshape(d)
    _check_finite(name, a, dtype)
    return a


def check_bias(name: str, value, dtype: str | None = None) -> float:
    """A bias (``b0`` for ``prepare``, ``b`` for ``loss_and_grad``) as a float: one real number
    (a Python or NumPy scalar, or a one-element array such as the seed's ``randn(1)``)."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a real number, got {_shown(value)}")
    a = _real_array(name, value, "a real number")
    if a.size != 1:
        raise ValueError(f"{name} must be a scalar, got an array of shape {a.shape}")
    a = a.reshape(())
    _check_finite(name, a, dtype)
    return float(a)


def check_class_weights(name: str, value, d: int, k: int, dtype: str | None = None) -> np.ndarray:
    """A softmax weight matrix (``w0`` for ``prepare``, ``w`` for ``loss_and_grad``) as float64
    ``(d, K)``; the binary model's ``(d,)`` vector (or any other shape) is refused with a message
    that says which model the config asks for."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be an array of shape ({d}, {k}) of real numbers, got {_shown(value)}")
    a = _real_array(name, value, f"an array of shape ({d}, {k}) of real numbers")
    if a.shape != (d, k):
        binary = a.shape in ((d,), (1, d), (d, 1))
        raise ValueError(f"{name} must have shape ({d}, {k}) (X's {d} columns by n_classes={k}), got shape {a.shape}"
                         + (": that is the binary model's weight vector; n_classes=2 takes it" if binary else ""))
    _check_finite(name, a, dtype)
    return a


def check_class_bias(name: str, value, k: int, dtype: str | None = None) -> np.ndarray:
    """A softmax bias (``b0``, ``b``) as float64 ``(K,)``; one number (the binary model's) is refused."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be an array of shape ({k},) of real numbers, got {_shown(value)}")
    a = _real_array(name, value, f"an array of shape ({k},) of real numbers")
    if a.shape != (k,):
        scalar = a.size == 1
        raise ValueError(f"{name} must have shape ({k},) (one bias per class, n_classes={k}), got shape {a.shape}"
                         + (": one number is the binary model's bias; n_classes=2 takes it" if scalar else ""))
    _check_finite(name, a, dtype)
    return a


def check_labels(y, k: int) -> np.ndarray:
    """K-class labels as int64: integer values (``2.0`` is accepted, ``0.5`` or ``True`` is not) in ``0 .. K-1``."""
    if y.dtype == bool or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise ValueError(f"y must hold integer class labels 0 .. {k - 1} (n_classes={k}), got dtype {y.dtype}")
    if np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y) | (y != np.round(y))
        if np.any(bad):
            shown = sorted(set(y[bad].tolist()), key=repr)[:5]
            raise ValueError(f"y must hold integer class labels 0 .. {k - 1} (n_classes={k}), got non-integer values "
                             f"{set(shown)}")
    out = np.where((y >= 0) & (y < k), y, -1).astype(np.int64)
    if np.any(out < 0):
        shown = sorted(set(np.asarray(y)[out < 0].tolist()))[:5]
        raise ValueError(f"y must contain only the labels 0 .. {k - 1} (n_classes={k}), got values {set(shown)}")
    return out


def _dense_X(X) -> np.ndarray:
    """A dense ``X`` as a float64 ``(n, d)`` array, or the ValueError that says what is wrong with it."""
    try:
        X = np.asarray(X)
    except (TypeError, ValueError):  # ragged rows
        raise ValueError(f"X must be a 2-D array of shape (n, d), got rows of different lengths "
                         f"({_shown(X)})") from None
    _check_matrix(X, "an array", "dtype")
    X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        bad = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(f"X must contain only finite values, got {X[tuple(bad)]} "
                         f"at index {tuple(int(i) for i in bad)}")
    return X


def check_inputs(X, y, w0, b0, dtype: str | None = None, n_classes: int = 2):
    """Validate host inputs once, at the boundary; return float64 copies ``(X, y, w0, b0)``.
    With ``dtype``, values beyond that dtype's largest finite number are refused too.
    ``n_classes = K >= 3`` (softmax): ``y`` integer labels ``0 .. K-1``, returned as int64;
    ``w0`` ``(d, K)`` and ``b0`` ``(K,)`` float64. A sparse ``X`` (:func:`is_sparse`) comes back as a
    canonical ``scipy.sparse.csr_array`` (module docstring): float64, or ``dtype`` when one is given
    (checked against its range in float64 first, then cast once, here)."""
    if is_sparse(X):
        X = _sparse_X(X)
    elif isinstance(X, (str, bytes)):
        raise ValueError(f"X must be a 2-D array of shape (n, d), got {_shown(X)}")
    else:
        X = _dense_X(X)
    n, d = X.shape
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},) to match X's {n} rows, got shape {y.shape}")
    if n_classes >= 3:
        y = check_labels(y, n_classes)
        w0 = check_class_weights("w0", w0, d, n_classes)
        b0 = check_class_bias("b0", b0, n_classes)
    else:
        try:
            values = set(np.unique(y).tolist())
        except TypeError:
            values = {repr(v) for v in y}
        if not values <= {0, 1}:
            shown = sorted(values - {0, 1}, key=repr)[:5]
            raise ValueError(f"y must contain only 0 and 1, got values {set(shown)}"
                             + (" (for K classes set n_classes=K)" if all(
                                 isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                                 and float(v).is_integer() and v >= 0 for v in values) else ""))
        y = y.astype(np.float64)
        w0 = check_weights("w0", w0, d)
        b0 = check_bias("b0", b0)
    if dtype is not None:
        big = float(np.finfo(dtype).max)
        for name, a in (("X", X.data if is_sparse(X) else X), ("w0", w0), ("b0", np.asarray(b0))):
            top = float(np.max(np.abs(a))) if a.size else 0.0
            if top > big:
                raise ValueError(f"{name} must fit in {dtype} (largest finite value {big:.4g}), got a value of "
                                 f"magnitude {top:.4g}")
        if is_sparse(X):
            X = X.astype(dtype, copy=False)  # the backend's dtype, once (a dense X stays float64, as it always has)
    return X, y, w0, b0


def check_params(w, b, d: int, dtype: str | None = None, n_classes: int = 2):
    """Validate a parameter point for ``loss_and_grad`` as ``prepare`` validates ``(w0, b0)``: ``w``
    real, finite, of shape ``(d,)`` (or ``(1, d)`` / ``(d, 1)``), ``b`` one real finite number, both
    within ``dtype``. Returns ``(w, b)`` as float64 ``(d,)`` and float. ``n_classes = K >= 3``:
    ``w`` ``(d, K)``, ``b`` ``(K,)``."""
    if n_classes >= 3:
        return check_class_weights("w", w, d, n_classes, dtype), check_class_bias("b", b, n_classes, dtype)
    return check_weights("w", w, d, dtype), check_bias("b", b, dtype)
