"""What `check` says about a user's loop that is wrong in ways a short lockstep cannot see: declared
capabilities it does not implement, a bug that starts at a later step, a loop that ignores the batch
schedule, an abstract class, and a weight vector of the wrong shape. Each loop is written into
``tmp_path`` and checked through the command line with the shortest timing rows."""

from __future__ import annotations

import re
from string import Template

import pytest

from tests.cli import run_cli

# A plain NumPy gradient-descent loop (the seed's math, both formulations, L2, the batch schedule), with
# hooks: $attrs (class attributes), $batch (step t's rows), $bias (a factor on step t's bias gradient),
# $result (what result() returns).
LOOP = Template('''
import numpy as np
from implementations import Trainer


class Loop(Trainer):
    library = "numpy"
    style = "a test's loop"
    devices = ("cpu",)
$attrs

    def _prepare(self, X, y, w0, b0):
        dt = self.config.dtype
        self.X, self.y = X.astype(dt), y.astype(dt)
        self.w0, self.b0 = w0.astype(dt), np.asarray(b0, dtype=dt)

    def _loss_grad(self, X, y, w, b):
        z = X @ w + b
        with np.errstate(over="ignore", divide="ignore"):
            p = 1 / (1 + np.exp(-z))
            if self.config.formulation == "probs":
                loss = -np.mean(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100))
            else:
                loss = np.mean(np.logaddexp(0, z) - y * z)
        r = p - y
        m = X.shape[0]
        if self.config.l2:
            loss = loss + 0.5 * self.config.l2 * (w @ w)
        return loss, X.T @ r / m + self.config.l2 * w, r.sum() / m

    def _run(self):
        c = self.config
        w, b = self.w0.copy(), self.b0.copy()
        losses = np.empty(c.n_records, dtype=c.dtype)
        for t in range(c.n_iters):
            X, y = $batch
            loss, gw, gb = self._loss_grad(X, y, w, b)
            if t % c.record_every == 0:
                losses[t // c.record_every] = loss
            w = w - c.lr * gw
            b = b - c.lr * gb * ($bias)
        self.w, self.b, self.losses = w, b, losses

    def _result(self):
        return $result

    def _loss_and_grad(self, w, b):
        dt = self.config.dtype
        return self._loss_grad(self.X, self.y, w.astype(dt), np.asarray(b, dtype=dt))
''')
HOOKS = {"attrs": "", "batch": "(self.X, self.y) if self.schedule is None else (self.X[self.schedule[t]], "
                                "self.y[self.schedule[t]])", "bias": "1.0", "result": "self.w, self.b, self.losses"}
QUICK = ("--datasets", "iris", "--iters", "20", "--repeats", "1", "--budget", "1e-9")


def _check(path, **hooks):
    path.write_text(LOOP.substitute({**HOOKS, **hooks}))
    return run_cli("check", f"{path.name}:Loop", *QUICK, "--out", path.parent / "check-out", cwd=path.parent)


def _fail_lines(out: str) -> list[str]:
    """Each FAIL line of the check list with the explanation lines under it, as one string."""
    blocks, current = [], None
    for line in out.splitlines():
        if line.lstrip().startswith("FAIL"):
            current = [line]
            blocks.append(current)
        elif current is not None and line.startswith("         "):
            current.append(line.strip())
        else:
            current = None
    return [" ".join(b) for b in blocks]


@pytest.fixture(scope="module")
def overclaiming(tmp_path_factory):
    """`check` of a binary-GD-only loop that declares multiclass and three optimizers."""
    path = tmp_path_factory.mktemp("overclaim") / "overclaim.py"
    return _check(path, attrs='    supports_multiclass = True\n    optimizers = ("gd", "momentum", "adam")')


def test_check_runs_the_multiclass_checks_a_loop_declares(overclaiming):
    assert overclaiming.returncode == 1, overclaiming.stdout.splitlines()[-1:]
    fails = _fail_lines(overclaiming.stdout)
    assert any(re.search(r"multiclass|softmax|K\s*=\s*3|3class", f, re.IGNORECASE) for f in fails), fails


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_check_runs_every_optimizer_a_loop_declares(overclaiming, optimizer):
    assert overclaiming.returncode == 1, overclaiming.stdout.splitlines()[-1:]
    fails = _fail_lines(overclaiming.stdout)
    assert any(optimizer in f for f in fails), fails


def test_check_supports_line_shows_multiclass_and_optimizers(overclaiming):
    supports = next(line for line in overclaiming.stdout.splitlines() if line.strip().startswith("supports:"))
    assert re.search(r"multiclass|softmax", supports, re.IGNORECASE), supports
    assert "momentum" in supports and "adam" in supports, supports


def test_backends_table_shows_multiclass_and_optimizers():
    r = run_cli("backends", env={"COLUMNS": "400"})
    assert r.returncode == 0, r.stderr
    numpy_row = next(line for line in r.stdout.splitlines() if re.match(r"\W*numpy\W", line))
    assert re.search(r"multiclass|softmax", r.stdout, re.IGNORECASE), r.stdout.splitlines()[:4]
    assert "adam" in numpy_row and "momentum" in numpy_row, numpy_row


def test_check_locates_a_bug_that_starts_at_a_later_step(tmp_path):
    r = _check(tmp_path / "late.py", bias="1.001 if t >= 50 else 1.0")
    assert r.returncode == 1
    fails = [f for f in _fail_lines(r.stdout) if "float64-logits]" in f]
    assert fails, r.stdout
    assert "no single step is beyond" not in fails[0], fails[0]
    assert re.search(r"from step 5[01]\b", fails[0]), fails[0]  # the update of step 50 is the first one off


def test_check_says_a_loop_ignores_the_batch_schedule(tmp_path):
    r = _check(tmp_path / "fullonly.py", batch="(self.X, self.y)")
    assert r.returncode == 1
    fails = [f for f in _fail_lines(r.stdout) if "batch" in f]
    assert fails, r.stdout
    assert "schedule" in fails[0] and "supports_minibatch = False" in fails[0], fails[0]


def test_check_of_an_abstract_class_cannot_be_used(tmp_path):
    r = run_cli("check", "implementations.base:Trainer", *QUICK, "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2, r.stdout.splitlines()[-1:]
    assert "cannot be used" in r.stdout + r.stderr, (r.stdout + r.stderr)[-800:]


@pytest.mark.parametrize("shape", ["(-1, 1)", "(1, -1)"])
def test_check_refuses_a_weight_vector_that_is_not_one_dimensional(tmp_path, shape):
    r = _check(tmp_path / "wshape.py", result=f"self.w.reshape{shape}, self.b, self.losses")
    assert r.returncode == 1, r.stdout.splitlines()[-1:]
    returned = "(4, 1)" if shape == "(-1, 1)" else "(1, 4)"
    assert any(returned in f for f in _fail_lines(r.stdout)), r.stdout
