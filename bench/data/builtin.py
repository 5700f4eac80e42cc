"""The built-in sets (scikit-learn's bundled data and ``make_classification``, no download) and the
shared initial-parameter draw. scikit-learn is imported when a set is built, not before: naming or
checking a set does not need it."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .dataset import Dataset, rms_init_scale
from .names import informative_features, name_classes, parse_name, parse_sparse, short_count
from .sparse import sparse_text


def iris() -> Dataset:
    """The seed article's task: Iris versicolor vs virginica, 100 samples, 4 features."""
    from sklearn.datasets import load_iris

    data, target = load_iris(return_X_y=True)
    X = data[50:150]  # rows 50-99 are versicolor, rows 100-149 virginica
    # target[:100] is fifty 0s then fifty 1s: these are the *setosa/versicolor* labels, reused on
    # purpose. It looks like a bug but is a deliberate relabelling: versicolor = 0, virginica = 1.
    y = target[:100].astype(np.float64)
    return Dataset("iris", X.astype(np.float64), y,
                   origin="sklearn.datasets.load_iris: X = data[50:150], y = target[:100] (versicolor 0, virginica 1)")


def breast_cancer() -> Dataset:
    """scikit-learn's bundled Wisconsin breast-cancer data: 569 samples, 30 features, binary
    (malignant = 0, benign = 1, scikit-learn's coding), no download. The features are raw (areas in
    the thousands); ``w0`` is scaled so that ``z = X w0`` starts O(1) (:func:`rms_init_scale`)."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = np.ascontiguousarray(X, dtype=np.float64)
    return Dataset("breast-cancer", X, y.astype(np.float64), rms_init_scale(X),
                   origin="sklearn.datasets.load_breast_cancer (malignant 0, benign 1)")


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
    name = f"synthetic-{short_count(n)}x{d}" + (f"-x{scale:g}" if scale != 1.0 else "")
    origin = (f"sklearn.datasets.make_classification(n_samples={n}, n_features={d}, flip_y={flip_y:g}, "
              f"random_state={seed})" + (f" x {scale:g}" if scale != 1.0 else ""))
    return Dataset(name, np.ascontiguousarray(X * scale, dtype=np.float64), y.astype(np.float64), 1.0 / np.sqrt(d),
                   origin=origin)


def iris_3class() -> Dataset:
    """All of Iris: 150 samples, 4 features, 3 classes (setosa 0, versicolor 1, virginica 2, the
    dataset's own coding), for softmax regression. The seed's unit init scale, as ``iris``."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return Dataset("iris-3class", np.ascontiguousarray(X, dtype=np.float64), y.astype(np.float64),
                   origin="sklearn.datasets.load_iris: all 150 rows, y = target (setosa 0, versicolor 1, virginica 2)",
                   n_classes=3)


def digits() -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits: 1797 samples, 64 pixel features (0 .. 16), 10
    classes, no download. ``w0`` is scaled so that ``Z = X W0`` starts O(1) (:func:`rms_init_scale`)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = np.ascontiguousarray(X, dtype=np.float64)
    return Dataset("digits", X, y.astype(np.float64), rms_init_scale(X),
                   origin="sklearn.datasets.load_digits (8x8 pixels 0-16, labels 0-9)", n_classes=10)


def synthetic_classes(n: int, d: int, k: int, seed: int = 0, scale: float = 1.0, flip_y: float = 0.05) -> Dataset:
    """``make_classification`` with ``k`` classes (labels ``0 .. k-1``), otherwise as :func:`synthetic`.
    ``make_classification`` needs ``k <= 2^informative`` (one cluster per class): ``d // 2 + 1``
    informative features, raised to ``ceil(log2 k)`` where ``d`` allows it."""
    from sklearn.datasets import make_classification

    informative = informative_features(d, k)
    if k > 2 ** informative:
        raise ValueError(f"dataset synthetic-{short_count(n)}x{d}-k{k}: {k} classes need at least "
                         f"{math.ceil(math.log2(k))} features (make_classification: classes <= 2^informative), "
                         f"got d={d}")
    X, y = make_classification(
        n_samples=n, n_features=d, n_informative=informative, n_redundant=0, n_repeated=0, n_classes=k,
        n_clusters_per_class=1, class_sep=1.0, flip_y=flip_y, random_state=seed,
    )
    name = f"synthetic-{short_count(n)}x{d}-k{k}" + (f"-x{scale:g}" if scale != 1.0 else "")
    origin = (f"sklearn.datasets.make_classification(n_samples={n}, n_features={d}, n_classes={k}, "
              f"flip_y={flip_y:g}, random_state={seed})" + (f" x {scale:g}" if scale != 1.0 else ""))
    return Dataset(name, np.ascontiguousarray(X * scale, dtype=np.float64), y.astype(np.float64), 1.0 / np.sqrt(d),
                   origin=origin, n_classes=k)


NAMED_SETS = {"iris": iris, "breast-cancer": breast_cancer, "iris-3class": iris_3class, "digits": digits}


def build(base: str, seed: int = 0) -> Dataset:
    """A named set, or the synthetic set a ``synthetic-<n>x<d>[-k<K>][-x<scale>]`` or
    ``sparse-<n>x<d>-d<density>[-k<K>]`` name describes (drawn with ``seed``), named ``base``."""
    if base in NAMED_SETS:
        return NAMED_SETS[base]()
    if base.startswith("sparse-"):
        n, d, density, k = parse_sparse(base)
        return replace(sparse_text(n, d, density, k, seed=seed), name=base)
    n, d, scale = parse_name(base)
    k = name_classes(base)
    return replace(synthetic(n, d, seed=seed, scale=scale) if k == 2 else
                   synthetic_classes(n, d, k, seed=seed, scale=scale), name=base)

