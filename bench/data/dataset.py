"""The dataset record every backend of a comparison receives, the error a bad data file raises,
and the preparation shared by every source: standardization, the initial-weight scale, and what
env.json and the console keep of a dataset."""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse


@dataclass(frozen=True)
class Dataset:
    name: str
    X: np.ndarray  # (n, d) float64 host array, or a canonical float64 scipy.sparse.csr_array (storage "csr")
    y: np.ndarray  # (n,) float64 in {0, 1}
    init_scale: float = 1.0  # w0 ~ init_scale * N(0, 1)
    origin: str = ""  # where the arrays came from (a loader and its arguments, or a file's format and path)
    density: float | None = None  # fraction of non-zero entries of X (files only)
    info: dict = field(default_factory=dict, compare=False)  # label column, label mapping, standardization
    n_classes: int = 2  # 2: y in {0, 1} (the sigmoid model); K >= 3: y in 0 .. K-1 as float64 (softmax)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

    @property
    def storage(self) -> str:
        """``csr`` for a sparse ``X`` (kept as SciPy CSR), else ``dense``."""
        return "csr" if scipy.sparse.issparse(self.X) else "dense"

    @property
    def nnz(self) -> int:
        """Stored non-zeros of a sparse ``X``; the non-zero entries of a dense one."""
        return int(self.X.nnz) if scipy.sparse.issparse(self.X) else int(np.count_nonzero(self.X))

    @functools.cached_property
    def sha256(self) -> str:
        """The content hash of the final arrays (shape, then ``X`` and ``y`` as C-ordered float64; a
        sparse ``X`` as ``csr`` and its canonical CSR arrays: indptr, indices as int64, values)."""
        h = hashlib.sha256(f"{self.X.shape[0]}x{self.X.shape[1]}".encode())
        if scipy.sparse.issparse(self.X):
            h.update(b"csr")
            for a in (self.X.indptr.astype(np.int64), self.X.indices.astype(np.int64),
                      np.ascontiguousarray(self.X.data, dtype=np.float64)):
                h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
        else:
            h.update(memoryview(np.ascontiguousarray(self.X, dtype=np.float64)).cast("B"))
        h.update(memoryview(np.ascontiguousarray(self.y, dtype=np.float64)).cast("B"))
        return h.hexdigest()


class DataFileError(ValueError):
    """A dataset file that cannot be used: the message names the file and what is wrong."""


def rms_init_scale(X: np.ndarray) -> float:
    """``1/sqrt(mean ||x_i||²)``: with ``w0 ~ s N(0, I)`` the logits ``z = X w0`` start with unit
    root-mean-square whatever the features' scale (``1/sqrt(d)`` on standardized data, as synthetic)."""
    if scipy.sparse.issparse(X):
        ms = float(np.sum(np.square(X.data)) / X.shape[0]) if X.shape[0] else 0.0
    else:
        ms = float(np.mean(np.einsum("ij,ij->i", X, X))) if X.size else 0.0
    return 1.0 / math.sqrt(ms) if ms > 0 and math.isfinite(ms) else 1.0


def standardize(X: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Each feature to zero mean and unit variance; constant columns left as they are. Returns the
    new array and the constant columns' indices."""
    const = np.ptp(X, axis=0) == 0 if len(X) else np.ones(X.shape[1], bool)
    out = X.copy()
    keep = ~const
    if keep.any():
        mu, sd = X[:, keep].mean(axis=0), X[:, keep].std(axis=0)
        out[:, keep] = (X[:, keep] - mu) / sd
    return out, [int(j) for j in np.flatnonzero(const)]


def scale_columns(X) -> tuple[scipy.sparse.csr_array, list[int]]:
    """A sparse ``X``'s columns to unit variance, not centred (centring would fill in every zero); the
    constant columns (variance 0: all zero, or one value throughout) left as they are."""
    n = X.shape[0]
    mean = np.asarray(X.sum(axis=0)).ravel() / n
    var = np.asarray(X.multiply(X).sum(axis=0)).ravel() / n - mean ** 2
    const = ~(var > 1e-300)
    factor = np.where(const, 1.0, 1.0 / np.sqrt(np.where(const, 1.0, var)))
    out = X.copy()
    out.data *= factor[out.indices]
    return out, [int(j) for j in np.flatnonzero(const)]


def as_sparse(X) -> scipy.sparse.csr_array:
    """A SciPy sparse ``X`` as a canonical float64 ``csr_array`` (sorted indices, duplicates summed)."""
    X = scipy.sparse.csr_array(X, dtype=np.float64)
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return X


def finish(name: str, X, y, origin: str, density, info: dict, std: bool, init_scale=None) -> Dataset:
    """The final :class:`Dataset`: contiguous float64 arrays (a SciPy sparse ``X``: a canonical
    float64 CSR array), standardized if ``std`` (the constant columns recorded in ``info``; sparse:
    scaled only), ``init_scale`` from :func:`rms_init_scale` unless given."""
    y = np.ascontiguousarray(y, dtype=np.float64)
    if scipy.sparse.issparse(X):
        X = as_sparse(X)
        if std:
            X, const = scale_columns(X)
            info = {**info, "standardized": "scaled (sparse: unit variance, not centred)", "constant_columns": const}
            origin += ", scaled to unit variance"
            std = False
    else:
        X = np.ascontiguousarray(X, dtype=np.float64)
    if std:
        X, const = standardize(X)
        info = {**info, "standardized": True, "constant_columns": const}
        origin += ", standardized"
    scale = rms_init_scale(X) if init_scale is None else init_scale
    return Dataset(name, X, y, scale, origin, density, info, n_classes=int(info.get("n_classes", 2)))


def describe(ds: Dataset) -> dict:
    """What env.json keeps of a dataset: origin, shape, content hash, labels, preparation."""
    return {"origin": ds.origin, "n": ds.n, "d": ds.d, "sha256": ds.sha256, "density": ds.density,
            "storage": ds.storage, "nnz": ds.nnz, **ds.info}


def _label(key: str) -> str:
    """A label value of a mapping (its text) as the console shows it: numbers and booleans bare, text
    quoted with ``repr`` so that whitespace shows (``'yes'``, not ``yes``)."""
    try:
        float(key)
        return key
    except ValueError:
        return key if key in ("True", "False") else repr(key)


def summary(ds: Dataset) -> str:
    """One line for the console: shape, density, label mapping."""
    info = ds.info
    parts = [f"{ds.n} rows x {ds.d} features"]
    if ds.storage == "csr":
        parts.append(f"sparse (CSR), {ds.nnz} non-zeros, density {ds.density:.3g}")
    elif ds.density is not None and (info.get("format") == "svmlight" or info.get("densified")):
        parts.append(f"density {ds.density:.3g}, densified (--dense)")
    for key, what in (("empty_rows", "empty row(s): only the bias sees them"),
                      ("empty_columns", "empty column(s): their weights move only by the penalty")):
        if info.get(key):
            parts.append(f"{info[key]} {what}")
    if "label_column" in info:
        parts.append(f"label column {info['label_column']!r}")
    if "mapping" in info:
        mapping = info["mapping"]
        if "positive" in info:
            rest = [k for k, v in mapping.items() if v == 0]
            parts.append(f"labels {_label(info['positive'])} -> 1, the rest ({', '.join(map(_label, rest))}) -> 0")
        else:
            parts.append("labels " + ", ".join(f"{_label(k)} -> {v}" for k, v in mapping.items()))
    if info.get("standardized"):
        const = info.get("constant_columns") or []
        parts.append("standardized" + (f" ({len(const)} constant column(s) left as they are)" if const else ""))
    return f"dataset {ds.name}: " + "; ".join(parts)
