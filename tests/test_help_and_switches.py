"""What the command line tells and offers: the help names every dataset kind there is, the label
column's help says what K > 2 labels train, every optimizer has a switch, and the scale table prints
the agreement figure the CSV holds."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.cli import run_cli

WIDE = {"COLUMNS": "1000"}  # no wrapping: argparse breaks lines at hyphens too


def _option_help(help_text: str, option: str) -> str:
    """The help paragraph of ``option`` (up to the next option), whitespace collapsed."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(option + " "))
    end = next((j for j in range(start + 1, len(lines)) if lines[j].strip().startswith("-")), len(lines))
    return " ".join(" ".join(lines[start:end]).split())


@pytest.mark.parametrize("command", ["run", "sweep", "scale", "check", "grad", "trajectory"])
def test_help_names_every_dataset_kind(command):
    r = run_cli(command, "--help", env=WIDE)
    assert r.returncode == 0
    assert "listed below" in _option_help(r.stdout, "--datasets")
    for kind in ("iris", "iris-3class", "breast-cancer", "digits", "synthetic-<n>x<d>", "-k<K>", "-x<scale>", ".csv",
                 ".parquet", ".npz", ".svm"):
        assert kind in r.stdout, kind


def test_label_help_says_more_than_two_labels_train_softmax():
    label = _option_help(run_cli("run", "--help", env=WIDE).stdout, "--label")
    assert "softmax" in label, label


def test_optimizers_are_a_matrix_dimension(tmp_path):
    out = tmp_path / "out"
    r = run_cli("run", "--backends", "numpy", "--datasets", "iris", "--dtypes", "float64", "--formulations", "logits",
                "--optimizers", "gd", "momentum", "nesterov", "adam", "--iters", "20", "--repeats", "1",
                "--budget", "1e-9", "--out", out)
    assert r.returncode == 0, r.stderr[-1500:]
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs.optimizer) == ["adam", "gd", "momentum", "nesterov"], runs.optimizer.tolist()
    assert (runs.status == "ok").all(), runs[["case_id", "status", "reason"]]


def test_scale_table_prints_the_rel_dparam_of_the_csv(tmp_path):
    out = tmp_path / "out"
    r = run_cli("scale", "--backends", "numpy-dask", "--workers", "1", "--datasets", "iris", "--dtype", "float32",
                "--iters", "20", "--rounds", "1", "--out", out, env=WIDE)
    assert r.returncode == 0, r.stderr[-1500:]
    expected = pd.read_csv(out / "runs.csv").rel_dparam.iloc[0]
    assert expected > 0  # float32 against the float64 oracle
    header = next(line for line in r.stdout.splitlines() if "rel_dparam" in line)
    row = next(line for line in r.stdout.splitlines() if line.strip().startswith("numpy-dask"))
    cells = dict(zip(header.split(), row.split(), strict=False))  # a cell with spaces splits in more
    printed = float(re.sub(r"[^0-9eE.+-]", "", cells["rel_dparam"]))
    assert printed == pytest.approx(expected, rel=0.05), (cells["rel_dparam"], expected)
