"""Data files: CSV/TSV (optionally compressed), Parquet, NumPy ``.npz`` and LIBSVM/svmlight.

LIBSVM files and sparse ``.npz`` files (``scipy.sparse.save_npz``'s arrays ``data``, ``indices``,
``indptr``, ``shape``, ``format`` plus the labels ``y`` in the same file) stay sparse: a canonical
float64 CSR array, checked against the memory by their non-zeros; ``dense`` (``--dense``) makes
them a dense array, refused where that would not fit. A LIBSVM file's width is its largest
feature index, or ``n-features=D`` (``--n-features``), which must hold every index. Empty rows
and columns are counted and shown (a LIBSVM file of text often has some); a file with no
non-zero value at all is refused.

Before a file is loaded, :func:`check_file` looks at it cheaply (the file there and readable, not
empty, its label column, its size from the header and line count or the file's metadata, against
the memory available); :func:`load_file` then reads it into float64 arrays. Every way a file can be
wrong raises one :class:`DataFileError` naming the file and what is wrong. scikit-learn (LIBSVM) and
pyarrow (Parquet) are imported when such a file is read.
"""

from __future__ import annotations

import bz2
import csv
import functools
import gzip
import io
import lzma
import os
import re
import warnings
import zipfile
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import roofline
from .dataset import DataFileError, Dataset, finish
from .labels import binary_labels, python_scalar
from .names import LABEL_NAMES, TABLES, Source
from .sparse_files import check_dense, from_sparse_npz, npz_sparse_peek, sparse_bytes, sparse_info, svmlight

LOAD_COPIES = 3  # a file's float64 array, the table it came from and a working copy (standardize, checks)


# -- a file's size before loading it ------------------------------------------------------------

def stat_key(path: str) -> tuple:
    """A file's identity for the caches: path, size and modification time (a rewritten file reloads)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not os.path.isfile(path):
        raise DataFileError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise DataFileError(f"{path}: cannot be read (permission denied)")
    if st.st_size == 0:
        raise DataFileError(f"{path}: the file is empty")
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _zip_member(path: str) -> str:
    """The one data file of a ``.zip``; DataFileError naming the file when it holds none or several."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if not m.endswith("/")]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataFileError(f"{path}: cannot be read as .zip ({type(exc).__name__}: {exc})") from None
    if len(members) != 1:
        shown = ", ".join(repr(m) for m in members[:5]) + (f" ... ({len(members)} files)" if len(members) > 5 else "")
        raise DataFileError(f"{path}: a .zip data file must hold exactly one file, this one holds "
                            f"{len(members)}{': ' + shown if members else ''}; zip one table alone")
    return members[0]


def _open_text(path: str):
    low = path.lower()
    if low.endswith(".gz"):
        return gzip.open(path, "rt", newline="")
    if low.endswith(".bz2"):
        return bz2.open(path, "rt", newline="")
    if low.endswith(".xz"):
        return lzma.open(path, "rt", newline="")
    if low.endswith(".zip"):
        zf = zipfile.ZipFile(path)
        return io.TextIOWrapper(zf.open(_zip_member(path)), newline="")
    return open(path, newline="")


def _count_lines(path: str) -> int:
    """Non-empty lines of a (possibly compressed) text file, streamed: nothing is kept."""
    n = 0
    try:
        with _open_text(path) as fh:
            for line in fh:
                if line.strip():
                    n += 1
    except (OSError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    return n


def _sep(fmt: str) -> str:
    return "\t" if fmt == "tsv" else ","


def _numeric_names(columns) -> bool:
    """A header row of numbers only is no header: the first line is data."""
    def number(c):
        try:
            float(str(c))
            return True
        except ValueError:
            return False
    return len(columns) > 0 and all(number(c) for c in columns)


def _read_table(path: str, fmt: str, nrows: int | None = None):
    """A CSV/TSV file as a DataFrame (header by default; a first line of numbers only is data).
    Ragged rows (more fields than the header) raise :class:`DataFileError`."""
    if path.lower().endswith(".zip"):
        _zip_member(path)  # pandas reads a one-file archive; several files: say which archive
    def read(header):
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, sep=_sep(fmt), header=header, index_col=False, nrows=nrows,
                               skipinitialspace=True)
    try:
        df = read(0)
        if _numeric_names(df.columns):
            df = read(None)
            df.columns = [f"column {i}" for i in range(df.shape[1])]
    except pd.errors.EmptyDataError:
        raise DataFileError(f"{path}: the file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m:
            raise DataFileError(f"{path}: ragged rows: line {m.group(2)} has {m.group(3)} fields where the first "
                                f"line has {m.group(1)}") from None
        if isinstance(exc, pd.errors.ParserWarning):
            raise DataFileError(f"{path}: ragged rows: the data lines have more fields than the header") from None
        raise DataFileError(f"{path}: cannot be parsed as {fmt.upper()} ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFileError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    return df


def _first_short_row(path: str, fmt: str) -> str | None:
    """The first line with fewer fields than the first line (pandas fills those with NaN), as text."""
    try:
        with _open_text(path) as fh:
            rows = csv.reader(fh, delimiter=_sep(fmt), skipinitialspace=True)
            width = None
            for i, row in enumerate(rows, 1):
                if not row or not any(c.strip() for c in row):
                    continue
                if width is None:
                    width = len(row)
                elif len(row) != width:
                    return f"line {i} has {len(row)} fields where the first line has {width}"
    except (OSError, csv.Error, UnicodeDecodeError, EOFError):
        return None
    return None


def _parquet_meta(path: str):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataFileError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow "
                            "(or pip install -e '.[data]')") from None
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow.ArrowInvalid and friends: not a Parquet file
        raise DataFileError(f"{path}: cannot be read as Parquet ({type(exc).__name__}: {exc})") from None


def _npy_shape(zf: zipfile.ZipFile, member: str) -> tuple:
    with zf.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, _ = read(fh)
    return shape


def npz_shapes(path: str) -> dict[str, tuple]:
    """Array name -> shape of an ``.npz`` file, from the headers alone."""
    try:
        with zipfile.ZipFile(path) as zf:
            return {m[:-4]: _npy_shape(zf, m) for m in zf.namelist() if m.endswith(".npy")}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataFileError(f"{path}: cannot be read as .npz ({type(exc).__name__}: {exc})") from None


def _label_column(path: str, columns, label: str | None) -> str:
    columns = [str(c) for c in columns]
    if label is not None:
        if label not in columns:
            shown = ", ".join(repr(c) for c in columns[:20]) + (f" ... ({len(columns)} columns)"
                                                                 if len(columns) > 20 else "")
            raise DataFileError(f"{path}: no label column {label!r} (--label); the columns are {shown}")
        return label
    for want in LABEL_NAMES:
        for c in columns:
            if c == want:
                return c
    for want in LABEL_NAMES:
        for c in columns:
            if c.strip().lower() == want:
                return c
    return columns[-1]


@dataclass(frozen=True)
class Peek:
    n: int  # rows (an estimate where ``exact`` is False)
    d: int  # features
    exact: bool
    nnz: int | None = None  # stored non-zeros of a sparse file (LIBSVM, sparse .npz), None for a dense one


@functools.lru_cache(maxsize=64)
def _peek(src: Source, key: tuple) -> Peek:
    path, fmt = src.base, src.format
    if fmt in ("csv", "tsv"):
        head = _read_table(path, fmt, nrows=100)
        if head.shape[1] < 2:
            raise DataFileError(f"{path}: one column only ({str(head.columns[0])!r}): a data file needs at least one "
                                "feature column and a label column")
        _label_column(path, head.columns, src.label)
        headerless = str(head.columns[0]) == "column 0"
        return Peek(max(0, _count_lines(path) - (0 if headerless else 1)), head.shape[1] - 1, False)
    if fmt == "parquet":
        pf = _parquet_meta(path)
        names = pf.schema_arrow.names
        if len(names) < 2:
            raise DataFileError(f"{path}: one column only: a data file needs at least one feature column and a label "
                                "column")
        _label_column(path, names, src.label)
        return Peek(pf.metadata.num_rows, len(names) - 1, True)
    if fmt == "npz":
        shapes = npz_shapes(path)
        if "X" not in shapes and "indptr" in shapes:
            n, d, nnz = npz_sparse_peek(path, shapes)
            return Peek(n, d, True, nnz)
        for arr in ("X", "y"):
            if arr not in shapes:
                raise DataFileError(f"{path}: no array {arr!r}; the file holds {sorted(shapes) or 'no arrays'} "
                                    "(save with np.savez(path, X=X, y=y))")
        sx = shapes["X"]
        if len(sx) != 2:
            raise DataFileError(f"{path}: X must be 2-D (n, d), got shape {tuple(sx)}")
        return Peek(sx[0], sx[1], True)
    # svmlight: the sparse matrix is read now (a few bytes per stored value, less than the dense one)
    _check_memory(path, 3 * key[1], "to read it as a sparse matrix")
    Xs, _ = svmlight(path, key, src.n_features)
    return Peek(Xs.shape[0], Xs.shape[1], True, int(Xs.nnz))


def _check_memory(path: str, need: int, what: str) -> None:
    limit = roofline.available_memory_bytes()
    if limit is not None and need > limit:
        raise DataFileError(f"{path}: needs about {need / 2**30:.1f} GiB {what}, more than the "
                            f"{limit / 2**30:.1f} GiB of memory available")


def check_file(src: Source) -> tuple[int, int]:
    """The cheap checks of a data file (see the module's docstring); ``(n, d)``, an estimate for CSV/TSV.
    A sparse file is checked by its non-zeros, never by ``n x d`` (unless ``dense`` is asked)."""
    p = _peek(src, stat_key(src.base))
    if p.n == 0:
        raise DataFileError(f"{src.base}: no data rows")
    if p.nnz is not None:
        if src.dense:
            check_dense(src.base, p.n, p.d, p.nnz)
        else:
            _check_memory(src.base, LOAD_COPIES * sparse_bytes(p.n, p.nnz),
                          f"to load {p.n} rows x {p.d} features with {p.nnz} non-zeros as float64 CSR")
        return p.n, p.d
    _check_memory(src.base, LOAD_COPIES * 8 * p.n * (p.d + 1),
                  f"to load {'about ' if not p.exact else ''}{p.n} rows x {p.d} features as float64")
    return p.n, p.d


def file_nnz(src: Source) -> int | None:
    """Stored non-zeros of a sparse file (LIBSVM, sparse ``.npz``) kept sparse, else None."""
    if src.dense or src.format not in ("svmlight", "npz"):
        return None
    return _peek(src, stat_key(src.base)).nnz


def file_shape(src: Source) -> tuple[int, int]:
    """``(n, d)`` of a data file: exact once it is loaded, an estimate before (CSV/TSV: from the line count)."""
    key = stat_key(src.base)
    known = _SHAPES.get((src, key))
    if known is not None:
        return known
    p = _peek(src, key)
    return p.n, p.d


_SHAPES: dict = {}  # (Source, stat key) -> exact (n, d) of a loaded file


# -- loading ------------------------------------------------------------------------------------

def _non_finite(path: str, X: np.ndarray, columns) -> None:
    bad = ~np.isfinite(X)
    if bad.any():
        _refuse_non_finite(path, bad.sum(axis=0), columns)


def _refuse_non_finite(path: str, per: np.ndarray, columns) -> None:
    """``per[j]`` missing or non-finite values in column ``j``: one message with the count and the columns."""
    cols = [f"{columns[j]!r} ({int(per[j])})" if isinstance(columns[j], str) else f"{columns[j]} ({int(per[j])})"
            for j in np.flatnonzero(per)]
    shown = ", ".join(cols[:10]) + (f", ... ({len(cols) - 10} more columns)" if len(cols) > 10 else "")
    raise DataFileError(f"{path}: {int(per.sum())} missing or non-finite values (empty, NaN or inf) in "
                        f"column{'s' if len(cols) > 1 else ''} {shown}")


def from_table(path: str, fmt: str, label: str | None, positive: str | None, many_classes: bool = False):
    if fmt == "parquet":
        _parquet_meta(path)
        try:
            df = pd.read_parquet(path)
        except Exception as exc:
            raise DataFileError(f"{path}: cannot be read as Parquet ({type(exc).__name__}: {exc})") from None
        df.columns = [str(c) for c in df.columns]
    else:
        df = _read_table(path, fmt)
    if len(df) == 0:
        raise DataFileError(f"{path}: no data rows (a header only)")
    if df.shape[1] < 2:
        raise DataFileError(f"{path}: one column only: a data file needs at least one feature column and a label "
                            "column")
    col = _label_column(path, df.columns, label)
    features = df.drop(columns=[col])
    text = [c for c in features.columns
            if not (pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c]))]
    if text:
        def example(c):
            v = features[c].dropna()
            v = v[pd.to_numeric(v, errors="coerce").isna()] if len(v) else v
            return f" (e.g. {python_scalar(v.iloc[0])!r})" if len(v) else ""
        named = ", ".join(f"{c!r}{example(c)}" for c in text[:5]) + (f", ... ({len(text) - 5} more)"
                                                                     if len(text) > 5 else "")
        raise DataFileError(f"{path}: non-numeric feature column{'s' if len(text) > 1 else ''} {named}: encode "
                            "as numbers or drop, or name the label with --label")
    X = features.to_numpy(dtype=np.float64)
    if fmt in ("csv", "tsv") and (not np.isfinite(X).all() or df[col].isna().any()):
        short = _first_short_row(path, fmt)  # pandas fills a short row with NaN: say "ragged", not "missing"
        if short:
            raise DataFileError(f"{path}: ragged rows: {short}")
    _non_finite(path, X, list(features.columns))
    y, labels = binary_labels(path, df[col], f"label column {col!r}", positive, many_classes)
    return X, y, {"label_column": col, **labels}


def _from_npz(path: str, positive: str | None, many_classes: bool = False):
    try:
        with np.load(path, allow_pickle=False) as z:
            X, y = z["X"], z["y"]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataFileError(f"{path}: X or y holds Python objects; save numeric arrays") from None
        raise DataFileError(f"{path}: cannot be read as .npz ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataFileError(f"{path}: cannot be read as .npz ({type(exc).__name__}: {exc})") from None
    if X.ndim != 2:
        raise DataFileError(f"{path}: X must be 2-D (n, d), got shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool) or np.iscomplexobj(X):
        raise DataFileError(f"{path}: X must be real numbers, got dtype {X.dtype}")
    if y.ndim == 2 and 1 in y.shape:
        y = y.ravel()
    if y.ndim != 1 or len(y) != len(X):
        raise DataFileError(f"{path}: y must be 1-D with one label per row of X ({len(X)}), got shape {y.shape}")
    if len(X) == 0 or X.shape[1] == 0:
        raise DataFileError(f"{path}: no data: X has shape {X.shape}")
    X = np.ascontiguousarray(X, dtype=np.float64)
    _non_finite(path, X, [f"column {j}" for j in range(X.shape[1])])
    y, labels = binary_labels(path, y, "y", positive, many_classes)
    return X, y, labels


def _from_svmlight(path: str, key: tuple, positive: str | None, many_classes: bool = False, dense: bool = False,
                   n_features: int | None = None):
    Xs, y = svmlight(path, key, n_features)
    X, info = sparse_info(path, Xs, dense)
    y, labels = binary_labels(path, y, "the labels", positive, many_classes)
    return X, y, {**labels, **info}


@functools.lru_cache(maxsize=2)
def _load_file(src: Source, key: tuple) -> Dataset:
    path, fmt = src.base, src.format
    check_file(src)  # the cheap checks first: type, label column, memory
    if fmt in TABLES:
        X, y, info = from_table(path, fmt, src.label, src.positive, src.many_classes)
    elif fmt == "npz" and _peek(src, key).nnz is not None:
        X, y, info = from_sparse_npz(path, src.positive, src.many_classes, src.dense)
    elif fmt == "npz":
        X, y, info = _from_npz(path, src.positive, src.many_classes)
    else:
        X, y, info = _from_svmlight(path, key, src.positive, src.many_classes, src.dense, src.n_features)
    density = info.pop("density", None)
    if density is None:
        density = float(np.count_nonzero(X)) / X.size
    return finish(src.name, X, y, f"{fmt}:{key[0]}", density, {"format": fmt, **info}, src.standardize)


def load_file(src: Source) -> Dataset:
    """A data file as a :class:`Dataset` named ``src.name``; the last two are kept, and a rewritten
    file (another size or modification time) is read again."""
    key = stat_key(src.base)
    ds = _load_file(src, key)
    _SHAPES[(src, key)] = (ds.n, ds.d)
    return ds
