"""The command line's value types: one-line errors (exit code 2) naming what was expected and what came."""

from __future__ import annotations

import argparse
import math
import re

from implementations import resolve

from . import data

SEED_MAX = 2**32 - 1
DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


class UsageError(Exception):
    """A bad command-line value: printed as one line, exit code 2."""


def choices(name, values, allowed):
    bad = [v for v in values if v not in allowed]
    if bad:
        raise UsageError(f"{name} must be among {list(allowed)}, got {bad[0]!r}")
    return tuple(dict.fromkeys(values))


def devices(values):
    bad = [v for v in values if not DEVICE.match(v)]
    if bad:
        raise UsageError(f"--devices must be among cpu, cuda, cuda:N, mps, got {bad[0]!r}")
    return tuple(dict.fromkeys(values))


def arg_type(parse, ok, expected: str, expected_after_parse: str | None = None):
    """An argparse ``type``: ``parse(text)``, then ``ok(value)``; one message naming what was expected
    (``expected_after_parse`` when the text parsed but the value is out of range) and what came."""
    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected_after_parse or expected}, got {text!r}")
        return value
    return convert


positive_int = arg_type(int, lambda v: v >= 1, "a positive integer")
positive_float = arg_type(float, lambda v: 0 < v < math.inf, "a positive number", "a positive finite number")
nonneg_float = arg_type(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0", "a finite number >= 0")
batch_size = arg_type(lambda t: None if t == "full" else int(t), lambda v: v is None or v >= 1,
                        "'full' or a positive integer")
seed = arg_type(int, lambda v: 0 <= v <= SEED_MAX, f"an integer between 0 and {SEED_MAX}")


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints usage too; we keep it short)
        self.exit(2, f"{self.prog}: error: {message}\n")


def datasets(values, label=None, positive=None, standardize=False, load=True, many_classes=False, dense=False,
             n_features=None):
    """Dataset names with ``--label``/``--positive``/``--standardize`` written in (bench.data's
    ``name[options]``); each checked before any work: a named or synthetic set by its name, a file
    by its type, label column and size against the memory (before it is read), then (``load``)
    loaded and validated in full, its label mapping printed. Any problem is one UsageError naming
    the file."""
    names = []
    try:
        names = list(dict.fromkeys(data.with_options(v, label, positive, standardize, many_classes, dense, n_features)
                                   for v in values))
        for name in names:
            data.check(name)
    except ValueError as exc:
        raise UsageError(f"--datasets: {exc}") from None
    files = [n for n in names if data.is_file(n)]
    if label is not None and not any(data.source(n).format in data.TABLES for n in files):
        raise UsageError(f"--label {label!r} names a column of a CSV/TSV/Parquet file, and no dataset is one")
    if positive is not None and not files:
        raise UsageError(f"--positive {positive!r} applies to data files (one-vs-rest), and no dataset is one")
    for name in files if load else ():
        try:
            print(data.summary(data.load(name)), flush=True)
        except (ValueError, MemoryError) as exc:
            raise UsageError(f"--datasets: {exc}") from None
    return tuple(names)


def backends(values, default):
    """Registered names, read from the registry now (a backend registered after import counts); a
    spec (``package.module:Class``, ``path/file.py:Class``, an entry point) is resolved to its name."""
    if values is None:
        return tuple(default())
    return tuple(dict.fromkeys(resolve_spec("--backends", v) for v in values))


def resolve_spec(option: str, spec: str) -> str:
    try:
        return resolve(spec)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
