"""The default run (`make bench`): what it selects, how its rounds are budgeted, and how it ends.

- ``python -m bench run`` is the float32 main comparison plus the mini-batch block; ``--blocks all``
  (the reference run) adds float64 and the other blocks; ``--dtypes`` overrides either;
- a row's timed rounds: at least ``--repeats``, more while the rounds so far took less than
  ``--budget`` (pytest-benchmark's and ``timeit.autorange``'s rule), never more than the cap;
- the run judges a full-length warm-up instead of paying for another run;
- the console's last lines are the verdict's answer, the same sentences as ``summary.md``.
"""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

from bench import suites
from bench.cases import RunOptions, default_backends, matrix
from bench.records import read_run
from bench.report import headlines
from bench.runner import run
from bench.timing import measure
from examples.my_loop import MyLoop
from implementations import register, unregister
from tests.cli import run_cli


def _listed(*args) -> list[str]:
    proc = run_cli("run", "--list", *args)
    assert proc.returncode == 0, proc.stderr
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def _parts(case_id: str) -> dict:
    ds, dtype, form, batch = case_id.split("|")[:4]
    return {"dataset": ds, "dtype": dtype, "formulation": form, "batch": batch}


def test_default_run_is_float32_main_and_minibatch():
    ids = [_parts(c) for c in _listed()]
    assert {p["dtype"] for p in ids} == {"float32"}
    main = [p for p in ids if p["batch"] == "full"]
    assert {p["dataset"] for p in main} == set(suites.DEFAULT_DATASETS)
    assert {p["formulation"] for p in main} == {"probs", "logits"}
    mini = [p for p in ids if p["batch"] != "full"]
    assert {(p["dataset"], p["batch"]) for p in mini} == {(suites.MINIBATCH_DATASET, f"b{suites.MINIBATCH_SIZE}")}
    n = len(default_backends())  # every single-process backend, both formulations, per dataset; one mini-batch row each
    assert len(main) == n * len(suites.DEFAULT_DATASETS) * 2 and len(mini) == n
    assert not any(p["dataset"] in suites.SOFTMAX_DATASETS for p in ids)  # softmax and time-to-model: --blocks all


def test_blocks_all_is_the_reference_run_with_float64():
    ids = [_parts(c) for c in _listed("--blocks", "all")]
    main = {(p["dataset"], p["dtype"]) for p in ids if p["dataset"] in suites.DEFAULT_DATASETS and p["batch"] == "full"}
    assert main == {(ds, dt) for ds in suites.DEFAULT_DATASETS for dt in suites.REFERENCE_DTYPES}
    assert {p["dataset"] for p in ids} >= set(suites.SOFTMAX_DATASETS)


def test_dtypes_still_override_the_default():
    ids = [_parts(c) for c in _listed("--dtypes", "float64", "--blocks", "main")]
    assert ids and {p["dtype"] for p in ids} == {"float64"}


class _Sleeper:
    """A trainer whose run() sleeps ``seconds``: the rounds' budget without any real work."""

    data_parallel = False

    def __init__(self, seconds: float):
        self.seconds, self.calls = seconds, 0
        self.config = SimpleNamespace(n_iters=10, device="cpu")

    def run(self):
        self.calls += 1
        time.sleep(self.seconds)


def test_slow_rounds_still_get_the_minimum():
    t = _Sleeper(0.05)
    m = measure(t, rounds=3, warmup=1, budget_s=0.01)  # the budget is spent after one round
    assert len(m.times) == 3 and t.calls == 4  # 1 warm-up + the minimum


def test_rounds_are_added_until_the_budget_is_spent_then_stop():
    t = _Sleeper(0.01)
    m = measure(t, rounds=3, warmup=0, budget_s=0.3)
    # about 0.3 / 0.01 = 30 rounds; a loaded machine sleeps longer (fewer rounds), never more than the
    # budget needs: the rounds stop once the budget is spent, the last one being the one that spent it
    assert 3 < len(m.times) <= 30
    assert sum(m.times[:-1]) < 0.3 <= sum(m.times) < 3 * 0.3


def test_rounds_stop_at_the_cap_and_no_budget_means_the_minimum():
    assert len(measure(_Sleeper(0.0), rounds=3, warmup=0, budget_s=10.0, max_rounds=7).times) == 7
    assert len(measure(_Sleeper(0.001), rounds=4, warmup=0, budget_s=None).times) == 4


def test_the_default_options_are_suites_values():
    o = RunOptions()
    assert (o.repeats, o.budget_s) == (suites.ROUNDS_MIN, suites.ROUND_BUDGET_S) and suites.ROUNDS_MIN >= 3


def test_a_full_length_warmup_is_the_run_judged():
    t = _Sleeper(0.0)
    seen = []
    measure(t, rounds=3, warmup=1, budget_s=None, after_warmup=lambda: seen.append(t.calls))
    assert seen == [1] and t.calls == 4  # the callback sees the warm-up's run, before any timed round


def _plain(text: str) -> str:
    return re.sub(r"\*\*|`", "", text).strip()


def test_console_ends_with_summary_md_headlines(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("run", "--datasets", "iris", "--iters", "20", "--repeats", "3", "--budget", "0.05",
                   "--backends", "numpy", "torch", "--dtypes", "float32", "--devices", "cpu", "--out", out)
    assert proc.returncode == 0, proc.stderr
    lines = [x.rstrip() for x in proc.stdout.splitlines() if x.strip()]
    assert lines[-1] == f"Full summary: {out / 'summary.md'}"
    start = max(i for i, x in enumerate(lines) if x.startswith("The answer"))
    shown = [x.strip().removeprefix("• ") for x in lines[start + 1:-1]]
    # the console's answer is headlines() of the saved rows: each title, then its sentences
    expected = [_plain(x) for title, sentences in headlines(read_run(out).rows) for x in (title, *sentences)]
    assert shown == expected and len(shown) >= 3
    # ... and every one of those lines is in summary.md's verdict, word for word
    md = (out / "summary.md").read_text()
    verdict = md[md.index("## Verdict"):]
    plain = {_plain(x.removeprefix("- ")) for x in verdict.splitlines()}
    assert set(shown) <= plain


class _CompilesAhead(MyLoop):
    """A loop that compiles its whole run in ``prepare`` (as ``jax`` does): a twin would compile a
    program of its own, so its warm-up is its own full-length run, and that run is the one judged."""

    made = 0

    def __init__(self, config):
        super().__init__(config)
        type(self).made += 1

    def _prepare(self, X, y, w0, b0):
        super()._prepare(X, y, w0, b0)
        self.compile_s = 0.01


def test_a_trainer_compiled_in_prepare_gets_no_twin_and_its_warmup_is_judged():
    register("t-ahead", _CompilesAhead, replace=True)
    try:
        cases = matrix(["t-ahead"], ["cpu"], ["iris"], ["float64"], ["logits"], iters=50)  # > WARMUP_STEPS
        result = run(cases, [], RunOptions(repeats=3, budget_s=None, optimum=False))
    finally:
        unregister("t-ahead")
    (row,) = result.rows
    assert _CompilesAhead.made == 1  # the timed trainer alone
    assert row.status == "ok" and row.verdict == "pass" and row.rounds == 3 and row.warmup_rounds == 1
