"""The trainer API at its edges, one behaviour for every registered backend: a new ``prepare``
invalidates the old result, lr/l2 beyond the dtype, ``w0``/``b0`` and ``(w, b)`` refused with a
ValueError naming the argument, ``cpu:0``, torchrun variables outside the world, numpy-dask without a
``__main__`` guard: nothing stale, nothing left behind."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from implementations import BACKENDS, BackendUnavailableError, DeviceUnavailableError, TrainConfig

from .conftest import ROOT, make_trainer

NAMES = list(BACKENDS)


def _is_data_parallel(name: str) -> bool:
    try:
        return bool(BACKENDS[name].data_parallel)
    except (BackendUnavailableError, ImportError):
        return False  # skipped by _trainer anyway


SINGLE = [n for n in NAMES if not _is_data_parallel(n)]

rng = np.random.default_rng(7)
XA, YA = rng.normal(size=(12, 4)), np.array([0, 1] * 6)  # d = 4
XB, YB = rng.normal(size=(9, 3)), np.array([0, 1, 1] * 3)  # d = 3


def _trainer(name: str, **config) -> object:
    """``make_trainer(name, ...)`` for 5 steps (an unavailable device is a failure: every case here runs
    on the CPU). 5 steps = torch-compiled's K: its K-step graph, which other tests compile too (a 3-step
    run would compile a graph of its own, seconds on a small machine, for nothing these tests check)."""
    return make_trainer(name, TrainConfig(n_iters=5, **config))


# -- a new prepare invalidates the old result ------------------------------------------------------

@pytest.mark.parametrize("name", SINGLE)
def test_a_new_prepare_invalidates_the_old_result(name):
    trainer = _trainer(name)
    trainer.prepare(XA, YA, np.zeros(4), 0.0)
    trainer.run()
    assert trainer.result().w.shape == (4,)
    trainer.prepare(XB, YB, np.zeros(3), 0.0)  # another d
    with pytest.raises(RuntimeError, match=r"call run\(\) before result\(\)"):
        trainer.result()
    trainer.run()
    assert trainer.result().w.shape == (3,)
    # same shape, other data: still stale until run() again
    trainer.prepare(XB[::-1].copy(), YB, np.ones(3), 0.5)
    with pytest.raises(RuntimeError, match=r"call run\(\) before result\(\)"):
        trainer.result()


@pytest.mark.parametrize("name", SINGLE)
def test_a_refused_prepare_leaves_the_trainer_as_it_was(name):
    """Refused before any work: the prepared data and the result of the last run stay usable."""
    trainer = _trainer(name)
    trainer.prepare(XA, YA, np.zeros(4), 0.0)
    trainer.run()
    before = trainer.result()
    with pytest.raises(ValueError, match="w0 must have shape"):
        trainer.prepare(XB, YB, np.zeros(4), 0.0)
    np.testing.assert_array_equal(trainer.result().w, before.w)
    assert trainer.loss_and_grad(np.zeros(4), 0.0)[1].shape == (4,)


# -- lr and l2 beyond the dtype --------------------------------------------------------------------

BEYOND = {
    "lr-1e39-float32": (dict(lr=1e39), r"lr must fit in float32 \(largest finite value 3\.403e\+38\), got 1e\+39"),
    "l2-1e300-float32": (dict(l2=1e300), r"l2 must fit in float32 \(largest finite value 3\.403e\+38\), got 1e\+300"),
    "lr-just-above-float32-max": (dict(lr=3.5e38), r"lr must fit in float32 .* got 3\.5e\+38"),
    "lr-rounds-to-0-in-float32": (dict(lr=1e-50), r"lr must be positive in float32 \(smallest positive value "
                                                  r"1\.401e-45\), got 1e-50, which rounds to 0 there"),
}


@pytest.mark.parametrize("case", BEYOND)
def test_lr_and_l2_beyond_the_dtype_are_refused(case):
    kwargs, message = BEYOND[case]
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)
    # the same value is fine in float64, and refused again when a config is moved to float32
    ok = TrainConfig(dtype="float64", **kwargs)
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(ok, dtype="float32")


def test_lr_and_l2_at_the_dtype_edge_are_accepted():
    big = float(np.finfo(np.float32).max)
    assert TrainConfig(lr=big, l2=big).lr == big
    assert TrainConfig(lr=1e-45).lr == 1e-45  # a float32 subnormal, not 0


# -- w0/b0 and (w, b) name the argument; one behaviour for every backend ----------------------------

BAD_PARAMS = {  # prepare(XA, YA, w0, b0) with d = 4
    "w0-strings": (["a", "b", "c"], 0.0, r"w0 must be an array of shape \(4,\) of real numbers, got dtype <U1 "
                                         r"\(\['a', 'b', 'c'\]\)"),
    "w0-string": ("abcd", 0.0, r"w0 must be an array of shape \(4,\) of real numbers, got 'abcd'"),
    "w0-None": (None, 0.0, r"w0 must be an array of shape \(4,\) of real numbers, got None"),
    "w0-complex": (np.ones(4) * 1j, 0.0, r"w0 must be an array of shape \(4,\) of real numbers, got dtype complex128"),
    "w0-ragged": ([[1, 2], [3]], 0.0, r"w0 must be an array of shape \(4,\) of real numbers, got \[\[1, 2\], \[3\]\]"),
    "w0-2x2": (np.zeros((2, 2)), 0.0, r"w0 must have shape \(4,\) to match X's 4 columns, got shape \(2, 2\) "
                                      r"\(a \(1, 4\) row or a \(4, 1\) column is taken as \(4,\) too\)"),
    "w0-1x1x4": (np.zeros((1, 1, 4)), 0.0, r"w0 must have shape \(4,\) to match X's 4 columns, got shape \(1, 1, 4\)"),
    "w0-nan": (np.array([0, np.nan, 0, 0]), 0.0, r"w0 must contain only finite values, got nan at index 1"),
    "w0-beyond-float32": (np.array([0, 0, 1e39, 0]), 0.0, r"w0 must fit in float32 \(largest finite value "
                                                         r"3\.403e\+38\), got a value of magnitude 1e\+39"),
    "b0-string": (np.zeros(4), "abc", r"b0 must be a real number, got 'abc'"),
    "b0-numeric-string": (np.zeros(4), "1.0", r"b0 must be a real number, got '1\.0'"),
    "b0-complex": (np.zeros(4), 1j, r"b0 must be a real number, got 1j"),
    "b0-None": (np.zeros(4), None, r"b0 must be a real number, got None"),
    "b0-bool": (np.zeros(4), True, r"b0 must be a real number, got True"),
    "b0-vector": (np.zeros(4), [1, 2, 3], r"b0 must be a scalar, got an array of shape \(3,\)"),
    "b0-inf": (np.zeros(4), float("inf"), r"b0 must be finite, got inf"),
}


@pytest.mark.parametrize("case", BAD_PARAMS)
@pytest.mark.parametrize("name", NAMES)
def test_bad_w0_b0_name_the_argument(name, case):
    """Refused in prepare's validation, before a data-parallel backend starts anything."""
    w0, b0, message = BAD_PARAMS[case]
    trainer = _trainer(name, workers=2) if _is_data_parallel(name) else _trainer(name)
    with pytest.raises(ValueError, match=message):
        trainer.prepare(XA, YA, w0, b0)
    assert getattr(trainer, "group", None) is None  # nothing started


@pytest.mark.parametrize("name", SINGLE)
def test_the_seed_layouts_of_w0_and_b0_are_accepted(name):
    """``w ~ randn(1, 4)``, ``b ~ randn(1)`` as the seed writes them; a column too, and NumPy scalars."""
    trainer = _trainer(name)
    w = np.array([0.1, -0.2, 0.3, 0.05])
    results = []
    for w0, b0 in ((w, 0.25), (w.reshape(1, 4), np.array([0.25])), (w.reshape(4, 1), np.float32(0.25)),
                   (w.tolist(), np.array(0.25))):
        trainer.prepare(XA, YA, w0, b0)
        trainer.run()
        results.append(trainer.result())
    for r in results[1:]:
        np.testing.assert_array_equal(r.w, results[0].w)
        assert r.b == results[0].b


BAD_POINTS = {  # loss_and_grad(w, b) with d = 4, float32
    "b-vector": (np.zeros(4), [1, 2, 3], r"b must be a scalar, got an array of shape \(3,\)"),
    "b-complex": (np.zeros(4), 1j, r"b must be a real number, got 1j"),
    "b-nan": (np.zeros(4), float("nan"), r"b must be finite, got nan"),
    "w-nan": (np.array([np.nan, 0, 0, 0]), 0.0, r"w must contain only finite values, got nan at index 0"),
    "w-inf": (np.array([0, 0, 0, -np.inf]), 0.0, r"w must contain only finite values, got -inf at index 3"),
    "w-2x2": (np.zeros((2, 2)), 0.0, r"w must have shape \(4,\) to match X's 4 columns, got shape \(2, 2\)"),
    "w-strings": (["a", "b", "c", "d"], 0.0, r"w must be an array of shape \(4,\) of real numbers, got dtype <U1"),
    "w-beyond-float32": (np.array([1e39, 0, 0, 0]), 0.0, r"w must fit in float32 \(largest finite value 3\.403e\+38\)"),
    "b-beyond-float32": (np.zeros(4), -1e39, r"b must fit in float32 \(largest finite value 3\.403e\+38\), "
                                            r"got a value of magnitude 1e\+39"),
}


@pytest.mark.parametrize("name", SINGLE)
def test_loss_and_grad_validates_like_prepare(name):
    trainer = _trainer(name)
    trainer.prepare(XA, YA, np.zeros(4), 0.0)
    for w, b, message in BAD_POINTS.values():
        with pytest.raises(ValueError, match=message):
            trainer.loss_and_grad(w, b)
    # the seed's layouts are accepted here too, with one answer
    ref = trainer.loss_and_grad(np.full(4, 0.1), 0.2)
    for w, b in ((np.full((1, 4), 0.1), [0.2]), (np.full((4, 1), 0.1), np.float64(0.2))):
        loss, gw, gb = trainer.loss_and_grad(w, b)
        assert loss == ref[0] and gb == ref[2]
        np.testing.assert_array_equal(gw, ref[1])


# -- one rule for 'cpu:0' --------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_cpu_0_means_cpu_on_every_backend(name):
    trainer = _trainer(name, device="cpu:0", **({"workers": 2} if _is_data_parallel(name) else {}))
    assert trainer.config.device == "cpu"
    if not _is_data_parallel(name):
        trainer.prepare(XA, YA, np.zeros(4), 0.0)
        trainer.run()
        assert trainer.result().w.shape == (4,)


@pytest.mark.parametrize("device", ["cpu:1", "cpu:01"])
def test_another_cpu_index_is_refused(device):
    with pytest.raises(DeviceUnavailableError, match=rf"device '{device}': there is one CPU device, 'cpu' "
                                                      r"\(also written 'cpu:0'\)"):
        TrainConfig(device=device)
    assert TrainConfig(device="cpu:00").device == "cpu"


# -- torch-ddp: torchrun variables outside the world are refused at once ---------------------------

TORCHRUN_BAD = {
    "rank-beyond-world": (dict(RANK="5", WORLD_SIZE="2"), r"RANK must be an integer from 0 to WORLD_SIZE - 1 = 1, "
                                                           r"got RANK=5 \(WORLD_SIZE=2\)"),
    "rank-equals-world": (dict(RANK="2", WORLD_SIZE="2"), r"got RANK=2 \(WORLD_SIZE=2\)"),
    "rank-negative": (dict(RANK="-1", WORLD_SIZE="2"), r"got RANK=-1 \(WORLD_SIZE=2\)"),
    "world-zero": (dict(RANK="0", WORLD_SIZE="0"), r"WORLD_SIZE must be an integer >= 1 \(the number of ranks\), "
                                                    r"got WORLD_SIZE=0"),
    "local-rank-junk": (dict(RANK="1", WORLD_SIZE="2", LOCAL_RANK="x"), r"LOCAL_RANK must be an integer from 0 to "
                                                                         r"WORLD_SIZE - 1 = 1, got LOCAL_RANK='x'"),
}


@pytest.mark.parametrize("case", TORCHRUN_BAD)
def test_torchrun_rank_outside_the_world_is_refused_at_once(case, monkeypatch):
    pytest.importorskip("torch")
    env, message = TORCHRUN_BAD[case]
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    for key, value in dict(MASTER_ADDR="127.0.0.1", MASTER_PORT="29531", LOGREG_DIST_TIMEOUT="30", **env).items():
        monkeypatch.setenv(key, value)
    t0 = time.monotonic()
    with pytest.raises(ValueError, match=message):
        trainer = _trainer("torch-ddp", workers=2)
        trainer.prepare(XA, YA, np.zeros(4), 0.0)  # must not get here: no rendezvous at all
    assert time.monotonic() - t0 < 5


# -- numpy-dask: no __main__ guard, a script on stdin, exit without close() ------------------------

DASK_SCRIPT = textwrap.dedent("""
    import os
    import numpy as np
    from implementations import TrainConfig, create_trainer
    # no `if __name__ == "__main__":` guard, and no close(): the trainer is left to interpreter exit
    trainer = create_trainer("numpy-dask", TrainConfig(workers=2, n_iters=3))
    trainer.prepare(np.arange(20.0).reshape(10, 2) / 10, np.arange(10) % 2, np.zeros(2), 0.0)
    trainer.run()
    print("PIDS", *trainer.group.client.run(os.getpid).values(), flush=True)
    print("LOSS", trainer.result().losses[-1], flush=True)
""")


@pytest.mark.subprocess
@pytest.mark.parametrize("how", ["stdin", "file"])
def test_numpy_dask_runs_unguarded_and_exits_quietly(how, tmp_path):
    """``python - < script.py`` and a file without the guard both train on real worker processes;
    at exit without close() nothing is logged and no worker is left behind."""
    pytest.importorskip("distributed")
    psutil = pytest.importorskip("psutil")
    script = tmp_path / "train.py"
    script.write_text(DASK_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("LOGREG_DASK_SCHEDULER", None)
    with open(script) as stdin:
        args = [sys.executable, "-"] if how == "stdin" else [sys.executable, str(script)]
        proc = subprocess.run(args, stdin=stdin if how == "stdin" else subprocess.DEVNULL, cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.strip() == "", proc.stderr[-3000:]  # no traceback, no "ERROR ... lose scattered data"
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert np.isfinite(float(lines["LOSS"]))
    pids = [int(p) for p in lines["PIDS"].split()]
    assert len(pids) == 2 and os.getpid() not in pids  # worker processes, not threads of the script
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
