"""Datasets from files: each format, each label case, each bad file; the
options in a dataset's name; standardization; breast-cancer; the origin, content hash and density
each row records; and `bench compare` refusing to match two different files that share a name.

The fixtures are small text files in tests/data/files/ (see its README.md); Parquet and .npz files
are written here from the same arrays, so that no binary fixture depends on a library's version."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import data
from bench.cli import main
from bench.data import DataFileError, load, with_options

from .conftest import ROOT

FILES = ROOT / "tests" / "data" / "files"
GOOD_CSV = str(FILES / "good.csv")
SMALL_SVM = str(FILES / "small.svm")


def _good_frame() -> pd.DataFrame:
    return pd.read_csv(GOOD_CSV)


def _expected_good():
    df = _good_frame()
    return df[["height", "weight", "noise"]].to_numpy(float), (df["class"] == "yes").to_numpy(float)


def _write_csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# -- each format --------------------------------------------------------------------------------

def test_csv_reads_features_and_maps_the_label_column():
    ds = load(GOOD_CSV)
    X, y = _expected_good()
    assert (ds.n, ds.d) == (80, 3) and ds.X.dtype == np.float64 and ds.X.flags.c_contiguous
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.y, y)
    assert ds.info["label_column"] == "class" and ds.info["mapping"] == {"no": 0, "yes": 1}
    assert ds.origin == f"csv:{os.path.abspath(GOOD_CSV)}"
    assert data.shape(GOOD_CSV) == (80, 3)


def test_tsv_parquet_and_npz_of_the_same_data_have_the_same_content_hash(tmp_path):
    pytest.importorskip("pyarrow")
    X, y = _expected_good()
    df = _good_frame()
    df.to_parquet(tmp_path / "good.parquet")
    np.savez(tmp_path / "good.npz", X=X, y=np.where(y == 1, "yes", "no"))
    df.to_csv(tmp_path / "good.csv.gz", index=False)
    hashes = set()
    for path in (GOOD_CSV, str(FILES / "good.tsv"), str(tmp_path / "good.parquet"), str(tmp_path / "good.npz"),
                 str(tmp_path / "good.csv.gz")):
        ds = load(path)
        np.testing.assert_array_equal(ds.X, X)
        np.testing.assert_array_equal(ds.y, y)
        hashes.add(ds.sha256)
    assert len(hashes) == 1, "the hash is of the final arrays, whatever the file's format"
    assert load(str(FILES / "good.tsv")).info["mapping"] == {"1": 0, "2": 1}  # labels 1/2, first column 'target'
    assert data.shape(str(tmp_path / "good.parquet")) == (80, 3)  # from the metadata, before loading


def test_svmlight_stays_sparse_with_its_density_recorded(tmp_path):
    from sklearn.datasets import load_svmlight_file

    ds = load(SMALL_SVM)
    Xs, t = load_svmlight_file(SMALL_SVM)
    assert (ds.n, ds.d) == (200, 8) and ds.storage == "csr"
    np.testing.assert_array_equal(ds.X.toarray(), Xs.toarray())
    np.testing.assert_array_equal(load(SMALL_SVM + "[dense]").X, Xs.toarray())
    np.testing.assert_array_equal(ds.y, (t == 1).astype(float))
    assert ds.density == pytest.approx(Xs.nnz / (200 * 8)) and 0 < ds.density < 1
    assert ds.info["mapping"] == {"-1": 0, "1": 1} and ds.info["format"] == "svmlight"
    gz = tmp_path / "small.svm.gz"
    gz.write_bytes(gzip.compress(Path(SMALL_SVM).read_bytes()))
    assert load(str(gz)).sha256 == ds.sha256


def test_npz_with_a_column_vector_y_and_integer_X(tmp_path):
    path = tmp_path / "ints.npz"
    np.savez(path, X=np.arange(12).reshape(6, 2), y=np.array([[0], [1], [0], [1], [1], [0]]))
    ds = load(str(path))
    assert ds.X.dtype == np.float64 and ds.y.tolist() == [0, 1, 0, 1, 1, 0]


# -- each label case ----------------------------------------------------------------------------

@pytest.mark.parametrize("values, mapping", [
    (["-1", "1"], {"-1": 0, "1": 1}),
    (["1", "2"], {"1": 0, "2": 1}),
    (["yes", "no"], {"no": 0, "yes": 1}),
    (["True", "False"], {"False": 0, "True": 1}),
    (["0.5", "2.5"], {"0.5": 0, "2.5": 1}),
], ids=["minus1-1", "1-2", "yes-no", "booleans", "floats"])
def test_two_label_values_of_any_kind_map_to_0_1_in_sorted_order(values, mapping, tmp_path):
    rows = "".join(f"{i * 0.1:.1f},{(i % 3) * 0.5:.1f},{values[i % 2]}\n" for i in range(6))
    ds = load(_write_csv(tmp_path / "t.csv", "a,b,label\n" + rows))
    assert ds.info["mapping"] == mapping
    high = max(mapping, key=mapping.get)
    assert ds.y.tolist() == [1.0 if values[i % 2] == high else 0.0 for i in range(6)]


@pytest.mark.parametrize("header, label", [
    ("target,a,b", "target"), ("a,label,b", "label"), ("a,b,y", "y"), ("class,a,b", "class"),
    ("a,Class,b", "Class"), ("a,b,outcome", "outcome"),
], ids=["target", "label", "y", "class", "Class-any-case", "else-the-last"])
def test_the_default_label_column(header, label, tmp_path):
    cols = header.split(",")
    rows = []
    for i in range(6):
        row = {c: f"{i * 0.3:.1f}" for c in cols}
        row[label] = str(i % 2)
        rows.append(",".join(row[c] for c in cols))
    ds = load(_write_csv(tmp_path / "t.csv", header + "\n" + "\n".join(rows) + "\n"))
    assert ds.info["label_column"] == label and ds.d == 2 and ds.y.tolist() == [0, 1, 0, 1, 0, 1]


def test_label_option_picks_a_column_and_the_rest_are_features(tmp_path):
    path = _write_csv(tmp_path / "t.csv", "a,b,c,d\n1,0.5,2,0\n0,1.5,3,1\n1,2.5,4,0\n0,0.1,5,1\n")
    ds = load(with_options(path, label="a"))
    assert ds.info["label_column"] == "a" and ds.d == 3 and ds.y.tolist() == [1, 0, 1, 0]
    np.testing.assert_array_equal(ds.X[:, 2], [0, 1, 0, 1])  # 'd' is a feature now
    with pytest.raises(DataFileError, match="non-numeric feature column 'class'"):  # the label named wrong
        load(with_options(GOOD_CSV, label="noise"))


def test_headerless_numeric_csv_takes_its_last_column():
    ds = load(str(FILES / "headerless.csv"))
    assert (ds.n, ds.d) == (6, 2) and ds.info["mapping"] == {"-1": 0, "1": 1}


def test_booleans_column_from_a_file():
    ds = load(str(FILES / "booleans.csv"))
    assert ds.info["mapping"] == {"False": 0, "True": 1} and ds.y.tolist() == [1, 0, 1, 0, 1, 0]


def test_positive_is_one_vs_rest():
    ds = load(with_options(str(FILES / "three_classes.csv"), positive="virginica"))
    assert ds.y.tolist() == [0, 0, 1, 0, 0, 1]
    assert ds.info["positive"] == "virginica"
    assert ds.info["mapping"] == {"setosa": 0, "versicolor": 0, "virginica": 1}


def test_positive_matches_numbers_by_value(tmp_path):
    path = _write_csv(tmp_path / "n.csv", "a,y\n0.1,1.0\n0.2,2.0\n0.3,3.0\n0.4,2.0\n")
    assert load(with_options(path, positive="2")).y.tolist() == [0, 1, 0, 1]


# -- each bad file: one error naming the file and what is wrong ---------------------------------

BAD = [
    ("missing.csv", ["4 missing or non-finite values", "'a' (1)", "'b' (1)", "'c' (2)"]),
    ("ragged_long.csv", ["ragged rows", "line 3 has 4 fields", "first line has 3"]),
    ("ragged_short.csv", ["ragged rows", "line 3 has 2 fields"]),
    ("text_feature.csv", ["non-numeric feature column 'city'", "'Paris'"]),
    ("one_class.csv", ["one class only", "all 3 rows have 1", "'y'"]),
    ("empty.csv", ["the file is empty"]),
    ("header_only.csv", ["no data rows"]),
    ("bad.svm", ["cannot be parsed as LIBSVM/svmlight", "abc"]),
    ("nan.svm", ["2 missing or non-finite values", "'feature 2' (1)", "'feature 3' (1)"]),
    ("does_not_exist.csv", ["no such file"]),
]


@pytest.mark.parametrize("name, fragments", BAD, ids=[b[0] for b in BAD])
def test_bad_files_are_refused_naming_the_file_and_the_fault(name, fragments):
    path = str(FILES / name)
    with pytest.raises(DataFileError) as exc:
        data.check(path)
        load(path)
    msg = str(exc.value)
    assert msg.startswith(path + ": ") and "\n" not in msg
    for f in fragments:
        assert f in msg, msg


def test_label_column_that_does_not_exist():
    with pytest.raises(DataFileError, match=r"good.csv: no label column 'income' \(--label\); the columns are "
                                             r"'height', 'weight', 'noise', 'class'"):
        data.check(with_options(GOOD_CSV, label="income"))


def test_positive_value_that_does_not_exist():
    with pytest.raises(DataFileError, match=r"--positive 'dog' is not a value of label column 'species' \(values: "
                                             r"'setosa': 2"):
        load(with_options(str(FILES / "three_classes.csv"), positive="dog"))


def test_unknown_extension_and_unreadable_and_bad_npz(tmp_path):
    xlsx = tmp_path / "sheet.xlsx"
    xlsx.write_bytes(b"PK")
    with pytest.raises(DataFileError, match=r"sheet.xlsx: unknown file type \(.xlsx\)"):
        data.check(str(xlsx))
    noext = tmp_path / "a9a"
    noext.write_text("+1 1:1\n")
    with pytest.raises(DataFileError, match=r"a9a: unknown file type \(no ending\).*a9a.svm"):
        data.check(str(noext))
    locked = Path(_write_csv(tmp_path / "locked.csv", "a,y\n1,0\n2,1\n"))
    locked.chmod(0)
    try:
        if not os.access(locked, os.R_OK):  # root reads anything
            with pytest.raises(DataFileError, match="locked.csv: cannot be read"):
                data.check(str(locked))
    finally:
        locked.chmod(0o644)
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DataFileError, match="junk.npz: cannot be read as .npz"):
        data.check(str(tmp_path / "junk.npz"))
    np.savez(tmp_path / "noy.npz", X=np.ones((3, 2)), labels=np.array([0, 1, 0]))
    with pytest.raises(DataFileError, match=r"noy.npz: no array 'y'; the file holds \['X', 'labels'\]"):
        data.check(str(tmp_path / "noy.npz"))
    np.savez(tmp_path / "nan.npz", X=np.array([[1.0, np.nan], [2.0, 3.0], [np.inf, 1.0]]), y=np.array([0, 1, 0]))
    message = r"2 missing or non-finite values .* columns 'column 0' \(1\), 'column 1' \(1\)"
    with pytest.raises(DataFileError, match=message):
        load(str(tmp_path / "nan.npz"))
    (tmp_path / "bad.parquet").write_text("not parquet")
    pytest.importorskip("pyarrow")
    with pytest.raises(DataFileError, match="bad.parquet: cannot be read as Parquet"):
        data.check(str(tmp_path / "bad.parquet"))


def test_too_large_for_memory_is_refused_before_the_file_is_read(tmp_path, monkeypatch):
    from bench import roofline

    csv_path = _write_csv(tmp_path / "big.csv", "a,b,y\n" + "1.0,2.0,0\n2.0,1.0,1\n" * 500)
    svm_path = _write_csv(tmp_path / "big.svm", "+1 1:1 2:3\n-1 1:2\n" * 500)
    monkeypatch.setattr(roofline, "available_memory_bytes", lambda: 10_000)

    def never(*a, **k):
        raise AssertionError("the whole file was read before the memory check")

    monkeypatch.setattr(data.files, "from_table", never)
    monkeypatch.setattr("sklearn.datasets.load_svmlight_file", never)
    with pytest.raises(DataFileError, match=r"big.csv: needs about 0.0 GiB to load about 1000 rows x 2 features as "
                                             r"float64, more than the 0.0 GiB of memory available"):
        load(csv_path)
    with pytest.raises(DataFileError, match=r"big.svm: needs about .* GiB to read it as a sparse matrix, more than"):
        load(svm_path)


def test_memory_figures_in_gib_with_a_real_size(tmp_path, monkeypatch):
    from bench import roofline

    path = tmp_path / "wide.npz"
    np.savez(path, X=np.zeros((4, 3)), y=np.array([0, 1, 0, 1]))
    monkeypatch.setattr(data.files, "npz_shapes", lambda p: {"X": (10_000_000, 1000), "y": (10_000_000,)})
    monkeypatch.setattr(roofline, "available_memory_bytes", lambda: 8 * 2**30)
    with pytest.raises(DataFileError, match=r"wide.npz: needs about 223.7 GiB to load 10000000 rows x 1000 features "
                                             r"as float64, more than the 8.0 GiB of memory available"):
        data.check(str(path))


# -- names with options -------------------------------------------------------------------------

def test_options_are_written_into_the_name_and_read_back():
    name = with_options(GOOD_CSV, label="a,b]", positive="50%", standardize=True)
    assert name == f"{GOOD_CSV}[label=a%2Cb%5D,positive=50%25,standardize]"
    src = data.source(name)
    assert (src.base, src.label, src.positive, src.standardize, src.format) == (GOOD_CSV, "a,b]", "50%", True, "csv")
    assert with_options(name) == name
    assert with_options(SMALL_SVM, label="x") == SMALL_SVM, "label applies to tables only"
    assert with_options("iris", label="x", positive="1") == "iris", "label and positive apply to files only"
    assert with_options("iris", standardize=True) == "iris[standardize]"


@pytest.mark.parametrize("name, fragment", [
    ("iris[colour=blue]", "unknown option 'colour=blue'"),
    ("iris[label=x]", "apply to data files only"),
    (f"{SMALL_SVM}[label=x]", "label= names a column of a CSV/TSV/Parquet table"),
    ("irs", "dataset must be 'iris', 'breast-cancer'"),
])
def test_bad_names_and_options(name, fragment):
    with pytest.raises(ValueError, match=None) as exc:
        data.source(name)
    assert fragment in str(exc.value)


# -- standardize, breast-cancer -----------------------------------------------------------------

def test_standardize_each_feature_and_leave_constant_columns(tmp_path):
    path = _write_csv(tmp_path / "c.csv", "a,b,k,y\n" + "".join(f"{i},{i * i * 0.5},0.1,{i % 2}\n" for i in range(8)))
    raw, std = load(path), load(with_options(path, standardize=True))
    np.testing.assert_allclose(std.X[:, :2].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(std.X[:, :2].std(axis=0), 1, rtol=1e-12)
    np.testing.assert_array_equal(std.X[:, 2], raw.X[:, 2])  # constant: left alone
    assert std.info["standardized"] and std.info["constant_columns"] == [2]
    assert std.sha256 != raw.sha256 and "standardized" in std.origin
    iris_std = load("iris[standardize]")
    np.testing.assert_allclose(iris_std.X.mean(axis=0), 0, atol=1e-12)
    assert iris_std.sha256 != load("iris").sha256 and data.is_seed("iris[standardize]")


def test_breast_cancer_is_a_named_binary_set():
    ds = load("breast-cancer")
    assert (ds.n, ds.d) == (569, 30) and data.shape("breast-cancer") == (569, 30)
    assert set(np.unique(ds.y)) == {0.0, 1.0} and int(ds.y.sum()) == 357  # benign = 1
    assert 0 < ds.init_scale < 0.01 and "load_breast_cancer" in ds.origin


# -- the rows: origin, hash, density; the oracle agrees ------------------------------------------

def test_rows_record_origin_hash_and_density_and_agree_with_the_oracle():
    from bench.cases import RunOptions, matrix
    from bench.runner import run

    cases = matrix(["numpy"], ["cpu"], [SMALL_SVM, GOOD_CSV], ["float64"], ["logits"], iters=20)
    result = run(cases, options=RunOptions(repeats=1, warmup=0, budget_s=None, optimum=False))
    assert [r.status for r in result.rows] == ["ok", "ok"] and [r.verdict for r in result.rows] == ["pass", "pass"]
    svm, csv = result.rows
    assert svm.dataset_sha256 == load(SMALL_SVM).sha256 and svm.density == pytest.approx(0.3925)
    assert svm.dataset_origin.startswith("svmlight:") and (svm.n, svm.d) == (200, 8)
    assert csv.dataset_origin.startswith("csv:") and csv.density == 1.0 and (csv.n, csv.d) == (80, 3)
    df = result.frame()
    assert df["dataset_sha256"].notna().all()


def test_compare_never_matches_two_different_files_that_share_a_name():
    from bench.compare import compare_runs
    from bench.records import Case, Row, to_frame
    from implementations import TrainConfig

    case = Case("numpy", "data.csv", TrainConfig(n_iters=10))

    def rows(sha):
        return to_frame([Row.for_case("r", case, status="ok", time_per_iter_s=1e-3, times_s="0.01 0.01 0.01",
                                      dataset_sha256=sha)])

    assert len(compare_runs(rows("aaa"), rows("aaa"))) == 1
    other = compare_runs(rows("aaa"), rows("bbb"))  # kept, with the reason, but no match: no ratio, no call
    assert len(other) == 1 and other.ratio.isna().all() and (other.call == "—").all()
    assert other.note.str.contains("different data").all()
    assert len(compare_runs(rows("aaa"), rows(None))) == 1, "an older run without a hash still matches by case id"


# -- the CLI: one error line, exit 2, before any work; the mapping printed and kept ---------------

def _run_cli(capsys, *args):
    code = main(["run", "--backends", "numpy", "--devices", "cpu", "--iters", "5", "--repeats", "1", "--budget", "1e-9",
                 *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, fragment", [
    (["--datasets", str(FILES / "ragged_long.csv")], "ragged rows"),
    (["--datasets", GOOD_CSV, "--label", "income"], "no label column 'income'"),
    (["--datasets", "iris", "--label", "class"], "--label 'class' names a column of a CSV/TSV/Parquet file"),
    (["--datasets", "iris", "--positive", "1"], "--positive '1' applies to data files"),
    (["--datasets", "nope.parquet"], "nope.parquet: no such file"),
], ids=["ragged", "label-missing", "label-no-table", "positive-no-file", "missing-file"])
def test_cli_refuses_before_any_work(args, fragment, capsys, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = _run_cli(capsys, *args, "--out", str(out_dir))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m bench run: error: ") and fragment in lines[0], err
    assert not out_dir.exists(), "refused before any work: no folder"


def test_cli_prints_the_mapping_and_names_carry_the_options(capsys):
    from bench.argtypes import datasets as _datasets

    names = _datasets([str(FILES / "three_classes.csv"), "iris"], positive="setosa", standardize=True)
    assert names == (f"{FILES / 'three_classes.csv'}[positive=setosa,standardize]", "iris[standardize]")
    out = capsys.readouterr().out
    assert "three_classes.csv[positive=setosa,standardize]: 6 rows x 2 features; label column 'species'; " \
           "labels 'setosa' -> 1, the rest ('versicolor', 'virginica') -> 0; standardized" in out


def test_env_json_keeps_the_mapping(tmp_path):
    from bench.cli import _data_files

    info = _data_files([GOOD_CSV, "iris"], 0)
    assert list(info) == [GOOD_CSV]
    rec = json.loads(json.dumps(info))[GOOD_CSV]
    assert rec["mapping"] == {"no": 0, "yes": 1} and rec["label_column"] == "class"
    assert rec["sha256"] == load(GOOD_CSV).sha256 and rec["n"] == 80 and rec["d"] == 3


@pytest.mark.subprocess
def test_one_error_line_and_exit_2_from_the_command_line():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--datasets", str(FILES / "missing.csv"),
                           "--backends", "numpy"], capture_output=True, text=True, timeout=180, cwd=ROOT, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"python -m bench run: error: --datasets: {FILES / 'missing.csv'}: 4 missing or "
                                   "non-finite values (empty, NaN or inf) in columns 'a' (1), 'b' (1), 'c' (2)")


def test_a_file_with_k_labels_is_a_softmax_data_set(capsys, tmp_path):
    """More than two label values (and no --positive) make a K-class data set: labels 0 .. K-1 in
    sorted order, the mapping and class counts kept; the run trains the softmax model and agrees
    with the float64 oracle (this file used to be refused)."""
    from bench.data import n_classes

    name = str(FILES / "three_classes.csv")
    ds = load(name)
    assert ds.n_classes == 3 and n_classes(name) == 3
    assert ds.y.tolist() == [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
    assert ds.info["mapping"] == {"setosa": 0, "versicolor": 1, "virginica": 2}
    assert ds.info["class_counts"] == {"setosa": 2, "versicolor": 2, "virginica": 2}
    assert n_classes(with_options(name, positive="setosa")) == 2  # one-vs-rest stays binary
    code, out, err = _run_cli(capsys, "--datasets", name, "--dtypes", "float64", "--formulations", "logits",
                              "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert "labels 'setosa' -> 0, 'versicolor' -> 1, 'virginica' -> 2" in out + err
    rows = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert set(rows.n_classes) == {3} and set(rows.status) == {"ok"} and set(rows.verdict) == {"pass"}
