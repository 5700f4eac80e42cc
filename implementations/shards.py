"""A folder of shards: a data set no single process has to hold, read one part at a time.

Layout (written by ``python -m bench shard FILE --parts N --out DIR``)::

    DIR/meta.json          {"format": "logreg-shards", "version": 1, "n": ..., "d": ..., "n_classes": K,
                            "dtype": "float64", "parts": [{"file": "part-00000.npz", "n": rows,
                            "sha256": "..."}, ...]}
    DIR/part-00000.npz     arrays X (rows, d) and y (rows,): every part has the same schema

The rows of the data set are the parts' rows in part order: global row ``i`` is local row
``i - starts[p]`` of the part ``p`` with ``starts[p] <= i < starts[p + 1]``. A worker is given
consecutive parts (:func:`assign_parts`), so it holds one consecutive range of global rows and the
shared batch schedule maps onto it as for in-memory shards (:func:`implementations._distributed.local_schedule`).

This module reads metadata and single parts; it lives in ``implementations/`` because the workers of
``torch-ddp`` and ``numpy-dask`` read their own parts with it (``implementations`` never imports
``bench``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

try:
    import resource
except ImportError:  # not POSIX: no peak-memory figure
    resource = None

META = "meta.json"
FORMAT = "logreg-shards"


class ShardError(ValueError):
    """A shard folder or part that cannot be used; the message names the file."""


@dataclass(frozen=True)
class ShardMeta:
    """What ``meta.json`` says: the folder, the shape, and each part's file, rows and checksum."""

    root: str
    n: int
    d: int
    n_classes: int
    dtype: str
    files: tuple[str, ...]
    counts: tuple[int, ...]
    sha256: tuple[str, ...]

    @property
    def parts(self) -> int:
        return len(self.files)

    @property
    def starts(self) -> np.ndarray:
        """``(parts + 1,)``: part ``p`` holds global rows ``starts[p] .. starts[p + 1] - 1``."""
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    def path(self, p: int) -> str:
        return os.path.join(self.root, self.files[p])


def is_shard_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, META))


def read_meta(root: str) -> ShardMeta:
    """The folder's ``meta.json``, checked for consistency (no part is opened)."""
    meta_path = os.path.join(root, META)
    try:
        with open(meta_path) as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise ShardError(f"{root}: not a shard folder (no {META}; write one with `python -m bench shard`)") from None
    except (OSError, ValueError) as exc:
        raise ShardError(f"{meta_path}: cannot be read as JSON ({exc})") from None
    try:
        if raw.get("format") != FORMAT:
            raise ShardError(f"{meta_path}: format must be {FORMAT!r}, got {raw.get('format')!r}")
        parts = raw["parts"]
        meta = ShardMeta(os.path.abspath(root), int(raw["n"]), int(raw["d"]), int(raw.get("n_classes", 2)),
                         str(raw.get("dtype", "float64")), tuple(str(p["file"]) for p in parts),
                         tuple(int(p["n"]) for p in parts), tuple(str(p.get("sha256", "")) for p in parts))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ShardError(f"{meta_path}: missing or malformed field ({type(exc).__name__}: {exc})") from None
    if not parts or any(c < 1 for c in meta.counts) or sum(meta.counts) != meta.n or meta.d < 1:
        raise ShardError(f"{meta_path}: needs at least one part, each with n >= 1 rows summing to n = {meta.n}, "
                         f"and d >= 1; got parts of {list(meta.counts)} rows, d = {meta.d}")
    if any(os.sep in f or f.startswith("..") for f in meta.files):
        raise ShardError(f"{meta_path}: part files must lie in the folder itself, got {list(meta.files)}")
    return meta


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_part(meta: ShardMeta, p: int, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Part ``p``'s ``(X, y)`` (X float64 as stored or converted, y as stored), checked against the
    metadata: its checksum (``verify``), shape, finite values, labels ``0 .. K-1``."""
    path = meta.path(p)
    if verify and meta.sha256[p] and sha256_of(path) != meta.sha256[p]:
        raise ShardError(f"{path}: sha256 differs from {META} (the part changed after it was written)")
    try:
        with np.load(path, allow_pickle=False) as z:
            X, y = np.asarray(z["X"]), np.asarray(z["y"])
    except (OSError, KeyError, ValueError) as exc:
        raise ShardError(f"{path}: cannot be read as an .npz with arrays X and y ({exc})") from None
    if X.shape != (meta.counts[p], meta.d) or y.shape != (meta.counts[p],):
        raise ShardError(f"{path}: X {X.shape} and y {y.shape} must be ({meta.counts[p]}, {meta.d}) and "
                         f"({meta.counts[p]},) as {META} says")
    if not np.all(np.isfinite(X)):
        raise ShardError(f"{path}: X must contain only finite values")
    k = max(meta.n_classes, 2)
    if not np.all((y >= 0) & (y < k) & (y == np.round(y))):
        raise ShardError(f"{path}: labels must be integers 0 .. {k - 1}")
    return X, y


def assign_parts(counts, workers: int) -> list[list[int]]:
    """Consecutive parts per worker, ``workers`` groups as ``numpy.array_split`` of the part list
    (every worker gets at least one part: ``workers <= parts``)."""
    parts = len(counts)
    if not 1 <= workers <= parts:
        raise ShardError(f"workers must be between 1 and the number of parts ({parts}): each worker reads "
                         f"whole parts; got {workers} (write more parts with `python -m bench shard --parts`)")
    return [[int(p) for p in group] for group in np.array_split(np.arange(parts), workers)]


def worker_bounds(meta: ShardMeta, groups) -> list[tuple[int, int]]:
    """The global row range ``[lo, hi)`` each group of consecutive parts holds."""
    starts = meta.starts
    return [(int(starts[g[0]]), int(starts[g[-1] + 1])) for g in groups]


def load_parts(meta: ShardMeta, group, dtype: str):
    """One worker's rows: its parts read one after another into one ``(X, y)``, ``X`` of ``dtype``,
    ``y`` the labels as float64. The only copy of the data this process keeps."""
    rows = sum(meta.counts[p] for p in group)
    X, y = np.empty((rows, meta.d), dtype=dtype), np.empty(rows)
    at = 0
    for p in group:
        Xp, yp = load_part(meta, p)
        X[at:at + len(yp)], y[at:at + len(yp)] = Xp, yp
        at += len(yp)
    return X, y


def peak_rss_bytes() -> int:
    """This process's peak resident memory in bytes, for the per-worker memory check: ``VmHWM`` of
    ``/proc/self/status``, which counts this program only (``ru_maxrss``, the fallback elsewhere, also
    keeps the peak from before ``exec``: a worker started from a large parent, such as torchrun's agent,
    would report the parent's size)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024 if resource is not None else 0
