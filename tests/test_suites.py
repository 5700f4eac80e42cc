"""What runs is data (bench.suites): ``run --list`` prints the cases without running them, importing
torch or making a folder, and the built-in backends' declared traits there match their classes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import cli, selection, suites
from implementations import BACKENDS, BackendUnavailableError, get_backend, origin

from .cli import ROOT, run_cli

# `python -m bench` as __main__ does it, then what it imported and whether it made a folder
_PROBE = ("import json, os, sys; from bench.cli import main; before = set(os.listdir('.')); code = main(sys.argv[1:]); "
          "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules, "
          "'new': sorted(set(os.listdir('.')) - before)}), file=sys.stderr)")


def _listed(*args, cwd=ROOT):
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines(), json.loads(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [["run", "--blocks", "all"], ["run", "--datasets", "iris", "--backends", "numpy",
                                                                 "--devices", "cpu"]], ids=["all", "selection"])
def test_list_prints_the_cases_without_torch_or_a_folder(args, tmp_path):
    lines, probe = _listed(*args, "--list", cwd=tmp_path)
    assert probe == {"code": 0, "torch": False, "new": []}
    parser = cli.build_parser().parse_args([*args, "--devices", "cpu"] if "--devices" not in args else args)
    selection.common(parser, listing=True)
    expected = [c.case_id for c in selection.cases(parser)]
    assert [line.split()[0] for line in lines] == expected
    assert all(line.split()[1].startswith("n_iters=") and line.split()[2].startswith("lr=") for line in lines)


def test_list_of_the_reference_run_names_every_block():
    lines, _ = _listed("run", "--blocks", "all", "--list", "--backends", "numpy", "sklearn-lbfgs")
    ids = [line.split()[0] for line in lines]
    assert any(i.startswith("iris|") for i in ids)
    assert any(f"|b{suites.MINIBATCH_SIZE}|" in i and i.startswith(suites.MINIBATCH_DATASET) for i in ids)
    assert all(any(i.startswith(ds + "|") for i in ids) for ds in suites.SOFTMAX_DATASETS)
    assert any(i.startswith(suites.TIME_TO_MODEL_DATASET) and "sklearn-lbfgs" in i for i in ids)
    # 1/L would need the data: auto; the seed's sets keep 0.01
    assert "lr=auto" in lines[[i for i, x in enumerate(ids) if x.startswith("synthetic-10kx100|")][0]]
    assert lines[0].endswith("lr=0.01")


def test_list_refuses_a_bad_selection_like_a_run(tmp_path):
    proc = run_cli("run", "--datasets", "iris", "--batch-sizes", "1000", "--backends", "numpy", "--devices", "cpu",
                   "--list", cwd=tmp_path)
    assert proc.returncode == 2 and "batch size 1000" in proc.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", [n for n in BACKENDS if origin(n) == "built-in"])
def test_declared_traits_match_the_classes(name):
    try:
        cls = get_backend(name)
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    assert bool(cls.data_parallel) == (name in suites.DATA_PARALLEL_BACKENDS)
    assert (tuple(cls.optimizers) == ("solver",)) == (name in suites.SOLVER_BACKENDS)
