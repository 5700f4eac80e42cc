"""Datasets and the shared initial-parameter draw (the harness's side of the data path).

Every backend of a comparison gets the same host arrays from here and the same ``(w0, b0)``.

A dataset name is one of:

- a named set: ``iris`` (the seed's task) or ``breast-cancer`` (scikit-learn's bundled Wisconsin
  data, 569 x 30, binary, no download);
- ``synthetic-<n>x<d>[-x<scale>]`` (``make_classification`` data);
- a file: CSV/TSV (``.csv``, ``.tsv``, ``.tab``, optionally ``.gz``/``.bz2``/``.xz``/``.zip``),
  Parquet (``.parquet``, ``.pq``; needs pyarrow), NumPy ``.npz`` (arrays ``X`` and ``y``), or
  LIBSVM/svmlight (``.svm``, ``.svmlight``, ``.libsvm``, optionally ``.gz``/``.bz2``).

Any of them may carry options in brackets, which the CLI writes from ``--label``, ``--positive``
and ``--standardize`` (see :func:`with_options`): ``data.csv[label=income,positive=>50K,standardize]``.
The options are part of the name, so a case id never mixes two different preparations of one file,
and each row also records the final arrays' content hash (:attr:`Dataset.sha256`).

A file's label is mapped to 0/1: two distinct values of any kind in sorted order (``-1/1``, ``1/2``,
``no/yes``, ``False/True``), or with ``positive`` one value against the rest. Every way a file can
be wrong raises one ``ValueError`` naming the file and what is wrong (:class:`DataFileError`).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import math
import os
import re
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote

import numpy as np


@dataclass(frozen=True)
class Dataset:
    name: str
    X: np.ndarray  # (n, d) float64 host array
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

    @functools.cached_property
    def sha256(self) -> str:
        """The content hash of the final arrays (shape, then ``X`` and ``y`` as C-ordered float64)."""
        h = hashlib.sha256(f"{self.X.shape[0]}x{self.X.shape[1]}".encode())
        h.update(memoryview(np.ascontiguousarray(self.X, dtype=np.float64)).cast("B"))
        h.update(memoryview(np.ascontiguousarray(self.y, dtype=np.float64)).cast("B"))
        return h.hexdigest()


class DataFileError(ValueError):
    """A dataset file that cannot be used: the message names the file and what is wrong."""


def iris() -> Dataset:
    """The seed article's task: Iris versicolor vs virginica, 100 samples, 4 features."""
    from sklearn.datasets import load_iris

    data, target = load_iris(return_X_y=True)
    X = data[50:150]  # rows 50-99 are versicolor, rows 100-149 virginica
    # target[:100] is fifty 0s then fifty 1s: these are the *setosa/versicolor* labels, reused on
    # purpose. It looks like a bug but is a deliberate relabelling: versicolor = 0, virginica = 1.
    y = target[:100].astype(np.float64)
    return Dataset("iris", X.astype(np.float64), y,
                   origin="sklearn.datasets.load_iris: X = data[50:150], y = target[:100] (versicolor 0, virginica 1)")


def breast_cancer() -> Dataset:
    """scikit-learn's bundled Wisconsin breast-cancer data: 569 samples, 30 features, binary
    (malignant = 0, benign = 1, scikit-learn's coding), no download. The features are raw (areas in
    the thousands); ``w0`` is scaled so that ``z = X w0`` starts O(1) (:func:`rms_init_scale`)."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = np.ascontiguousarray(X, dtype=np.float64)
    return Dataset("breast-cancer", X, y.astype(np.float64), rms_init_scale(X),
                   origin="sklearn.datasets.load_breast_cancer (malignant 0, benign 1)")


def synthetic(n: int, d: int, seed: int = 0, scale: float = 1.0, flip_y: float = 0.05) -> Dataset:
    """``make_classification`` data: not linearly separable (``flip_y`` label noise, overlapping
    clusters), optionally scaled by ``scale`` to make sigmoid saturate. ``w0`` is drawn with scale
    ``1/sqrt(d)`` so that ``z = X w0`` starts O(1) whatever ``d`` is (the seed's unit scale would
    start a 100-feature problem deep in saturation)."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n, n_features=d, n_informative=max(1, min(d, d // 2 + 1)), n_redundant=0,
        n_repeated=0, n_clusters_per_class=1, class_sep=1.0, flip_y=flip_y, random_state=seed,
    )
    name = f"synthetic-{_short(n)}x{d}" + (f"-x{scale:g}" if scale != 1.0 else "")
    origin = (f"sklearn.datasets.make_classification(n_samples={n}, n_features={d}, flip_y={flip_y:g}, "
              f"random_state={seed})" + (f" x {scale:g}" if scale != 1.0 else ""))
    return Dataset(name, np.ascontiguousarray(X * scale, dtype=np.float64), y.astype(np.float64), 1.0 / np.sqrt(d),
                   origin=origin)


def iris_3class() -> Dataset:
    """All of Iris: 150 samples, 4 features, 3 classes (setosa 0, versicolor 1, virginica 2, the
    dataset's own coding), for softmax regression. The seed's unit init scale, as ``iris``."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return Dataset("iris-3class", np.ascontiguousarray(X, dtype=np.float64), y.astype(np.float64),
                   origin="sklearn.datasets.load_iris: all 150 rows, y = target (setosa 0, versicolor 1, virginica 2)",
                   n_classes=3)


def digits() -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits: 1797 samples, 64 pixel features (0 .. 16), 10
    classes, no download. ``w0`` is scaled so that ``Z = X W0`` starts O(1) (:func:`rms_init_scale`)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = np.ascontiguousarray(X, dtype=np.float64)
    return Dataset("digits", X, y.astype(np.float64), rms_init_scale(X),
                   origin="sklearn.datasets.load_digits (8x8 pixels 0-16, labels 0-9)", n_classes=10)


def synthetic_classes(n: int, d: int, k: int, seed: int = 0, scale: float = 1.0, flip_y: float = 0.05) -> Dataset:
    """``make_classification`` with ``k`` classes (labels ``0 .. k-1``), otherwise as :func:`synthetic`.
    ``make_classification`` needs ``k <= 2^informative`` (one cluster per class): ``d // 2 + 1``
    informative features, raised to ``ceil(log2 k)`` where ``d`` allows it."""
    from sklearn.datasets import make_classification

    informative = min(d, max(d // 2 + 1, math.ceil(math.log2(k))))
    if k > 2 ** informative:
        raise ValueError(f"dataset synthetic-{_short(n)}x{d}-k{k}: {k} classes need at least "
                         f"{math.ceil(math.log2(k))} features (make_classification: classes <= 2^informative), got d={d}")
    X, y = make_classification(
        n_samples=n, n_features=d, n_informative=informative, n_redundant=0, n_repeated=0, n_classes=k,
        n_clusters_per_class=1, class_sep=1.0, flip_y=flip_y, random_state=seed,
    )
    name = f"synthetic-{_short(n)}x{d}-k{k}" + (f"-x{scale:g}" if scale != 1.0 else "")
    origin = (f"sklearn.datasets.make_classification(n_samples={n}, n_features={d}, n_classes={k}, "
              f"flip_y={flip_y:g}, random_state={seed})" + (f" x {scale:g}" if scale != 1.0 else ""))
    return Dataset(name, np.ascontiguousarray(X * scale, dtype=np.float64), y.astype(np.float64), 1.0 / np.sqrt(d),
                   origin=origin, n_classes=k)


def rms_init_scale(X: np.ndarray) -> float:
    """``1/sqrt(mean ||x_i||²)``: with ``w0 ~ s N(0, I)`` the logits ``z = X w0`` start with unit
    root-mean-square whatever the features' scale (``1/sqrt(d)`` on standardized data, as synthetic)."""
    ms = float(np.mean(np.einsum("ij,ij->i", X, X))) if X.size else 0.0
    return 1.0 / math.sqrt(ms) if ms > 0 and math.isfinite(ms) else 1.0


def _short(n: int) -> str:
    for unit, k in (("M", 1_000_000), ("k", 1_000)):
        if n >= k and n % k == 0:
            return f"{n // k}{unit}"
    return str(n)


NAMED = {"iris": (100, 4), "breast-cancer": (569, 30),  # named sets and their shapes
         "iris-3class": (150, 4), "digits": (1797, 64)}
CLASSES = {"iris-3class": 3, "digits": 10}  # the named sets with K >= 3 classes (softmax); the others are binary
_SIZE = re.compile(r"^synthetic-(\d+)([kM]?)x(\d+)(?:-k(\d+))?(?:-x(\d+(?:\.\d*)?(?:e[+-]?\d+)?))?$")
MAX_CLASSES = 1000
MAX_DIGITS = 12  # n and d: at most 12 digits (1e12 rows is far beyond any machine; Python refuses > 4300)


def _shorten(name) -> str:
    return name if not isinstance(name, str) or len(name) <= 60 else f"{name[:40]}... ({len(name)} characters)"


def parse_name(name: str) -> tuple[int, int, float] | None:
    """``None`` for a named set (``iris``, ``breast-cancer``), else ``(n, d, scale)`` of
    ``synthetic-<n>x<d>[-x<scale>]``; ValueError otherwise, naming the part that is wrong (n or d
    with more than ``MAX_DIGITS`` digits, a scale that is not a positive finite number). Files and
    options are :func:`source`'s."""
    if name in NAMED:
        return None
    m = _SIZE.match(name) if isinstance(name, str) else None
    short = _shorten(name)
    if not m:
        raise ValueError(
            f"dataset must be 'iris', 'breast-cancer', 'iris-3class', 'digits', "
            f"'synthetic-<n>x<d>[-k<K>][-x<scale>]' (e.g. synthetic-10kx100, synthetic-100kx100-k10) "
            f"or a data file ({', '.join(EXTENSIONS_SHOWN)}), got {short!r}"
        )
    for what, digits in (("n", m.group(1)), ("d", m.group(3))):
        if len(digits) > MAX_DIGITS:
            raise ValueError(f"dataset {short!r}: {what} must have at most {MAX_DIGITS} digits, got {len(digits)}")
    n = int(m.group(1)) * {"": 1, "k": 1_000, "M": 1_000_000}[m.group(2)]
    d = int(m.group(3))
    if n < 2 or d < 1:
        raise ValueError(f"dataset {short!r}: need n >= 2 and d >= 1, got n={n}, d={d}")
    scale = float(m.group(5) or 1.0)
    if not (0 < scale < float("inf")):
        raise ValueError(f"dataset {short!r}: the scale after -x must be a positive finite number, "
                         f"got {m.group(5)!r} (= {scale:g})")
    if m.group(4) is not None and not (3 <= int(m.group(4)[:6]) <= MAX_CLASSES):
        raise ValueError(f"dataset {short!r}: the class count after -k must be between 3 and {MAX_CLASSES} "
                         f"(leave -k out for the binary model), got {m.group(4)}")
    return n, d, scale


def n_classes(name: str) -> int:
    """The class count of a dataset name: ``K`` of ``synthetic-<n>x<d>-k<K>``, 3 for ``iris-3class``,
    10 for ``digits``, else 2, without building it; a file's is its label's distinct values (2 with
    ``positive``), read once (:func:`load` keeps the last two files)."""
    src = source(name)
    if src.is_file:
        return load(name).n_classes
    if src.base in NAMED:
        return CLASSES.get(src.base, 2)
    m = _SIZE.match(src.base)
    return int(m.group(4)) if m and m.group(4) else 2


# -- names with options, and files --------------------------------------------------------------

FORMATS = {  # format -> endings (a compressed table or svmlight file may end in one more suffix)
    "csv": (".csv",), "tsv": (".tsv", ".tab"), "parquet": (".parquet", ".pq"), "npz": (".npz",),
    "svmlight": (".svm", ".svmlight", ".libsvm"),
}
COMPRESSED = {"csv": (".gz", ".bz2", ".xz", ".zip"), "tsv": (".gz", ".bz2", ".xz", ".zip"),
              "svmlight": (".gz", ".bz2")}
EXTENSIONS_SHOWN = (".csv", ".tsv", ".parquet", ".npz", ".svm")
TABLES = ("csv", "tsv", "parquet")
LABEL_NAMES = ("target", "label", "y", "class")  # a table's label column by default, else its last column
_OPTIONS = re.compile(r"^(?P<base>.+)\[(?P<opts>[^\[\]]*)\]$")


@dataclass(frozen=True)
class Source:
    """A dataset name taken apart: ``base`` (named set, synthetic name or file path) and options."""

    base: str
    label: str | None = None
    positive: str | None = None
    standardize: bool = False
    format: str | None = None  # a file's format (FORMATS), None for a named or synthetic set

    @property
    def is_file(self) -> bool:
        return self.format is not None


def file_format(path: str) -> str | None:
    """The format a file name's ending says, else None."""
    low = path.lower()
    for fmt, endings in FORMATS.items():
        for end in endings:
            if low.endswith(end) or any(low.endswith(end + c) for c in COMPRESSED.get(fmt, ())):
                return fmt
    return None


def _looks_like_file(base: str) -> bool:
    return (os.sep in base or "/" in base or os.path.exists(base)
            or bool(Path(base).suffix) and not base.startswith("synthetic-"))


@functools.lru_cache(maxsize=256)
def source(name: str) -> Source:
    """Take a dataset name apart; ValueError naming what is wrong (an unknown option or name, a
    file name with no known ending)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"dataset must be a non-empty name, got {name!r}")
    base, opts = name, {}
    m = _OPTIONS.match(name)
    if m and not os.path.exists(name):
        base = m.group("base")
        for part in filter(None, m.group("opts").split(",")):
            key, eq, value = part.partition("=")
            if key == "standardize" and not eq:
                opts["standardize"] = True
            elif key in ("label", "positive") and eq and value:
                opts[key] = unquote(value)
            else:
                raise ValueError(f"dataset {_shorten(name)!r}: unknown option {part!r} in brackets "
                                 "(known: label=COLUMN, positive=VALUE, standardize)")
    if base in NAMED or base.startswith("synthetic-"):
        parse_name(base)
        if "label" in opts or "positive" in opts:
            raise ValueError(f"dataset {base!r} is a named set with binary labels: label= and positive= apply "
                             "to data files only")
        return Source(base, standardize=opts.get("standardize", False))
    if not _looks_like_file(base):
        parse_name(base)  # raises: what names are accepted
    fmt = file_format(base)
    if fmt is None:
        suffix = "".join(Path(base).suffixes[-2:])
        hint = ("convert it (a spreadsheet: save it as CSV)" if suffix else
                f"rename it, e.g. {Path(base).name}.svm for a LIBSVM file such as a9a")
        raise DataFileError(
            f"{base}: unknown file type ({suffix or 'no ending'}): a data file must end in .csv or .tsv (CSV/TSV), "
            f".parquet (Parquet), .npz (arrays X and y) or .svm/.svmlight/.libsvm (LIBSVM); {hint}")
    if "label" in opts and fmt not in TABLES:
        raise ValueError(f"{base}: label= names a column of a CSV/TSV/Parquet table; a {fmt} file has its labels "
                         "apart (npz: array y; svmlight: the first field of each line)")
    return Source(base, opts.get("label"), opts.get("positive"), opts.get("standardize", False), fmt)


def _quote(value: str) -> str:
    """An option's value in a name: the characters that delimit options percent-encoded, no others."""
    return "".join({"%": "%25", ",": "%2C", "[": "%5B", "]": "%5D"}.get(ch, ch) for ch in str(value))


def with_options(name: str, label: str | None = None, positive: str | None = None,
                 standardize: bool = False) -> str:
    """``name`` with the CLI's ``--label``/``--positive``/``--standardize`` written in: ``label``
    on tables, ``positive`` on files, ``standardize`` on any; options already in the name are kept."""
    src = source(name)
    label = src.label or (label if src.format in TABLES else None)
    positive = src.positive or (positive if src.is_file else None)
    parts = [f"label={_quote(label)}" if label else None,
             f"positive={_quote(positive)}" if positive is not None else None,
             "standardize" if (standardize or src.standardize) else None]
    parts = [p for p in parts if p]
    return f"{src.base}[{','.join(parts)}]" if parts else src.base


def is_file(name: str) -> bool:
    return source(name).is_file


def is_seed(name: str) -> bool:
    """The seed's task (``iris``, with or without options): the seed's learning rate applies."""
    return source(name).base == "iris"


# -- a file's size before loading it ------------------------------------------------------------

def _stat_key(path: str) -> tuple:
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


def _open_text(path: str):
    low = path.lower()
    if low.endswith(".gz"):
        import gzip
        return gzip.open(path, "rt", newline="")
    if low.endswith(".bz2"):
        import bz2
        return bz2.open(path, "rt", newline="")
    if low.endswith(".xz"):
        import lzma
        return lzma.open(path, "rt", newline="")
    if low.endswith(".zip"):
        zf = zipfile.ZipFile(path)
        return io.TextIOWrapper(zf.open(zf.namelist()[0]), newline="")
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
    import pandas as pd

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


def _npz_shapes(path: str) -> dict[str, tuple]:
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
            shown = ", ".join(repr(c) for c in columns[:20]) + (f" ... ({len(columns)} columns)" if len(columns) > 20 else "")
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
        shapes = _npz_shapes(path)
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
    Xs, _ = _svmlight(path, key)
    return Peek(Xs.shape[0], Xs.shape[1], True)


@functools.lru_cache(maxsize=2)
def _svmlight(path: str, key: tuple):
    from sklearn.datasets import load_svmlight_file

    try:
        Xs, y = load_svmlight_file(path, dtype=np.float64)
    except (ValueError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: cannot be parsed as LIBSVM/svmlight ({type(exc).__name__}: {exc}); "
                            "expected lines like '1 3:0.5 7:1'") from None
    return Xs, y


def _check_memory(path: str, need: int, what: str) -> None:
    from . import roofline

    limit = roofline.available_memory_bytes()
    if limit is not None and need > limit:
        raise DataFileError(f"{path}: needs about {need / 2**30:.1f} GiB {what}, more than the "
                            f"{limit / 2**30:.1f} GiB of memory available")


LOAD_COPIES = 3  # a file's float64 array, the table it came from and a working copy (standardize, checks)


def check(name: str) -> tuple[int, int]:
    """The cheap checks of a dataset name, before anything is loaded: the name or the file's type,
    the file there and readable, not empty, its label column, and its size against the memory
    available (estimated from the header and line count, or read from the file's metadata).
    Returns ``(n, d)`` (an estimate for CSV/TSV). ValueError naming the file and what is wrong."""
    src = source(name)
    if not src.is_file:
        return shape(name)
    p = _peek(src, _stat_key(src.base))
    if p.n == 0:
        raise DataFileError(f"{src.base}: no data rows")
    _check_memory(src.base, LOAD_COPIES * 8 * p.n * (p.d + 1),
                  f"to load {'about ' if not p.exact else ''}{p.n} rows x {p.d} features as float64")
    return p.n, p.d


def shape(name: str) -> tuple[int, int]:
    """``(n, d)`` of a dataset name, without building it (ValueError as :func:`source`); a file's
    exact shape once it is loaded, an estimate before (CSV/TSV: from the line count)."""
    src = source(name)
    if not src.is_file:
        spec = parse_name(src.base)
        return NAMED[src.base] if spec is None else spec[:2]
    key = _stat_key(src.base)
    known = _SHAPES.get((src, key))
    if known is not None:
        return known
    p = _peek(src, key)
    return p.n, p.d


_SHAPES: dict = {}  # (Source, stat key) -> exact (n, d) of a loaded file


# -- loading ------------------------------------------------------------------------------------

def _py(v):
    return v.item() if isinstance(v, np.generic) else v


def _text(v) -> str:
    """A label value as text (env.json's keys, --positive's match): 1.0 -> '1', 'yes' -> 'yes'."""
    v = _py(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _show(v) -> str:
    """A label value in a message: text quoted, numbers and booleans bare."""
    return repr(_py(v)) if isinstance(_py(v), str) else _text(v)


def _counts(values, counts) -> str:
    parts = [f"{_show(v)}: {c}" for v, c in zip(values, counts)]
    return ", ".join(parts[:10]) + (f", ... ({len(parts) - 10} more)" if len(parts) > 10 else "")


def _matches(v, positive: str) -> bool:
    v = _py(v)
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
    import pandas as pd

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
                   "class_counts": {_text(v): c for v, c in zip(values, cnt)}}
    y = (s == values[1]).to_numpy(np.float64)
    return y, {"mapping": {_text(values[0]): 0, _text(values[1]): 1}}


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


def _from_table(path: str, fmt: str, label: str | None, positive: str | None):
    import pandas as pd

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
        raise DataFileError(f"{path}: one column only: a data file needs at least one feature column and a label column")
    col = _label_column(path, df.columns, label)
    features = df.drop(columns=[col])
    text = [c for c in features.columns
            if not (pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c]))]
    if text:
        def example(c):
            v = features[c].dropna()
            v = v[pd.to_numeric(v, errors="coerce").isna()] if len(v) else v
            return f" (e.g. {_py(v.iloc[0])!r})" if len(v) else ""
        named = ", ".join(f"{c!r}{example(c)}" for c in text[:5]) + (f", ... ({len(text) - 5} more)" if len(text) > 5 else "")
        raise DataFileError(f"{path}: non-numeric feature column{'s' if len(text) > 1 else ''} {named}: encode "
                            "as numbers or drop, or name the label with --label")
    X = features.to_numpy(dtype=np.float64)
    if fmt in ("csv", "tsv") and (not np.isfinite(X).all() or df[col].isna().any()):
        short = _first_short_row(path, fmt)  # pandas fills a short row with NaN: say "ragged", not "missing"
        if short:
            raise DataFileError(f"{path}: ragged rows: {short}")
    _non_finite(path, X, list(features.columns))
    y, labels = binary_labels(path, df[col], f"label column {col!r}", positive)
    return X, y, {"label_column": col, **labels}


def _from_npz(path: str, positive: str | None):
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
    y, labels = binary_labels(path, y, "y", positive)
    return X, y, labels


def _from_svmlight(path: str, key: tuple, positive: str | None):
    Xs, y = _svmlight(path, key)
    n, d = Xs.shape
    if n == 0 or d == 0:
        raise DataFileError(f"{path}: no data rows")
    if not np.isfinite(Xs.data).all():
        per = np.bincount(Xs.indices[~np.isfinite(Xs.data)], minlength=d)
        _refuse_non_finite(path, per, [f"feature {j + 1}" for j in range(d)])
    density = Xs.nnz / (n * d)
    # densified only here, after the memory check of check() (its figure is the dense one)
    _check_memory(path, 8 * n * d * 2, f"to densify {n} x {d} (density {density:.3g})")
    X = np.ascontiguousarray(Xs.toarray(), dtype=np.float64)
    y, labels = binary_labels(path, y, "the labels", positive)
    return X, y, {**labels, "density": density}


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


@functools.lru_cache(maxsize=2)
def _load_file(src: Source, key: tuple) -> Dataset:
    path, fmt = src.base, src.format
    check(_name(src))  # the cheap checks first: type, label column, memory
    if fmt in TABLES:
        X, y, info = _from_table(path, fmt, src.label, src.positive)
    elif fmt == "npz":
        X, y, info = _from_npz(path, src.positive)
    else:
        X, y, info = _from_svmlight(path, key, src.positive)
    density = info.pop("density", None)
    if density is None:
        density = float(np.count_nonzero(X)) / X.size
    return _finish(_name(src), X, y, f"{fmt}:{key[0]}", density, {"format": fmt, **info}, src.standardize)


def _finish(name: str, X, y, origin: str, density, info: dict, std: bool, init_scale=None) -> Dataset:
    X, y = np.ascontiguousarray(X, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64)
    if std:
        X, const = standardize(X)
        info = {**info, "standardized": True, "constant_columns": const}
        origin += ", standardized"
    scale = rms_init_scale(X) if init_scale is None else init_scale
    return Dataset(name, X, y, scale, origin, density, info, n_classes=int(info.get("n_classes", 2)))


def _name(src: Source) -> str:
    return with_options(src.base, src.label, src.positive, src.standardize)


@functools.lru_cache(maxsize=2)
def load(name: str, seed: int = 0) -> Dataset:
    """A dataset by name (see the module's docstring). The last two are kept, so that the CLI's look
    at a dataset and the run that follows build it once. ValueError (a :class:`DataFileError` for a
    file) naming what is wrong."""
    src = source(name)
    if src.is_file:
        key = _stat_key(src.base)
        ds = _load_file(src, key)
        _SHAPES[(src, key)] = (ds.n, ds.d)
        return ds if ds.name == name else replace(ds, name=name)
    if src.base == "iris":
        ds = iris()
    elif src.base == "breast-cancer":
        ds = breast_cancer()
    elif src.base == "iris-3class":
        ds = iris_3class()
    elif src.base == "digits":
        ds = digits()
    else:
        n, d, scale = parse_name(src.base)
        k = n_classes(src.base)
        ds = replace(synthetic(n, d, seed=seed, scale=scale) if k == 2 else
                     synthetic_classes(n, d, k, seed=seed, scale=scale), name=src.base)
    if src.standardize:
        ds = replace(_finish(name, ds.X, ds.y, ds.origin, None, {}, True, ds.init_scale), n_classes=ds.n_classes)
    return ds if ds.name == name else replace(ds, name=name)


def describe(ds: Dataset) -> dict:
    """What env.json keeps of a dataset: origin, shape, content hash, labels, preparation."""
    return {"origin": ds.origin, "n": ds.n, "d": ds.d, "sha256": ds.sha256, "density": ds.density, **ds.info}


def summary(ds: Dataset) -> str:
    """One line for the console: shape, density, label mapping."""
    info = ds.info
    parts = [f"{ds.n} rows x {ds.d} features"]
    if ds.density is not None and info.get("format") == "svmlight":
        parts.append(f"density {ds.density:.3g}")
    if "label_column" in info:
        parts.append(f"label column {info['label_column']!r}")
    if "mapping" in info:
        mapping = info["mapping"]
        if "positive" in info:
            rest = [k for k, v in mapping.items() if v == 0]
            parts.append(f"labels {info['positive']} -> 1, the rest ({', '.join(rest)}) -> 0")
        else:
            parts.append("labels " + ", ".join(f"{k} -> {v}" for k, v in mapping.items()))
    if info.get("standardized"):
        const = info.get("constant_columns") or []
        parts.append("standardized" + (f" ({len(const)} constant column(s) left as they are)" if const else ""))
    return f"dataset {ds.name}: " + "; ".join(parts)


def init_params(d: int, seed: int = 0, scale: float = 1.0, n_classes: int = 2):
    """One host draw ``w0 ~ scale * N(0, I_d)``, ``b0 ~ N(0, 1)``, shared by every backend.
    ``n_classes = K >= 3`` (softmax): ``W0 (d, K) ~ scale * N(0, 1)`` and ``b0 (K,) ~ N(0, 1)``."""
    rng = np.random.default_rng(seed)
    if n_classes >= 3:
        w0 = scale * rng.standard_normal((d, n_classes))
        return w0, rng.standard_normal(n_classes)
    w0 = scale * rng.standard_normal(d)
    b0 = float(rng.standard_normal())
    return w0, b0
