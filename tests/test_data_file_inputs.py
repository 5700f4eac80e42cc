"""What `run` makes of data files a user gets wrong or changes: a file rewritten or deleted while the
run goes on, string labels that differ only by whitespace or case, a LIBSVM index beyond 32 bits,
values too large for the dtype, a continuous label column, an impossible synthetic name and a zip
archive with several members. Each is a command-line run on a few rows of data."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cli import run_cli

QUICK = ("--backends", "numpy", "--dtypes", "float64", "--formulations", "logits", "--iters", "20",
         "--repeats", "1", "--budget", "1e-9")


def _write_table(path: Path, n: int, d: int, sep: str = ",", seed: int = 0, labels=None) -> Path:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int) if labels is None else labels
    lines = [sep.join([f"x{j}" for j in range(d)] + ["label"])]
    lines += [sep.join([f"{v:.6f}" for v in X[i]] + [str(y[i % len(y)])]) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


# A user loop that, while it trains on Iris (the first dataset), rewrites or deletes the other data file.
SNEAKY = '''
import os
import numpy as np
from implementations import Trainer

TARGET, ACTION = {target!r}, {action!r}


class Sneaky(Trainer):
    library = "numpy"
    supports_minibatch = False
    devices = ("cpu",)

    def _prepare(self, X, y, w0, b0):
        dt = self.config.dtype
        self.X, self.y = X.astype(dt), y.astype(dt)
        self.w0, self.b0 = w0.astype(dt), np.asarray(b0, dtype=dt)
        if X.shape[0] == 100 and os.path.exists(TARGET):  # training on Iris: change the data file
            if ACTION == "delete":
                os.remove(TARGET)
            else:
                rng = np.random.default_rng(1)
                X2 = rng.normal(size=(5000, 3))
                y2 = (X2[:, 0] > 0).astype(int)
                with open(TARGET, "w") as f:
                    f.write("a\\tb\\tc\\tlabel\\n")
                    f.writelines("\\t".join(f"{{v:.6f}}" for v in r) + f"\\t{{t}}\\n" for r, t in zip(X2, y2))

    def _grad(self, w, b):
        z = self.X @ w + b
        r = 1 / (1 + np.exp(-z)) - self.y
        return np.mean(np.logaddexp(0, z) - self.y * z), self.X.T @ r / len(self.y), r.mean()

    def _run(self):
        c = self.config
        w, b = self.w0.copy(), self.b0.copy()
        losses = np.empty(c.n_records, dtype=c.dtype)
        for t in range(c.n_iters):
            loss, gw, gb = self._grad(w, b)
            if t % c.record_every == 0:
                losses[t // c.record_every] = loss
            w, b = w - c.lr * gw, b - c.lr * gb
        self.w, self.b, self.losses = w, b, losses

    def _result(self):
        return self.w, self.b, self.losses

    def _loss_and_grad(self, w, b):
        return self._grad(w.astype(self.config.dtype), np.asarray(b, dtype=self.config.dtype))
'''


@pytest.mark.parametrize("action", ["rewrite", "delete"])
def test_a_data_file_changed_during_the_run_leaves_its_rows_describing_the_data_they_trained_on(tmp_path, action):
    data = _write_table(tmp_path / "data.tsv", 60, 2, sep="\t")  # given by its name, run from tmp_path
    loop = tmp_path / "sneaky.py"
    loop.write_text(SNEAKY.format(target=str(data), action=action))
    out = tmp_path / "out"
    r = run_cli("run", "--backends", "sneaky.py:Sneaky", "numpy", "--datasets", "iris", "data.tsv",
                "--dtypes", "float64", "--formulations", "logits", "--iters", "20", "--repeats", "1",
                "--budget", "1e-9", "--out", out, cwd=tmp_path)
    runs = pd.read_csv(out / "runs.csv")
    env = json.loads((out / "env.json").read_text())
    described = next(v for k, v in env["datasets"].items() if "data.tsv" in k)
    rows = runs[runs.case_id.str.startswith("data.tsv|")]
    assert len(rows) == 2, runs.case_id.tolist()
    for _, row in rows.iterrows():
        assert row.status == "ok", (row.case_id, row.status, row.reason)
        assert (row.n, row.d) == (described["n"], described["d"]) == (60, 2), (row.case_id, row.n, row.d)
        assert row.dataset_sha256 == described["sha256"]
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_labels_that_differ_only_by_whitespace_are_refused(tmp_path):
    data = _write_table(tmp_path / "ws.csv", 40, 2, labels=["yes", "yes ", "no", " no"])
    r = run_cli("run", *QUICK, "--datasets", data.name, "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2, r.stdout.splitlines()[:1]
    errors = _error_lines(r.stderr)
    assert len(errors) == 1, r.stderr
    assert "'yes '" in errors[0] or "' no'" in errors[0], errors[0]  # the labels quoted, whitespace visible
    assert not (tmp_path / "out").exists()


def test_labels_that_differ_only_by_case_are_refused(tmp_path):
    data = _write_table(tmp_path / "case.csv", 40, 2, labels=["Yes", "yes", "no"])
    r = run_cli("run", *QUICK, "--datasets", data.name, "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2, r.stdout.splitlines()[:1]
    errors = _error_lines(r.stderr)
    assert len(errors) == 1, r.stderr
    assert "'Yes'" in errors[0] and "'yes'" in errors[0], errors[0]
    assert not (tmp_path / "out").exists()


def test_labels_are_stripped_at_both_ends_and_printed_quoted(tmp_path):
    data = _write_table(tmp_path / "pad.csv", 40, 2, labels=[" yes ", " no "])
    r = run_cli("run", *QUICK, "--datasets", data.name, "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "'no' -> 0" in r.stdout and "'yes' -> 1" in r.stdout, r.stdout.splitlines()[:2]
    assert set(pd.read_csv(tmp_path / "out" / "runs.csv").n_classes) == {2}


def test_a_libsvm_index_beyond_32_bits_is_one_error_line(tmp_path):
    data = tmp_path / "big.svm"
    data.write_text("1 1:0.5 4000000000:1\n0 2:0.3\n")
    r = run_cli("run", *QUICK, "--datasets", data.name, "--out", tmp_path / "out", cwd=tmp_path)
    assert "Traceback" not in r.stderr, r.stderr[-1500:]
    assert r.returncode == 2
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and "big.svm" in errors[0], r.stderr
    assert not (tmp_path / "out").exists()


def _huge_csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    lines = ["a,b,label"] + [f"{rng.normal() * 1e300!r},{rng.normal():.4f},{i % 2}" for i in range(40)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_values_too_large_for_the_smoothness_bound_are_blamed_on_the_data(tmp_path):
    data = _huge_csv(tmp_path / "huge.csv")
    r = run_cli("run", *QUICK, "--datasets", data.name, "--out", tmp_path / "out", cwd=tmp_path)
    text = r.stdout + r.stderr
    assert "RuntimeWarning" not in r.stderr, r.stderr[-1500:]
    assert "lr must be" not in text, text[-1500:]
    assert r.returncode != 0
    assert "huge.csv" in text and "--standardize" in text, text[-1500:]


def test_a_data_set_beyond_the_dtype_is_blamed_and_the_others_still_run(tmp_path):
    out = tmp_path / "out"
    r = run_cli("run", "--backends", "numpy", "--datasets", "iris", "synthetic-50x3-x1e40", "--dtypes", "float32",
                "--formulations", "logits", "--iters", "20", "--repeats", "1", "--budget", "1e-9", "--out", out,
                cwd=tmp_path)
    text = r.stdout + r.stderr
    assert "lr must be positive" not in text, text[-1500:]
    runs = pd.read_csv(out / "runs.csv")
    iris = runs[runs.dataset == "iris"]
    assert len(iris) == 1 and iris.status.iloc[0] == "ok", runs[["case_id", "status", "reason"]]
    bad = " ".join(str(x) for x in runs[runs.dataset != "iris"].reason) + text
    assert "synthetic-50x3-x1e40" in text and ("--standardize" in bad or "--lr" in bad), bad[-1500:]


def test_a_continuous_label_column_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "cont.csv"
    path.write_text("a,b,price\n" + "".join(f"{rng.normal():.4f},{rng.normal():.4f},{rng.uniform(10, 100):.3f}\n"
                                            for _ in range(60)))
    r = run_cli("run", *QUICK, "--datasets", path.name, "--label", "price", "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2, r.stdout.splitlines()[:1]
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and "--allow-many-classes" in errors[0], r.stderr
    assert not (tmp_path / "out").exists()


def test_many_classes_train_when_asked_for(tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("a,b,code\n" + "".join(f"{i * 0.1:.2f},{(i * 7) % 5:.1f},{i % 30}\n" for i in range(60)))
    r = run_cli("run", *QUICK, "--datasets", path.name, "--label", "code", "--allow-many-classes", "--out",
                tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-1500:]
    assert set(pd.read_csv(tmp_path / "out" / "runs.csv").n_classes) == {30}


def test_an_impossible_synthetic_name_is_refused_up_front(tmp_path):
    r = run_cli("run", *QUICK, "--datasets", "synthetic-10x2-k20", "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2, r.stdout.splitlines()[-1:]
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and "synthetic-10x2-k20" in errors[0], r.stderr
    assert not (tmp_path / "out").exists()


def test_a_zip_with_several_members_is_refused_naming_the_file(tmp_path):
    a = _write_table(tmp_path / "a.csv", 20, 2)
    b = _write_table(tmp_path / "b.csv", 20, 2, seed=1)
    archive = tmp_path / "multi.csv.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(a, "a.csv")
        z.write(b, "b.csv")
    r = run_cli("run", *QUICK, "--datasets", archive.name, "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and re.search(r"multi\.csv\.zip", errors[0]), r.stderr
