"""``python -m bench shard FILE --parts N --out DIR``: write a data set as a folder of shards.

``FILE`` is any data-set name (a data file, a named or synthetic set, with options in brackets); the
folder holds ``meta.json`` and ``N`` ``.npz`` parts (:mod:`bench.data.shards`). ``--sizes`` gives
unequal parts instead (row counts summing to n). The folder is then a data-set name itself, and the
data-parallel engines read it part by part, each worker only its own (``docs/distributed.md``).
"""

from __future__ import annotations

import argparse
import sys

from .argtypes import positive_int
from .data import DataFileError, load
from .data.shards import write_shards


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="FILE", help="a data file or data-set name to split")
    p.add_argument("--parts", type=positive_int, default=None,
                   help="how many parts of equal size (as numpy.array_split)")
    p.add_argument("--sizes", default=None, help="comma-separated row counts of the parts instead (unequal shards)")
    p.add_argument("--out", required=True, metavar="DIR", help="the shard folder to write (new or empty)")
    p.add_argument("--seed", type=int, default=0, help="the seed of a synthetic set")


def cmd_shard(args: argparse.Namespace) -> int:
    if (args.parts is None) == (args.sizes is None):
        print("python -m bench shard: error: give exactly one of --parts N or --sizes A,B,...", file=sys.stderr)
        return 2
    try:
        sizes = None if args.sizes is None else [int(s) for s in args.sizes.split(",") if s.strip()]
        ds = load(args.dataset, args.seed)
        meta = write_shards(ds.X, ds.y, args.out, parts=args.parts, sizes=sizes, n_classes=ds.n_classes)
    except (DataFileError, ValueError, OSError) as exc:
        print(f"python -m bench shard: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {meta.parts} part(s) of {list(meta.counts)} rows x {meta.d} features "
          f"({meta.n_classes} classes) to {meta.root}")
    return 0

