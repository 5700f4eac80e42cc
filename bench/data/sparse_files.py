"""The sparse side of the data files: LIBSVM/svmlight read into CSR, ``scipy.sparse.save_npz`` files
with their labels, the memory a CSR matrix takes, ``--dense`` and its memory check, and what a
sparse matrix read from a file is checked for (finite values, at least one non-zero) and counted
for (empty rows and columns). :mod:`.files` calls these; the module's docstring there says the rules.
"""

from __future__ import annotations

import functools
import zipfile

import numpy as np
import scipy.sparse

from .. import roofline
from .dataset import DataFileError
from .labels import binary_labels

SPARSE_BYTES = 8 + 4  # a CSR non-zero: its float64 value and its int32 column index
SPARSE_KEYS = ("data", "indices", "indptr", "shape")  # scipy.sparse.save_npz's arrays (and "format")


def sparse_bytes(n: int, nnz: int) -> int:
    """Bytes of a float64 CSR matrix with ``nnz`` non-zeros and ``n`` rows (int32 indices, int64 indptr)."""
    return SPARSE_BYTES * nnz + 8 * (n + 1)


def npz_sparse_peek(path: str, shapes: dict) -> tuple[int, int, int]:
    """``(n, d, nnz)`` of a sparse ``.npz`` from its arrays' headers and its ``shape``; DataFileError
    naming what is missing (the labels ``y`` above all)."""
    missing = [k for k in (*SPARSE_KEYS, "y") if k not in shapes]
    if "y" in missing and len(missing) == 1:
        raise DataFileError(f"{path}: a scipy.sparse.save_npz file without labels: add them as array 'y' in the "
                            "same file, e.g. np.savez(path, **dict(np.load(path)), y=y)")
    if missing:
        raise DataFileError(f"{path}: a sparse .npz needs arrays {', '.join(SPARSE_KEYS)}, format and y; missing "
                            f"{', '.join(missing)}")
    with np.load(path, allow_pickle=False) as z:
        shape = tuple(int(v) for v in z["shape"])
    if len(shape) != 2:
        raise DataFileError(f"{path}: the sparse matrix must be 2-D (n, d), got shape {shape}")
    return shape[0], shape[1], int(np.prod(shapes["data"]))


@functools.lru_cache(maxsize=2)
def svmlight(path: str, key: tuple, n_features: int | None = None):
    from sklearn.datasets import load_svmlight_file

    try:
        Xs, y = load_svmlight_file(path, dtype=np.float64)
    except OverflowError:  # scikit-learn keeps feature indices in 32 bits
        raise DataFileError(f"{path}: a feature index is too large for LIBSVM/svmlight (at least 2^31 = "
                            f"{2**31}); indices must be below it (number the features 1, 2, ...)") from None
    except ValueError as exc:
        if "2147483647" in str(exc) or "overflow" in str(exc).lower():
            raise DataFileError(f"{path}: a feature index is too large for LIBSVM/svmlight (at least 2^31 = "
                                f"{2**31}); indices must be below it (number the features 1, 2, ...)") from None
        raise DataFileError(f"{path}: cannot be parsed as LIBSVM/svmlight ({type(exc).__name__}: {exc}); "
                            "expected lines like '1 3:0.5 7:1'") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: cannot be parsed as LIBSVM/svmlight ({type(exc).__name__}: {exc}); "
                            "expected lines like '1 3:0.5 7:1'") from None
    if n_features is not None:
        if Xs.shape[1] > n_features:
            beyond = int(Xs.indices.max())  # scikit-learn numbers from 0 here: the file's index is this + 1
            raise DataFileError(f"{path}: feature index {beyond + 1} is beyond the declared width "
                                f"n-features={n_features} (--n-features); give the width of the widest file, "
                                "or leave it out to take the largest index")
        Xs = scipy.sparse.csr_matrix((Xs.data, Xs.indices, Xs.indptr), shape=(Xs.shape[0], n_features))
    return Xs, y


def check_dense(path: str, n: int, d: int, nnz: int) -> None:
    """``--dense`` on a sparse set: refused, naming the figure, where its dense float64 form (and the
    working copy made while densifying) would not fit in the memory available."""
    limit = roofline.available_memory_bytes()
    need = 8 * n * d * 2
    if limit is not None and need > limit:
        raise DataFileError(f"{path}: --dense would make {n} x {d} (density {nnz / max(1, n * d):.3g}) a dense "
                            f"float64 array of {8 * n * d / 2**30:.1f} GiB (about {need / 2**30:.1f} GiB while "
                            f"densifying), more than the {limit / 2**30:.1f} GiB of memory available; drop --dense "
                            "to keep it sparse (CSR)")


def sparse_info(path: str, Xs, dense: bool) -> tuple:
    """A sparse matrix read from a file, checked (values finite, at least one non-zero) and counted
    (empty rows and columns, density); densified where ``dense`` (after :func:`check_dense`)."""
    Xs = scipy.sparse.csr_array(Xs, dtype=np.float64)
    Xs.eliminate_zeros()
    n, d = Xs.shape
    if n == 0 or d == 0:
        raise DataFileError(f"{path}: no data rows")
    if not np.isfinite(Xs.data).all():
        per = np.bincount(Xs.indices[~np.isfinite(Xs.data)], minlength=d)
        cols = [f"'feature {j + 1}' ({int(per[j])})" for j in np.flatnonzero(per)]
        shown = ", ".join(cols[:10]) + (f", ... ({len(cols) - 10} more columns)" if len(cols) > 10 else "")
        raise DataFileError(f"{path}: {int(per.sum())} missing or non-finite values (empty, NaN or inf) in "
                            f"column{'s' if len(cols) > 1 else ''} {shown}")
    if Xs.nnz == 0:
        raise DataFileError(f"{path}: every feature value is zero ({n} rows, no non-zero value): nothing to learn from")
    info = {"density": Xs.nnz / (n * d), "empty_rows": int(np.count_nonzero(np.diff(Xs.indptr) == 0)),
            "empty_columns": int(d - np.count_nonzero(np.bincount(Xs.indices, minlength=d)))}
    if dense:
        check_dense(path, n, d, Xs.nnz)
        return np.ascontiguousarray(Xs.toarray(), dtype=np.float64), {**info, "densified": True}
    return Xs, info


def from_sparse_npz(path: str, positive: str | None, many_classes: bool = False, dense: bool = False):
    try:
        Xs = scipy.sparse.load_npz(path)
        with np.load(path, allow_pickle=False) as z:
            y = z["y"]
    except (ValueError, OSError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise DataFileError(f"{path}: cannot be read as a scipy.sparse.save_npz file with y "
                            f"({type(exc).__name__}: {exc})") from None
    if y.ndim == 2 and 1 in y.shape:
        y = y.ravel()
    if y.ndim != 1 or len(y) != Xs.shape[0]:
        raise DataFileError(f"{path}: y must be 1-D with one label per row of the matrix ({Xs.shape[0]}), got "
                            f"shape {y.shape}")
    X, info = sparse_info(path, Xs, dense)
    y, labels = binary_labels(path, y, "y", positive, many_classes)
    return X, y, {**labels, **info}


