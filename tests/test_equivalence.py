"""Every pair of backends computes the same training run: seed task, same init, 5000 steps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.oracle import compare, reference_run, tolerance
from implementations import BACKENDS, DTYPES, FORMULATIONS, TrainConfig

from .conftest import TRAINERS, train


@pytest.fixture(scope="module")
def runs(iris_data):
    X, y, w0, b0 = iris_data
    out = {}
    for name, dtype, form in itertools.product(BACKENDS, DTYPES, FORMULATIONS):
        out[name, dtype, form] = train(TRAINERS[name], TrainConfig(dtype=dtype, formulation=form), X, y, w0, b0)
    return out


def test_tolerances_are_the_derived_ones():
    # u * sqrt(K) * (1 + d + log2 n): float32 on the seed task, and float64's 1e-10 floor
    assert tolerance("float32", 5000, 100, 4) == pytest.approx(2**-24 * np.sqrt(5000) * (5 + np.log2(100)))
    assert 4e-5 < tolerance("float32", 5000, 100, 4) < 6e-5
    assert tolerance("float64", 5000, 100, 4) == 1e-10


@pytest.mark.parametrize("form", FORMULATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("a, b", list(itertools.combinations(BACKENDS, 2)), ids="{0[0]}-vs-{0[1]}".format)
def test_pairs_agree(a, b, dtype, form, runs):
    tol = tolerance(dtype, 5000, 100, 4)
    agreement = compare(runs[a, dtype, form], runs[b, dtype, form], tol)
    assert agreement.rel_dparam <= tol, agreement
    assert agreement.rel_dloss <= tol, agreement


@pytest.mark.parametrize("form", FORMULATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", BACKENDS)
def test_agrees_with_float64_reference(name, dtype, form, runs, iris_data):
    X, y, w0, b0 = iris_data
    ref = reference_run(X, y, w0, b0, TrainConfig(dtype=dtype, formulation=form))
    agreement = compare(runs[name, dtype, form], ref, tolerance(dtype, 5000, 100, 4))
    assert agreement.ok, agreement
    if dtype == "float32":  # float32 is really float32: not bit-identical to the float64 reference
        assert agreement.rel_dparam > 0


def test_formulations_agree_where_nothing_saturates(runs):
    """probs and logits are the same function; on the seed task (|z| < 17) they agree."""
    a, b = runs["numpy", "float64", "probs"], runs["numpy", "float64", "logits"]
    assert compare(a, b, 1e-10).ok
