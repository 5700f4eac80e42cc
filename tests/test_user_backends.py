"""Backends from users: the single-file loop, the entry-point plugin, the importable checks, and what
the harness makes of a user backend that raises, returns wrong shapes or NaN, hangs, or declares a
case unsupported (docs/loop.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from implementations import TrainConfig, Trainer, get_backend, origin, register, resolve, unregister
from implementations.testing import check_trainer, checks, parametrize_with_checks, run_checks
from tests.cli import run_cli

from .conftest import ROOT, RUN_ARGS

LOOP = ROOT / "examples" / "my_loop.py"


def _load_example():
    """examples/my_loop.py's MyLoop, imported without registering it (other tests iterate the registry)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_example_my_loop", LOOP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MyLoop


MyLoop = _load_example()
BUG = ("        gb = r.sum() / m\n", "        gb = r.sum() / (m + 1)  # the bug: one row too many\n")


def _buggy_copy(tmp_path) -> Path:
    text = LOOP.read_text()
    assert text.count(BUG[0]) == 1
    path = tmp_path / "my_buggy_loop.py"
    path.write_text(text.replace(BUG[0], BUG[1]))
    return path


@pytest.fixture
def resolved():
    """``resolve(spec)``, and the spec out of the registry again after the test."""
    names = []

    def _resolve(spec):
        names.append(resolve(spec))
        return names[-1]
    yield _resolve
    for name in names:
        unregister(name)


# -- the importable checks -------------------------------------------------------------------------

@parametrize_with_checks([MyLoop])
def test_my_loop_passes_every_check(trainer, check):
    check(trainer)


def test_checks_have_readable_ids_and_say_what_they_check():
    ids = [c.id for c in checks()]
    assert len(ids) == len(set(ids))
    assert "check_oracle_agreement[float32-probs]" in ids and "check_oracle_agreement[float32-probs-batch32]" in ids
    assert all(len(c.description) > 40 for c in checks())
    mark = parametrize_with_checks([MyLoop])
    assert [p.id for p in mark.args[1]][:2] == ["MyLoop-check_declared_attributes", "MyLoop-check_call_order"]


def test_a_gradient_bug_names_the_first_divergent_step(tmp_path, resolved):
    cls = get_backend(resolved(f"{_buggy_copy(tmp_path)}:MyLoop"))
    results = {r.check: r for r in run_checks(cls)}
    assert results["check_call_order"].status == "pass"
    agree = results["check_oracle_agreement[float64-logits]"]
    assert agree.status == "fail" and agree.divergence is not None
    assert agree.divergence.step == 1 and agree.divergence.worst == "b" and agree.divergence.rel > 1e-6
    assert "first divergent step 1" in agree.message
    assert "dL/db" in results["check_loss_and_grad[logits]"].message
    with pytest.raises(AssertionError, match="first divergent step 1"):
        check_trainer(cls)


def test_a_late_bug_is_found_at_its_step():
    """A loop right for 40 steps, then off: the lockstep names step 41, and the bias."""
    from implementations.testing import first_divergence, iris_problem

    class Drifts(MyLoop):  # the lockstep runs one step per run(): the 41st run goes wrong
        def _run(self):
            self._k = getattr(self, "_k", 0) + 1
            super()._run()
            if self._k > 40:
                self.b = self.b + 1e-3

    config = TrainConfig(lr=0.01, n_iters=60, dtype="float64", formulation="logits")
    div = first_divergence(Drifts, config, *iris_problem())
    assert div is not None and div.step == 41 and div.worst == "b"


# -- the single-file loop and the plugin, through the commands -------------------------------------

@pytest.mark.slow
def test_file_spec_is_listed_and_checked(tmp_path, resolved):
    assert origin(resolved("examples/my_loop.py:MyLoop")) == "file examples/my_loop.py"
    proc = run_cli("backends", "examples/my_loop.py:MyLoop", env={"COLUMNS": "300"})  # the whole table, unwrapped
    assert proc.returncode == 0, proc.stderr
    assert "examples/my_loop.py" in proc.stdout and "a user's loop" in proc.stdout and "numpy" in proc.stdout
    proc = run_cli("check", "examples/my_loop.py:MyLoop", *RUN_ARGS, "--out", str(tmp_path / "ok"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: MyLoop is right" in proc.stdout
    assert {"runs.csv", "check.csv", "env.json", "summary.md"} <= {p.name for p in (tmp_path / "ok").iterdir()}
    rows = pd.read_csv(tmp_path / "ok" / "runs.csv")
    assert set(rows.backend) == {"examples/my_loop.py:MyLoop", "numpy", "torch"}
    assert (pd.read_csv(tmp_path / "ok" / "check.csv").status == "pass").all()


@pytest.mark.slow
def test_a_buggy_copy_exits_1_naming_the_first_divergent_step(tmp_path):
    proc = run_cli("check", f"{_buggy_copy(tmp_path)}:MyLoop", *RUN_ARGS, "--out", str(tmp_path / "bug"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "verdict: MyLoop is wrong from step 1 by" in proc.stdout and "most in b" in proc.stdout


@pytest.mark.parametrize("spec, fragment", [("no/such/file.py:MyLoop", "no such file"),
                                            ("examples/my_loop.py:Nope", "defines no 'Nope'"),
                                            ("no_such_module_xyz:Trainer", "no_such_module_xyz")])
def test_a_spec_that_cannot_load_exits_2(spec, fragment, tmp_path):
    proc = run_cli("check", spec, "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.subprocess
@pytest.mark.slow
def test_entry_point_plugin_is_listed_and_checked(tmp_path):
    """pip-installs examples/plugin (a copy, no network, no build isolation) into a folder put on
    PYTHONPATH, so the venv is left as it was; the entry point is read from its metadata."""
    src = tmp_path / "plugin"
    shutil.copytree(ROOT / "examples" / "plugin", src)
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--target", str(site), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "COLUMNS": "300"}
    # a subprocess: the plugin's entry point must be found on a PYTHONPATH set before the interpreter starts
    proc = run_cli("backends", env=env, isolated=True)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "example-torch-loop" in x)
    assert "entry point" in line and "torch" in line
    proc = run_cli("check", "example-torch-loop", *RUN_ARGS, "--out", str(tmp_path / "out"), env=env, isolated=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: TorchLoop is right" in proc.stdout and "1 skipped (unsupported)" in proc.stdout
    assert "supports_minibatch = False" in proc.stdout


def test_backends_argument_takes_a_spec():
    from bench import argtypes, cli

    args = cli.build_parser().parse_args(["run", "--backends", "numpy", "examples/my_loop.py:MyLoop"])
    try:
        assert argtypes.backends(args.backends, None) == ("numpy", "examples/my_loop.py:MyLoop")
    finally:
        unregister("examples/my_loop.py:MyLoop")
    with pytest.raises(argtypes.UsageError, match="--backends: .*no such file"):
        argtypes.backends(["nowhere.py:X"], None)


# -- a misbehaving user backend is a row, and the run goes on --------------------------------------

class _Base(Trainer):
    library, gradient, engine = "numpy", "hand-derived", "eager"

    def _prepare(self, X, y, w0, b0):
        self.d, self.w0, self.b0 = X.shape[1], w0, b0

    def _run(self):
        pass

    def _result(self):
        return self.w0, self.b0, np.full(self.config.n_records, 0.5)

    def _loss_and_grad(self, w, b):
        return 0.0, np.zeros_like(w), 0.0


class Raises(_Base):
    def _run(self):
        raise RuntimeError("my loop broke")


class WrongShape(_Base):
    def _result(self):
        return self.w0[:-1], self.b0, np.zeros(3)


class GivesNaN(_Base):
    def _result(self):
        return self.w0, self.b0, np.full(self.config.n_records, np.nan)


class Hangs(_Base):
    def _run(self):
        import time

        while True:  # a backend that never returns, and swallows Exception
            try:
                time.sleep(0.05)
            except Exception:
                pass


class NoMinibatch(MyLoop):
    supports_minibatch = False
    supports_l2 = False


@pytest.fixture
def user_backends():
    names = {"u-raises": Raises, "u-shape": WrongShape, "u-nan": GivesNaN, "u-hangs": Hangs, "u-full": NoMinibatch}
    for name, cls in names.items():
        register(name, cls, replace=True)
    yield names
    for name in names:
        unregister(name)


def test_misbehaving_backends_become_rows_and_the_run_goes_on(user_backends):
    from bench.cases import RunOptions, matrix
    from bench.runner import run

    cases = matrix([*user_backends, "numpy"], ["cpu"], ["iris"], ["float32"], ["probs"], iters=20)
    cases += matrix(["u-full"], ["cpu"], ["iris"], ["float32"], ["probs"], batch_sizes=(16,), iters=20)
    cases += matrix(["u-full"], ["cpu"], ["iris"], ["float32"], ["probs"], l2s=(0.1,), iters=20)
    result = run(cases, [], RunOptions(repeats=1, warmup=0, budget_s=None, optimum=False, row_timeout=1.0))
    assert result.status == "complete", result.reason
    rows = {(r.backend, r.batch_size, r.l2): r for r in result.rows}
    got = {k[0]: (r.status, r.reason) for k, r in rows.items() if k[1] is None and not k[2]}
    assert got["u-raises"] == ("failed", "RuntimeError: my loop broke")
    assert got["u-shape"][0] == "failed" and "shape (3,)" in got["u-shape"][1]
    assert got["u-nan"][0] == "diverged"
    assert got["u-hangs"] == ("failed", "ran past --row-timeout 1 s")
    assert got["u-full"][0] == "ok" and got["numpy"][0] == "ok"
    batch, l2 = rows[("u-full", 16, 0.0)], rows[("u-full", None, 0.1)]
    assert batch.status == "skipped" and "supports_minibatch = False" in batch.reason
    assert l2.status == "skipped" and "supports_l2 = False" in l2.reason
    assert result.exit_code == 1  # failed rows, as in any run


def test_unsupported_dtype_and_device_are_refused_at_construction():
    from implementations import BackendUnavailableError

    class Only64(_Base):
        dtypes = ("float64",)
        devices = ("cpu",)

    with pytest.raises(BackendUnavailableError, match="declares dtypes"):
        Only64(TrainConfig(dtype="float32"))
    with pytest.raises(BackendUnavailableError, match="declares devices"):
        Only64(TrainConfig(dtype="float64", device="cuda:1"))
    Only64(TrainConfig(dtype="float64"))


class CompilesInPrepare(MyLoop):
    """A loop that compiles ahead of time in ``prepare`` (as ``jax`` does) and says so."""
    compiled = True
    SECONDS = 0.3

    def _prepare(self, X, y, w0, b0):
        import time

        super()._prepare(X, y, w0, b0)
        time.sleep(self.SECONDS)  # the "compilation"
        self.compile_s = self.SECONDS

    @property
    def compiled_graphs(self) -> int:
        return 1


def test_a_compile_in_prepare_is_compile_s_not_transfer_time():
    """``prepare`` is timed as the transfer; the seconds a trainer reports compiling there are taken out
    and recorded as ``compile_s``, the warm-up twin's own compile not counted (a different program)."""
    from bench.cases import RunOptions, matrix
    from bench.runner import run

    register("u-aot", CompilesInPrepare, replace=True)
    try:
        cases = matrix(["u-aot"], ["cpu"], ["iris"], ["float64"], ["logits"], iters=50)  # > the twin's 10 steps
        result = run(cases, [], RunOptions(repeats=3, budget_s=None, optimum=False))
    finally:
        unregister("u-aot")
    (row,) = result.rows
    assert row.status == "ok" and row.compiled_graphs == 1
    assert row.compile_s == pytest.approx(CompilesInPrepare.SECONDS)  # the timed trainer's, not also the twin's
    assert row.transfer_s < CompilesInPrepare.SECONDS / 2  # a 100 x 4 copy, the sleep taken out


@pytest.mark.compile
def test_jax_reports_its_ahead_of_time_compile():
    pytest.importorskip("jax")
    from implementations import create_trainer

    trainer = create_trainer("jax", TrainConfig(n_iters=5, dtype="float64"))
    assert trainer.compiled_graphs == 0
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.array([0, 1] * 10)
    trainer.prepare(X, y, np.zeros(3), 0.0)
    assert trainer.compiled_graphs == 1 and trainer.compile_s > 0
