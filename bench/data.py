"""Datasets and the shared initial-parameter draw (the harness's side of the data path).

Every backend of a comparison gets the same host arrays from here and the same ``(w0, b0)``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Dataset:
    name: str
    X: np.ndarray  # (n, d) float64 host array
    y: np.ndarray  # (n,) float64 in {0, 1}
    init_scale: float = 1.0  # w0 ~ init_scale * N(0, 1)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]


def iris() -> Dataset:
    """The seed article's task: Iris versicolor vs virginica, 100 samples, 4 features."""
    from sklearn.datasets import load_iris

    data, target = load_iris(return_X_y=True)
    X = data[50:150]  # rows 50-99 are versicolor, rows 100-149 virginica
    # target[:100] is fifty 0s then fifty 1s: these are the *setosa/versicolor* labels, reused on
    # purpose. It looks like a bug but is a deliberate relabelling: versicolor = 0, virginica = 1.
    y = target[:100].astype(np.float64)
    return Dataset("iris", X.astype(np.float64), y)


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
    return Dataset(name, np.ascontiguousarray(X * scale, dtype=np.float64), y.astype(np.float64), 1.0 / np.sqrt(d))


def _short(n: int) -> str:
    for unit, k in (("M", 1_000_000), ("k", 1_000)):
        if n >= k and n % k == 0:
            return f"{n // k}{unit}"
    return str(n)


_SIZE = re.compile(r"^synthetic-(\d+)([kM]?)x(\d+)(?:-x(\d+(?:\.\d*)?(?:e[+-]?\d+)?))?$")
MAX_DIGITS = 12  # n and d: at most 12 digits (1e12 rows is far beyond any machine; Python refuses > 4300)


def parse_name(name: str) -> tuple[int, int, float] | None:
    """``None`` for ``iris``, else ``(n, d, scale)`` of ``synthetic-<n>x<d>[-x<scale>]``; ValueError
    otherwise, naming the part that is wrong (n or d with more than ``MAX_DIGITS`` digits, a scale
    that is not a positive finite number)."""
    if name == "iris":
        return None
    m = _SIZE.match(name) if isinstance(name, str) else None
    short = name if not isinstance(name, str) or len(name) <= 60 else f"{name[:40]}... ({len(name)} characters)"
    if not m:
        raise ValueError(
            f"dataset must be 'iris' or 'synthetic-<n>x<d>[-x<scale>]' (e.g. synthetic-10kx100), got {short!r}"
        )
    for what, digits in (("n", m.group(1)), ("d", m.group(3))):
        if len(digits) > MAX_DIGITS:
            raise ValueError(f"dataset {short!r}: {what} must have at most {MAX_DIGITS} digits, got {len(digits)}")
    n = int(m.group(1)) * {"": 1, "k": 1_000, "M": 1_000_000}[m.group(2)]
    d = int(m.group(3))
    if n < 2 or d < 1:
        raise ValueError(f"dataset {short!r}: need n >= 2 and d >= 1, got n={n}, d={d}")
    scale = float(m.group(4) or 1.0)
    if not (0 < scale < float("inf")):
        raise ValueError(f"dataset {short!r}: the scale after -x must be a positive finite number, "
                         f"got {m.group(4)!r} (= {scale:g})")
    return n, d, scale


def shape(name: str) -> tuple[int, int]:
    """``(n, d)`` of a dataset name, without building it (ValueError as :func:`parse_name`)."""
    spec = parse_name(name)
    return (100, 4) if spec is None else spec[:2]


@functools.lru_cache(maxsize=2)
def load(name: str, seed: int = 0) -> Dataset:
    """``iris`` or ``synthetic-<n>x<d>[-x<scale>]`` (n may end in k or M, e.g. ``synthetic-10kx100``).
    The last two are kept, so that the CLI's look at a dataset and the run that follows build it once."""
    spec = parse_name(name)
    if spec is None:
        return iris()
    n, d, scale = spec
    return replace(synthetic(n, d, seed=seed, scale=scale), name=name)


def init_params(d: int, seed: int = 0, scale: float = 1.0) -> tuple[np.ndarray, float]:
    """One host draw ``w0 ~ scale * N(0, I_d)``, ``b0 ~ N(0, 1)``, shared by every backend."""
    rng = np.random.default_rng(seed)
    w0 = scale * rng.standard_normal(d)
    b0 = float(rng.standard_normal())
    return w0, b0
