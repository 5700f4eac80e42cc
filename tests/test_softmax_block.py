"""Issue 19, items 5 and 6: the K-class roofline (the larger of the memory and compute floors, and
which bound applies) and the default run's softmax block with its verdict (NumPy's best against
PyTorch's best per K-class dataset, and whether the answer differs from the binary model's on the
same shape). Fast: fabricated rows and figures, no training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench import cli, roofline, selection
from bench.cases import SEED_LR, bytes_per_step, default_iters, default_lr
from bench.measure import k_class_floor
from bench.records import Case, Row, as_run
from bench.report import summary_markdown
from bench.report.verdict import SOFTMAX_TITLE, softmax_verdict
from implementations import TrainConfig

from .fabricate import fabricate_rows

FIGS = {"host_read": 20.0, "host_gflops_float32": 100.0, "host_gflops_float64": 50.0, "llc_mib": 32.0}


# -- item 5: the roofline -----------------------------------------------------------------------

def test_flops_and_bytes_grow_with_k_and_binary_is_unchanged():
    assert roofline.flops_per_step(100, 4) == 1600 == roofline.flops_per_step(100, 4, 2)
    assert roofline.flops_per_step(100, 4, 10) == 16000
    assert bytes_per_step(100, 4, "float32") == 4 * (400 + 100 + 10)  # today's binary figure
    assert bytes_per_step(100, 4, "float32", 2) == bytes_per_step(100, 4, "float32")
    assert bytes_per_step(100, 4, "float32", 3) == 4 * (400 + 100 + 2 * 5 * 3)  # X once; (d + 1) K parameters
    # binary compute fraction as before; K-class: K times the flops
    assert roofline.compute_fraction(1e-6, 100, 4, "float32", FIGS) == pytest.approx(1600 / 1e-6 / 100e9)
    assert roofline.compute_fraction(1e-6, 100, 4, "float32", FIGS, 10) == pytest.approx(16000 / 1e-6 / 100e9)


def test_step_floor_is_the_larger_term_and_names_it():
    m, d = 100_000, 100
    b = bytes_per_step(m, d, "float32", 10)
    f = roofline.step_floor(b, m, d, "float32", FIGS, 10)
    assert f.memory_s == pytest.approx(b / 20e9) and f.compute_s == pytest.approx(4 * m * d * 10 / 100e9)
    assert f.bound == "compute" and f.seconds == f.compute_s  # 4 ms of flops > 2 ms of bytes: compute
    binary = roofline.step_floor(bytes_per_step(m, d, "float32"), m, d, "float32", FIGS)
    assert binary.bound == "memory" and binary.seconds == binary.memory_s  # 2 flops per byte read: memory
    assert roofline.step_floor(b, m, d, "float32", {"host_read": 10.0}, 10).bound == "memory"  # no roof known
    assert roofline.step_floor(b, m, d, "float32", {}, 10).seconds is None
    dev = roofline.step_floor(b, m, d, "float32", {"device_read": 4000.0, "device_gflops_float32": 20_000.0},
                              10, device="cuda")
    assert dev.bound == "compute" and dev.seconds == pytest.approx(4 * m * d * 10 / 20e12)


def _row(dataset, k, n, d, dtype="float32"):
    case = Case("numpy", dataset, TrainConfig(n_classes=k, dtype=dtype))
    return case, Row.for_case("r", case, n=n, d=d, bytes_per_step=bytes_per_step(n, d, dtype, k))


def test_k_class_row_out_of_cache_reports_the_larger_floor():
    case, row = _row("synthetic-100kx100-k10", 10, 100_000, 100)
    floor = roofline.step_floor(row.bytes_per_step, 100_000, 100, "float32", FIGS, 10)
    t = 2 * floor.seconds
    out = k_class_floor(row, case, FIGS, t)
    assert out["bound"] == "compute"
    assert out["roofline_fraction"] == pytest.approx(0.5)
    assert out["compute_fraction"] == pytest.approx(out["roofline_fraction"])  # compute-bound: the same figure
    # memory-bound (a slow memory, a fast roof): roofline_fraction against the memory floor, compute_fraction lower
    figs = {**FIGS, "host_read": 1.0}
    out = k_class_floor(row, case, figs, t)
    assert out["bound"] == "memory"
    assert out["roofline_fraction"] == pytest.approx(row.bytes_per_step / 1e9 / t)
    assert out["compute_fraction"] < out["roofline_fraction"]


# -- item 6: the default run's softmax block ----------------------------------------------------

def test_iris_3class_has_the_seed_settings():
    assert default_lr("iris-3class") == SEED_LR == default_lr("iris")
    assert default_iters(150, 4) == 5000


def _default_cases(argv):
    args = cli.build_parser().parse_args(["run", "--backends", "numpy", "torch", "--devices", "cpu", *argv])
    selection.common(args)
    return selection.cases(args)


def test_default_run_is_main_and_minibatch_and_all_adds_softmax_and_time_to_model():
    default = _default_cases([])
    assert {c.config.batch_size for c in default} == {None, cli.MINIBATCH_SIZE}
    assert not any(c.config.n_classes >= 3 or c.config.optimizer != "gd" for c in default)
    assert {c.dataset for c in default} == {*cli.DEFAULT_DATASETS, cli.MINIBATCH_DATASET}
    every = _default_cases(["--blocks", "all"])
    assert {c.case_id for c in default} < {c.case_id for c in every}
    assert [c.case_id for c in _default_cases(["--blocks", "softmax"])] == \
        [c.case_id for c in every if c.config.n_classes >= 3]
    assert {c.case_id for c in _default_cases(["--blocks", "main"])} == \
        {c.case_id for c in default if c.config.batch_size is None}


@pytest.mark.parametrize("argv, fragment", [
    (["--blocks", "nope"], "--blocks must be among"),
    (["--blocks", "softmax", "--datasets", "iris"], "with --datasets or --batch-sizes the run is that matrix"),
    (["--blocks", "main", "--batch-sizes", "8"], "with --datasets or --batch-sizes the run is that matrix"),
], ids=["unknown", "with-datasets", "with-batch-sizes"])
def test_blocks_refused_with_one_message(argv, fragment):
    with pytest.raises(cli.UsageError, match=fragment):
        _default_cases(argv)


def test_the_softmax_block():
    cases = _default_cases(["--blocks", "all"])
    soft = [c for c in cases if c.config.n_classes >= 3]
    assert {c.dataset for c in soft} == set(cli.SOFTMAX_DATASETS) == {"iris-3class", "synthetic-100kx100-k10"}
    assert {c.config.dtype for c in soft} == {"float32"}
    assert {c.config.formulation for c in soft} == {"probs", "logits"}
    assert {c.backend for c in soft} == {"numpy", "torch"} and all(c.config.batch_size is None for c in soft)
    assert len(soft) == 2 * 2 * 2
    iris = [c for c in soft if c.dataset == "iris-3class"]
    assert all(c.config.n_classes == 3 and c.config.n_iters == 5000 and c.config.lr == SEED_LR for c in iris)
    big = [c for c in soft if c.dataset == "synthetic-100kx100-k10"]
    assert all(c.config.n_classes == 10 and c.config.n_iters == default_iters(100_000, 100) for c in big)
    # the binary rows it is compared with are in the same run, in the same dtype and formulations
    assert {(c.config.dtype, c.config.formulation) for c in cases
            if c.dataset == "synthetic-100kx100" and c.config.batch_size is None} >= {("float32", "probs"),
                                                                                      ("float32", "logits")}


def test_no_softmax_block_when_datasets_are_given():
    assert not any(c.config.n_classes >= 3 for c in _default_cases(["--datasets", "iris"]))


# -- the verdict --------------------------------------------------------------------------------

def _with_softmax(torch_factor: float, numpy_factor: float = 1.0) -> pd.DataFrame:
    """The fabricated run plus K = 10 rows on the 100k x 100 shape: each binary synthetic-100kx100
    full-batch row copied as ``synthetic-100kx100-k10``, times scaled per library."""
    df = fabricate_rows()
    big = df[(df["dataset"] == "synthetic-100kx100") & (df["loop"] == "full-batch")].copy()
    big["dataset"], big["n_classes"] = "synthetic-100kx100-k10", 10
    big["case_id"] = big["case_id"].str.replace("synthetic-100kx100|", "synthetic-100kx100-k10|", regex=False)
    for col in ("time_per_iter_s", "iqr_per_iter_s", "time_median_s", "time_iqr_s"):
        big[col] = big[col] * np.where(big["library"] == "torch", torch_factor, numpy_factor)
    big["times_s"] = [" ".join(repr(float(x) * (torch_factor if lib == "torch" else numpy_factor))
                               for x in str(t).split()) for t, lib in zip(big["times_s"], big["library"], strict=True)]
    big["roofline_fraction"], big["compute_fraction"], big["bound"] = 0.4, 0.4, "compute"
    out = pd.concat([df.assign(n_classes=2), big], ignore_index=True)
    assert out["case_id"].is_unique
    return as_run(out).rows


def _binary_answer(df, dtype, form):
    good = df[(df["dataset"] == "synthetic-100kx100") & (df["dtype"] == dtype) & (df["formulation"] == form)
              & (df["status"] == "ok") & (df["verdict"] == "pass") & (df["loop"] == "full-batch")]
    npy = good[good["library"] == "numpy"]["time_per_iter_s"].min()
    pt = good[good["library"] == "torch"]["time_per_iter_s"].min()
    return "NumPy" if npy < pt else "PyTorch"


def test_softmax_verdict_says_when_the_answer_flips():
    base = _with_softmax(1.0)
    winner = _binary_answer(base, "float32", "logits")
    # make the other library win by far on K = 10: the answer flips
    df = _with_softmax(torch_factor=0.01) if winner == "NumPy" else _with_softmax(1.0, numpy_factor=0.01)
    lines = softmax_verdict(df)
    line = next(x for x in lines if "synthetic-100kx100-k10" in x and "float32, logits" in x)
    other = "PyTorch" if winner == "NumPy" else "NumPy"
    assert "K=10" in line and f"**{other} " in line and "the answer flips" in line
    assert f"Binary `synthetic-100kx100` (float32, logits): {winner} " in line
    assert "compute floor" in line  # the winner's floor is the K-class one, compute-bound


def test_softmax_verdict_says_when_the_answer_is_the_same():
    lines = softmax_verdict(_with_softmax(1.0))  # the same times as the binary rows: the same winner
    got = [x for x in lines if "synthetic-100kx100-k10" in x]
    assert got and all("the same answer" in x or "no correct" in x for x in got)
    assert any("the same answer" in x for x in got)


@pytest.mark.slow
def test_softmax_verdict_is_its_own_section_and_absent_without_k_class_rows():
    text = summary_markdown(_with_softmax(1.0))  # the verdict's sections, the softmax one last
    assert f"**{SOFTMAX_TITLE}**" in text
    assert text.index(f"**{SOFTMAX_TITLE}**") > text.index("**synthetic-100kx100-k10 (n=100000, d=100), full batch**")
    assert softmax_verdict(as_run(fabricate_rows()).rows) == []


def test_iris_3class_is_compared_with_the_binary_iris():
    df = fabricate_rows()
    tri = df[(df["dataset"] == "iris") & (df["loop"] == "full-batch")].copy()
    tri["dataset"], tri["n_classes"], tri["n"] = "iris-3class", 3, 150
    tri["case_id"] = tri["case_id"].str.replace("iris|", "iris-3class|", regex=False)
    lines = softmax_verdict(as_run(pd.concat([df.assign(n_classes=2), tri], ignore_index=True)).rows)
    assert lines and all(x.startswith("iris-3class (n=150, d=4), K=3") for x in lines)
    assert any("Binary `iris`" in x for x in lines)


def test_bound_column_is_read_from_older_files():
    df = as_run(fabricate_rows().drop(columns=[c for c in ("bound",) if c in fabricate_rows()])).rows
    assert "bound" in df and df["bound"].isna().all()


def test_optimum_guard_spares_the_small_k_class_sets_only():
    from bench.inputs import OPTIMUM_MAX_NEWTON_FLOPS

    def newton(n, d, k):
        return n * ((d + 1) * k) ** 2

    assert newton(150, 4, 3) < newton(1797, 64, 10) < OPTIMUM_MAX_NEWTON_FLOPS  # iris-3class, digits: fitted
    assert newton(100_000, 100, 10) > OPTIMUM_MAX_NEWTON_FLOPS  # the block's 100k x 100 K = 10 set: not
