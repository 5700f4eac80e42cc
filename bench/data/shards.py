"""Shard folders as data-set names: ``DIR`` (a folder holding ``meta.json``) or ``shards:DIR``.

The format (``meta.json`` plus ``.npz`` parts of one schema) and the part reader are
:mod:`implementations.shards`'s, because the engines' workers read their own parts with them. The
harness side here reads the metadata only (:func:`check_shards`, :func:`shards_shape`,
:func:`shards_classes`), writes a folder (:func:`write_shards`, behind ``python -m bench shard``), and
for a single-process backend concatenates the parts one at a time (:func:`load_shards`).
"""

from __future__ import annotations

import json
import os

import numpy as np

from implementations.shards import (
    FORMAT,
    META,
    ShardError,
    ShardMeta,
    load_part,
    read_meta,
    sha256_of,
)

from .dataset import DataFileError, Dataset, rms_init_scale
from .names import Source

PREFIX = "shards:"


def _meta(src: Source) -> ShardMeta:
    try:
        return read_meta(src.base)
    except ShardError as exc:
        raise DataFileError(str(exc)) from None


def check_shards(src: Source) -> tuple[int, int]:
    """``(n, d)`` from ``meta.json``, every part file present; nothing is loaded."""
    meta = _meta(src)
    missing = [f for f in meta.files if not os.path.isfile(os.path.join(meta.root, f))]
    if missing:
        raise DataFileError(f"{src.base}: part file(s) {missing[:3]} named in {META} are missing")
    return meta.n, meta.d


def shards_shape(src: Source) -> tuple[int, int]:
    meta = _meta(src)
    return meta.n, meta.d


def shards_classes(src: Source) -> int:
    return _meta(src).n_classes


def load_shards(src: Source, name: str) -> Dataset:
    """The whole set in one process (for single-process backends and small sets): the parts read
    one at a time into one preallocated ``X``. The data-parallel backends never call this: their
    workers read their own parts (``prepare_shards``)."""
    meta = _meta(src)
    X, y = np.empty((meta.n, meta.d)), np.empty(meta.n)
    for p, (lo, hi) in enumerate(zip(meta.starts[:-1], meta.starts[1:], strict=True)):
        try:
            X[lo:hi], y[lo:hi] = load_part(meta, p)
        except ShardError as exc:
            raise DataFileError(str(exc)) from None
    info = {"format": "shards", "parts": meta.parts, "n_classes": meta.n_classes}
    return Dataset(name, X, y, rms_init_scale(X), f"shards {meta.root} ({meta.parts} parts)", None, info,
                   n_classes=meta.n_classes)


def write_shards(X, y, out: str, parts: int | None = None, sizes=None, n_classes: int | None = None) -> ShardMeta:
    """Write ``X, y`` as a shard folder ``out``: ``parts`` parts of ``numpy.array_split`` sizes, or the
    given row ``sizes`` (unequal shards). ``y`` must be integer labels ``0 .. K-1``; ``n_classes``
    defaults to ``max(y) + 1`` (at least 2). Refuses a non-empty ``out`` that is not a shard folder."""
    X, y = np.ascontiguousarray(X, dtype=np.float64), np.asarray(y)
    n, d = X.shape
    if sizes is None:
        if parts is None or not 1 <= parts <= n:
            raise ValueError(f"parts must be between 1 and n = {n}, got {parts}")
        sizes = [len(a) for a in np.array_split(np.arange(n), parts)]
    sizes = [int(s) for s in sizes]
    if sum(sizes) != n or min(sizes) < 1:
        raise ValueError(f"part sizes must be >= 1 and sum to n = {n}, got {sizes}")
    k = int(n_classes or max(2, int(np.max(y)) + 1))
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, META)):
        raise ValueError(f"{out}: exists and is not a shard folder; give an empty or new folder")
    os.makedirs(out, exist_ok=True)
    entries, lo = [], 0
    for p, rows in enumerate(sizes):
        fname = f"part-{p:05d}.npz"
        path = os.path.join(out, fname)
        np.savez(path, X=X[lo:lo + rows], y=y[lo:lo + rows].astype(np.int64 if k >= 3 else np.float64))
        entries.append({"file": fname, "n": rows, "sha256": sha256_of(path)})
        lo += rows
    meta = {"format": FORMAT, "version": 1, "n": n, "d": d, "n_classes": k, "dtype": "float64", "parts": entries}
    tmp = os.path.join(out, META + ".tmp")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(tmp, os.path.join(out, META))
    return read_meta(out)
