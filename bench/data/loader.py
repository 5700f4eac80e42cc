"""A dataset name -> its shape, its cheap checks, its class count, its non-zeros, its arrays: the
named and synthetic sets from :mod:`.builtin`, files from :mod:`.files`, options applied here."""

from __future__ import annotations

import functools
from dataclasses import replace

import scipy.sparse

from .. import roofline
from .builtin import build
from .dataset import Dataset, finish
from .files import check_file, file_nnz, file_shape, load_file
from .names import NAMED, name_classes, parse_name, parse_sparse, source
from .shards import check_shards, load_shards, shards_classes, shards_shape
from .sparse_files import check_dense, sparse_bytes


def check(name: str) -> tuple[int, int]:
    """The cheap checks of a dataset name, before anything is loaded: the name or the file's type,
    the file there and readable, not empty, its label column, and its size against the memory
    available (estimated from the header and line count, or read from the file's metadata).
    Returns ``(n, d)`` (an estimate for CSV/TSV). ValueError naming the file and what is wrong."""
    src = source(name)
    if src.sparse_name:
        n, d, density, _ = parse_sparse(src.base)
        if src.dense:
            check_dense(name, n, d, round(n * d * density))
        else:
            _check_sparse_memory(name, n, round(n * d * density))
        return n, d
    if not src.is_file:
        return shape(name)
    return check_shards(src) if src.format == "shards" else check_file(src)


def _check_sparse_memory(name: str, n: int, nnz: int) -> None:
    limit = roofline.available_memory_bytes()
    need = 3 * sparse_bytes(n, nnz)  # the matrix, its draw's working arrays, the oracle's copy
    if limit is not None and need > limit:
        raise ValueError(f"dataset {name!r}: {nnz} non-zeros need about {need / 2**30:.1f} GiB to build, more than "
                         f"the {limit / 2**30:.1f} GiB of memory available")


def nnz(name: str) -> int | None:
    """Stored non-zeros of a dataset that stays sparse (``sparse-...`` without ``dense``, a LIBSVM or
    sparse ``.npz`` file without it), from its name or the file's cheap look; None for dense data.
    What memory checks and a step's bytes count, never ``n x d``."""
    src = source(name)
    if src.sparse_name:
        n, d, density, _ = parse_sparse(src.base)
        return None if src.dense else max(1, round(n * d * density))
    return file_nnz(src) if src.is_file and src.format != "shards" else None


def storage(name: str) -> str:
    """``csr`` for a dataset kept sparse, else ``dense`` (from the name, or a file's cheap look)."""
    return "dense" if nnz(name) is None else "csr"


def shape(name: str) -> tuple[int, int]:
    """``(n, d)`` of a dataset name, without building it (ValueError as :func:`source`); a file's
    exact shape once it is loaded, an estimate before (CSV/TSV: from the line count)."""
    src = source(name)
    if src.sparse_name:
        return parse_sparse(src.base)[:2]
    if not src.is_file:
        spec = parse_name(src.base)
        return NAMED[src.base] if spec is None else spec[:2]
    return shards_shape(src) if src.format == "shards" else file_shape(src)


def n_classes(name: str) -> int:
    """The class count of a dataset name: ``K`` of ``synthetic-<n>x<d>-k<K>``, 3 for ``iris-3class``,
    10 for ``digits``, else 2, without building it; a file's is its label's distinct values (2 with
    ``positive``), read once (:func:`load` keeps the last two files)."""
    src = source(name)
    if src.format == "shards":
        return shards_classes(src)
    if src.is_file:
        return load(name).n_classes
    return name_classes(src.base)


@functools.lru_cache(maxsize=2)
def load(name: str, seed: int = 0) -> Dataset:
    """A dataset by name (see :mod:`bench.data`). The last two are kept, so that the CLI's look at a
    dataset and the run that follows build it once. ValueError (a :class:`DataFileError` for a file)
    naming what is wrong."""
    src = source(name)
    if src.is_file:
        ds = load_shards(src, name) if src.format == "shards" else load_file(src)
        return ds if ds.name == name else replace(ds, name=name)
    ds = build(src.base, seed)
    if src.standardize:
        ds = replace(finish(name, ds.X, ds.y, ds.origin, ds.density, {}, True, ds.init_scale), n_classes=ds.n_classes)
    if src.dense and scipy.sparse.issparse(ds.X):
        check_dense(name, ds.n, ds.d, ds.X.nnz)
        ds = replace(ds, X=ds.X.toarray(), origin=ds.origin + ", densified", info={**ds.info, "densified": True})
    return ds if ds.name == name else replace(ds, name=name)
