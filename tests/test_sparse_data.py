"""Sparse data through the harness: names, readers, memory by non-zeros, ``--dense``, bad input, the
oracle's side (smoothness, optimum), a step's bytes, the density sweep's table, and small runs of
``bench run``/``check``/``grad`` on CSR data (rows carrying nnz, density and storage; a backend
without sparse support a ``skipped`` row with its reason). Tiny data throughout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from bench import cases, data, oracle, roofline, sparse_sweep
from bench.data import DataFileError, files, sparse_files
from tests.cli import run_cli

SMALL = "sparse-300x200-d0.02"


@pytest.fixture(autouse=True)
def _fresh_caches():
    data.load.cache_clear()
    files._load_file.cache_clear()
    files._peek.cache_clear()
    sparse_files.svmlight.cache_clear()
    yield


# -- names ---------------------------------------------------------------------------------------

def test_sparse_names_parse_and_are_listed():
    assert data.parse_sparse("sparse-20kx47k-d0.0016") == (20_000, 47_000, 0.0016, 2)
    assert data.parse_sparse("sparse-10kx1000-d0.01-k3") == (10_000, 1000, 0.01, 3)
    assert data.shape("sparse-20kx47k-d0.0016") == (20_000, 47_000)
    assert data.n_classes("sparse-1kx100-d0.1-k4") == 4
    assert data.nnz("sparse-20kx47k-d0.0016") == 1_504_000
    assert data.storage("sparse-20kx47k-d0.0016") == "csr" and data.storage("sparse-2kx1k-d0.1[dense]") == "dense"
    assert "sparse-<n>x<d>-d<density>" in data.FAMILIES_HELP and "sparse-20kx47k-d0.0016" in data.FAMILIES_HELP
    assert "save_npz" in data.FAMILIES_HELP and "--dense" in data.FAMILIES_HELP


@pytest.mark.parametrize("name, fragment", [
    ("sparse-100x10-d2", "density after -d must be in (0, 1]"),
    ("sparse-100x10-d0", "density after -d must be in (0, 1]"),
    ("sparse-100x10", "sparse-<n>x<d>-d<density>"),
    ("sparse-10x10-d0.001", "holds no non-zero value"),
    ("sparse-100x10-d0.1-k2", "between 3 and"),
    ("sparse-100x10-d0.1[label=a]", "apply to data files only"),
    ("iris[dense]", "dense already"),
])
def test_bad_sparse_names(name, fragment):
    with pytest.raises(ValueError, match=None) as exc:
        data.source(name)
    assert fragment in str(exc.value)


def test_options_are_written_where_they_apply():
    assert data.with_options(SMALL, dense=True) == f"{SMALL}[dense]"
    assert data.with_options("iris", dense=True) == "iris"  # dense data: nothing to densify
    assert data.with_options("a.svm", n_features=9, dense=True) == "a.svm[dense,n-features=9]"
    assert data.source("a.svm[n-features=9]").n_features == 9
    with pytest.raises(ValueError, match="declares a LIBSVM file's width"):
        data.source("a.csv[n-features=9]")


# -- the synthetic sets --------------------------------------------------------------------------

def test_synthetic_sparse_set_is_text_like_and_seeded():
    a, b = data.load(SMALL), data.sparse_text(300, 200, 0.02)
    assert scipy.sparse.issparse(a.X) and a.storage == "csr" and a.X.has_canonical_format
    assert a.X.nnz == 1200 and a.density == pytest.approx(0.02) and a.nnz == 1200
    assert a.sha256 == data.load(SMALL, 0).sha256 and (a.X != b.X).nnz == 0
    assert data.load(SMALL, seed=1).sha256 != a.sha256
    norms = np.sqrt(np.asarray(a.X.multiply(a.X).sum(axis=1)).ravel())
    assert np.allclose(norms[norms > 0], 1.0) and (a.X.data > 0).all()
    counts = np.bincount(a.X.indices, minlength=200)
    assert counts[:10].mean() > 5 * counts[100:].mean(), "Zipf: the first columns far more frequent"
    assert 0.3 < a.y.mean() < 0.7 and set(np.unique(a.y)) == {0.0, 1.0}
    k3 = data.load("sparse-300x200-d0.05-k3")
    assert k3.n_classes == 3 and set(np.unique(k3.y)) == {0.0, 1.0, 2.0}


def test_dense_option_densifies_the_same_matrix():
    s, d = data.load(SMALL), data.load(f"{SMALL}[dense]")
    assert d.storage == "dense" and isinstance(d.X, np.ndarray)
    np.testing.assert_array_equal(d.X, s.X.toarray())
    np.testing.assert_array_equal(d.y, s.y)


# -- files ---------------------------------------------------------------------------------------

@pytest.fixture
def svm(tmp_path):
    ds = data.load(SMALL)
    path = tmp_path / "a.svm"
    data.write_svmlight(path, ds.X, ds.y)
    return str(path), ds


def test_libsvm_stays_sparse_and_dense_on_request(svm):
    path, ds = svm
    got = data.load(path)
    assert got.storage == "csr" and got.X.nnz == ds.X.nnz and got.sha256 == ds.sha256
    assert "sparse (CSR), 1200 non-zeros" in data.summary(got)
    assert data.nnz(path) == 1200 and data.nnz(f"{path}[dense]") is None
    dense = data.load(f"{path}[dense]")
    assert dense.storage == "dense" and np.array_equal(dense.X, ds.X.toarray())
    assert "densified" in data.summary(dense)


def test_sparse_npz_with_labels_loads_sparse(tmp_path):
    ds = data.load(SMALL)
    X = scipy.sparse.csr_array(ds.X)
    good = tmp_path / "s.npz"
    np.savez(good, data=X.data, indices=X.indices, indptr=X.indptr, shape=X.shape, format="csr", y=ds.y)
    got = data.load(str(good))
    assert got.storage == "csr" and got.sha256 == ds.sha256 and data.nnz(str(good)) == 1200
    no_y = tmp_path / "noy.npz"
    scipy.sparse.save_npz(no_y, X)
    with pytest.raises(DataFileError, match="without labels: add them as array 'y'"):
        data.check(str(no_y))


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_libsvm_bad_input_one_message_each(tmp_path, svm):
    path, _ = svm
    with pytest.raises(DataFileError, match=r"feature index 200 is beyond the declared width n-features=50"):
        data.check(f"{path}[n-features=50]")
    assert data.load(f"{path}[n-features=250]").d == 250, "a wider declared width pads with empty columns"
    big = _write(tmp_path, "big.svm", "1 2147483648:1\n0 1:1\n")
    with pytest.raises(DataFileError, match=r"too large for LIBSVM/svmlight \(at least 2\^31"):
        data.check(big)
    zero = _write(tmp_path, "zero.svm", "1\n0\n")
    with pytest.raises(DataFileError, match="every feature value is zero"):
        data.load(zero)


def test_empty_rows_and_columns_are_counted_not_refused(tmp_path):
    p = _write(tmp_path, "holes.svm", "1 2:1\n0\n1 5:2\n")
    ds = data.load(p)
    assert ds.info["empty_rows"] == 1 and ds.info["empty_columns"] == 3
    text = data.summary(ds)
    assert "1 empty row(s)" in text and "3 empty column(s)" in text


def test_memory_is_checked_by_non_zeros_and_dense_is_refused(monkeypatch, svm):
    path, _ = svm
    monkeypatch.setattr(roofline, "available_memory_bytes", lambda: 200 * 2**20)
    data.check("sparse-1Mx1M-d0.000001")  # 1e6 non-zeros: a few MB, though n x d is 8 TB dense
    with pytest.raises(ValueError, match=r"--dense would make 1000000 x 1000000 .* drop --dense to keep it sparse"):
        data.check("sparse-1Mx1M-d0.000001[dense]")
    monkeypatch.setattr(roofline, "available_memory_bytes", lambda: 500_000)  # 300 x 200 dense: 960 kB to densify
    data.check(path)
    with pytest.raises(DataFileError, match="drop --dense"):
        data.check(f"{path}[dense]")


def test_case_memory_counts_non_zeros():
    from bench.records import Case
    from implementations import TrainConfig

    big = Case("numpy", "sparse-1Mx1M-d0.000001", TrainConfig(dtype="float32", n_iters=10))
    assert cases.memory_needed(big) < 200 * 2**20


# -- the oracle's side and the floor ------------------------------------------------------------

def test_smoothness_and_optimum_on_sparse_match_dense():
    ds = data.load("sparse-400x100-d0.05")
    X, Xd = ds.X, ds.X.toarray()
    assert oracle.smoothness(X) == pytest.approx(oracle.smoothness(Xd), rel=1e-6)
    assert oracle.smoothness(X) >= oracle.smoothness(Xd) * (1 - 1e-12), "an upper bound"
    assert oracle.smoothness(X, 0.1, 3) == pytest.approx(oracle.smoothness(Xd, 0.1, 3), rel=1e-6)
    a, b = oracle.fit_optimum(X, ds.y, 1e-3), oracle.fit_optimum(Xd, ds.y, 1e-3)
    assert a.loss == pytest.approx(b.loss, rel=1e-10)
    w = np.random.default_rng(0).standard_normal(100)
    np.testing.assert_allclose(oracle.rounding_bound(X, ds.y, w, 0.1, "float32"),
                               oracle.rounding_bound(Xd, ds.y, w, 0.1, "float32"), rtol=1e-12)
    assert oracle.saturated_count(X, 60 * w, 0.0, "float32") == oracle.saturated_count(Xd, 60 * w, 0.0, "float32")
    with pytest.raises(ValueError, match="separable"):
        oracle.fit_optimum(data.load("sparse-100x300-d0.05").X, data.load("sparse-100x300-d0.05").y)


def test_sparse_step_bytes():
    # values and int32 indices twice, row pointers of both products, labels, parameters read and written
    got = roofline.sparse_bytes_per_step(m=1000, nnz=5000, d=200, dtype="float32")
    assert got == 2 * 5000 * 8 + (1001 + 201) * 4 + 4 * (1000 + 2 * 201)
    fields = roofline.sparse_floor_fields(got, 5000, "float32", {"host_read": 10.0, "host_gflops_float32": 100.0},
                                          time_per_step_s=got / 5e9)
    assert fields["bound"] == "memory" and fields["roofline_fraction"] == pytest.approx(0.5)


# -- the density sweep's answer -------------------------------------------------------------------

def _sweep_rows():
    rows = []
    for rho, t_sparse, t_dense in ((1e-3, 1e-4, 1e-2), (1e-2, 1e-3, 1e-2), (1e-1, 1e-1, 1e-2)):
        for lib, factor in (("numpy", 1.0), ("torch", 3.0)):
            for storage, t in (("csr", t_sparse * factor), ("dense", t_dense / factor)):
                rows.append({"dataset": f"sparse-1kx1k-d{rho:g}" + ("[dense]" if storage == "dense" else ""),
                             "backend": lib, "library": lib, "dtype": "float32", "formulation": "logits",
                             "n": 1000, "d": 1000, "loop": "full-batch", "status": "ok", "verdict": "pass",
                             "storage": storage, "nnz": int(1e6 * rho), "time_per_iter_s": t})
    return pd.DataFrame(rows)


def test_sweep_table_crossover_and_paragraph(tmp_path):
    t = sparse_sweep.table(_sweep_rows())
    assert len(t) == 6 and set(t.columns) == set(sparse_sweep.COLUMNS)
    lines = sparse_sweep.paragraph(_sweep_rows())
    numpy_line = next(x for x in lines if x.startswith("`numpy`"))
    assert "below" in numpy_line and "density sparse wins; above it, densify" in numpy_line
    assert "NumPy or PyTorch for sparse data: **NumPy**" in lines[-1]
    assert "on the same shape held dense, **PyTorch**" in lines[-1] and "the answer differs" in lines[-1]
    written = sparse_sweep.write(_sweep_rows(), tmp_path)
    assert (tmp_path / "sparse_vs_dense.csv").exists() and (tmp_path / "sparse_vs_dense.png") in written
    assert sparse_sweep.sweep_datasets((10_000, 2_000), (1e-4,)) == ("sparse-10kx2k-d0.0001",
                                                                      "sparse-10kx2k-d0.0001[dense]")


# -- the commands on CSR data ---------------------------------------------------------------------

def test_run_rows_carry_nnz_density_storage_and_skip_without_support(tmp_path):
    out = tmp_path / "run"
    r = run_cli("run", "--datasets", SMALL, "--backends", "numpy", "torch-compiled", "--devices", "cpu",
                "--dtypes", "float64", "--formulations", "logits", "--iters", "5", "--repeats", "1", "--budget", "1e-9",
                "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = pd.read_csv(out / "runs.csv")
    assert (rows["nnz"] == 1200).all() and (rows["storage"] == "csr").all()
    assert rows["density"].tolist() == pytest.approx([0.02, 0.02])
    ok = rows[rows["backend"] == "numpy"].iloc[0]
    assert ok["status"] == "ok" and ok["verdict"] == "pass" and ok["rel_dparam"] <= 1e-10
    assert ok["bytes_per_step"] == roofline.sparse_bytes_per_step(300, 1200, 200, "float64")
    skipped = rows[rows["backend"] == "torch-compiled"].iloc[0]
    assert skipped["status"] == "skipped" and "does not support sparse X" in skipped["reason"]


def test_run_dense_flag_densifies(tmp_path):
    out = tmp_path / "run"
    r = run_cli("run", "--datasets", SMALL, "--dense", "--backends", "numpy", "--devices", "cpu", "--dtypes",
                "float64", "--formulations", "logits", "--iters", "5", "--repeats", "1", "--budget", "1e-9",
                "--out", str(out))
    assert r.returncode == 0, r.stderr
    row = pd.read_csv(out / "runs.csv").iloc[0]
    assert row["dataset"] == f"{SMALL}[dense]" and row["storage"] == "dense" and row["status"] == "ok"


def test_grad_and_check_accept_sparse(tmp_path):
    r = run_cli("grad", "--datasets", SMALL, "--backends", "numpy", "--devices", "cpu", "--dtypes", "float64",
                "--formulations", "logits", "--out", str(tmp_path / "grad"))
    assert r.returncode == 0, r.stderr
    g = pd.read_csv(tmp_path / "grad" / "gradients.csv")
    assert g["passed"].all() and (g["dataset"] == SMALL).all()
    r = run_cli("check", "numpy", "--datasets", SMALL, "--iters", "5", "--repeats", "1", "--budget", "1e-9",
                "--out", str(tmp_path / "check"))
    assert r.returncode == 0, r.stderr + r.stdout
