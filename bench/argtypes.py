"""The command line's value types: one-line errors (exit code 2) naming what was expected and what came."""

from __future__ import annotations

import argparse
import math
import re

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
