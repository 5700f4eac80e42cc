"""Dataset names: the grammar, taken apart into a :class:`Source` without loading anything.

A name is a named set (``iris``, ``iris-3class``, ``breast-cancer``, ``digits``), a synthetic set
``synthetic-<n>x<d>[-k<K>][-x<scale>]``, a synthetic sparse set ``sparse-<n>x<d>-d<density>[-k<K>]``,
or a data file, any of them with options in brackets
(``data.csv[label=income,positive=>50K,standardize]``, written by :func:`with_options`).
:data:`FAMILIES_HELP` lists them for ``--help``.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from .dataset import DataFileError

NAMED = {"iris": (100, 4), "breast-cancer": (569, 30),  # named sets and their shapes
         "iris-3class": (150, 4), "digits": (1797, 64)}
CLASSES = {"iris-3class": 3, "digits": 10}  # the named sets with K >= 3 classes (softmax); the others are binary
SIZE = re.compile(r"^synthetic-(\d+)([kM]?)x(\d+)(?:-k(\d+))?(?:-x(\d+(?:\.\d*)?(?:e[+-]?\d+)?))?$")
SPARSE = re.compile(r"^sparse-(\d+)([kM]?)x(\d+)([kM]?)-d(\d*\.?\d+(?:e[+-]?\d+)?)(?:-k(\d+))?$")
MAX_CLASSES = 1000
MAX_DIGITS = 12  # n and d: at most 12 digits (1e12 rows is far beyond any machine; Python refuses > 4300)

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


def _endings(fmt: str) -> str:
    return "/".join(FORMATS[fmt]) + (f" (optionally {'/'.join(COMPRESSED[fmt])})" if fmt in COMPRESSED else "")


def _size(name: str) -> str:
    return f"{NAMED[name][0]} x {NAMED[name][1]}"


FAMILIES_HELP = f"""\
dataset families (--datasets NAME ...):
  iris                  Iris versicolor vs virginica, {_size('iris')}, binary (the seed's task)
  iris-3class           all of Iris, {_size('iris-3class')}, {CLASSES['iris-3class']} classes (softmax)
  breast-cancer         scikit-learn's Wisconsin breast-cancer data, {_size('breast-cancer')}, binary
  digits                scikit-learn's 8x8 handwritten digits, {_size('digits')}, {CLASSES['digits']} classes (softmax)
  synthetic-<n>x<d>     make_classification data, n rows (k = thousand, M = million) x d features, binary,
                        e.g. synthetic-10kx100
    ...-k<K>            K classes, 3 to {MAX_CLASSES} (softmax), e.g. synthetic-100kx100-k10
    ...-x<scale>        features multiplied by scale > 0 (saturates the sigmoid), e.g. synthetic-10kx100-x10
  sparse-<n>x<d>-d<density>
                        a text-like sparse set kept as CSR: n rows x d features (k, M as above), that
                        fraction of entries non-zero, column frequencies Zipf-distributed, rows of
                        positive values scaled to unit length (as TF-IDF), labels from a planted weight
                        vector with 5 % flipped; seeded by --seed; e.g. sparse-20kx47k-d0.0016 (rcv1's shape)
    ...-k<K>            K classes (the label is the planted W's best class), e.g. sparse-20kx47k-d0.0016-k3
  a data file           CSV {_endings('csv')}, TSV {_endings('tsv')},
                        Parquet {_endings('parquet')} (needs pyarrow), NumPy {_endings('npz')} (arrays X and y),
                        LIBSVM/svmlight {_endings('svmlight')} (kept sparse, CSR),
                        a sparse .npz: scipy.sparse.save_npz's arrays plus y (the labels), e.g.
                        np.savez(path, data=X.data, indices=X.indices, indptr=X.indptr, shape=X.shape,
                        format="csr", y=y) with X a CSR matrix (kept sparse)
  NAME[options]         any of them with options in brackets, written by --label, --positive, --standardize:
                        label=COLUMN   a table's label column (default: {', '.join(LABEL_NAMES)}, else the last)
                        positive=VALUE that label value is class 1, every other 0 (one-vs-rest)
                        standardize    each feature to mean 0, variance 1 (sparse data: unit variance
                                       only, not centred, so that it stays sparse)
                        dense          a sparse set as a dense array (written by --dense; refused where
                                       the dense form would not fit in memory)
                        n-features=D   a LIBSVM file's declared width (written by --n-features): columns
                                       up to D (a feature index beyond it is refused)
                        many-classes   a file's label may look continuous or give more classes than
                                       half its rows (refused otherwise), written by --allow-many-classes
                        e.g. data.csv[label=income,positive=>50K,standardize]
"""


# the --label help of every command that takes datasets
LABEL_HELP = (f"a table file's label column (default: the column named {', '.join(LABEL_NAMES[:-1])} or "
              f"{LABEL_NAMES[-1]}, else the last); two distinct values are mapped to 0/1 in sorted order, K > 2 "
              "values to 0 .. K-1 and train the softmax model (--positive VALUE: one-vs-rest instead)")


def short_count(n: int) -> str:
    """A row count as a synthetic name writes it: 10000 -> '10k', 2000000 -> '2M', 1500 -> '1500'."""
    for unit, k in (("M", 1_000_000), ("k", 1_000)):
        if n >= k and n % k == 0:
            return f"{n // k}{unit}"
    return str(n)


def shorten(name) -> str:
    """A name as a message shows it: cut after 40 characters when longer than 60."""
    return name if not isinstance(name, str) or len(name) <= 60 else f"{name[:40]}... ({len(name)} characters)"


def informative_features(d: int, k: int) -> int:
    """The informative features ``make_classification`` draws ``k`` classes on with ``d`` features:
    ``d // 2 + 1``, raised to ``ceil(log2 k)`` where ``d`` allows it (one cluster per class needs
    ``k <= 2^informative``)."""
    return min(d, max(d // 2 + 1, math.ceil(math.log2(k))))


def parse_name(name: str) -> tuple[int, int, float] | None:
    """``None`` for a named set (``iris``, ``breast-cancer``), else ``(n, d, scale)`` of
    ``synthetic-<n>x<d>[-x<scale>]``; ValueError otherwise, naming the part that is wrong (n or d
    with more than ``MAX_DIGITS`` digits, a scale that is not a positive finite number). Files and
    options are :func:`source`'s."""
    if name in NAMED:
        return None
    m = SIZE.match(name) if isinstance(name, str) else None
    short = shorten(name)
    if not m:
        raise ValueError(
            f"dataset must be 'iris', 'breast-cancer', 'iris-3class', 'digits', "
            f"'synthetic-<n>x<d>[-k<K>][-x<scale>]' (e.g. synthetic-10kx100, synthetic-100kx100-k10), "
            f"'sparse-<n>x<d>-d<density>[-k<K>]' (e.g. sparse-20kx47k-d0.0016) "
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
    if m.group(4) is not None and int(m.group(4)) > 2 ** informative_features(d, int(m.group(4))):
        k = int(m.group(4))
        raise ValueError(f"dataset {short!r}: {k} classes need at least {math.ceil(math.log2(k))} features "
                         f"(make_classification draws at most 2^informative classes), got d={d}")
    return n, d, scale


_UNITS = {"": 1, "k": 1_000, "M": 1_000_000}


def parse_sparse(name: str) -> tuple[int, int, float, int] | None:
    """``(n, d, density, K)`` of ``sparse-<n>x<d>-d<density>[-k<K>]`` (``K`` = 2 without ``-k``), None
    for a name of another family; ValueError naming the part that is wrong."""
    m = SPARSE.match(name) if isinstance(name, str) else None
    if m is None:
        if isinstance(name, str) and name.startswith("sparse-"):
            raise ValueError(f"dataset {shorten(name)!r}: a sparse set is named sparse-<n>x<d>-d<density>[-k<K>], "
                             "e.g. sparse-20kx47k-d0.0016 or sparse-10kx1000-d0.01-k3")
        return None
    for what, digits in (("n", m.group(1)), ("d", m.group(3))):
        if len(digits) > MAX_DIGITS:
            raise ValueError(f"dataset {shorten(name)!r}: {what} must have at most {MAX_DIGITS} digits, "
                             f"got {len(digits)}")
    n, d = int(m.group(1)) * _UNITS[m.group(2)], int(m.group(3)) * _UNITS[m.group(4)]
    density = float(m.group(5))
    if n < 2 or d < 1:
        raise ValueError(f"dataset {name!r}: need n >= 2 and d >= 1, got n={n}, d={d}")
    if not 0 < density <= 1:
        raise ValueError(f"dataset {name!r}: the density after -d must be in (0, 1], got {m.group(5)}")
    if n * d * density < 1:
        raise ValueError(f"dataset {name!r}: {n} x {d} at density {density:g} holds no non-zero value")
    k = int(m.group(6)[:6]) if m.group(6) else 2
    if m.group(6) and not 3 <= k <= MAX_CLASSES:
        raise ValueError(f"dataset {name!r}: the class count after -k must be between 3 and {MAX_CLASSES} "
                         f"(leave -k out for the binary model), got {m.group(6)}")
    return n, d, density, k


def name_classes(base: str) -> int:
    """The class count of a named or synthetic set's name (no options, no file): ``K`` of
    ``synthetic-<n>x<d>-k<K>``, 3 for ``iris-3class``, 10 for ``digits``, else 2."""
    if base in NAMED:
        return CLASSES.get(base, 2)
    if base.startswith("sparse-"):
        return parse_sparse(base)[3]
    m = SIZE.match(base)
    return int(m.group(4)) if m and m.group(4) else 2


@dataclass(frozen=True)
class Source:
    """A dataset name taken apart: ``base`` (named set, synthetic name or file path) and options."""

    base: str
    label: str | None = None
    positive: str | None = None
    standardize: bool = False
    format: str | None = None  # a file's format (FORMATS), None for a named or synthetic set
    many_classes: bool = False  # a file's label may look continuous or give > n/2 classes (--allow-many-classes)
    dense: bool = False  # a sparse set (LIBSVM, sparse .npz, sparse-...) as a dense array (--dense)
    n_features: int | None = None  # a LIBSVM file's declared width (--n-features)

    @property
    def sparse_name(self) -> bool:
        """A synthetic sparse set (``sparse-<n>x<d>-d<density>``)."""
        return self.format is None and self.base.startswith("sparse-")

    @property
    def is_file(self) -> bool:
        return self.format is not None

    @property
    def name(self) -> str:
        """The name again, options written in canonical order (:func:`with_options`)."""
        return with_options(self.base, self.label, self.positive, self.standardize, self.many_classes, self.dense,
                            self.n_features)


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
            elif key == "many-classes" and not eq:
                opts["many_classes"] = True
            elif key == "dense" and not eq:
                opts["dense"] = True
            elif key == "n-features" and eq and value.isdigit() and len(value) <= MAX_DIGITS and int(value) > 0:
                opts["n_features"] = int(value)
            elif key in ("label", "positive") and eq and value:
                opts[key] = unquote(value)
            else:
                raise ValueError(f"dataset {shorten(name)!r}: unknown option {part!r} in brackets "
                                 "(known: label=COLUMN, positive=VALUE, standardize, many-classes, dense, "
                                 "n-features=D with D > 0)")
    if base.startswith("sparse-"):
        parse_sparse(base)
        if opts.keys() - {"standardize", "dense"}:
            raise ValueError(f"dataset {base!r} is a synthetic sparse set: label=, positive=, many-classes and "
                             "n-features= apply to data files only")
        return Source(base, standardize=opts.get("standardize", False), dense=opts.get("dense", False))
    if base in NAMED or base.startswith("synthetic-"):
        parse_name(base)
        if opts.keys() - {"standardize"}:
            raise ValueError(f"dataset {base!r} is a named or synthetic set (dense already): label=, positive= and "
                             "many-classes apply to data files only; dense and n-features= to sparse sets and files")
        return Source(base, standardize=opts.get("standardize", False))
    if base.startswith("shards:") or os.path.isdir(base):  # a folder of shards (bench.data.shards)
        if opts:
            raise ValueError(f"{base}: a shard folder takes no options in brackets (write the parts prepared)")
        return Source(base.removeprefix("shards:"), format="shards")
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
    if "n_features" in opts and fmt != "svmlight":
        raise ValueError(f"{base}: n-features= (--n-features) declares a LIBSVM file's width; a {fmt} file has its own")
    return Source(base, opts.get("label"), opts.get("positive"), opts.get("standardize", False), fmt,
                  opts.get("many_classes", False), opts.get("dense", False), opts.get("n_features"))


def _quote(value: str) -> str:
    """An option's value in a name: the characters that delimit options percent-encoded, no others."""
    return "".join({"%": "%25", ",": "%2C", "[": "%5B", "]": "%5D"}.get(ch, ch) for ch in str(value))


def with_options(name: str, label: str | None = None, positive: str | None = None,
                 standardize: bool = False, many_classes: bool = False, dense: bool = False,
                 n_features: int | None = None) -> str:
    """``name`` with the CLI's ``--label``/``--positive``/``--standardize``/``--allow-many-classes``/
    ``--dense``/``--n-features`` written in: ``label`` on tables, ``positive`` and ``many-classes`` on
    files, ``standardize`` on any, ``dense`` on the sets that can be sparse (LIBSVM, ``.npz``,
    ``sparse-...``), ``n-features`` on LIBSVM files; options already in the name are kept."""
    src = source(name)
    label = src.label or (label if src.format in TABLES else None)
    positive = src.positive or (positive if src.is_file else None)
    can_be_sparse = src.format in ("svmlight", "npz") or src.sparse_name
    width = src.n_features or (n_features if src.format == "svmlight" else None)
    parts = [f"label={_quote(label)}" if label else None,
             f"positive={_quote(positive)}" if positive is not None else None,
             "standardize" if (standardize or src.standardize) else None,
             "many-classes" if src.is_file and (many_classes or src.many_classes) else None,
             "dense" if can_be_sparse and (dense or src.dense) else None,
             f"n-features={width}" if width else None]
    parts = [p for p in parts if p]
    return f"{src.base}[{','.join(parts)}]" if parts else src.base


def is_file(name: str) -> bool:
    return source(name).is_file


def is_seed(name: str) -> bool:
    """The seed's task (``iris``, with or without options): the seed's learning rate applies."""
    return source(name).base == "iris"
