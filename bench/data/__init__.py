"""Datasets and the shared initial-parameter draw (the harness's side of the data path).

Every backend of a comparison gets the same host arrays from here and the same ``(w0, b0)``.

A dataset name is one of (:data:`FAMILIES_HELP` lists them for ``--help``):

- a named set: ``iris`` (the seed's task), ``iris-3class``, ``breast-cancer`` (scikit-learn's
  bundled Wisconsin data, 569 x 30, binary, no download) or ``digits`` (8x8 digits, 10 classes);
- ``synthetic-<n>x<d>[-k<K>][-x<scale>]`` (``make_classification`` data);
- ``sparse-<n>x<d>-d<density>[-k<K>]`` (a text-like sparse set kept as CSR, :mod:`.sparse`);
- a file: CSV/TSV (``.csv``, ``.tsv``, ``.tab``, optionally ``.gz``/``.bz2``/``.xz``/``.zip``),
  Parquet (``.parquet``, ``.pq``; needs pyarrow), NumPy ``.npz`` (arrays ``X`` and ``y``; or
  ``scipy.sparse.save_npz``'s arrays plus ``y``: kept sparse), or LIBSVM/svmlight (``.svm``,
  ``.svmlight``, ``.libsvm``, optionally ``.gz``/``.bz2``: kept sparse).

Sparse data (LIBSVM, a sparse ``.npz``, ``sparse-...``) is a canonical float64 SciPy CSR array in
:attr:`Dataset.X` (``Dataset.storage == "csr"``), checked against the memory by its non-zeros
(:func:`nnz`); the ``dense`` option (``--dense``) makes it a dense array, refused where that would
not fit.

Any of them may carry options in brackets, which the CLI writes from ``--label``, ``--positive``,
``--standardize`` and ``--allow-many-classes`` (see :func:`with_options`):
``data.csv[label=income,positive=>50K,standardize]``, ``prices.csv[label=band,many-classes]``.
The options are part of the name, so a case id never mixes two different preparations of one file,
and each row also records the final arrays' content hash (:attr:`Dataset.sha256`).

A file's label is mapped to 0/1: two distinct values of any kind in sorted order (``-1/1``, ``1/2``,
``no/yes``, ``False/True``), ``K >= 3`` values to ``0 .. K-1`` (softmax), or with ``positive`` one
value against the rest. Every way a file can be wrong raises one ``ValueError`` naming the file and
what is wrong (:class:`DataFileError`).

The modules: :mod:`.names` (the grammar), :mod:`.builtin` (the named and synthetic sets),
:mod:`.sparse` (the synthetic sparse sets, a LIBSVM writer), :mod:`.files` (the four file readers),
:mod:`.sparse_files` (their sparse side), :mod:`.labels` (label mapping), :mod:`.dataset` (the
record and its preparation), :mod:`.loader` (a name -> shape, checks, arrays).
"""

from .builtin import (
    NAMED_SETS,
    breast_cancer,
    build,
    digits,
    iris,
    iris_3class,
    synthetic,
    synthetic_classes,
)
from .dataset import (
    DataFileError,
    Dataset,
    describe,
    rms_init_scale,
    standardize,
    summary,
)
from .files import LOAD_COPIES
from .labels import binary_labels
from .loader import check, load, n_classes, nnz, shape, storage
from .names import (
    CLASSES,
    COMPRESSED,
    EXTENSIONS_SHOWN,
    FAMILIES_HELP,
    FORMATS,
    LABEL_HELP,
    LABEL_NAMES,
    MAX_CLASSES,
    MAX_DIGITS,
    NAMED,
    TABLES,
    Source,
    file_format,
    is_file,
    is_seed,
    name_classes,
    parse_name,
    parse_sparse,
    short_count,
    source,
    with_options,
)
from .sparse import sparse_text, write_svmlight

__all__ = [
    "CLASSES", "COMPRESSED", "EXTENSIONS_SHOWN", "FAMILIES_HELP", "FORMATS", "LABEL_HELP",
    "LABEL_NAMES", "LOAD_COPIES",
    "MAX_CLASSES", "MAX_DIGITS", "NAMED", "NAMED_SETS", "TABLES",
    "DataFileError", "Dataset", "Source",
    "binary_labels", "breast_cancer", "build", "check", "describe", "digits", "file_format",
    "iris", "iris_3class", "is_file", "is_seed", "load",
    "n_classes", "name_classes", "nnz", "parse_sparse", "sparse_text", "storage", "write_svmlight",
    "parse_name", "rms_init_scale", "shape", "short_count", "source",
    "standardize", "summary", "synthetic", "synthetic_classes", "with_options",
]
