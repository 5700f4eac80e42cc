"""A dataset name -> its shape, its cheap checks, its class count, its arrays: the named and
synthetic sets from :mod:`.builtin`, files from :mod:`.files`, options applied here."""

from __future__ import annotations

import functools
from dataclasses import replace

from .builtin import build
from .dataset import Dataset, finish
from .files import check_file, file_shape, load_file
from .names import NAMED, name_classes, parse_name, source
from .shards import check_shards, load_shards, shards_classes, shards_shape


def check(name: str) -> tuple[int, int]:
    """The cheap checks of a dataset name, before anything is loaded: the name or the file's type,
    the file there and readable, not empty, its label column, and its size against the memory
    available (estimated from the header and line count, or read from the file's metadata).
    Returns ``(n, d)`` (an estimate for CSV/TSV). ValueError naming the file and what is wrong."""
    src = source(name)
    if not src.is_file:
        return shape(name)
    return check_shards(src) if src.format == "shards" else check_file(src)


def shape(name: str) -> tuple[int, int]:
    """``(n, d)`` of a dataset name, without building it (ValueError as :func:`source`); a file's
    exact shape once it is loaded, an estimate before (CSV/TSV: from the line count)."""
    src = source(name)
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
        ds = replace(finish(name, ds.X, ds.y, ds.origin, None, {}, True, ds.init_scale), n_classes=ds.n_classes)
    return ds if ds.name == name else replace(ds, name=name)
